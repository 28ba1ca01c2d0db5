"""Packs on a backend (format 2): where they live, how one is built and stored, and verified reads.

``packs/<hex[:2]>/<hex[2:]>`` holds one pack, named by the BLAKE3 of its bytes
and stored create-only like a blob (so a pack is whole or absent).  The pack
index that locates blobs in it is a record (cas.core.packs); this module never
speaks SQL: the store layer hands :class:`PackReader` a ``locate`` function
over the index's pack table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from cas.backends.base import Backend
from cas.core.digest import hash_bytes, is_hex_digest
from cas.core.packs import MAX_PACK_BLOBS, MAX_PACK_SIZE, PACK_MAGIC, PackEntry
from cas.errors import IntegrityError

__all__ = ["PACK_PREFIX", "PackBuilder", "PackReader", "StoredPack", "iter_packs", "pack_from_path", "pack_path"]

PACK_PREFIX = "packs"


def pack_path(pack: str) -> str:
    return f"{PACK_PREFIX}/{pack[:2]}/{pack[2:]}"


def pack_from_path(rel: str) -> str | None:
    """The pack a ``packs/..`` path stands for, or None for a foreign file."""
    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == PACK_PREFIX and len(parts[1]) == 2 and is_hex_digest(parts[1] + parts[2]):
        return parts[1] + parts[2]
    return None


def iter_packs(backend: Backend) -> Iterator[tuple[str | None, str, int, float | None]]:
    """(pack or None if foreign, path, size, mtime) for everything under packs/."""
    for e in backend.list(PACK_PREFIX):
        yield pack_from_path(e.path), e.path, e.size, e.mtime


class StoredPack:
    """A pack that was stored: its name, size and (digest, offset, length) of each blob."""

    def __init__(self, pack: str, size: int, blobs: list[tuple[str, int, int]]) -> None:
        self.pack, self.size, self.blobs = pack, size, blobs


class PackBuilder:
    """Small blobs gathered into one pack in memory (at most MAX_PACK_SIZE of them,
    so memory stays bounded), stored by :meth:`store`.  Thread-safe."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._parts: list[bytes] = [PACK_MAGIC]
        self._size = len(PACK_MAGIC)
        self._blobs: list[tuple[str, int, int]] = []
        self._held: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._blobs)

    def holds(self, digest: str) -> bool:
        return digest in self._held

    def add(self, digest: str, data: bytes) -> StoredPack | None:
        """Add one blob (already hashed to ``digest``); a pack that became full is
        stored and returned (content-addressed: inside a batch, durable when it ends)."""
        with self._lock:
            if digest in self._held:
                return None
            self._blobs.append((digest, self._size, len(data)))
            self._parts.append(data)
            self._held[digest] = data
            self._size += len(data)
            full = self._size - len(PACK_MAGIC) >= MAX_PACK_SIZE or len(self._blobs) >= MAX_PACK_BLOBS
            return self._store_locked() if full else None

    def take_few(self, below: int) -> list[tuple[str, bytes]]:
        """The blobs gathered, removed, when there are fewer than ``below`` of them: such
        a pack would cost more objects (pack, index record, ref, journal entry) than the
        blobs stored loose."""
        with self._lock:
            if len(self._blobs) >= below:
                return []
            few = [(digest, self._held[digest]) for digest, _, _ in self._blobs]
            self._reset()
            return few

    def store(self) -> StoredPack | None:
        """Store what is gathered as one pack (None if nothing is)."""
        with self._lock:
            return self._store_locked() if self._blobs else None

    def _store_locked(self) -> StoredPack:
        data = b"".join(self._parts)
        pack = hash_bytes(data)
        self.backend.create_bytes(pack_path(pack), data, content_addressed=True)
        stored = StoredPack(pack, len(data), self._blobs)
        self._reset()
        return stored

    def _reset(self) -> None:
        self._parts, self._size, self._blobs, self._held = [PACK_MAGIC], len(PACK_MAGIC), [], {}


class PackReader:
    """Reads blobs out of packs, each one a ranged read verified against the blob's digest.

    ``locate(digest)`` gives the known places of a blob (newest pack first);
    ``refresh()`` learns pack indexes other machines announced, and is asked
    once when a blob is found nowhere (a pack repacked elsewhere, an index behind).
    """

    def __init__(
        self, backend: Backend, locate: Callable[[str], list[PackEntry]], refresh: Callable[[], object] | None = None
    ) -> None:
        self.backend = backend
        self.locate = locate
        self.refresh_index = refresh
        self._busy = threading.local()  # a refresh reads blobs too: never refresh inside one

    def read(self, digest: str) -> bytes | None:
        """The verified bytes of ``digest`` from a pack; None if no known pack holds it.
        A pack whose bytes do not hash to the blob raises IntegrityError (after trying
        the blob's other packs): never a wrong byte."""
        failure: IntegrityError | None = None
        for entry in self.locate(digest):
            rel = pack_path(entry.pack)
            try:
                # an empty range is no request (object stores answer "bytes=16-15" with the whole object)
                data = self.backend.read_range(rel, entry.offset, entry.offset + entry.length) if entry.length else b""
            except FileNotFoundError:
                continue  # dropped or repacked by gc: another entry (or a refresh) may have it
            actual = hash_bytes(data)
            if actual == digest and len(data) == entry.length:
                return data
            failure = failure or IntegrityError(digest, actual, f"{rel} at {entry.offset}+{entry.length}")
        if failure is not None:
            raise failure
        return None

    def where(self, digest: str) -> PackEntry | None:
        """The first known place of ``digest`` whose pack is in the backend (asked there)."""
        for entry in self.locate(digest):
            if self.backend.exists(pack_path(entry.pack)):
                return entry
        return None

    def refresh(self) -> bool:
        """Learn new pack indexes (once per miss); False if there is no way to, or already inside one."""
        if self.refresh_index is None or getattr(self._busy, "on", False):
            return False
        self._busy.on = True
        try:
            self.refresh_index()
        finally:
            self._busy.on = False
        return True

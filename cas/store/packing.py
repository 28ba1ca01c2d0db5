"""Packing small blobs (format 2): the session a save or a sync writes through, and the pack applier.

A :class:`PackSession` is opened around one save's (or one sync's) content.
Small blobs go into packs (cas.storage.packs); on a clean exit the last pack
is stored and every pack's index is published through the Publisher - a
record claimed create-only under ``refs/packs/<pack>``, so the journal
carries it and other machines learn it O(new).  Packs are stored (durable)
before their index is published, and the index before any version record
that needs them (invariant 4).  A session that fails publishes nothing:
its packs are unreferenced bytes, which gc collects after its grace period.

Format-1 stores never open a session (:func:`session` yields plain blobs).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from cas.core.digest import CHUNK, Hasher, hash_bytes
from cas.core.packs import MIN_PACK_BLOBS, PACK_THRESHOLD, PACK_TYPE, PackEntry, PackIndex, pack_index_record
from cas.core.progress import as_callback
from cas.core.refs import pack_ref, parse_ref_path
from cas.errors import IntegrityError
from cas.storage.blobs import BlobStore, PutResult, blob_path
from cas.storage.packs import PackBuilder, PackReader, StoredPack, pack_path
from cas.store.publish import Publisher, applier

if TYPE_CHECKING:
    from cas.core.progress import Callback

__all__ = ["PackSession", "install_reader", "publish_pack", "session"]


def install_reader(pub: Publisher) -> None:
    """Let ``pub.blobs`` find packed blobs (format 2): located through the index, learned by refresh."""
    if pub.format >= 2:
        pub.blobs.packs = PackReader(pub.backend, pub.index.pack_locations, lambda: _refresh_outside(pub))


def _refresh_outside(pub: Publisher) -> None:
    """A miss's refresh, unless this thread's index is inside a write transaction (a reindex
    replaying the journal reads records there): a refresh then cannot write, and the reindex
    learns every pack index anyway; the miss stays a miss (a dangling ref, reported)."""
    if not pub.index.in_transaction():
        pub.refresh()


def publish_pack(pub: Publisher, stored: StoredPack, *, in_sweep: bool = False) -> None:
    """Announce a stored (durable) pack: its index record, claimed create-only and journalled.

    ``in_sweep``: gc repacking, inside its own sweep.  The claim then does not check
    the sweep marks (it would wait for that very sweep); the pack and record are
    fresh, never among the sweep's candidates.  Sync claims refs the same way."""
    record = pack_index_record(stored.pack, stored.size, stored.blobs)
    if not in_sweep:
        pub.publish(record, "seq", 0, lambda _: pack_ref(stored.pack), exact=True)  # False: the same pack, announced
        return
    record_digest, ref = pub.records.put_record(record), pack_ref(stored.pack)
    if pub.records.claim(ref, record_digest):
        pub.commit(ref, record_digest, record)


class PackSession:
    """Writes one save's small blobs into packs; large ones go loose, as in format 1.

    Dedupe: a blob already stored (in a pack this index knows and the backend
    still holds, loose where that is cheap to ask, or earlier in this session)
    is not written again.
    """

    def __init__(self, pub: Publisher) -> None:
        self.pub = pub
        self.blobs: BlobStore = pub.blobs
        self.builder = PackBuilder(pub.backend)
        self.stored: list[StoredPack] = []
        self._present_packs: set[str] = set()
        self._written: set[str] = set()  # blobs this session packed
        self.packable: set[str] = set()  # sync: which of the blobs it sends are file contents
        self.planned = False  # sync: what it is given was found missing (cas.store.sync), so is written
        self._local = pub.backend.capabilities.local

    def put_file(self, path: str | os.PathLike, progress: Callback | None = None) -> PutResult:
        path = os.fspath(path)
        size = os.stat(path).st_size
        if size >= PACK_THRESHOLD:
            return self.blobs.put_file(path, progress)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))  # a raw read: the per-file cost matters
        try:
            data = os.read(fd, PACK_THRESHOLD)
        finally:
            os.close(fd)
        if len(data) >= PACK_THRESHOLD:  # grew since the stat: too big to pack
            return self.blobs.put_file(path, progress)
        result = self.put_bytes(data)
        as_callback(progress).relative_update(result.size)
        return result

    def put_bytes(self, data: bytes, *, digest: str | None = None, packed: bool | None = None) -> PutResult:
        """``digest`` and ``packed`` (is it in a pack the backend holds?): found by the
        caller for many blobs at once (cas.store.trees), so not asked again here."""
        if len(data) >= PACK_THRESHOLD:
            return self.blobs.put_bytes(data)
        digest = digest or hash_bytes(data)
        if self.has(digest) if packed is None else (packed or digest in self._written or self.has_loose(digest)):
            return PutResult(digest, len(data), False)
        self._written.add(digest)
        full = self.builder.add(digest, data)
        if full is not None:
            self.stored.append(full)
        return PutResult(digest, len(data), True)

    def has(self, digest: str) -> bool:
        """Is ``digest`` stored already (so it need not be written)?"""
        if digest in self._written:
            return True
        if self.planned:
            return False
        for entry in self.pub.index.pack_locations(digest):
            if entry.pack in self._present_packs or self.pub.backend.exists(pack_path(entry.pack)):
                self._present_packs.add(entry.pack)  # asked once per pack and session, not per blob
                return True
        return self.has_loose(digest)

    def has_loose(self, digest: str) -> bool:
        """Is ``digest`` stored as a loose blob (asked where that is cheap or likely)?"""
        if self._local or self.pub.index.live_blob_size(digest) is not None:
            # a loose blob: a stat on local disk; remotely only for content the index says is
            # stored (one request per file would cost more than the duplicate bytes it saves)
            return self.pub.backend.exists(blob_path(digest))
        return False

    def finish(self) -> None:
        """Store the last pack (a few blobs go loose) and publish every pack's index."""
        few = self.builder.take_few(MIN_PACK_BLOBS)
        if few:
            with self.pub.backend.batch():  # fsynced together, durable before any claim
                for _, data in few:
                    self.blobs.put_bytes(data)
        last = self.builder.store()
        if last is not None:
            self.stored.append(last)
        for stored in self.stored:
            publish_pack(self.pub, stored)
        self.stored = []


@contextlib.contextmanager
def session(pub: Publisher) -> Iterator[Any]:
    """A :class:`PackSession` for a format-2 store, else the plain BlobStore: same put methods.

    Open it *outside* the ``backend.batch()`` of the content it writes: packs
    closed inside the batch are durable when the batch ends, before the session
    publishes their indexes."""
    if pub.format < 2:
        yield pub.blobs
        return
    packing = PackSession(pub)
    yield packing
    packing.finish()


@contextlib.contextmanager
def sync_session(src: Publisher, dst: Publisher, blobs: Iterable[str]) -> Iterator[PackSession | None]:
    """For sync into a format-2 store: a session packing the file contents among ``blobs``
    (records and manifests stay loose, as a save leaves them; from a format-2 store, only
    content packed there, whose pack is not sent whole); None for a format-1 destination."""
    if dst.format < 2:
        yield None
        return
    packing = PackSession(dst)
    packing.planned = True  # the plan verified what the destination's pack indexes claim
    packing.packable = src.index.content_digests(blobs)
    if src.format >= 2:  # what is loose at the source stays loose: an unfiltered sync mirrors it exactly
        packing.packable = {d for d in packing.packable if src.index.pack_locations(d)}
    yield packing
    packing.finish()


def sendable(dst: Publisher, refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The refs sync may send to ``dst``: pack indexes only into a format-2 store (a format-1
    store gets the packed content as loose blobs)."""
    return refs if dst.format >= 2 else [(r, d) for r, d in refs if parse_ref_path(r).kind != "packs"]


def send_packs(src: Publisher, dst: Publisher, refs: Iterable[tuple[str, str]], wanted: Collection[str]) -> dict[str, int]:
    """Copy whole, verified against its name, every pack whose index ref sync sends (format 2 ->
    format 2, so the destination mirrors the source's pack refs).  Returns the blobs of ``wanted``
    now in a pack at ``dst``, each checked against its digest (the rest is sent as blobs), with
    their sizes if this call wrote their pack (0: the destination held it already)."""
    covered: dict[str, int] = {}
    for ref, _ in refs:
        key = parse_ref_path(ref)
        if key.kind != "packs":
            continue
        rel = pack_path(key.owner)
        fd, tmp = dst.backend.local_tempfile()
        try:
            with os.fdopen(fd, "wb") as out, src.backend.open_read(rel) as reader:
                hasher = Hasher(threaded=False)
                while block := reader.read(CHUNK):  # streamed: memory stays bounded
                    hasher.update(block)
                    out.write(block)
        except FileNotFoundError:
            os.unlink(tmp)
            continue  # retired at the source: its ref is mirrored, its live blobs go as blobs
        if hasher.hexdigest() != key.owner:
            os.unlink(tmp)
            raise IntegrityError(key.owner, hasher.hexdigest(), f"source {rel}")
        with open(tmp, "rb") as f:
            good = {e.digest: e.length for e in src.index.pack_entries(key.owner)
                    if e.digest in wanted and hash_bytes(os.pread(f.fileno(), e.length, e.offset)) == e.digest}
        if not dst.backend.create_from_file(rel, tmp, move=True, content_addressed=True):  # durable before its ref
            good = dict.fromkeys(good, 0)
        covered.update(good)
    return covered


@applier(PACK_TYPE)
def _apply_pack(pub: Publisher, c, record: dict[str, Any], record_digest: str) -> None:
    # Every record reaching an applier was validated when it was read from the backend
    # (cas.core.records runs decode_pack_index), or built by this cas: not checked twice.
    entries = tuple(PackEntry(d, record["pack"], o, n) for d, o, n in record["blobs"])
    pub.index.insert_pack(c, PackIndex(record["pack"], record["size"], entries))

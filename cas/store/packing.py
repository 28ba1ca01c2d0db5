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
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from cas.core.digest import hash_bytes
from cas.core.packs import PACK_THRESHOLD, PACK_TYPE, decode_pack_index, pack_index_record
from cas.core.progress import as_callback
from cas.core.refs import pack_ref
from cas.storage.blobs import BlobStore, PutResult, blob_path
from cas.storage.packs import PackBuilder, PackReader, StoredPack, pack_path
from cas.store.publish import Publisher, applier

if TYPE_CHECKING:
    from cas.core.progress import Callback

__all__ = ["PackSession", "install_reader", "publish_pack", "session"]


def install_reader(pub: Publisher) -> None:
    """Let ``pub.blobs`` find packed blobs (format 2): located through the index, learned by refresh."""
    if pub.format >= 2:
        pub.blobs.packs = PackReader(pub.backend, pub.index.pack_locations, pub.refresh)


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

    def put_bytes(self, data: bytes) -> PutResult:
        if len(data) >= PACK_THRESHOLD:
            return self.blobs.put_bytes(data)
        digest = hash_bytes(data)
        if self.has(digest):
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
        for entry in self.pub.index.pack_locations(digest):
            if entry.pack in self._present_packs or self.pub.backend.exists(pack_path(entry.pack)):
                self._present_packs.add(entry.pack)  # asked once per pack and session, not per blob
                return True
        if self._local or self.pub.index.live_blob_size(digest) is not None:
            # a loose blob: a stat on local disk; remotely only for content the index says is
            # stored (one request per file would cost more than the duplicate bytes it saves)
            return self.pub.backend.exists(blob_path(digest))
        return False

    def finish(self) -> None:
        """Store the last pack (a single blob goes loose) and publish every pack's index."""
        single = self.builder.take_single()
        if single is not None:
            self.blobs.put_bytes(single[1])
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
    (records and manifests stay loose, as a save leaves them); None for a format-1 one."""
    if dst.format < 2:
        yield None
        return
    packing = PackSession(dst)
    packing.packable = src.index.content_digests(blobs)
    yield packing
    packing.finish()


@applier(PACK_TYPE)
def _apply_pack(pub: Publisher, c, record: dict[str, Any], record_digest: str) -> None:
    # The record was validated when it was read (cas.core.records: decode_pack_index).
    pub.index.insert_pack(c, decode_pack_index(record, record_digest))

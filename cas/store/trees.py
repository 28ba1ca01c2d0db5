"""Saving a directory as one tree: the walk, the stat cache's verdicts, and the files read.

A tree of thousands of small files is where per-file costs add up (issue 14's
rows), so nothing here costs a statement or a request per file that can be had
per tree or per batch: the stat cache is loaded once (cas.index.statcache), the
blobs it vouches for are asked for in bulk (one index query per batch of digests,
one backend request per pack, format 2), and small files that must be read go
into the packing session in batches whose digests are looked up together.

Trust is unchanged: a file is taken unread only when the stat cache vouches for
its stat (git's racy rule) *and* the backend holds its blob (a gc may have
removed it); any other file is read and hashed; ``rehash`` reads every one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cas.core.chunks import wants_chunks
from cas.core.digest import hash_bytes
from cas.core.packs import PACK_THRESHOLD
from cas.core.progress import as_callback, item_done
from cas.core.records import TREE
from cas.core.tree import ChunkedEntry, encode_manifest, walk_file_stats
from cas.index import Looked, StatCache
from cas.storage.blobs import PutResult, blob_path
from cas.storage.chunked import ChunkedPut
from cas.storage.packs import pack_path
from cas.store import packing
from cas.store.publish import Publisher

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from cas.store.ingest import Ingest

__all__ = ["Holdings", "put_tree"]

BATCH_FILES = 512  # small files read, hashed and looked up together (format 2)
BATCH_BYTES = 8 << 20  # ... holding at most this many bytes in memory at once
_QUERY = 900  # digests per index query (SQLite's oldest bound on parameters is 999)


def put_tree(ingest: Ingest, root: str, progress: Callback | None, seen: StatCache):
    """Store the files below ``root`` and their manifest: (TREE, result, sorted entries).

    ``seen`` is opened before the walk, so its opening time is a clock reading
    from before every stat the walk takes (what the racy rule compares)."""
    pub = ingest.publisher
    progress = as_callback(progress)  # once per tree, not once per file
    # Walk (and validate every path) before writing: a refused symlink or bad name changes nothing.
    files = list(walk_file_stats(root, exclude=ingest.own_files()))
    progress.set_size(sum(st.st_size for _, _, st in files))  # the bar's total, from this one walk
    looked = seen.look_tree(files)
    holdings = Holdings(pub)
    # a chunked file (format 2) is cut again, as a single file is: only whole blobs are taken unread
    vouched = holdings.stored(
        (look.digest, look.stat.size)
        for look in looked
        if look.digest is not None and not wants_chunks(pub.format, look.stat.size)
    )
    entries: list[tuple[str, str, int]] = []
    unread = 0  # bytes of files taken unread, reported to the bar in one go per batch
    # format 2: small files go into packs (published once the batch made them durable)
    with packing.session(pub) as sink, ingest.backend.batch(), seen:
        small = _SmallFiles(sink, holdings, seen, progress, entries) if pub.format >= 2 else None
        for (rel, abspath, st), look in zip(files, looked, strict=True):
            if look.digest is not None and look.digest in vouched:
                entries.append((rel, look.digest, look.stat.size))
                unread += look.stat.size
                if len(entries) % BATCH_FILES == 0:
                    progress.relative_update(unread)
                    unread = 0
            elif small is not None and st.st_size < PACK_THRESHOLD and not wants_chunks(pub.format, st.st_size):
                small.add(rel, abspath, look)
            else:
                result = ingest.put_file(abspath, progress, seen, look, sink)
                entries.append(_entry(rel, result))
        if small is not None:
            small.flush()
        progress.relative_update(unread)
        item_done(progress, len(files))
        manifest = ingest.blobs.put_bytes(encode_manifest(entries))
    total = sum(size for _, _, size in entries)
    return TREE, PutResult(manifest.digest, total, manifest.written), sorted(entries)


def _entry(rel: str, result: PutResult) -> tuple[str, str, int]:
    if isinstance(result, ChunkedPut):  # format 2: a chunked file's entry names its chunk list
        return ChunkedEntry(rel, result.digest, result.size, result.chunks)
    return (rel, result.digest, result.size)


class Holdings:
    """Which blobs the backend holds, asked in bulk: the index says which packs may hold
    them (format 2), and each pack is asked for once; a blob in none is asked for loose."""

    def __init__(self, pub: Publisher) -> None:
        self.pub = pub
        self._packs: dict[str, bool] = {}  # pack -> the backend holds it (asked once per save)

    def packed(self, wanted: dict[str, int | None]) -> set[str]:
        """Those of ``wanted`` (digest -> size, None for any size) in a pack the backend
        holds, with that length (format 2; none in format 1)."""
        found: set[str] = set()
        if self.pub.format < 2:
            return found
        digests = list(wanted)
        for start in range(0, len(digests), _QUERY):
            for digest, pack, length in self.pub.index.pack_holders(digests[start : start + _QUERY]):
                if digest not in found and wanted[digest] in (None, length) and self._has_pack(pack):
                    found.add(digest)
        return found

    def stored(self, wanted: Iterable[tuple[str, int]]) -> set[str]:
        """Those of ``wanted`` (digest, size) the backend holds, packed or loose, with that
        size: a stat-cache row naming a stored blob of another size is not taken (each loose
        one is asked for, as ``BlobStore.stored_size`` does)."""
        sizes: dict[str, int | None] = dict(wanted)
        found = self.packed(sizes)
        found.update(d for d, size in sizes.items() if d not in found and self._loose_size(d) == size)
        return found

    def _loose_size(self, digest: str) -> int | None:
        try:
            return self.pub.backend.size(blob_path(digest))
        except FileNotFoundError:
            return None

    def _has_pack(self, pack: str) -> bool:
        held = self._packs.get(pack)
        if held is None:
            held = self._packs[pack] = self.pub.backend.exists(pack_path(pack))
        return held


class _SmallFiles:
    """Small files to read into the packing session (format 2), a batch at a time: read and
    hashed, their digests looked up in one go, then each packed unless already stored."""

    def __init__(self, sink, holdings: Holdings, seen: StatCache, progress: Callback, entries: list) -> None:
        self.sink, self.holdings, self.seen, self.progress, self.entries = sink, holdings, seen, progress, entries
        self._batch: list[tuple[str, str, Looked]] = []
        self._bytes = 0

    def add(self, rel: str, abspath: str, look: Looked) -> None:
        self._batch.append((rel, abspath, look))
        self._bytes += look.stat.size
        if len(self._batch) >= BATCH_FILES or self._bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        read = []
        for rel, abspath, look in self._batch:
            data = _read_small(abspath)
            read.append((rel, abspath, look, data, hash_bytes(data) if data is not None else ""))
        self._batch, self._bytes = [], 0
        packed = self.holdings.packed({digest: len(data) for *_, data, digest in read if digest})
        for rel, abspath, look, data, digest in read:
            if data is None:  # grew past the pack threshold since the walk: stored loose
                result = self.sink.put_file(abspath, self.progress)
            else:
                result = self.sink.put_bytes(data, digest=digest, packed=digest in packed)
                self.progress.relative_update(result.size)
            self.seen.learn(look, result.digest, result.size)
            self.entries.append(_entry(rel, result))


def _read_small(path: str) -> bytes | None:
    """The bytes of a file the walk found small (a raw read: the per-file cost matters);
    None if it has grown to the pack threshold since."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        data = os.read(fd, PACK_THRESHOLD)
    finally:
        os.close(fd)
    return data if len(data) < PACK_THRESHOLD else None

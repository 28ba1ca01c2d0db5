"""Chunked files (format 2): writing a large file as chunks, and reading any range of one, verified.

A chunked file's bytes are the chunks its chunk list names (``cas.core.chunks``),
each a loose blob.  Writing hashes each chunk before it is written, so a chunk the
store holds already costs one ``exists`` and no write (invariant 9, per chunk).
Reading goes through :class:`~cas.storage.chunk_reader.ChunkedReader` (re-exported
here): any range reads only the chunks that overlap it, each checked against its
digest before a byte of it is returned, and a sequential read of the whole file is
also checked against the whole-file digest.

:class:`Contents` is how the read paths find content by its whole-file digest: a
loose blob, or a chunked file whose list digest the trusted record chain gave (the
index keeps it, ``lookup``).
"""

from __future__ import annotations

import contextlib
import os
import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from cas.core import chunks
from cas.core.chunks import ChunkRef, chunker, encode_chunk_list
from cas.core.digest import CHUNK, Hasher, hash_bytes, page_aligned_buffer
from cas.core.progress import as_callback
from cas.errors import IntegrityError
from cas.storage.blobs import BlobStore, PutResult, blob_path
from cas.storage.chunk_reader import ChunkedReader, read_chunk_list

if TYPE_CHECKING:
    from cas.core.progress import Callback

__all__ = ["ChunkedPut", "ChunkedReader", "Contents", "chunk_blobs", "put_chunked", "read_chunk_list"]


@dataclass(frozen=True)
class ChunkedPut(PutResult):
    """A chunked file as stored: ``digest`` is the whole file's, ``chunks`` its list's."""

    chunks: str = ""
    chunk_digests: tuple[str, ...] = field(default=(), repr=False)
    new_bytes: int = 0  # bytes of the chunks this save wrote (the rest were stored already)


def put_chunked(blobs: BlobStore, source: str | os.PathLike | bytes, progress: Callback | None = None) -> ChunkedPut:
    """Store a local file (or bytes) as chunks plus a chunk list; the bytes read go to ``progress``.

    A file is read once, window by window, into a few page-aligned buffers (not mmap:
    mapped pages count as resident, and a file truncated under a mapping kills the
    process with SIGBUS), so memory stays flat.  Three stages overlap, each on its own
    thread and each releasing the GIL: reading and cutting a window (FastCDC), the
    whole-file digest, and the chunks' digests with their writes (this thread, which
    holds the backend's batch).  A chunk is written only if the store lacks it.  A file
    that changes while it is read raises IntegrityError (the chunks written stay for
    gc; no list names them).
    """
    state = _Cutting(blobs, as_callback(progress))
    with contextlib.closing(state), ThreadPoolExecutor(max_workers=2) as pool:
        if isinstance(source, (bytes, bytearray, memoryview)):
            view = memoryview(source)
            state.store(pool, view, [(c.offset, c.length) for c in chunker().cut_buf(view)])
            return state.finish()
        path = os.fspath(source)
        before = os.stat(path)
        windows = _Windows(path)
        reader = pool.submit(windows.run)
        try:
            while (item := windows.ready.get()) is not None:
                view, cuts = item
                state.store(pool, view, cuts)
                windows.free.put(view)
        finally:
            windows.stop = True
            windows.free.put(None)
            reader.result()  # re-raises what the reader met (an unreadable file)
    after = os.stat(path)
    if _identity(after) != _identity(before) or state.whole.size != before.st_size:
        raise IntegrityError(state.whole.hexdigest(), "?", f"{path} changed while it was being saved")
    return state.finish()


#: the read window of :func:`put_chunked` (at least twice the largest chunk); three buffers of it in turn
_WINDOW = 8 << 20
_BUFFERS = 3
_REMOTE_JOBS = 8  # chunks checked and uploaded at once on an object store (as sync's default)


class _Windows:
    """The reading stage: fills buffers in turn with the file's next window, cuts it,
    and hands ``(window, cuts)`` over; the window's last chunk (which the window may
    cut short) is carried to the next buffer and cut again with what follows."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ready: queue.Queue = queue.Queue()
        self.free: queue.Queue = queue.Queue()
        self.stop = False
        # twice the largest chunk at least, so every window but the last ends at least one chunk
        self.size = max(_WINDOW, 2 * chunks.CHUNK_MAX)
        for _ in range(_BUFFERS):  # freed with the last view of them
            self.free.put(memoryview(page_aligned_buffer(self.size)))

    def run(self) -> None:
        try:
            carry = b""
            with open(self.path, "rb", buffering=0) as f:
                while not self.stop:
                    view = self.free.get()
                    if view is None:
                        break
                    view[: len(carry)] = carry
                    filled, at_end = len(carry), False
                    while filled < self.size and not at_end:
                        n = f.readinto(view[filled:])
                        filled += n or 0
                        at_end = not n
                    cuts = [(c.offset, c.length) for c in chunker().cut_buf(view[:filled])]
                    if not at_end and cuts:
                        cuts.pop()
                    used = cuts[-1][0] + cuts[-1][1] if cuts else 0
                    carry = bytes(view[used:filled]) if not at_end else b""
                    self.ready.put((view, cuts))
                    if at_end:
                        break
        finally:
            self.ready.put(None)


class _Cutting:
    """What :func:`put_chunked` accumulates over the windows of one file."""

    def __init__(self, blobs: BlobStore, progress: Callback) -> None:
        self.blobs = blobs
        self.progress = progress
        self.whole = Hasher(threaded=False)  # on its own thread: one core for it, one for the chunks
        self.refs: list[ChunkRef] = []
        self.new_bytes = 0
        self.pool: ThreadPoolExecutor | None = None  # chunk uploads to an object store

    def store(self, pool: ThreadPoolExecutor, view: memoryview, cuts: list[tuple[int, int]]) -> None:
        """Hash and store the chunks ``cuts`` of ``view`` (which start at its first byte).
        On an object store each chunk costs a round trip or two: they run in parallel."""
        used = cuts[-1][0] + cuts[-1][1] if cuts else 0
        whole = pool.submit(self.whole.update, view[:used])
        remote: list[Future] | None = None if self.blobs.backend.capabilities.local else []
        try:
            for offset, length in cuts:
                piece = view[offset : offset + length]
                digest = hash_bytes(piece)
                self.refs.append(ChunkRef(digest, length))
                if remote is None:
                    self.new_bytes += self._put(digest, piece)
                else:
                    remote.append(self._uploads().submit(self._put, digest, piece))
                self.progress.relative_update(length)
            for future in remote or ():
                self.new_bytes += future.result()
        finally:
            for future in remote or ():
                future.cancel()
            wait(remote or ())  # the window's buffer is reused once this returns
            whole.result()

    def _put(self, digest: str, piece: memoryview) -> int:
        """Write one chunk unless the store has it; the bytes written."""
        rel = blob_path(digest)
        backend = self.blobs.backend
        if not backend.exists(rel) and backend.create_bytes(rel, bytes(piece), content_addressed=True):
            return len(piece)
        return 0

    def _uploads(self) -> ThreadPoolExecutor:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=_REMOTE_JOBS)
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def finish(self) -> ChunkedPut:
        listed = self.blobs.put_bytes(encode_chunk_list(self.refs))
        return ChunkedPut(
            self.whole.hexdigest(), self.whole.size, bool(self.new_bytes) or listed.written,
            chunks=listed.digest, chunk_digests=tuple(r.digest for r in self.refs), new_bytes=self.new_bytes,
        )


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Contents:
    """Content by whole-file digest: a loose blob, or a chunked file (``lookup(digest)``
    gives its list digest, from the trusted record chain; None: a loose blob)."""

    def __init__(self, blobs: BlobStore, lookup: Callable[[str], str | None]) -> None:
        self.blobs = blobs
        self.backend = blobs.backend
        self.lookup = lookup

    def open(self, digest: str) -> BinaryIO:
        """A raw verified reader (:class:`ChunkedReader` or ``VerifyingReader``)."""
        chunks = self.lookup(digest)
        if chunks is None:
            return self.blobs.open(digest)  # type: ignore[return-value]
        return ChunkedReader(self.blobs, digest, chunks)  # type: ignore[return-value]

    def read_bytes(self, digest: str) -> bytes:
        chunks = self.lookup(digest)
        if chunks is None:
            return self.blobs.read_bytes(digest)
        with ChunkedReader(self.blobs, digest, chunks) as reader:
            return reader.readall()

    def blocks(self, digest: str) -> Iterator[memoryview]:
        """The content in order, in blocks (each a view valid until the next is asked for).

        A chunked file: each block is a chunk, checked against its own digest before it
        is yielded, and the whole-file digest is checked after the last.  A whole blob:
        blocks of ``CHUNK`` bytes hashed as they pass, checked when the last has passed -
        IntegrityError then, after the blocks were yielded: callers that must not hand
        over unverified bytes read a whole blob with ``read_bytes`` instead."""
        chunks = self.lookup(digest)
        if chunks is not None:
            with ChunkedReader(self.blobs, digest, chunks) as reader:
                yield from reader.verified_chunks()
            return
        with self.blobs.open(digest) as reader, memoryview(page_aligned_buffer(CHUNK)) as view:
            while n := reader.readinto(view):  # at EOF the reader checks the digest
                yield view[:n]


def chunk_blobs(blobs: BlobStore, lists: dict[str, str], needed: Iterable[str]) -> dict[str, int | None]:
    """The chunk lists and chunks of the chunked files among ``needed`` (whole-file
    digests; ``lists``: digest -> list digest), with their sizes: what gc keeps and
    verify checks besides loose blobs.  An unreadable list raises (gc then removes nothing)."""
    out: dict[str, int | None] = {}
    followed: set[str] = set()  # not ``out``: a list another list names as a chunk is still followed
    for digest in needed:
        list_digest = lists.get(digest)
        if list_digest is None or list_digest in followed:
            continue
        followed.add(list_digest)
        out.setdefault(list_digest, None)
        out.update(read_chunk_list(blobs, list_digest).chunks)
    return out

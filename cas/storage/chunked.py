"""Chunked files (format 2): writing a large file as chunks, and reading any range of one, verified.

A chunked file's bytes are the chunks its chunk list names (``cas.core.chunks``),
each a loose blob.  Writing hashes each chunk before it is written, so a chunk the
store holds already costs one ``exists`` and no write (invariant 9, per chunk).
Reading goes through :class:`ChunkedReader`: any range reads only the chunks that
overlap it, each checked against its digest before a byte of it is returned, and a
sequential read of the whole file is also checked against the whole-file digest.

:class:`Contents` is how the read paths find content by its whole-file digest: a
loose blob, or a chunked file whose list digest the trusted record chain gave (the
index keeps it, ``lookup``).
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from cas.core import chunks
from cas.core.chunks import ChunkList, ChunkRef, chunker, decode_chunk_list, encode_chunk_list
from cas.core.digest import Hasher, hash_bytes, page_aligned_buffer
from cas.core.progress import as_callback
from cas.errors import IntegrityError
from cas.storage.blobs import BlobStore, PutResult, blob_path

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


def read_chunk_list(blobs: BlobStore, list_digest: str, size: int | None = None) -> ChunkList:
    """The chunk list blob ``list_digest``, verified and decoded (CorruptRecordError if it breaks the format)."""
    return decode_chunk_list(blobs.read_bytes(list_digest), list_digest, size)


class ChunkedReader(io.RawIOBase):
    """A seekable reader of one chunked file; no byte is returned before its chunk is verified.

    Bytes read in order from the start are also hashed, and once they reach the end
    the whole-file digest must match (IntegrityError otherwise, as
    :class:`~cas.storage.blobs.VerifyingReader` does at EOF).  One chunk (at most
    ``MAX_LISTED_CHUNK`` bytes) is held at a time.  ``chunks_read`` counts the chunk
    blobs fetched, for tests and benchmarks.
    """

    def __init__(self, blobs: BlobStore, digest: str, list_digest: str, size: int | None = None) -> None:
        self._blobs = blobs
        self.expected = digest
        self.list_digest = list_digest
        self.chunk_list = read_chunk_list(blobs, list_digest, size)
        self.size = self.chunk_list.size
        self._pos = 0
        self._current: tuple[int, bytes] | None = None
        self._hasher: Hasher | None = Hasher(threaded=False)  # None: checked (or given up: not sequential)
        self._hashed = 0  # the hasher has seen bytes [0, _hashed)
        self._failed: IntegrityError | None = None
        self.chunks_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._failed is not None:
            raise self._failed
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._pos = target
        return target

    def _chunk(self, i: int) -> bytes:
        if self._current is not None and self._current[0] == i:
            return self._current[1]
        ref = self.chunk_list.chunks[i]
        data = self._blobs.read_bytes(ref.digest)  # verified against the chunk's digest
        self.chunks_read += 1
        if len(data) != ref.size:
            raise IntegrityError(ref.digest, "?", f"chunk {i} of {blob_path(self.list_digest)} is {len(data)} bytes, the list says {ref.size}")
        self._current = (i, data)
        return data

    def readinto(self, b) -> int:
        if self._failed is not None:
            raise self._failed
        if self._pos >= self.size:
            self._check()
            return 0
        i = self.chunk_list.index_at(self._pos)
        data = self._chunk(i)
        start = self._pos - self.chunk_list.starts[i]
        view = memoryview(b).cast("B")
        n = min(len(view), len(data) - start)
        piece = memoryview(data)[start : start + n]
        if self._hasher is not None and self._hashed == self._pos:
            self._hasher.update(piece)
            self._hashed += n
        view[:n] = piece
        self._pos += n
        if self._pos >= self.size:
            self._check()
        return n

    def _check(self) -> None:
        """Once the bytes read in order reach the end, they must be the whole file."""
        if self._hasher is None or self._hashed < self.size:
            return
        actual = self._hasher.hexdigest()
        self._hasher = None
        if actual != self.expected:
            self._failed = IntegrityError(self.expected, actual, f"the chunks of {blob_path(self.list_digest)}")
            raise self._failed

    def readall(self) -> bytes:
        out = bytearray()
        while self._pos < self.size:
            i = self.chunk_list.index_at(self._pos)
            data = self._chunk(i)
            start = self._pos - self.chunk_list.starts[i]
            piece = memoryview(data)[start:]
            if self._hasher is not None and self._hashed == self._pos:
                self._hasher.update(piece)
                self._hashed += len(piece)
            out += piece
            self._pos += len(piece)
        self._check()
        return bytes(out)


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

"""Reading a chunked file (format 2): any range, or the whole file, verified chunk by chunk.

:class:`ChunkedReader` reads only the chunks a range overlaps, each checked against
its digest before a byte of it is returned; bytes read in order from the start are
also checked against the whole-file digest.  Whole reads (``read()``, ``cat_file``,
``read_bytes``) and ``cas cat``'s stream have their own fast paths here: chunks read
into one reused page-aligned buffer, hashed on every core.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from cas.core.chunks import ChunkList, ChunkRef, decode_chunk_list
from cas.core.digest import Hasher, page_aligned_buffer
from cas.errors import IntegrityError
from cas.storage.blobs import BlobStore, blob_path

__all__ = ["ChunkedReader", "read_chunk_list"]


def _whole_hasher() -> Hasher:
    return Hasher(threaded=True)  # BLAKE3 on every core for a large block (a small one hashes inline)


def _hex(view: memoryview) -> str:
    """A chunk's digest, on every core (hash_bytes keeps one thread below 4 MiB: slower here, measured)."""
    h = Hasher(threaded=True)
    h.update(view)
    return h.hexdigest()


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
        self._hasher: Hasher | None = _whole_hasher()  # None: checked (or given up: not sequential)
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
            raise self._wrong_size(ref, i, len(data))
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
        """The rest of the file, verified.  From the start (``read()``, ``cat_file``), the
        chunks are read in turn into one reused buffer and checked against the whole-file
        digest only - one hash pass, not two, and nothing is returned before it matches;
        the result is assembled in a ``BytesIO``, whose buffer becomes the ``bytes``
        without a copy.  From elsewhere (after a seek), each chunk is checked on its own."""
        if self._failed is not None:
            raise self._failed
        out = io.BytesIO()
        if self._pos == 0 and self._hasher is not None and self._hashed == 0:
            try:
                for _, view in self._raw_chunks():
                    out.write(view)
            except BaseException:
                self._hasher = _whole_hasher()  # a read that failed (I/O) may be retried from the start
                raise
            self._hashed = self._pos = self.size
            self._check_whole()
            return out.getvalue()
        while self._pos < self.size:
            i = self.chunk_list.index_at(self._pos)
            data = self._chunk(i)
            start = self._pos - self.chunk_list.starts[i]
            piece = memoryview(data)[start:]
            if self._hasher is not None and self._hashed == self._pos:
                self._hasher.update(piece)
                self._hashed += len(piece)
            out.write(piece)
            self._pos += len(piece)
        self._check()
        return out.getvalue()

    def verified_chunks(self) -> Iterator[memoryview]:
        """The whole file in order, one chunk at a time, each checked against its own
        digest before it is yielded (a view, valid until the next one is asked for); the
        whole-file digest is checked after the last chunk.  What ``cas cat`` streams: no
        byte of a chunk is handed over before the chunk matches."""
        if self._failed is not None:
            raise self._failed
        if self._pos or self._hasher is None or self._hashed:
            raise ValueError("verified_chunks reads a reader from its start")
        for ref, view in self._raw_chunks():
            if (actual := _hex(view)) != ref.digest:
                self._failed = IntegrityError(ref.digest, actual, blob_path(ref.digest))
                raise self._failed
            self._pos = self._hashed = self._pos + ref.size
            yield view
        self._check_whole()

    def _raw_chunks(self) -> Iterator[tuple[ChunkRef, memoryview]]:
        """Every chunk in order, unverified, each read into one reused page-aligned buffer
        (no new memory a chunk) and fed to the whole-file hash.  Measured: BLAKE3 on every
        core, one block after the other, beats the whole-file hash on a thread of its own
        (which pays a GIL hand-over per chunk) on 2 cores, busy or idle."""
        assert self._hasher is not None
        view = memoryview(page_aligned_buffer(max(ref.size for ref in self.chunk_list.chunks)))
        for i, ref in enumerate(self.chunk_list.chunks):
            piece = view[: ref.size]
            self._fill(ref, i, piece)
            self.chunks_read += 1
            self._hasher.update(piece)
            yield ref, piece

    def _fill(self, ref: ChunkRef, i: int, view: memoryview) -> None:
        """Chunk ``i``'s stored bytes into ``view`` (exactly its size, or IntegrityError)."""
        try:
            f = self._blobs.backend.open_read(blob_path(ref.digest))
        except FileNotFoundError:
            # not a loose blob: the blob store looks in the packs too, verified, or raises BlobNotFoundError
            data = self._blobs.read_bytes(ref.digest)
            if len(data) != ref.size:
                raise self._wrong_size(ref, i, len(data)) from None
            view[:] = data
            return
        with f:
            filled = 0
            while filled < ref.size and (n := f.readinto(view[filled:])):
                filled += n
            if filled < ref.size or f.read(1):
                raise self._wrong_size(ref, i, filled if filled < ref.size else None)

    def _wrong_size(self, ref: ChunkRef, i: int, size: int | None) -> IntegrityError:
        got = "more than that" if size is None else f"{size} bytes"
        return IntegrityError(ref.digest, "?", f"chunk {i} of {blob_path(self.list_digest)} is {got}, the list says {ref.size}")

    def _check_whole(self) -> None:
        """The whole file has passed through the hash: on a mismatch, name the chunk
        that is wrong when one is (each is rehashed: the slow path of a corrupt store)."""
        try:
            self._check()
        except IntegrityError:
            for ref in self.chunk_list.chunks:
                try:
                    self._blobs.read_bytes(ref.digest)
                except IntegrityError as bad:
                    self._failed = bad
                    raise bad from None
            raise

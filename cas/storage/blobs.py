"""The only code that knows where a blob lives: ``blobs/<hex[:2]>/<hex[2:]>``.

Writing hashes first, so a dedupe hit writes nothing (invariant 9); reading
checks every byte against its digest (invariant 7).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from cas.backends.base import Backend
from cas.core.digest import CHUNK, FILE_CHUNK, Hasher, hash_bytes, hash_file, is_hex_digest, page_aligned_buffer
from cas.core.progress import as_callback
from cas.errors import BlobNotFoundError, IntegrityError

if TYPE_CHECKING:
    from cas.core.progress import Callback
    from cas.storage.packs import PackReader

__all__ = ["BlobStore", "PutResult", "blob_path", "BLOB_PREFIX"]

BLOB_PREFIX = "blobs"
# Small files are cheaper to read once than to mmap.
_SMALL_FILE = 1 << 20


def blob_path(hexdigest: str) -> str:
    return f"{BLOB_PREFIX}/{hexdigest[:2]}/{hexdigest[2:]}"


def digest_from_path(rel: str) -> str | None:
    """The digest a ``blobs/..`` path stands for, or None for a foreign file."""
    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == BLOB_PREFIX and len(parts[1]) == 2:
        hexdigest = parts[1] + parts[2]
        if is_hex_digest(hexdigest):
            return hexdigest
    return None


@dataclass(frozen=True)
class PutResult:
    digest: str
    size: int
    written: bool  # False: the blob was already there (dedupe hit)


class BlobStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        #: format 2: small blobs may live in packs (cas.storage.packs), asked before loose blobs
        self.packs: PackReader | None = None

    def exists(self, hexdigest: str) -> bool:
        if self.packs is not None and self.packs.where(hexdigest) is not None:
            return True
        return self.backend.exists(blob_path(hexdigest))

    def size(self, hexdigest: str) -> int:
        if self.packs is not None and (entry := self.packs.where(hexdigest)) is not None:
            return entry.length
        try:
            return self.backend.size(blob_path(hexdigest))
        except FileNotFoundError:
            raise BlobNotFoundError(hexdigest) from None

    def stored_size(self, hexdigest: str) -> int | None:
        """:meth:`size`, or None if the store lacks the blob."""
        try:
            return self.size(hexdigest)
        except BlobNotFoundError:
            return None

    def _in_pack(self, hexdigest: str) -> bool:
        """Format 2: is this content stored in a pack already (a dedupe hit, invariant 1)?"""
        return self.packs is not None and self.packs.where(hexdigest) is not None

    def _packed(self, hexdigest: str, missed: bool = False) -> bytes | None:
        """The verified bytes of a packed blob, or None; ``missed``: found nowhere, so
        learn new pack indexes first (another machine repacked or announced them).
        A pack whose bytes do not match is only a wrong hint while the blob is also
        loose: None then (the loose copy is read and verified), else IntegrityError."""
        if self.packs is None or (missed and not self.packs.refresh()):
            return None
        try:
            return self.packs.read(hexdigest)
        except IntegrityError:
            if missed or not self.backend.exists(blob_path(hexdigest)):
                raise
            return None

    # -- writing -------------------------------------------------------------

    def put_bytes(self, data: bytes) -> PutResult:
        hexdigest = hash_bytes(data)
        if self._in_pack(hexdigest):
            return PutResult(hexdigest, len(data), False)
        written = self.backend.create_bytes(blob_path(hexdigest), data, content_addressed=True)
        return PutResult(hexdigest, len(data), written)

    def put_file(self, path: str | os.PathLike, progress: Callback | None = None) -> PutResult:
        """Store a local file; the bytes read go to ``progress``."""
        path = os.fspath(path)
        before = os.stat(path)
        if before.st_size <= _SMALL_FILE:
            # os.read on a raw fd: the per-file cost matters for 20,000-file trees
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                data = os.read(fd, before.st_size + 1)  # +1 notices a file that grew
            finally:
                os.close(fd)
            if len(data) == before.st_size:
                result = self.put_bytes(data)
                as_callback(progress).relative_update(result.size)
                return result
        # Hash first: if the blob exists we never read the file again.
        hexdigest, size = hash_file(path, progress)
        rel = blob_path(hexdigest)
        if self.backend.exists(rel):
            return PutResult(hexdigest, size, False)
        written = self.backend.create_from_file(rel, path, content_addressed=True)
        # The file may have changed between hashing and copying.  The copy may not
        # be visible yet (inside ``Backend.batch()``), so compare the source's stat
        # instead; raising inside a batch discards the pending copy.
        after = os.stat(path)
        if _identity(after) != _identity(before) or size != before.st_size:
            if written:
                self.backend.remove(rel)
            raise IntegrityError(hexdigest, "?", f"{path} changed while it was being saved")
        return PutResult(hexdigest, size, written)

    def put_stream(self, stream: BinaryIO, progress: Callback | None = None) -> PutResult:
        """A stream that cannot be re-read is hashed while spooled to a temp file."""
        progress = as_callback(progress)
        spool = self.spool()
        try:
            while block := stream.read(CHUNK):
                spool.write(block)
                progress.relative_update(len(block))
        except BaseException:
            spool.discard()
            raise
        return spool.commit()

    def spool(self) -> BlobSpool:
        """A writer for content that arrives in pieces: hashed while spooled to a
        temp file, published under its digest by ``commit()``, or dropped by
        ``discard()``.  Nothing appears under a final name before ``commit``."""
        return BlobSpool(self)

    # -- reading -------------------------------------------------------------

    def read_bytes(self, hexdigest: str) -> bytes:
        if (packed := self._packed(hexdigest)) is not None:
            return packed
        try:
            data = self.backend.read_bytes(blob_path(hexdigest))
        except FileNotFoundError:
            if (packed := self._packed(hexdigest, missed=True)) is not None:
                return packed
            raise BlobNotFoundError(hexdigest) from None
        actual = hash_bytes(data)
        if actual != hexdigest:
            raise IntegrityError(hexdigest, actual, blob_path(hexdigest))
        return data

    def open(self, hexdigest: str) -> VerifyingReader:
        if (packed := self._packed(hexdigest)) is not None:
            return VerifyingReader(io.BytesIO(packed), hexdigest)  # verified already: small, read whole
        try:
            raw = self.backend.open_read(blob_path(hexdigest))
        except FileNotFoundError:
            if (packed := self._packed(hexdigest, missed=True)) is not None:
                return VerifyingReader(io.BytesIO(packed), hexdigest)
            raise BlobNotFoundError(hexdigest) from None
        return VerifyingReader(raw, hexdigest)

    def check(self, hexdigest: str, progress: Callback | None = None) -> tuple[str, int]:
        """Rehash a stored blob (the bytes read go to ``progress``); returns (actual digest, size)."""
        progress = as_callback(progress)
        with self.open(hexdigest) as r:
            h = Hasher(threaded=True)
            while block := r.raw.read(CHUNK):
                h.update(block)
                progress.relative_update(len(block))
        return h.hexdigest(), h.size

    def iter_digests(self) -> Iterator[tuple[str | None, str, int, float | None]]:
        """(digest or None if foreign, path, size, mtime) for everything under blobs/."""
        for e in self.backend.list(BLOB_PREFIX):
            yield digest_from_path(e.path), e.path, e.size, e.mtime

    def remove(self, hexdigest: str) -> None:
        self.backend.remove(blob_path(hexdigest))


class BlobSpool:
    """See :meth:`BlobStore.spool`."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        fd, self._tmp = blobs.backend.local_tempfile()
        self._file = os.fdopen(fd, "wb")
        self._hasher = Hasher(threaded=True)
        self.done = False

    @property
    def size(self) -> int:
        return self._hasher.size

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self._hasher.update(view)
        self._file.write(view)
        return view.nbytes

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def commit(self) -> PutResult:
        """Publish the content under its digest (a dedupe hit writes nothing)."""
        self._file.close()
        self.done = True
        if self._blobs._in_pack(self.hexdigest()):
            os.unlink(self._tmp)
            return PutResult(self.hexdigest(), self.size, False)
        # ``move`` hands the spool file over: the backend publishes or removes it
        # (inside a batch, only when the batch ends - so it must not be unlinked here).
        written = self._blobs.backend.create_from_file(
            blob_path(self.hexdigest()), self._tmp, move=True, content_addressed=True
        )
        return PutResult(self.hexdigest(), self.size, written)

    def discard(self) -> None:
        """Drop the content; nothing is published."""
        if self.done:
            return
        self.done = True
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class VerifyingReader(io.RawIOBase):
    """Streams a blob, checked against its digest; wrong bytes raise IntegrityError.

    Sequential reads are hashed as they pass and checked at EOF - or at
    ``close`` when a reader stopped exactly at the end without asking for more
    (``np.load``, pickle).  The first seek away from the sequential position
    (random access: Parquet footers, ``cat_file`` ranges) first reads the rest
    of the blob through the hash, so no byte is served out of order from a
    blob that does not match its digest; that costs one sequential pass over
    the blob.  Once a mismatch is found, every later read raises it again.
    A read that stops early and closes is not verified (it cannot be).
    """

    def __init__(self, raw: BinaryIO, hexdigest: str) -> None:
        self.raw = raw
        self.expected = hexdigest
        # threaded: BLAKE3 spreads a large block over the cores, and hashes a small one inline
        self._hasher: Hasher | None = Hasher(threaded=True)  # None: verified
        self._failed: IntegrityError | None = None
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._failed is not None:
            raise self._failed
        n = self._raw_readinto(b)
        if self._hasher is not None:
            if n:
                self._hasher.update(memoryview(b)[:n])
            else:
                self._check()
        self._pos += n
        return n

    def readall(self) -> bytes:
        """The rest of the blob, verified: one read of its known size, hashed on
        every core (``RawIOBase`` would read 8 KiB at a time - what made
        ``cat_file`` slow).  Measured: filling the result in 1 MiB blocks hashed
        while cache-hot, or marking it for huge pages, is slower here."""
        if self._failed is not None:
            raise self._failed
        size = self._size()
        parts = []
        if size is not None and size > self._pos:
            parts.append(self.raw.read(size - self._pos))
        while block := self.raw.read(FILE_CHUNK):  # what is left (size unknown, or a file that grew)
            parts.append(block)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if self._hasher is not None:
            self._hasher.update(data)
            self._check()
        self._pos += len(data)
        return data

    def _raw_readinto(self, b) -> int:
        if hasattr(self.raw, "readinto"):
            return self.raw.readinto(b)
        data = self.raw.read(len(b))
        b[: len(data)] = data
        return len(data)

    def _check(self) -> None:
        """The whole blob has passed through the hash: it must match."""
        assert self._hasher is not None
        actual = self._hasher.hexdigest()
        self._hasher = None
        if actual != self.expected:
            self._failed = IntegrityError(self.expected, actual, blob_path(self.expected))
            raise self._failed

    def _verify_rest(self) -> None:
        buf = page_aligned_buffer(CHUNK)  # a bytearray would halve the copy and hash speed
        try:
            with memoryview(buf) as view:
                while self._hasher is not None:
                    self.readinto(view)  # hashes; at EOF checks (and raises on a mismatch)
        finally:
            buf.close()

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._failed is not None:
            raise self._failed
        target = offset if whence == io.SEEK_SET else self._pos + offset if whence == io.SEEK_CUR else None
        if target == self._pos:
            return self._pos  # tell(), or a seek to where we are: still sequential
        if self._hasher is not None:
            self._verify_rest()  # random access: check the whole blob before serving any of it
        self._pos = self.raw.seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _size(self) -> int | None:
        size = getattr(self.raw, "size", None)  # fsspec files know their size
        if isinstance(size, int):
            return size
        try:
            return os.fstat(self.raw.fileno()).st_size
        except (OSError, AttributeError):  # an in-memory file
            return None

    def _at_end(self) -> bool:
        size = self._size()
        if size is None:
            return not self.raw.read(1)  # one more read is free in memory
        return self._pos >= size

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._hasher is not None and self._pos and self._failed is None and self._at_end():
                self._check()  # stopped exactly at the end: the hash is complete, check it
        finally:
            self.raw.close()
            super().close()

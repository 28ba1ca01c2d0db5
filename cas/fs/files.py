"""File objects of the ``cas://`` view.

Reading streams one blob through a buffered, seekable reader that checks
it against the digest (IntegrityError, never wrong bytes): at the end of a
sequential read, and before the first out-of-order byte of a random-access
one (see :class:`cas.storage.blobs.VerifyingReader`).  Writing spools to a temporary file while hashing — memory stays
flat whatever the size — and only a cleanly closed file is published: leaving
a ``with`` block on an exception, or dropping the file unclosed, discards it.
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any

from cas.core.digest import CHUNK

if TYPE_CHECKING:
    from cas.fs.filesystem import CasFileSystem
    from cas.fs.paths import CasPath

__all__ = ["CasReadFile", "CasWriteFile"]


class CasReadFile(io.BufferedReader):
    """A read-only, seekable view of one blob.  ``size``, ``path`` and ``details`` as fsspec files have."""

    def __init__(self, fs: CasFileSystem, path: str, digest: str, details: dict[str, Any]) -> None:
        super().__init__(fs.store.blobs.open(digest), CHUNK)
        self.fs = fs
        self.path = path
        self.digest = digest
        self.size: int = details["size"]
        self.details = details

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.path

    @property
    def mode(self) -> str:  # type: ignore[override]
        return "rb"

    def __repr__(self) -> str:
        return f"<CasReadFile cas://{self.path}>"


class CasWriteFile(io.RawIOBase):
    """A write-only file that becomes a staged blob when it is closed cleanly.

    Inside an fsspec transaction (``autocommit=False``) the staged file joins
    its draft and the version is committed when the transaction ends; with
    ``autocommit``, a file written at a version path (``p/s/a/N``) commits
    version N when it is closed.
    """

    def __init__(self, fs: CasFileSystem, target: CasPath, *, autocommit: bool = True, mode: str = "wb") -> None:
        super().__init__()
        self.fs = fs
        self.target = target
        self.path = target.path
        self.autocommit = autocommit
        self._mode = mode
        self._spool = fs.store.blobs.spool()
        self.digest: str | None = None

    @property
    def mode(self) -> str:  # type: ignore[override]
        return self._mode

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.path

    def __repr__(self) -> str:
        return f"<CasWriteFile cas://{self.path}>"

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._spool.write(data)

    def tell(self) -> int:
        return self._spool.size

    def flush(self) -> None:
        self._spool.flush()

    def close(self) -> None:
        """Publish the blob, then stage it at its path (or commit its version)."""
        if self.closed:
            return
        try:
            result = self._spool.commit()
            self.digest = result.digest
            self.fs._stage(self.target, result.digest, result.size, autocommit=self.autocommit)
        finally:
            self._spool.discard()  # a no-op once committed
            super().close()

    def discard(self, *, failed: bool = False) -> None:
        """Throw the content away; nothing is published.

        ``failed``: the writer gave up on this file (an exception, or never
        closed), so the draft it belongs to is incomplete and must not be
        committed on its own.
        """
        if self.closed:
            return
        self._spool.discard()
        super().close()
        if failed and self.target.inner:
            self.fs._file_failed(self.target)

    def commit(self) -> None:
        """fsspec transactions call this; closing already staged the file into its draft."""

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard(failed=True)  # a failed write must leave nothing behind
        else:
            self.close()

    def __del__(self) -> None:
        # io's finaliser would close() - that is, publish - a file nobody closed.
        with contextlib.suppress(Exception):
            self.discard(failed=True)

"""File objects over blobs: a verifying reader, and the one spool-then-commit writer.

Reading streams one blob through a buffered, seekable reader that checks
it against the digest (IntegrityError, never wrong bytes): at the end of a
sequential read, and before the first out-of-order byte of a random-access
one (see :class:`cas.storage.blobs.VerifyingReader`).

Writing (:class:`SpoolFile`, used by the ``cas://`` view and by the
integrations' folders) spools to a temporary file while hashing - memory
stays flat whatever the size - and only a cleanly closed file is published:
leaving a ``with`` block on an exception, or dropping the file unclosed,
discards it (invariant 5).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cas.core.digest import CHUNK
from cas.storage.blobs import BlobStore

if TYPE_CHECKING:
    from cas.fs.filesystem import CasFileSystem

__all__ = ["CasReadFile", "SpoolFile", "buffered"]


class CasReadFile(io.BufferedReader):
    """A read-only, seekable view of one file's content (a blob, or a chunked file whose ranges read
    only their chunks).  ``size``, ``path`` and ``details`` as fsspec files have."""

    def __init__(self, fs: CasFileSystem, path: str, digest: str, details: dict[str, Any]) -> None:
        super().__init__(fs.store.contents.open(digest), CHUNK)  # type: ignore[arg-type]
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


class SpoolFile(io.RawIOBase):
    """A write-only file that becomes a blob when it is closed cleanly.

    Closing commits the spooled blob (inside ``batch()``, when given) and
    hands ``(digest, size)`` to ``publish``, which links or stages it.
    ``discard`` - also what an exception inside ``with``, or a file never
    closed, comes to - publishes nothing; ``on_fail`` then hears that the
    writer gave up on it.  ``commit`` is for fsspec transactions, which call
    it on the files they hold: closing has already published.
    """

    def __init__(
        self,
        blobs: BlobStore,
        publish: Callable[[str, int], object],
        *,
        name: str,
        mode: str = "wb",
        on_fail: Callable[[], object] | None = None,
        batch: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
    ) -> None:
        super().__init__()
        self.path = name
        self._publish = publish
        self._on_fail = on_fail
        self._batch = batch
        self._mode = mode
        self._spool = blobs.spool()
        self._failed = False
        self.digest: str | None = None

    @property
    def mode(self) -> str:  # type: ignore[override]
        return self._mode

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.path

    def __repr__(self) -> str:
        return f"<SpoolFile cas://{self.path}>"

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

    def fail(self) -> None:
        """Publish nothing when closed: the block writing it failed (see :func:`buffered`)."""
        self._failed = True

    def close(self) -> None:
        """Publish the blob (or, after ``fail``, discard it)."""
        if self.closed:
            return
        if self._failed:
            self.discard(failed=True)
            return
        try:
            with self._batch():
                result = self._spool.commit()
            self.digest = result.digest
            self._publish(result.digest, result.size)
        finally:
            self._spool.discard()  # a no-op once committed
            super().close()

    def discard(self, *, failed: bool = False) -> None:
        """Throw the content away; nothing is published.

        ``failed``: the writer gave up on this file (an exception, or never
        closed), so whatever it belongs to is incomplete.
        """
        if self.closed:
            return
        self._spool.discard()
        super().close()
        if failed and self._on_fail is not None:
            self._on_fail()

    def commit(self) -> None:
        """fsspec transactions call this; closing already published the file."""

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard(failed=True)  # a failed write must leave nothing behind
        else:
            self.close()

    def __del__(self) -> None:
        # io's finaliser would close() - that is, publish - a file nobody closed.
        with contextlib.suppress(Exception):
            self.discard(failed=True)


class _Buffered(io.BufferedWriter):
    """An exception inside ``with`` discards the spool instead of publishing it."""

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.raw.fail()
        return super().__exit__(exc_type, exc, tb)


class _Text(io.TextIOWrapper):
    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.buffer.raw.fail()
        return super().__exit__(exc_type, exc, tb)


def buffered(raw: SpoolFile, *, text: bool = False) -> Any:
    """``raw`` behind a buffer (and UTF-8 text, with ``text``) that still publishes nothing on an exception."""
    binary = _Buffered(raw)
    return _Text(binary, encoding="utf-8", write_through=True) if text else binary

"""The contract every cas backend keeps, and the capabilities each one declares.

A backend stores opaque files under relative, "/"-separated paths below a
root.  Callers (``cas.storage``) decide the paths; a backend decides only how
bytes reach them.  Each method's docstring is its contract (in the manner of
restic's ``backend.go``): an implementation keeps all of it, a caller relies
on nothing more.  What differs between backends is declared, as data, in
:class:`Capabilities`; callers ask those, never a backend's class.

Implementations: :mod:`cas.backends.local` (the OS, directly),
:mod:`cas.backends.fsspec` (any fsspec URL), :mod:`cas.backends.cloud`
(S3, GCS, Azure with server-enforced create-only writes);
:func:`cas.backends.factory.open_backend` picks one for a URL.
"""

from __future__ import annotations

import contextlib
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["Backend", "Capabilities", "Entry", "TMP_DIR"]

#: where a backend keeps its temporary files below the root (swept by gc)
TMP_DIR = "tmp"


@dataclass(frozen=True)
class Entry:
    """One file found by :meth:`Backend.list`."""

    path: str  # relative to the backend root, "/"-separated
    size: int
    mtime: float | None  # seconds since the epoch, when the backend knows it


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared by it (restic's ``backend.Properties``, zarr's
    ``supports_*``): callers ask these, never the backend's class."""

    #: ``create_*`` is create-only and atomic for *every process that can see the
    #: store*: two writers racing for one path get one True and one False.  Without
    #: it, the backend holds a writer lease (cas.backends.lease) and a second writing
    #: process is refused with ConcurrentWriterError instead of racing.
    atomic_create: bool = False
    #: paths are plain files on this machine (fsync batches, hard links, ``abspath`` and
    #: ``root`` are available, and the planted-object checks can find something)
    local: bool = False
    #: transient failures are retried by the backend itself (cas.backends.retry)
    retries: bool = False
    #: ``abort_stale_uploads`` removes multipart uploads left behind by killed writers
    stale_uploads: bool = False
    #: the store lives in this process's memory (memory://): no other process can see it,
    #: and it is gone when the process ends (so is anything derived from it, like an index)
    in_process: bool = False


class Backend(ABC):
    """Opaque files under a root.  Every method may raise :class:`cas.errors.BackendError`
    when the storage fails; a path that does not exist is ``FileNotFoundError``, never
    a ``BackendError``.  Methods are safe to call from many threads at once."""

    capabilities: Capabilities = Capabilities()
    #: the root as a URL, with any credentials removed (cas.backends.secrets.redact_url)
    url: str

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether a file is stored at ``rel``.  A local backend refuses (BackendError)
        a symlink planted at ``rel`` rather than answer for its target."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The whole content at ``rel``; ``FileNotFoundError`` if absent.  Never follows
        a symlink planted in a local store."""

    @abstractmethod
    def open_read(self, rel: str) -> BinaryIO:
        """A seekable binary reader of ``rel`` (the caller closes it);
        ``FileNotFoundError`` if absent.  Never follows a planted symlink."""

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        """The bytes ``[start, end)`` of ``rel`` (fewer if the file is shorter);
        ``FileNotFoundError`` if absent.  Object stores answer with one ranged GET,
        so reading a small blob out of a pack never fetches the whole pack."""
        with self.open_read(rel) as f:
            f.seek(start)
            return f.read(max(end - start, 0))

    @abstractmethod
    def size(self, rel: str) -> int:
        """The size in bytes of the file at ``rel``; ``FileNotFoundError`` if absent."""

    @abstractmethod
    def create_bytes(self, rel: str, data: bytes, *, content_addressed: bool = False) -> bool:
        """Store ``data`` at ``rel`` if nothing is there yet: create-only.

        Returns True if this call created ``rel``, False if ``rel`` already existed
        (its content is then left untouched); callers use the False answer to claim
        versions.  The final path either does not exist or holds the complete
        content: a failed or interrupted write leaves nothing under it.  Once the
        call returns True the data is durable, except inside :meth:`batch`.

        ``content_addressed``: ``rel`` is named by the hash of ``data`` (a blob), so
        an existing file at ``rel`` holds these very bytes.  Only such writes may be
        deferred into an open :meth:`batch`.  A backend that retries
        (``capabilities.retries``) also answers True for a path that is not content
        addressed but already holds exactly ``data``: a retry cannot tell that from
        its own earlier attempt, and the same bytes make the same claim.

        Whether two *processes* racing for one path get one True and one False is
        ``capabilities.atomic_create``; without it, the backend refuses a second
        writing process (:class:`cas.errors.ConcurrentWriterError`).
        """

    @abstractmethod
    def create_from_file(
        self, rel: str, local_path: str, *, move: bool = False, content_addressed: bool = False
    ) -> bool:
        """Store the local file ``local_path`` at ``rel``, create-only: the same contract
        as :meth:`create_bytes`.  With ``move`` the backend takes the file over (it is
        gone afterwards, whatever the answer); ``move`` may only be used with a file
        from :meth:`local_tempfile`."""

    @abstractmethod
    def replace_bytes(self, rel: str, data: bytes) -> None:
        """Put ``data`` at ``rel``, replacing whatever is there, atomically: a reader
        sees the old bytes or the new ones, never a mix nor no file; an interrupted
        call leaves the old bytes.  Durable once it returns.

        The one write that is not create-only, for the one object that changes:
        the ``cas-format`` file, rewritten when a store is upgraded (docs/format.md,
        Upgrading).  Nothing else may use it.  Two racing calls end with one of the
        two contents (cas only ever races it with identical bytes)."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[Entry]:
        """Every file below ``prefix`` (recursively), in no particular order; nothing
        (not an error) if ``prefix`` does not exist.  A file created or removed while the
        listing runs may or may not appear."""

    @abstractmethod
    def remove(self, rel: str) -> None:
        """Remove the file at ``rel``; removing a missing file is not an error.
        Only gc and sweeps remove, and only what they decided from the truth."""

    def local_tempfile(self) -> tuple[int, str]:
        """``(fd, path)`` of a fresh temp file on this machine, on the store's device
        when the backend is local, for spooling streams before a create."""
        return tempfile.mkstemp(prefix="cas-spool-")

    @contextlib.contextmanager
    def join(self, batch: object) -> Iterator[None]:
        """Let this thread's content-addressed writes join ``batch`` (from
        :meth:`batch` in another thread), e.g. in a transfer pool."""
        yield

    @contextlib.contextmanager
    def batch(self) -> Iterator[object]:
        """Group writes so durability is paid once (local); a no-op elsewhere.

        Inside a batch, a content-addressed create may return before its data is
        durable; every write in the batch is durable when the batch exits, and none
        is visible under its final path before its data is durable.  A batch belongs
        to the thread that opened it (and threads that :meth:`join` it), and only
        defers ``content_addressed`` writes: a ref or journal entry written
        meanwhile, by any thread, is published at once with its create-only answer.
        Nested batches join the outer one."""
        yield None

    # -- planted objects: only a store on a real filesystem (``capabilities.local``) can hold
    # a symlink, FIFO or device that cas never wrote; elsewhere every answer is "none".

    def is_symlink(self, rel: str) -> bool:
        """Whether ``rel`` is a symlink planted in the store (cas never follows one)."""
        return False

    def symlinked_dir(self, rel: str) -> str | None:
        """The first directory above ``rel`` that is a planted symlink, relative to the
        root; None if there is none."""
        return None

    def planted(self, rel: str) -> str | None:
        """Why ``rel`` is refused if it is an object cas never writes (a symlink, FIFO,
        socket or device); None for a file cas could have written, or nothing."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections and leases; the default backend holds none.  Calling it
        twice is harmless."""

"""Where bytes live: the contract every cas backend keeps, and its two kinds.

A backend stores opaque files under relative paths below a root.  Callers
(``blobs``, ``records``) decide the paths; a backend decides only how bytes
reach them.  What every backend guarantees:

* ``create_*`` is **create-only and atomic**: the final path either does not
  exist or holds the complete content; a failed or interrupted write leaves
  nothing under the final path.  It returns ``True`` if this call created
  the path and ``False`` if the path already existed (the content is then
  left untouched).  Callers use the ``False`` answer to claim versions.
  Object stores retry writes (:mod:`cas.backends.cloud`), so there a path that is not
  ``content_addressed`` and already holds exactly these bytes also answers
  ``True``: a retry cannot tell that from its own earlier attempt, and the
  same bytes make the same claim.
* Once a ``create_*`` call returns, the data is durable, except inside
  ``batch()``, where durability is reached, for every write in the batch, when
  the batch exits.  Nothing written in a batch is visible under its final
  path before its data is durable.
* Reads never follow a symlink planted in a local store.

``LocalBackend`` talks to the OS directly (fsspec costs ~45 µs a call, too much
for 20,000-file trees); ``FsspecBackend`` serves every other fsspec URL.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import itertools
import os
import shutil
import stat as statmod
import tempfile
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cas.errors import BackendError

__all__ = ["Backend", "Capabilities", "LocalBackend", "FsspecBackend", "Entry", "open_backend", "redact_url"]

TMP_DIR = "tmp"


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the backend root, "/"-separated
    size: int
    mtime: float | None  # seconds since the epoch, when the backend knows it


def redact_url(url: str) -> str:
    """Drop any user:password@ part so credentials never reach logs or reprs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    if "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}://{host}{slash}{path}"


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared by it (restic's ``backend.Properties``, zarr's
    ``supports_*``): callers ask these, never the backend's class."""

    #: ``create_*`` is create-only and atomic *across processes*: two writers racing
    #: for one path get one True and one False.  Without it, only one process may write.
    atomic_create: bool = False
    #: paths are plain files on this machine (fsync batches, hard links, symlink checks)
    local: bool = False
    #: transient failures are retried by the backend itself (cas.backends.retry)
    retries: bool = False
    #: the backend can abort multipart uploads left behind by killed writers
    stale_uploads: bool = False


class Backend(ABC):
    capabilities: Capabilities = Capabilities()
    url: str

    @property
    def is_local(self) -> bool:
        """Shorthand for ``capabilities.local``."""
        return self.capabilities.local

    @abstractmethod
    def exists(self, rel: str) -> bool: ...

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """Whole content; ``FileNotFoundError`` if absent."""

    @abstractmethod
    def open_read(self, rel: str) -> BinaryIO:
        """A seekable binary reader; ``FileNotFoundError`` if absent."""

    @abstractmethod
    def size(self, rel: str) -> int: ...

    @abstractmethod
    def create_bytes(self, rel: str, data: bytes, *, content_addressed: bool = False) -> bool:
        """``content_addressed``: ``rel`` is named by the hash of ``data`` (a blob),
        so an existing file at ``rel`` holds these very bytes.  Only such writes
        may be deferred into an open :meth:`batch`."""

    @abstractmethod
    def create_from_file(
        self, rel: str, local_path: str, *, move: bool = False, content_addressed: bool = False
    ) -> bool:
        """Copy (or, with ``move``, take over) a local file.  ``move`` may only
        be used with a file from :meth:`local_tempfile`."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[Entry]:
        """Every file below ``prefix`` (recursively), in no particular order."""

    @abstractmethod
    def remove(self, rel: str) -> None: ...

    def local_tempfile(self) -> tuple[int, str]:
        """A fresh temp file on the same device when possible, for spooling streams."""
        return tempfile.mkstemp(prefix="cas-spool-")

    @contextlib.contextmanager
    def join(self, batch: object) -> Iterator[None]:
        """Let this thread's content-addressed writes join ``batch`` (from
        :meth:`batch` in another thread), e.g. in a transfer pool."""
        yield

    @contextlib.contextmanager
    def batch(self) -> Iterator[object]:
        """Group writes so durability is paid once (local); a no-op elsewhere.

        A batch belongs to the thread that opened it (and threads that
        :meth:`join` it), and only defers ``content_addressed`` writes: a
        ref or journal entry written meanwhile, by any thread, is published
        at once with its create-only answer."""
        yield None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections; the default backend holds none."""


# -- local disk -----------------------------------------------------------------

_libc = None


def _syncfs(fd: int) -> None:
    """Flush one filesystem (git's batch fsync does the same); os.sync() if unavailable."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _libc.syncfs  # noqa: B018 - probe
        except (OSError, AttributeError):
            _libc = False
    if _libc and _libc.syncfs(fd) == 0:
        return
    os.sync()


def fsync_dir(path: str) -> None:
    """Make a directory's entries (a rename or link into it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBackend(Backend):
    capabilities = Capabilities(atomic_create=True, local=True)

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        self._dirs_made: set[str] = set()
        self._local = threading.local()  # .batch: this thread's open _Batch, if any
        self._tmp_prefix: str | None = None
        self._tmp_pid = 0
        self._tmp_counter = itertools.count()

    def __repr__(self) -> str:
        return f"LocalBackend({self.root!r})"

    def abspath(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _open_nofollow(self, rel: str) -> int:
        try:
            return os.open(self.abspath(rel), os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise BackendError(f"refusing to follow a symlink inside the store: {rel}", rel) from None
            raise

    def exists(self, rel: str) -> bool:
        try:
            st = os.lstat(self.abspath(rel))
        except FileNotFoundError:
            return False
        if statmod.S_ISLNK(st.st_mode):
            raise BackendError(f"refusing to follow a symlink inside the store: {rel}", rel)
        return True

    def read_bytes(self, rel: str) -> bytes:
        fd = self._open_nofollow(rel)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def open_read(self, rel: str) -> BinaryIO:
        return os.fdopen(self._open_nofollow(rel), "rb")

    def size(self, rel: str) -> int:
        st = os.lstat(self.abspath(rel))
        if statmod.S_ISLNK(st.st_mode):
            raise BackendError(f"refusing to follow a symlink inside the store: {rel}", rel)
        return st.st_size

    def _ensure_dir(self, absdir: str) -> None:
        if absdir not in self._dirs_made:
            os.makedirs(absdir, exist_ok=True)
            self._refuse_symlinked_dirs(absdir)
            self._dirs_made.add(absdir)

    def _refuse_symlinked_dirs(self, absdir: str) -> None:
        """A directory symlink planted below the root would send writes outside the
        store (O_NOFOLLOW guards only the last component).  Checked once per directory."""
        path = self.root
        for part in os.path.relpath(absdir, self.root).split(os.sep):
            path = os.path.join(path, part)
            if os.path.islink(path):
                rel = os.path.relpath(path, self.root).replace(os.sep, "/")
                raise BackendError(f"refusing to follow a symlink inside the store: {rel}", rel)

    def local_tempfile(self) -> tuple[int, str]:
        tmpdir = self.abspath(TMP_DIR)
        self._ensure_dir(tmpdir)
        return tempfile.mkstemp(prefix="spool-", dir=tmpdir)

    def _new_tmp(self) -> str:
        if self._tmp_prefix is None or self._tmp_pid != os.getpid():
            tmpdir = self.abspath(TMP_DIR)
            self._ensure_dir(tmpdir)
            # unique per process (and per fork); a counter is cheaper than uuid4 per file
            self._tmp_pid = os.getpid()
            self._tmp_prefix = f"{tmpdir}/{self._tmp_pid}-{uuid.uuid4().hex[:12]}-"
        return f"{self._tmp_prefix}{next(self._tmp_counter)}"

    def _publish(self, tmp: str, rel: str) -> bool:
        """Link a durable temp file to its final name; create-only."""
        final = self.abspath(rel)
        self._ensure_dir(os.path.dirname(final))
        try:
            os.link(tmp, final)
            created = True
        except FileExistsError:
            created = False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return created

    def _publish_content_addressed(self, tmp: str, rel: str) -> None:
        """Batches only hold content-addressed paths (blobs): a name that
        already exists holds these very bytes, so one rename replaces link+unlink."""
        final = self.abspath(rel)
        self._ensure_dir(os.path.dirname(final))  # a set lookup once the directory is known
        os.rename(tmp, final)

    def _finish(self, tmp: str, rel: str, fd: int | None = None, content_addressed: bool = False) -> bool:
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None and content_addressed:
            if fd is not None:
                os.close(fd)
            with batch.lock:
                if rel in batch.names:
                    os.unlink(tmp)
                    return False
                batch.names.add(rel)
                batch.pending.append((tmp, rel))
            return True
        try:
            if fd is not None:
                os.fsync(fd)
        finally:
            if fd is not None:
                os.close(fd)
        created = self._publish(tmp, rel)
        if created:
            fsync_dir(os.path.dirname(self.abspath(rel)))
        return created

    def create_bytes(self, rel: str, data: bytes, *, content_addressed: bool = False) -> bool:
        if self.exists(rel):
            return False
        tmp = self._new_tmp()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        return self._finish(tmp, rel, fd, content_addressed)

    def create_from_file(
        self, rel: str, local_path: str, *, move: bool = False, content_addressed: bool = False
    ) -> bool:
        if self.exists(rel):
            if move:
                os.unlink(local_path)
            return False
        if move:
            fd = os.open(local_path, os.O_RDONLY)
            return self._finish(local_path, rel, fd, content_addressed)
        tmp = self._new_tmp()
        try:
            with open(local_path, "rb") as src, open(tmp, "xb") as dst:
                # copy_file_range/sendfile: the kernel copies, nothing passes through Python.
                _copy_range(src, dst)
            fd = os.open(tmp, os.O_RDONLY)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return self._finish(tmp, rel, fd, content_addressed)

    @contextlib.contextmanager
    def join(self, batch: object) -> Iterator[None]:
        previous = getattr(self._local, "batch", None)
        self._local.batch = batch
        try:
            yield
        finally:
            self._local.batch = previous

    @contextlib.contextmanager
    def batch(self) -> Iterator[object]:
        outer = getattr(self._local, "batch", None)
        if outer is not None:  # nested: the outer batch pays
            yield outer
            return
        batch = self._local.batch = _Batch()
        try:
            yield batch
            with batch.lock:
                pending, batch.pending = batch.pending, []
            if pending:
                # temp data durable first, then the names that point at it
                _syncfs_path(self.root)
                for tmp, rel in pending:
                    self._publish_content_addressed(tmp, rel)
                _syncfs_path(self.root)
        except BaseException:
            for tmp, _ in batch.pending:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise
        finally:
            self._local.batch = None

    def list(self, prefix: str) -> Iterator[Entry]:
        base = self.abspath(prefix)
        stack = [base]
        while stack:
            d = stack.pop()
            try:
                it = os.scandir(d)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    else:
                        st = e.stat(follow_symlinks=False)
                        rel = os.path.relpath(e.path, self.root).replace(os.sep, "/")
                        yield Entry(rel, st.st_size, st.st_mtime)

    def is_symlink(self, rel: str) -> bool:
        return os.path.islink(self.abspath(rel))

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.abspath(rel))


class _Batch:
    """Content-addressed writes waiting for one syncfs (see LocalBackend.batch)."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []  # (temp file, final path)
        self.names: set[str] = set()
        self.lock = threading.Lock()


def _copy_range(src, dst) -> None:
    if not hasattr(os, "copy_file_range"):
        shutil.copyfileobj(src, dst, 1 << 20)
        return
    infd, outfd = src.fileno(), dst.fileno()
    while True:
        try:
            n = os.copy_file_range(infd, outfd, 1 << 30)
        except OSError as e:
            if e.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                shutil.copyfileobj(src, dst, 1 << 20)
                return
            raise
        if n == 0:
            return


def _syncfs_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _syncfs(fd)
    finally:
        os.close(fd)


# -- any fsspec filesystem ------------------------------------------------------


class FsspecBackend(Backend):
    """Any fsspec filesystem.  Object stores get create-only puts in ``_put``."""

    def __init__(self, fs, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = redact_url(url)
        # memory:// and other in-process filesystems: exists+put must not interleave
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FsspecBackend({self.url!r})"

    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._abs(rel))

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self._abs(rel))

    def open_read(self, rel: str) -> BinaryIO:
        return self.fs.open(self._abs(rel), "rb")

    def size(self, rel: str) -> int:
        return int(self.fs.size(self._abs(rel)))

    def _put_bytes(self, path: str, data: bytes) -> bool:
        self.fs.pipe_file(path, data)
        return True

    def _put_file(self, path: str, local_path: str) -> bool:
        # Upload under a temporary key, then rename: a failed upload never
        # leaves a partial object under the final key.
        tmp = f"{self.root}/{TMP_DIR}/{uuid.uuid4().hex}"
        try:
            self.fs.put_file(local_path, tmp)
            self.fs.mv(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise
        return True

    def create_bytes(self, rel: str, data: bytes, *, content_addressed: bool = False) -> bool:
        path = self._abs(rel)
        with self._lock:
            if self.fs.exists(path):
                return False
            return self._put_bytes(path, bytes(data))

    def create_from_file(
        self, rel: str, local_path: str, *, move: bool = False, content_addressed: bool = False
    ) -> bool:
        path = self._abs(rel)
        try:
            with self._lock:
                if self.fs.exists(path):
                    return False
                return self._put_file(path, local_path)
        finally:
            if move:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(local_path)

    def list(self, prefix: str) -> Iterator[Entry]:
        base = self._abs(prefix)
        try:
            # in-process filesystems (memory://) change the dict a listing walks while
            # other threads write: a listing takes the same lock as exists+put
            with self._lock:
                found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        root = self.fs._strip_protocol(self.root).rstrip("/")
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            path = self.fs._strip_protocol(path)
            rel = path[len(root) :].lstrip("/")
            yield Entry(rel, int(info.get("size") or 0), _mtime(info))

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._abs(rel))


def _mtime(info: dict) -> float | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if hasattr(value, "timestamp"):
            return value.timestamp()
        if isinstance(value, str):
            from datetime import datetime

            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def open_backend(url: str, **storage_options) -> Backend:
    """A backend for a path or URL.  Plain paths and ``file://`` are local."""
    if "://" not in url or url.startswith("file://"):
        path = url[len("file://") :] if url.startswith("file://") else url
        return LocalBackend(os.path.expanduser(path))
    import fsspec

    from cas.backends.cloud import Scrubber, cloud_backend, cloud_options, secrets_of

    storage_options = cloud_options(url, storage_options)
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
    except (ImportError, ValueError) as e:
        detail = Scrubber(secrets_of(storage_options))(str(e))  # invariant 11: no secret in errors
        raise BackendError(f"cannot open {redact_url(url)}: {detail}") from None
    # S3, GCS and Azure get server-enforced create-only writes (cas.backends.cloud)
    return cloud_backend(fs, root, url, storage_options) or FsspecBackend(fs, root, url)

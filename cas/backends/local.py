"""The local-disk backend: the OS directly, because fsspec costs ~45 µs a call,
too much for 20,000-file trees.

Create-only by ``os.link`` of a durable temp file (``tmp/`` below the root) to
its final name, then an fsync of the directory (invariant 5).  Inside a
``batch()`` content-addressed writes pay one ``syncfs`` for all (git's
``core.fsyncMethod=batch``).  Symlinks planted in the store are refused.
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
from collections.abc import Iterator
from typing import BinaryIO

from cas.backends.base import TMP_DIR, Backend, Capabilities, Entry
from cas.errors import BackendError

__all__ = ["LocalBackend", "fsync_dir", "syncfs", "syncfs_path"]

_libc = None


def syncfs(fd: int) -> None:
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

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        fd = self._open_nofollow(rel)
        try:
            return os.pread(fd, max(end - start, 0), start)
        finally:
            os.close(fd)

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

    def replace_bytes(self, rel: str, data: bytes) -> None:
        # A durable temp file renamed over the name: rename(2) is atomic, so a reader
        # opens the old file or the new one; then the directory entry is made durable.
        final = self.abspath(rel)
        self._ensure_dir(os.path.dirname(final))
        tmp = self._new_tmp()
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsync_dir(os.path.dirname(final))

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
                syncfs_path(self.root)
                for tmp, rel in pending:
                    self._publish_content_addressed(tmp, rel)
                syncfs_path(self.root)
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


def syncfs_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syncfs(fd)
    finally:
        os.close(fd)

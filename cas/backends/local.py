"""The local-disk backend: the OS directly, because fsspec costs ~45 µs a call,
too much for 20,000-file trees.

Create-only by ``os.link`` of a durable temp file (``tmp/`` below the root) to
its final name, then an fsync of the directory (invariant 5).  Inside a
``batch()`` content-addressed writes are fsynced in parallel and published
together, each touched directory fsynced once (git's ``core.fsyncMethod=batch``;
see :mod:`cas.backends.durable`).  Nothing here syncs the whole filesystem: only
what cas wrote.  Symlinks planted in the store are refused.
"""

from __future__ import annotations

import contextlib
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
from cas.backends.durable import FsyncBatch, fsync_dir, fsync_dirs, make_dirs
from cas.errors import BackendError

__all__ = ["LocalBackend", "fsync_dir"]


class LocalBackend(Backend):
    capabilities = Capabilities(atomic_create=True, local=True)

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        self._dirs_made: set[str] = set()
        self._dirs_clean: set[str] = set()  # directories found not to be symlinks (symlinked_dir)
        self._local = threading.local()  # .batch: this thread's open FsyncBatch, if any
        self._tmp_prefix: str | None = None
        self._tmp_pid = 0
        self._tmp_counter = itertools.count()

    def __repr__(self) -> str:
        return f"LocalBackend({self.root!r})"

    def abspath(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _open_nofollow(self, rel: str) -> int:
        # O_NONBLOCK: opening a FIFO planted in the store would otherwise wait for a writer
        # forever (a refresh that never returns); on a regular file it changes nothing.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.abspath(rel), flags)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise BackendError(f"refusing to follow a symlink inside the store: {rel}", rel) from None
            raise
        mode = os.fstat(fd).st_mode
        if not statmod.S_ISREG(mode):
            os.close(fd)
            if statmod.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", rel)
            raise BackendError(f"refusing to read a file that is not a regular file inside the store: {rel}", rel)
        return fd

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

    def _ensure_dir(self, absdir: str) -> list[str]:
        """Make ``absdir``; returns the directories whose entries this changed (to fsync)."""
        if absdir in self._dirs_made:
            return []
        self._refuse_symlinked_dirs(absdir)  # before making any: a planted `packs` link would get them
        changed = make_dirs(absdir)
        self._refuse_symlinked_dirs(absdir)
        self._dirs_made.add(absdir)
        return changed

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
        """Link a durable temp file to its final name, create-only, and make the name durable."""
        final = self.abspath(rel)
        parent = os.path.dirname(final)
        changed = self._ensure_dir(parent)
        try:
            os.link(tmp, final)
            created = True
        except FileExistsError:
            created = False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dirs([parent, *changed] if created else changed)
        return created

    def _publish_content_addressed(self, tmp: str, rel: str) -> list[str]:
        """Batches only hold content-addressed paths (blobs): a name that already
        exists holds these very bytes, so one rename replaces link+unlink.
        Returns the directories to fsync (the batch does, once each)."""
        final = self.abspath(rel)
        parent = os.path.dirname(final)
        changed = self._ensure_dir(parent)  # a set lookup once the directory is known
        os.rename(tmp, final)
        return [parent, *changed]

    def _finish(self, tmp: str, rel: str, fd: int, content_addressed: bool = False) -> bool:
        """Publish a written temp file whose fd is still open (and is closed here)."""
        batch: FsyncBatch | None = getattr(self._local, "batch", None)
        if batch is not None and content_addressed:
            return batch.add(tmp, rel, fd)  # fsynced in the batch's pool, renamed when it ends
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return self._publish(tmp, rel)

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
        batch = self._local.batch = FsyncBatch()
        try:
            try:
                yield batch
            except BaseException:
                batch.abort()
                raise
            batch.publish(self._publish_content_addressed)
        finally:
            self._local.batch = None

    def list(self, prefix: str) -> Iterator[Entry]:
        base = self.abspath(prefix)
        linked = self._symlinked_component(base)
        if linked is not None:
            # scandir would follow it: the symlink is listed as what it is (an entry, so the
            # caller refuses and reports it), or, above the prefix, left to its parent's listing.
            if linked == base:
                st = os.lstat(base)
                yield Entry(prefix.rstrip("/"), st.st_size, st.st_mtime)
            return
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

    def _symlinked_component(self, path: str) -> str | None:
        """The first directory or file from below the root down to ``path`` that is a
        symlink, if any (the root itself may be one: the user chose it)."""
        rel = os.path.relpath(path, self.root)
        if rel == "." or rel.startswith(".."):
            return None
        at = self.root
        for part in rel.split(os.sep):
            at = os.path.join(at, part)
            if os.path.islink(at):
                return at
        return None

    def symlinked_dir(self, rel: str) -> str | None:
        """The first directory above ``rel`` (below the root) that is a symlink, as a path
        relative to the root; None if none.  O_NOFOLLOW guards only the last component.
        A directory found clean is not checked again (as for writes: once per directory)."""
        parent = os.path.dirname(self.abspath(rel))
        if parent in self._dirs_clean:
            return None
        linked = self._symlinked_component(parent)
        if linked is None:
            self._dirs_clean.add(parent)
            return None
        return os.path.relpath(linked, self.root).replace(os.sep, "/")

    def is_symlink(self, rel: str) -> bool:
        return os.path.islink(self.abspath(rel))

    def planted(self, rel: str) -> str | None:
        """Why ``rel`` is refused, if it is a symlink or another object cas never writes
        (FIFO, socket, device); None for a regular file, a directory or nothing."""
        try:
            mode = os.lstat(self.abspath(rel)).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        if statmod.S_ISLNK(mode):
            return "a symlink, refused (not followed)"
        return None if statmod.S_ISREG(mode) or statmod.S_ISDIR(mode) else "not a regular file, refused (not read)"

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.abspath(rel))


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


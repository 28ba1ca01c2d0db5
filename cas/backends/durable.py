"""Durability on a local disk: fsync what cas wrote, never the whole filesystem.

``syncfs`` would be one call for a whole batch, but it flushes every
process's dirty pages on the filesystem, so a save's cost would swing with
whatever else the machine writes.  Instead (git's ``core.fsyncMethod=batch``,
done with plain fsyncs): a batch fsyncs each temp file it wrote, from a small
thread pool while the writer goes on writing - the kernel's journal groups
concurrent fsyncs into one commit, where one thread would pay a commit per
file -, then renames every file to its final name, then fsyncs each
directory it touched once, again in parallel.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["FsyncBatch", "fsync_dir", "fsync_dirs", "make_dirs"]

# Enough concurrent fsyncs for the journal to group them; they wait on the disk, not the CPU.
_THREADS = 8
# Temp files whose fsync is still pending hold an fd each: bounded, far below the fd limit.
_IN_FLIGHT = 256


def fsync_dir(path: str) -> None:
    """Make a directory's entries (a rename or link into it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dirs(dirs: Iterable[str], pool: ThreadPoolExecutor | None = None) -> None:
    """fsync each directory once; in parallel when a pool is given."""
    dirs = sorted(set(dirs), reverse=True)  # children first, as a reader walking down expects
    if pool is None or len(dirs) < 2:
        for d in dirs:
            fsync_dir(d)
        return
    for fut in [pool.submit(fsync_dir, d) for d in dirs]:
        fut.result()


def make_dirs(absdir: str) -> list[str]:
    """``os.makedirs(absdir, exist_ok=True)``; returns the parents of the directories it
    created: their new entries are durable only once those parents are fsynced."""
    missing: list[str] = []
    d = absdir
    while not os.path.isdir(d):
        missing.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    changed = []
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it: its entry is its to sync
            os.mkdir(d)
            changed.append(os.path.dirname(d))
    return changed


def _fsync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsyncBatch:
    """Content-addressed temp files waiting to be published together (see the module doc).

    ``add`` hands over a written temp file and its open fd; its fsync starts at
    once in the pool.  ``publish`` waits for every fsync, renames every file to
    its final name and fsyncs the directories that changed; ``abort`` removes
    the temp files instead.  Thread-safe: a transfer pool's threads add to one batch.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []  # (temp file, final path)
        self._names: set[str] = set()
        self._futures: list[Future] = []
        self._first_fd: int | None = None  # the first file's fd, its fsync not started (see add)
        self._slots = threading.BoundedSemaphore(_IN_FLIGHT)
        self._pool: ThreadPoolExecutor | None = None

    def add(self, tmp: str, rel: str, fd: int) -> bool:
        """Take over ``tmp`` (and close ``fd``); False if this batch already holds ``rel``.

        The first file's fsync waits (its fd held) until a second file comes: a batch of
        one file - a small save - then fsyncs it in this thread at publish, as no fsync
        would overlap it, instead of starting a pool thread per save."""
        with self.lock:
            if rel in self._names:
                os.close(fd)
                os.unlink(tmp)
                return False
            self._names.add(rel)
            self._pending.append((tmp, rel))
            if self._first_fd is None and self._pool is None:
                self._first_fd = fd
                return True
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="cas-fsync")
            pool = self._pool
            held, self._first_fd = self._first_fd, None
        if held is not None:
            self._submit(pool, held)
        self._submit(pool, fd)
        return True

    def _submit(self, pool: ThreadPoolExecutor, fd: int) -> None:
        self._slots.acquire()
        try:
            fut = pool.submit(_fsync_close, fd)
        except BaseException:
            self._slots.release()
            os.close(fd)
            raise
        fut.add_done_callback(lambda _: self._slots.release())
        with self.lock:
            self._futures.append(fut)

    def _wait(self) -> None:
        with self.lock:
            futures, self._futures = self._futures, []
            held, self._first_fd = self._first_fd, None
        error = None
        if held is not None:  # the batch's only file: fsynced here, before any rename
            try:
                _fsync_close(held)
            except BaseException as e:  # noqa: BLE001 - re-raised below
                error = e
        for fut in futures:  # every one, so no fd is left open; the first error wins
            try:
                fut.result()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                error = error or e
        if error is not None:
            raise error

    def publish(self, rename: Callable[[str, str], Iterable[str]]) -> None:
        """Durable data first, then the names that point at it, then those names durable.
        ``rename(tmp, rel)`` moves one file into place and returns the directories it changed."""
        try:
            self._wait()
            with self.lock:
                pending, self._pending = self._pending, []
            dirs: set[str] = set()
            for tmp, rel in pending:
                dirs.update(rename(tmp, rel))
            fsync_dirs(dirs, self._pool)
        finally:
            self._close()

    def abort(self) -> None:
        """Publish nothing: remove every temp file."""
        try:
            with contextlib.suppress(Exception):  # nothing will be published: its errors don't matter
                self._wait()
            with self.lock:
                pending, self._pending = self._pending, []
            for tmp, _ in pending:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        finally:
            self._close()

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

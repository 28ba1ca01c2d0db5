"""Writing store content to a user's files: the whole verified result, or nothing.

Every path that puts stored bytes at a local destination goes through a
:class:`Download` (invariant 14): ``ArtifactVersion.download`` (and so
``cas get`` and the materializers), the ``cas://`` filesystem's
``get_file``/``get``, and the MLflow artifact repository.

* Each file streams to a temp name in its destination's directory, checked
  against its digest as it passes, and is fsynced; it is renamed over its
  destination only once *every* file of the download is complete and verified.
* A tree whose destination does not exist yet is assembled in a temp
  directory beside it and renamed into place in one step.
* On any error (IntegrityError, a missing blob, a full disk, Ctrl-C) every
  temp and every directory the download created is removed: the destination
  is left exactly as it was.  Only a SIGKILL can leave a ``.<name>.cas-*``
  temp behind, never a partial file under a final name.

Whether an existing destination may be replaced is the caller's decision
(``cas get`` asks for ``--force``); a download only makes the write atomic.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from cas.backends.local import fsync_dir
from cas.core.digest import CHUNK
from cas.core.progress import as_callback, item_done
from cas.errors import PathIsDirectoryError, PathNotDirectoryError

if TYPE_CHECKING:
    from cas.core.progress import Callback
    from cas.storage.blobs import BlobStore
    from cas.storage.chunked import Contents

__all__ = ["Download"]

_TEMP = ".cas-"  # every temp name: .<final name>.cas-<random>


class Download:
    """One all-or-nothing download: add files and trees, then leave the ``with``
    block cleanly to move them all into place (an exception removes them all)."""

    def __init__(self, blobs: BlobStore | Contents, progress: Callback | None = None) -> None:
        self._blobs = blobs
        self._progress = as_callback(progress)  # bytes written and files done, from any thread
        self._moves: list[tuple[str, str]] = []  # (temp, final), renamed in order at commit
        self._made: list[str] = []  # directories this download created, parents first
        self._done = False

    def __enter__(self) -> Download:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    # -- adding ------------------------------------------------------------------

    def file(self, hexdigest: str, dest: str | os.PathLike) -> None:
        """Stage blob ``hexdigest`` for ``dest`` (replaced at commit if it is a file)."""
        self._fetch([(hexdigest, self._stage(dest))])

    def tree(self, files: Iterable[tuple[str, str]], dest: str | os.PathLike) -> None:
        """Stage a tree, ``(relative "/" path, digest)`` per file, for directory ``dest``.

        A new ``dest`` is assembled beside it and appears whole at commit; an
        existing directory gets the files added (or replaced) in it."""
        final = os.path.abspath(dest)
        if os.path.lexists(final):
            self._fetch([(hexdigest, self._stage(os.path.join(final, *rel.split("/")))) for rel, hexdigest in files])
            return
        self.mkdir(os.path.dirname(final))
        tmpdir = _temp_name(final)
        os.mkdir(tmpdir)  # not mkdtemp: its 0700 would become the tree's mode
        self._moves.append((tmpdir, final))
        made = {tmpdir}
        jobs = []
        for rel, hexdigest in files:
            path = os.path.join(tmpdir, *rel.split("/"))
            parent = os.path.dirname(path)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            jobs.append((hexdigest, path))
        self._fetch(jobs)
        for d in sorted(made, reverse=True):  # children first: each new entry is durable before its parent
            fsync_dir(d)

    def mkdir(self, path: str | os.PathLike) -> None:
        """Make a directory and its missing parents, removed again on abort."""
        path = os.path.abspath(path)
        missing = []
        while not os.path.isdir(path):
            if os.path.lexists(path):
                raise PathNotDirectoryError(f"{path} is in the way: it exists and is not a directory", path)
            missing.append(path)
            path = os.path.dirname(path)
        for d in reversed(missing):
            os.mkdir(d)
            self._made.append(d)

    def _stage(self, dest: str | os.PathLike) -> str:
        """Register a temp name beside ``dest`` (abort removes it, commit renames it)."""
        final = os.path.abspath(dest)
        if os.path.isdir(final) and not os.path.islink(final):
            raise PathIsDirectoryError(f"{final} is a directory", final)
        self.mkdir(os.path.dirname(final))
        tmp = _temp_name(final)
        self._moves.append((tmp, final))
        return tmp

    def _fetch(self, jobs: list[tuple[str, str]]) -> None:
        """Write (digest, temp path) jobs; remote blobs in parallel (each is one round trip or more)."""
        if len(jobs) < 2 or self._blobs.backend.capabilities.local:
            for hexdigest, path in jobs:
                self._write(hexdigest, path)
            return
        pool = ThreadPoolExecutor(max_workers=_REMOTE_JOBS)
        try:
            for future in [pool.submit(self._write, hexdigest, path) for hexdigest, path in jobs]:
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # an error: stop the rest before abort cleans up

    def _write(self, hexdigest: str, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)  # modes as any new file's
        with os.fdopen(fd, "wb") as out, self._blobs.open(hexdigest) as src:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while n := src.readinto(buf):  # EOF: the reader raises IntegrityError on a mismatch
                out.write(view[:n])
                self._progress.relative_update(n)
            out.flush()
            os.fsync(out.fileno())
        item_done(self._progress)

    # -- finishing -----------------------------------------------------------------

    def commit(self) -> None:
        """Move everything into place (every byte is already verified and durable)."""
        if self._done:
            return
        try:
            parents = {os.path.dirname(d) for d in self._made}
            for tmp, final in self._moves:
                os.replace(tmp, final)
                parents.add(os.path.dirname(final))
            for d in sorted(parents, reverse=True):
                fsync_dir(d)
        except BaseException:
            self.abort()  # a rename refused (a file or directory raced in): undo what is left
            raise
        self._done = True

    def abort(self) -> None:
        """Remove every temp and every directory this download made."""
        if self._done:
            return
        self._done = True
        for tmp, _ in self._moves:
            if os.path.isdir(tmp) and not os.path.islink(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        for d in reversed(self._made):
            with contextlib.suppress(OSError):  # not empty: something else wrote there meanwhile
                os.rmdir(d)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_REMOTE_JOBS = 8  # blobs fetched at once from an object store (as sync's default)


def _temp_name(final: str) -> str:
    """A fresh name beside ``final`` (created with O_EXCL / mkdir, so a clash raises, never reuses)."""
    name = os.path.basename(final)[:200]  # room for the suffix within NAME_MAX
    return os.path.join(os.path.dirname(final), f".{name}{_TEMP}{uuid.uuid4().hex[:12]}")

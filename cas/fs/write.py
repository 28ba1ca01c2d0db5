"""Writing through the ``cas://`` view: version numbers, drafts, commits.

The rules (docs/filesystem.md): a file at ``p/s/a/N`` commits version N when
closed outside a transaction; files below it build a draft that a commit, the
end of a transaction or the end of its writers (:mod:`cas.fs.finish`) turns
into one tree version; N must be the next number; committed versions never
change.  :class:`Writer` owns the lock that makes check-then-stage atomic
among the threads of a process (the draft book orders processes).
"""

from __future__ import annotations

import threading
from typing import Any

from fsspec.callbacks import Callback

from cas.core.digest import CHUNK
from cas.errors import (
    ArtifactNotFoundError,
    InvalidValueError,
    PathExistsError,
    PathIsDirectoryError,
    PathNotDirectoryError,
    PathNotFoundError,
    ReadOnlyError,
    VersionDeletedError,
    VersionExistsError,
)
from cas.fs.book import Key
from cas.fs.draft import Draft, Staged
from cas.fs.drafts import DraftMap
from cas.fs.files import SpoolFile
from cas.fs.paths import CasPath
from cas.fs.procs import process_alive
from cas.fs.view import View
from cas.store.facade import Store
from cas.version import BLOB, ArtifactVersion

__all__ = ["Writer"]


class Writer:
    """Creating files and directories, staging them in drafts, committing drafts."""

    def __init__(self, store: Store, view: View, drafts: DraftMap) -> None:
        self.store = store
        self.view = view
        self.drafts = drafts
        self.lock = threading.RLock()  # a check and the staging it allows happen as one step

    def next_free(self, name: str) -> int:
        drafted = [n for d, n in self.drafts if d == name]
        return max([self.store.next_version(name), *(n + 1 for n in drafted)])

    def version_number(self, cp: CasPath) -> int:
        if isinstance(cp.spec, int):
            return cp.spec
        raise ReadOnlyError(
            f"cas://{cp.version_path}: {cp.spec!r} points at a committed version and cannot be written;"
            f" write a new version, cas://{cp.name}/{self.next_free(cp.name)}",
            cp.path,
        )

    def check_new_version(self, cp: CasPath) -> None:
        """``cp`` is in a version with no draft here: may a new version N be started?"""
        name, number = cp.name, self.version_number(cp)
        try:
            self.store.get_artifact_version(name, number)
        except VersionDeletedError:
            raise VersionExistsError(
                f"{name}@{number} was deleted and version numbers are never reused;"
                f" write cas://{name}/{self.next_free(name)}",
                cp.path,
            ) from None
        except ArtifactNotFoundError:
            pass
        else:
            if cp.inner:
                raise ReadOnlyError(
                    f"{name}@{number} is committed and its files never change;"
                    f" write a new version, cas://{name}/{self.next_free(name)}",
                    cp.path,
                )
            raise VersionExistsError(
                f"{name}@{number} is committed and cannot be overwritten;"
                f" write a new version, cas://{name}/{self.next_free(name)}",
                cp.path,
            )
        if number == self.store.next_version(name) or (name, number - 1) in self.drafts:
            return
        raise InvalidValueError(
            f"cannot create {name}@{number}: versions are numbered in order and the next is {self.next_free(name)}"
        )

    def check_writable(self, cp: CasPath, *, exclusive: bool = False) -> Draft | None:
        """May a file be written at ``cp``?  Returns its draft (None: a new version)."""
        if cp.level < 4:
            raise PathIsDirectoryError(
                f"cas://{cp.path} is a {cp.what}, a directory; files go at"
                " <pipeline>/<step>/<artifact>/<version>[/<path>]",
                cp.path,
            )
        draft = self.drafts.get((cp.name, self.version_number(cp)))
        if draft is None:
            self.check_new_version(cp)
            return None
        if not cp.inner:
            if draft.blob is None:
                raise PathIsDirectoryError(f"cas://{cp.path} is a directory (a tree draft)", cp.path)
            if exclusive:
                raise PathExistsError(f"cas://{cp.path} already exists", cp.path)
            return draft
        if draft.blob is not None:
            raise PathNotDirectoryError(f"cas://{cp.version_path} is a file, not a directory", cp.path)
        if draft.is_dir(cp.inner):
            raise PathIsDirectoryError(f"cas://{cp.path} is a directory", cp.path)
        parent = draft.file_parent(cp.inner)
        if parent is not None:
            raise PathNotDirectoryError(f"cas://{cp.version_path}/{parent} is a file, not a directory", cp.path)
        if exclusive and draft.file(cp.inner) is not None:
            raise PathExistsError(f"cas://{cp.path} already exists", cp.path)
        return draft

    def stage(self, cp: CasPath, digest: str, size: int, *, autocommit: bool) -> None:
        """Content for ``cp`` is durable in the backend: put it in its draft, or commit it."""
        with self.lock:
            draft = self.check_writable(cp)
            number = self.version_number(cp)
            if draft is None:
                if not cp.inner and autocommit:
                    self.store.link(cp.name, digest, BLOB, version=number)
                    return
                draft = self.drafts.create(cp.name, number)
            staged = Staged(digest, size)
            if cp.inner:
                draft.put(cp.inner, staged)
            else:
                draft.blob = staged
                if autocommit:
                    self.drafts.commit(draft)

    def file_failed(self, cp: CasPath) -> None:
        """A file below a version path was abandoned: keep its draft from being committed on its own."""
        with self.lock:
            number = self.version_number(cp)
            if (cp.name, number) not in self.drafts:
                self.drafts.create(cp.name, number)
            self.drafts.mark_broken((cp.name, number), f"writing cas://{cp.path} failed")

    # -- files -------------------------------------------------------------------------

    def open(self, cp: CasPath, mode: str, *, autocommit: bool) -> SpoolFile:
        """A file that, closed cleanly, stages its content at ``cp`` ('ab' starts from a draft file's)."""
        with self.lock:
            draft = self.check_writable(cp, exclusive=mode == "xb")

        def failed() -> None:  # an unfinished file leaves its draft incomplete
            if cp.inner:
                self.file_failed(cp)

        f = SpoolFile(
            self.store.blobs,
            lambda digest, size: self.stage(cp, digest, size, autocommit=autocommit),
            name=cp.path,
            mode=mode,
            on_fail=failed,
        )
        if mode == "ab" and draft is not None:
            existing = draft.blob if not cp.inner else draft.file(cp.inner)
            if existing is not None:
                with self.store.contents.open(existing.digest) as src:
                    while block := src.read(CHUNK):
                        f.write(block)
        return f

    def put_bytes(self, cp: CasPath, value: bytes, *, exclusive: bool, autocommit: bool) -> None:
        with self.lock:
            self.check_writable(cp, exclusive=exclusive)
        result = self.store.blobs.put_bytes(value)
        self.stage(cp, result.digest, result.size, autocommit=autocommit)

    def put_file(self, cp: CasPath, lpath: str, callback: Callback, *, exclusive: bool, autocommit: bool) -> None:
        with self.lock:
            self.check_writable(cp, exclusive=exclusive)
        result = self.store.blobs.put_file(lpath)  # hashed first: a dedupe hit writes nothing
        callback.set_size(result.size)
        callback.relative_update(result.size)
        self.stage(cp, result.digest, result.size, autocommit=autocommit)

    def make_dir(self, cp: CasPath, create_parents: bool, exist_ok: bool) -> None:
        if cp.level < 4:
            return  # pipelines, steps and artifacts exist through their versions
        with self.lock:
            draft = self.drafts.get((cp.name, cp.spec)) if isinstance(cp.spec, int) else None
            if draft is None:
                try:
                    self.view.info(cp)
                except FileNotFoundError:
                    pass
                else:
                    raise PathExistsError(f"cas://{cp.path} already exists", cp.path)
                self.check_new_version(cp)
                if cp.inner and not create_parents:
                    raise PathNotFoundError(f"cas://{cp.version_path} does not exist", cp.path)
                draft = self.drafts.create(cp.name, self.version_number(cp))
                if not cp.inner:
                    return
            elif not cp.inner:
                raise PathExistsError(f"cas://{cp.path} already exists", cp.path)
            if draft.blob is not None:
                raise PathNotDirectoryError(f"cas://{cp.version_path} is a file, not a directory", cp.path)
            if draft.file(cp.inner) is not None or (draft.is_dir(cp.inner) and not exist_ok):
                raise PathExistsError(f"cas://{cp.path} already exists", cp.path)
            if draft.has_dir(cp.inner):
                return  # already made: its parents exist as long as it does
            # a directory only implied by the files below it is made one in its own right,
            # as on a real filesystem, so it stays when those files are removed
            parent = draft.file_parent(cp.inner)
            if parent is not None:
                raise PathNotDirectoryError(f"cas://{cp.version_path}/{parent} is a file, not a directory", cp.path)
            above = cp.inner.rsplit("/", 1)[0] if "/" in cp.inner else ""
            if not create_parents and above and not draft.is_dir(above):
                raise PathNotFoundError(f"cas://{cp.version_path}/{above} does not exist", cp.path)
            if create_parents:
                # like mkdir -p: every parent becomes a directory in its own right,
                # which stays when the files that implied it are removed
                parts = cp.inner.split("/")
                for depth in range(1, len(parts)):
                    draft.mkdir("/".join(parts[:depth]))
            draft.mkdir(cp.inner)

    # -- drafts and commits --------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """See :meth:`cas.fs.CasFileSystem.draft_status`."""
        out = []
        for key in sorted(self.drafts):
            draft = self.drafts[key]
            blob = draft.blob
            entries = [(p, d, n) for p, d, n in draft.entries()] if blob is None else [("", blob.digest, blob.size)]
            writing = [int(w.split(":")[0]) for w in self.drafts.writers(key) if process_alive(w)]
            out.append(
                {
                    "path": f"{key[0]}/{key[1]}",
                    "files": len(entries),
                    "size": sum(n for _, _, n in entries),
                    "writing": writing,
                    "broken": draft.broken,
                }
            )
        return out

    def select(self, cp: CasPath | None) -> list[Draft]:
        """The drafts at or below ``cp``; with None, those this process wrote to."""
        if cp is None:  # what this process wrote: never another process's work in progress
            return self.drafts.mine()
        if cp.level >= 4:
            key = (cp.name, cp.spec if isinstance(cp.spec, int) else 0)
            keys = [key] if key in self.drafts else []
        else:
            prefix = f"{cp.path}/" if cp.path else ""
            keys = [k for k in sorted(self.drafts) if f"{k[0]}/".startswith(prefix)]
        if not keys:
            raise PathNotFoundError(f"no open draft at cas://{cp.path}", cp.path)
        return [self.drafts[k] for k in keys]

    def commit(self, cp: CasPath | None) -> list[ArtifactVersion]:
        """See :meth:`cas.fs.CasFileSystem.commit`."""
        with self.lock:
            return [av for d in self.select(cp) if (av := self.drafts.commit(d)) is not None]

    def discard(self, cp: CasPath | None) -> None:
        with self.lock:
            for d in self.select(cp):
                self.drop(d.key)

    def drop(self, key: Key) -> None:
        self.drafts.drop(key)  # cancels the moves waiting for it: their sources stay

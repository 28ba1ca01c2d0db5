"""Writing through the ``cas://`` view: version numbers, drafts, commits.

Mixed into :class:`cas.fs.CasFileSystem`; relies on its lookups (``_parse``,
``_info``, ``_version_of``) and state (``store``, ``_drafts``, ``_lock``).
The rules (docs/filesystem.md): a file at ``p/s/a/N`` commits version N when
closed outside a transaction; files below it build a draft that a commit, the
end of a transaction or the end of its writers (``fs_finish``) turns into one
tree version; N must be the next number; committed versions never change.
"""

from __future__ import annotations

import os
from typing import Any

from fsspec.callbacks import DEFAULT_CALLBACK

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
from cas.fs.base import CasFileSystemBase
from cas.fs.drafts import Draft, Staged
from cas.fs.finish import commit_draft
from cas.fs.paths import CasPath
from cas.fs.procs import process_alive
from cas.version import BLOB, ArtifactVersion

__all__ = ["WriteMixin"]


class WriteMixin(CasFileSystemBase):
    """Creating files and directories, staging them in drafts, committing drafts."""

    def _next_free(self, name: str) -> int:
        drafted = [n for d, n in self._drafts if d == name]
        return max([self.store.next_version(name), *(n + 1 for n in drafted)])

    def _version_number(self, cp: CasPath) -> int:
        if isinstance(cp.spec, int):
            return cp.spec
        raise ReadOnlyError(
            f"cas://{cp.version_path}: {cp.spec!r} points at a committed version and cannot be written;"
            f" write a new version, cas://{cp.name}/{self._next_free(cp.name)}",
            cp.path,
        )

    def _check_new_version(self, cp: CasPath) -> None:
        """``cp`` is in a version with no draft here: may a new version N be started?"""
        name, number = cp.name, self._version_number(cp)
        try:
            self.store.get_artifact_version(name, number)
        except VersionDeletedError:
            raise VersionExistsError(
                f"{name}@{number} was deleted and version numbers are never reused;"
                f" write cas://{name}/{self._next_free(name)}",
                cp.path,
            ) from None
        except ArtifactNotFoundError:
            pass
        else:
            if cp.inner:
                raise ReadOnlyError(
                    f"{name}@{number} is committed and its files never change;"
                    f" write a new version, cas://{name}/{self._next_free(name)}",
                    cp.path,
                )
            raise VersionExistsError(
                f"{name}@{number} is committed and cannot be overwritten;"
                f" write a new version, cas://{name}/{self._next_free(name)}",
                cp.path,
            )
        if number == self.store.next_version(name) or (name, number - 1) in self._drafts:
            return
        raise InvalidValueError(
            f"cannot create {name}@{number}: versions are numbered in order and the next is {self._next_free(name)}"
        )

    def _check_writable(self, cp: CasPath, *, exclusive: bool = False) -> Draft | None:
        """May a file be written at ``cp``?  Returns its draft (None: a new version)."""
        if cp.level < 4:
            raise PathIsDirectoryError(
                f"cas://{cp.path} is a {cp.what}, a directory; files go at"
                " <pipeline>/<step>/<artifact>/<version>[/<path>]",
                cp.path,
            )
        draft = self._drafts.get((cp.name, self._version_number(cp)))
        if draft is None:
            self._check_new_version(cp)
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

    def _stage(self, cp: CasPath, digest: str, size: int, *, autocommit: bool) -> None:
        """Content for ``cp`` is durable in the backend: put it in its draft, or commit it."""
        with self._lock:
            draft = self._check_writable(cp)
            number = self._version_number(cp)
            if draft is None:
                if not cp.inner and autocommit:
                    self.store.link(cp.name, digest, BLOB, version=number)
                    return
                draft = self._drafts.create(cp.name, number)
            staged = Staged(digest, size)
            if cp.inner:
                draft.put(cp.inner, staged)
            else:
                draft.blob = staged
                if autocommit:
                    self._commit_draft(draft)

    def _file_failed(self, cp: CasPath) -> None:
        """A file below a version path was abandoned: keep its draft from being committed on its own."""
        with self._lock:
            number = self._version_number(cp)
            if (cp.name, number) not in self._drafts:
                self._drafts.create(cp.name, number)
            self._drafts.book.mark_broken((cp.name, number), f"writing cas://{cp.path} failed")

    def pipe_file(self, path, value, mode="overwrite", **kwargs) -> None:
        cp = self._parse(path)
        with self._lock:
            self._check_writable(cp, exclusive=mode == "create")
        result = self.store.blobs.put_bytes(bytes(value))
        self._stage(cp, result.digest, result.size, autocommit=not self._intrans)

    def put_file(self, lpath, rpath, callback=DEFAULT_CALLBACK, mode="overwrite", **kwargs) -> None:
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        cp = self._parse(rpath)
        with self._lock:
            self._check_writable(cp, exclusive=mode == "create")
        result = self.store.blobs.put_file(lpath)  # hashed first: a dedupe hit writes nothing
        callback.set_size(result.size)
        callback.relative_update(result.size)
        self._stage(cp, result.digest, result.size, autocommit=not self._intrans)

    def mkdir(self, path, create_parents=True, **kwargs) -> None:
        self._make_dir(path, create_parents, exist_ok=False)

    def _make_dir(self, path, create_parents: bool, exist_ok: bool) -> None:
        cp = self._parse(path)
        if cp.level < 4:
            return  # pipelines, steps and artifacts exist through their versions
        with self._lock:
            draft = self._drafts.get((cp.name, cp.spec)) if isinstance(cp.spec, int) else None
            if draft is None:
                try:
                    self._info(cp)
                except FileNotFoundError:
                    pass
                else:
                    raise PathExistsError(f"cas://{cp.path} already exists", cp.path)
                self._check_new_version(cp)
                if cp.inner and not create_parents:
                    raise PathNotFoundError(f"cas://{cp.version_path} does not exist", cp.path)
                number = self._version_number(cp)
                draft = self._drafts.create(cp.name, number)
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

    def makedirs(self, path, exist_ok=False) -> None:
        try:
            self._make_dir(path, create_parents=True, exist_ok=exist_ok)
        except FileExistsError:
            if not exist_ok:
                raise

    # -- drafts and commits --------------------------------------------------------------

    def draft_status(self) -> list[dict[str, Any]]:
        """The store's open drafts: path, files, bytes, pids of writers still at work, and why one
        is kept from committing on its own (``broken``, None if it is not)."""
        out = []
        for key in sorted(self._drafts):
            draft = self._drafts[key]
            blob = draft.blob
            entries = [(p, d, n) for p, d, n in draft.entries()] if blob is None else [("", blob.digest, blob.size)]
            writing = [int(w.split(":")[0]) for w in self._drafts.book.writers(key) if process_alive(w)]
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

    def drafts(self) -> list[str]:
        """Version paths (``p/s/a/N``) of the store's open drafts, whichever instance or process writes them."""
        return [f"{name}/{number}" for name, number in sorted(self._drafts)]

    def _select(self, path) -> list[Draft]:
        if path is None:  # what this process wrote: never another process's work in progress
            return [self._drafts[k] for k in self._drafts.book.mine() if k in self._drafts]
        cp = self._parse(path)
        if cp.level >= 4:
            key = (cp.name, cp.spec if isinstance(cp.spec, int) else 0)
            keys = [key] if key in self._drafts else []
        else:
            prefix = f"{cp.path}/" if cp.path else ""
            keys = [k for k in sorted(self._drafts) if f"{k[0]}/".startswith(prefix)]
        if not keys:
            raise PathNotFoundError(f"no open draft at cas://{cp.path}", cp.path)
        return [self._drafts[k] for k in keys]

    def commit(self, path=None) -> list[ArtifactVersion]:
        """Commit open drafts as versions, in version order: those at or below ``path``
        (whoever wrote them), or with no path those this process wrote to.

        A draft with no file commits nothing.  Each version commits
        atomically; several drafts are not one atomic unit: on an error the
        drafts not yet committed stay open.
        """
        with self._lock:
            return [av for d in self._select(path) if (av := self._commit_draft(d)) is not None]

    def _commit_draft(self, draft: Draft) -> ArtifactVersion | None:
        return commit_draft(self.store, self._drafts.book, draft)

    def discard(self, path=None) -> None:
        """Drop open drafts (at or below ``path``, or this process's); their blobs are left for ``gc``.
        A ``mv`` into a dropped draft keeps its source."""
        with self._lock:
            for d in self._select(path):
                self._drop_draft(d.key)

    def _drop_draft(self, key: tuple[str, int]) -> None:
        self._drafts.book.drop(key)  # cancels the moves waiting for it: their sources stay

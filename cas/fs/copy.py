"""Copy, move and remove in the ``cas://`` view: index entries and records only.

Mixed into :class:`cas.fs.CasFileSystem` (before fsspec's base class, whose
``copy`` it extends).  A whole committed version copied to a new version path
is linked in one step (``Store.link``); files copied into a draft point at the
same blobs; ``mv`` is copy plus a recorded deletion, refused up front when the
source cannot be removed - and when the copy went into a draft, the deletion
of committed sources waits for that draft's commit (a discard keeps them);
``rm`` records deletions and never removes bytes.
"""

from __future__ import annotations

import os
from glob import has_magic
from typing import Any

from cas.core.digest import Digest
from cas.errors import (
    ArtifactNotFoundError,
    PathIsDirectoryError,
    PathNotDirectoryError,
    PathNotFoundError,
    ReadOnlyError,
)
from cas.fs.drafts import Draft, Staged
from cas.fs.paths import CasPath
from cas.fs.write import WriteMixin
from cas.version import BLOB, TREE, ArtifactVersion

__all__ = ["CopyRemoveMixin"]


class CopyRemoveMixin(WriteMixin):
    """cp_file/copy/mv/rm/rmdir over drafts and committed versions."""

    def cp_file(self, path1, path2, **kwargs) -> None:
        src, dst = self._parse(path1), self._parse(path2)
        info = self._info(src)
        if info["type"] == "directory":
            self.makedirs(path2, exist_ok=True)
            return
        with self._lock:
            self._check_writable(dst)
            self._stage(dst, Digest.parse(info["digest"]).hex, info["size"], autocommit=not self._intrans)

    def copy(self, path1, path2, recursive=False, maxdepth=None, on_error=None, **kwargs) -> None:
        if (
            isinstance(path1, str)
            and isinstance(path2, str)
            and maxdepth is None
            and not has_magic(path1)
            and self._copy_version(path1, path2, recursive)
        ):
            return
        super().copy(path1, path2, recursive=recursive, maxdepth=maxdepth, on_error=on_error, **kwargs)

    def _copy_version(self, path1: str, path2: str, recursive: bool) -> bool:
        """A whole committed version to a new version path: one metadata-only link."""
        if path1.endswith("/"):
            return False
        src = self._parse(path1)
        if src.level != 4 or src.inner:
            return False
        try:
            v = self._version_of(src)
        except FileNotFoundError:
            return False
        if isinstance(v, Draft) or (v.kind == TREE and not recursive):
            return False
        target = self._strip_protocol(path2)
        if path2.endswith("/") or self.isdir(target):
            target = f"{target}/{src.segments[3]}" if target else src.segments[3]
        dst = self._parse(target)
        if dst.level != 4 or dst.inner or not isinstance(dst.spec, int) or (dst.name, dst.spec) in self._drafts:
            return False
        with self._lock:
            self._check_new_version(dst)
            if not self._intrans:
                self.store.link(dst.name, v.digest.hex, v.kind, version=dst.spec)
                return True
            draft = self._drafts.create(dst.name, dst.spec)
            if v.kind == BLOB:
                draft.blob = Staged(v.digest.hex, v.size)
            else:
                for path, digest, size in self.store.index.tree_entries(v.digest.hex):
                    draft.put(path, Staged(digest, size))
        return True

    def mv(self, path1, path2, recursive=False, maxdepth=None, **kwargs) -> None:
        if path1 == path2:
            return
        # Refuse before copying anything: a committed version's files cannot be removed.
        for cp in self._targets(path1):
            self._check_removable(cp, recursive or maxdepth is not None)
        drafts_before = set(self._drafts)
        self.copy(path1, path2, recursive=recursive, maxdepth=maxdepth, on_error="raise")
        into = self._drafts_written(path2, drafts_before)
        if not into:  # the copy is committed: the source can go now
            self.rm(path1, recursive=recursive, maxdepth=maxdepth)
            return
        with self._lock:
            deletes: list[tuple[str, int]] = []  # committed sources: they go when every target draft commits
            in_drafts = []  # draft content is not committed: nothing to lose by removing it now
            for cp in self._targets(path1):
                if cp.level >= 4 and (cp.name, self._version_number(cp)) in self._drafts:
                    in_drafts.append(cp.path)
                elif cp.level >= 4:
                    deletes.append((cp.name, self._version_number(cp)))
                else:
                    deletes.extend((v.name, v.version) for v in self._versions_below(cp))
                    names = set(self._names_below(cp))
                    for key in [k for k in self._drafts if k[0] in names and k not in into]:
                        self._drop_draft(key)
            if in_drafts:
                self.rm(in_drafts, recursive=recursive, maxdepth=maxdepth)
            self._drafts.book.add_move(deletes, into)

    def _drafts_written(self, path2, before: set[tuple[str, int]]) -> set[tuple[str, int]]:
        """Keys of the drafts a copy to ``path2`` wrote into (new ones, or the one at ``path2``)."""
        written = set(self._drafts) - before
        cp = self._parse(path2)
        if cp.level >= 4 and isinstance(cp.spec, int) and (cp.name, cp.spec) in self._drafts:
            written.add((cp.name, cp.spec))
        return written

    def _versions_below(self, cp: CasPath) -> list[ArtifactVersion]:
        out = []
        for name in dict.fromkeys(self._names_below(cp)):
            try:
                out.extend(self.store.list_versions(name))
            except ArtifactNotFoundError:
                pass
        return out

    def _targets(self, path) -> list[CasPath]:
        paths = [path] if isinstance(path, (str, bytes, os.PathLike)) else list(path)
        out: list[str] = []
        for p in paths:
            p = self._strip_protocol(os.fsdecode(p) if isinstance(p, bytes) else p)
            if has_magic(p):
                found = self.glob(p)
                if not found:
                    raise PathNotFoundError(f"nothing matches cas://{p}", p)
                out.extend(found)
            else:
                out.append(p)
        return [self._parse(p) for p in dict.fromkeys(out)]

    def _check_removable(self, cp: CasPath, recursive: bool) -> dict[str, Any]:
        if cp.level == 0:
            raise ReadOnlyError("refusing to remove the whole store; remove pipelines or versions", "")
        info = self._info(cp)
        if cp.level >= 4:
            self._version_number(cp)  # aliases and latest are pointers, not things to delete
            if cp.inner and info.get("committed"):
                raise ReadOnlyError(
                    f"cas://{cp.path} is in committed {cp.name}@{cp.spec}, whose files never change;"
                    f" remove the whole version, cas://{cp.version_path}",
                    cp.path,
                )
        if info["type"] == "directory" and not recursive and (cp.level < 4 or self.ls(cp.path, detail=False)):
            raise PathIsDirectoryError(f"cas://{cp.path} is a directory: pass recursive=True", cp.path)
        return info

    def rm(self, path, recursive=False, maxdepth=None) -> None:
        cps = self._targets(path)
        if maxdepth is not None and recursive:
            # Only what lies within maxdepth: its files, and directories that end up empty.
            cps = [self._parse(p) for p in self.expand_path([c.path for c in cps], recursive=True, maxdepth=maxdepth)]
            recursive = False
        with self._lock:
            infos = {}
            for cp in cps:
                try:
                    infos[cp.path] = self._check_removable(cp, recursive)
                except PathIsDirectoryError:
                    if maxdepth is None:
                        raise
            for cp in sorted(cps, key=lambda c: c.path, reverse=True):  # children before parents
                if cp.path not in infos:
                    continue
                try:
                    if not recursive and infos[cp.path]["type"] == "directory" and self.ls(cp.path, detail=False):
                        continue  # maxdepth left content in it
                    self._rm_one(cp)
                except FileNotFoundError:
                    continue  # a directory that vanished with the files removed before it

    def _rm_one(self, cp: CasPath) -> None:
        """Remove one checked path (see _check_removable)."""
        if cp.level < 4:
            for av in self._versions_below(cp):
                self.store.delete_version(av.name, av.version)
            names = set(self._names_below(cp))
            for key in [k for k in self._drafts if k[0] in names]:
                self._drop_draft(key)
            return
        key = (cp.name, self._version_number(cp))
        draft = self._drafts.get(key)
        if draft is None:
            committed = self._version_of(cp)
            assert not isinstance(committed, Draft)
            self.store.delete_version(committed.name, committed.version)  # recorded; bytes go only through gc
        elif not cp.inner:
            self._drop_draft(key)
        elif draft.file(cp.inner) is not None:
            draft.remove_file(cp.inner)
        elif draft.is_dir(cp.inner):
            draft.remove_tree(cp.inner)
        else:
            raise PathNotFoundError(f"no such file or directory: cas://{cp.path}", cp.path)

    def rm_file(self, path) -> None:
        self.rm(path)

    def _rm(self, path) -> None:
        self.rm(path)

    def rmdir(self, path) -> None:
        cp = self._parse(path)
        if self._info(cp)["type"] != "directory":
            raise PathNotDirectoryError(f"cas://{cp.path} is not a directory", cp.path)
        self.rm(cp.path)  # refuses a directory that is not empty

"""Copy, move and remove in the ``cas://`` view: index entries and records only.

A whole committed version copied to a new version path is linked in one step
(``Store.link``); files copied into a draft point at the same blobs; ``mv``
is copy plus a recorded deletion, refused up front when the source cannot be
removed - and when the copy went into a draft, the deletion of committed
sources waits for that draft's commit (a discard keeps them); ``rm`` records
deletions and never removes bytes.  Glob patterns and copies of many files
go through the filesystem's own fsspec machinery (``glob``,
``expand_path``, ``copy``).
"""

from __future__ import annotations

import os
from glob import has_magic
from typing import TYPE_CHECKING, Any

from cas.core.digest import Digest
from cas.errors import PathIsDirectoryError, PathNotDirectoryError, PathNotFoundError, ReadOnlyError
from cas.fs.book import Key
from cas.fs.draft import Draft, Staged
from cas.fs.paths import CasPath
from cas.fs.view import View
from cas.fs.write import Writer
from cas.version import BLOB, TREE

if TYPE_CHECKING:
    from cas.fs.filesystem import CasFileSystem

__all__ = ["Copier"]


class Copier:
    """cp_file/copy/mv/rm/rmdir over drafts and committed versions."""

    def __init__(self, fs: CasFileSystem, view: View, writer: Writer) -> None:
        self.fs = fs
        self.view = view
        self.writer = writer
        self.drafts = writer.drafts
        self.store = view.store

    def cp_file(self, path1, path2, *, autocommit: bool) -> None:
        src, dst = self.view.parse(path1), self.view.parse(path2)
        info = self.view.info(src)
        if info["type"] == "directory":
            self.fs.makedirs(path2, exist_ok=True)
            return
        with self.writer.lock:
            self.writer.check_writable(dst)
            self.writer.stage(dst, Digest.parse(info["digest"]).hex, info["size"], autocommit=autocommit)

    def copy_version(self, path1, path2, recursive: bool, maxdepth, *, autocommit: bool) -> bool:
        """A whole committed version to a new version path: one metadata-only link.
        False: not such a copy, left to fsspec's file-by-file ``copy``."""
        if not isinstance(path1, str) or not isinstance(path2, str) or maxdepth is not None or has_magic(path1):
            return False
        if path1.endswith("/"):
            return False
        src = self.view.parse(path1)
        if src.level != 4 or src.inner:
            return False
        try:
            v = self.view.version_of(src)
        except FileNotFoundError:
            return False
        if isinstance(v, Draft) or (v.kind == TREE and not recursive):
            return False
        target = self.view.strip(path2)
        if path2.endswith("/") or self._isdir(target):
            target = f"{target}/{src.segments[3]}" if target else src.segments[3]
        dst = self.view.parse(target)
        if dst.level != 4 or dst.inner or not isinstance(dst.spec, int) or (dst.name, dst.spec) in self.drafts:
            return False
        with self.writer.lock:
            self.writer.check_new_version(dst)
            if autocommit:
                self.store.link(dst.name, v.digest.hex, v.kind, version=dst.spec)
                return True
            draft = self.drafts.create(dst.name, dst.spec)
            if v.kind == BLOB:
                draft.blob = Staged(v.digest.hex, v.size)
            else:
                for path, digest, size in self.store.index.tree_entries(v.digest.hex):
                    draft.put(path, Staged(digest, size))
        return True

    def _isdir(self, path: str) -> bool:
        try:
            return self.view.info(self.view.parse(path))["type"] == "directory"
        except FileNotFoundError:
            return False

    def _names(self, cp: CasPath) -> list[str]:
        return sorted(e["name"] for e in self.view.ls(cp))

    def mv(self, path1, path2, recursive: bool, maxdepth) -> None:
        if path1 == path2:
            return
        # Refuse before copying anything: a committed version's files cannot be removed.
        for cp in self._targets(path1):
            self._check_removable(cp, recursive or maxdepth is not None)
        drafts_before = set(self.drafts)
        self.fs.copy(path1, path2, recursive=recursive, maxdepth=maxdepth, on_error="raise")
        into = self._drafts_written(path2, drafts_before)
        if not into:  # the copy is committed: the source can go now
            self.rm(path1, recursive=recursive, maxdepth=maxdepth)
            return
        with self.writer.lock:
            deletes: list[Key] = []  # committed sources: they go when every target draft commits
            in_drafts = []  # draft content is not committed: nothing to lose by removing it now
            for cp in self._targets(path1):
                if cp.level >= 4 and (cp.name, self.writer.version_number(cp)) in self.drafts:
                    in_drafts.append(cp.path)
                elif cp.level >= 4:
                    deletes.append((cp.name, self.writer.version_number(cp)))
                else:
                    deletes.extend((v.name, v.version) for v in self.view.versions_below(cp))
                    names = set(self.view.names_below(cp))
                    for key in [k for k in self.drafts if k[0] in names and k not in into]:
                        self.writer.drop(key)
            if in_drafts:
                self.rm(in_drafts, recursive=recursive, maxdepth=maxdepth)
            self.drafts.add_move(deletes, into)

    def _drafts_written(self, path2, before: set[Key]) -> set[Key]:
        """Keys of the drafts a copy to ``path2`` wrote into (new ones, or the one at ``path2``)."""
        written = set(self.drafts) - before
        cp = self.view.parse(path2)
        if cp.level >= 4 and isinstance(cp.spec, int) and (cp.name, cp.spec) in self.drafts:
            written.add((cp.name, cp.spec))
        return written

    def _targets(self, path) -> list[CasPath]:
        paths = [path] if isinstance(path, (str, bytes, os.PathLike)) else list(path)
        out: list[str] = []
        for p in paths:
            p = self.view.strip(os.fsdecode(p) if isinstance(p, bytes) else p)
            if has_magic(p):
                found = self.fs.glob(p)
                if not found:
                    raise PathNotFoundError(f"nothing matches cas://{p}", p)
                out.extend(found)
            else:
                out.append(p)
        return [self.view.parse(p) for p in dict.fromkeys(out)]

    def _check_removable(self, cp: CasPath, recursive: bool) -> dict[str, Any]:
        if cp.level == 0:
            raise ReadOnlyError("refusing to remove the whole store; remove pipelines or versions", "")
        info = self.view.info(cp)
        if cp.level >= 4:
            self.writer.version_number(cp)  # aliases and latest are pointers, not things to delete
            if cp.inner and info.get("committed"):
                raise ReadOnlyError(
                    f"cas://{cp.path} is in committed {cp.name}@{cp.spec}, whose files never change;"
                    f" remove the whole version, cas://{cp.version_path}",
                    cp.path,
                )
        if info["type"] == "directory" and not recursive and (cp.level < 4 or self._names(cp)):
            raise PathIsDirectoryError(f"cas://{cp.path} is a directory: pass recursive=True", cp.path)
        return info

    def rm(self, path, recursive: bool = False, maxdepth=None) -> None:
        cps = self._targets(path)
        if maxdepth is not None and recursive:
            # Only what lies within maxdepth: its files, and directories that end up empty.
            expanded = self.fs.expand_path([c.path for c in cps], recursive=True, maxdepth=maxdepth)
            cps = [self.view.parse(p) for p in expanded]
            recursive = False
        with self.writer.lock:
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
                    if not recursive and infos[cp.path]["type"] == "directory" and self._names(cp):
                        continue  # maxdepth left content in it
                    self._rm_one(cp)
                except FileNotFoundError:
                    continue  # a directory that vanished with the files removed before it

    def _rm_one(self, cp: CasPath) -> None:
        """Remove one checked path (see _check_removable)."""
        if cp.level < 4:
            for av in self.view.versions_below(cp):
                self.store.delete_version(av.name, av.version)
            names = set(self.view.names_below(cp))
            for key in [k for k in self.drafts if k[0] in names]:
                self.writer.drop(key)
            return
        key = (cp.name, self.writer.version_number(cp))
        draft = self.drafts.get(key)
        if draft is None:
            committed = self.view.version_of(cp)
            assert not isinstance(committed, Draft)
            self.store.delete_version(committed.name, committed.version)  # recorded; bytes go only through gc
        elif not cp.inner:
            self.writer.drop(key)
        elif draft.file(cp.inner) is not None:
            draft.remove_file(cp.inner)
        elif draft.is_dir(cp.inner):
            draft.remove_tree(cp.inner)
        else:
            raise PathNotFoundError(f"no such file or directory: cas://{cp.path}", cp.path)

    def rmdir(self, path) -> None:
        cp = self.view.parse(path)
        if self.view.info(cp)["type"] != "directory":
            raise PathNotDirectoryError(f"cas://{cp.path} is not a directory", cp.path)
        self.rm(cp.path)  # refuses a directory that is not empty

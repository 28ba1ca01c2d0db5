"""Reading the ``cas://`` namespace: a path resolved to its draft or committed version.

:class:`View` answers ``info``, listings and ``find`` from the index and the
draft book, never from blob bytes.  The root lists pipelines, a pipeline its
steps, a step its artifacts, an artifact its live version numbers (and open
drafts); a blob version is a file, a tree version a directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from cas.errors import ArtifactNotFoundError, PathNotFoundError
from cas.fs.draft import Draft, Staged
from cas.fs.drafts import DraftMap
from cas.fs.paths import CasPath, parse_path
from cas.store.facade import Store
from cas.version import BLOB, TREE, ArtifactVersion

__all__ = ["View", "dir_info", "file_info"]


def file_info(name: str, digest: str, size: int, mtime: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "size": size,
        "type": "file",
        "created": mtime,
        "mtime": mtime,
        "digest": f"blake3:{digest}",
        **extra,
    }


def dir_info(name: str, mtime: float | None = None, **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"name": name, "size": 0, "type": "directory", **extra}
    if mtime is not None:
        info["created"] = info["mtime"] = mtime
    return info


class View:
    """Path parsing and lookups over ``store`` and its ``drafts``.

    ``strip`` removes the protocol from a path (the filesystem's own
    ``_strip_protocol``, so the view parses exactly what fsspec hands over).
    """

    def __init__(self, store: Store, drafts: DraftMap, strip: Callable[[str], str]) -> None:
        self.store = store
        self.drafts = drafts
        self.strip = strip

    def parse(self, path: Any) -> CasPath:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return parse_path(self.strip(path))

    def version_of(self, cp: CasPath) -> Draft | ArtifactVersion:
        """The draft or committed version a level-4+ path is in; PathNotFoundError if none."""
        if isinstance(cp.spec, int):
            draft = self.drafts.get((cp.name, cp.spec))
            if draft is not None:
                return draft
        try:
            return self.store.get_artifact_version(cp.name, cp.spec)
        except ArtifactNotFoundError as e:
            raise PathNotFoundError(f"no such path cas://{cp.path}: {e}", cp.path) from None

    def names_below(self, cp: CasPath) -> list[str]:
        """Artifact names (live, or with a draft here) at or below a level 1-3 path."""
        if cp.level == 3:
            names = [n for n in self.store.list_artifacts(cp.path) if n == cp.path]
            names += [n for n, _ in self.drafts if n == cp.path]
        else:
            prefix = f"{cp.path}/" if cp.path else ""
            names = self.store.list_artifacts(prefix)
            names += [n for n, _ in self.drafts if n.startswith(prefix)]
        return names

    def versions_below(self, cp: CasPath) -> list[ArtifactVersion]:
        """Every live version of the artifacts at or below a level 1-3 path."""
        out = []
        for name in dict.fromkeys(self.names_below(cp)):
            try:
                out.extend(self.store.list_versions(name))
            except ArtifactNotFoundError:
                pass
        return out

    def info(self, cp: CasPath) -> dict[str, Any]:
        if cp.level == 0:
            return dir_info("")
        if cp.level < 4:
            if self.names_below(cp) or (self.store.refresh() and self.names_below(cp)):
                return dir_info(cp.path)
            raise PathNotFoundError(f"no such {cp.what}: cas://{cp.path}", cp.path)
        return self.node_info(cp, self.version_of(cp))

    def node_info(self, cp: CasPath, v: Draft | ArtifactVersion) -> dict[str, Any]:
        if isinstance(v, Draft):
            extra = {"version": v.version, "committed": False}
            staged = v.blob if not cp.inner else v.file(cp.inner)
            if staged is not None:
                return file_info(cp.path, staged.digest, staged.size, staged.mtime, **extra)
            if v.is_dir(cp.inner):
                return dir_info(cp.path, v.created, **extra)
        else:
            ts = v.created_at.timestamp()
            extra = {"version": v.version, "committed": True}
            if not cp.inner:
                if v.kind == BLOB:
                    return file_info(cp.path, v.digest.hex, v.size, ts, **extra)
                return dir_info(cp.path, ts, digest=str(v.digest), **extra)
            if v.kind == TREE:
                entry = self.store.index.tree_entry(v.digest.hex, cp.inner)
                if entry is not None:
                    return file_info(cp.path, entry[0], entry[1], ts, **extra)
                if self.store.index.tree_has_dir(v.digest.hex, cp.inner):
                    return dir_info(cp.path, ts, **extra)
        raise PathNotFoundError(f"no such file or directory: cas://{cp.path}", cp.path)

    # -- listings ------------------------------------------------------------------

    def ls(self, cp: CasPath) -> list[dict[str, Any]]:
        if cp.level < 4:
            return self._ls_namespace(cp)
        v = self.version_of(cp)
        info = self.node_info(cp, v)
        return [info] if info["type"] == "file" else self._ls_version(cp, v)

    def _ls_namespace(self, cp: CasPath) -> list[dict[str, Any]]:
        self.store.refresh()  # the index may be behind the backend (another machine wrote)
        if cp.level < 3:
            prefix = f"{cp.path}/" if cp.path else ""
            kids = sorted({n[len(prefix) :].split("/", 1)[0] for n in self.names_below(cp)})
            if not kids and cp.level > 0:
                raise PathNotFoundError(f"no such {cp.what}: cas://{cp.path}", cp.path)
            return [dir_info(cp.join(k)) for k in kids]
        out: dict[int, dict[str, Any]] = {}
        try:
            versions = self.store.list_versions(cp.path)
        except ArtifactNotFoundError:
            versions = []
        for av in versions:
            child = CasPath(cp.join(str(av.version)), (*cp.segments, str(av.version)), "", av.version)
            out[av.version] = self.node_info(child, av)
        for (name, number), draft in self.drafts.items():
            if name == cp.path:
                child = CasPath(cp.join(str(number)), (*cp.segments, str(number)), "", number)
                out[number] = self.node_info(child, draft)
        if not out:
            raise PathNotFoundError(f"no such artifact: cas://{cp.path}", cp.path)
        return [out[k] for k in sorted(out)]

    def _ls_version(self, cp: CasPath, v: Draft | ArtifactVersion) -> list[dict[str, Any]]:
        if isinstance(v, Draft):
            extra = {"version": v.version, "committed": False}
            return [
                file_info(cp.join(name), s.digest, s.size, s.mtime, **extra)
                if s is not None
                else dir_info(cp.join(name), v.created, **extra)
                for name, s in v.children(cp.inner)
            ]
        ts = v.created_at.timestamp()
        extra = {"version": v.version, "committed": True}
        prefix = f"{cp.inner}/" if cp.inner else ""
        kids: dict[str, tuple[str, int] | None] = {}
        for path, digest, size in self.store.index.tree_entries(v.digest.hex, prefix):
            head, sep, _ = path[len(prefix) :].partition("/")
            if sep:
                kids.setdefault(head, None)
            else:
                kids[head] = (digest, size)
        return [
            file_info(cp.join(name), kid[0], kid[1], ts, **extra) if kid else dir_info(cp.join(name), ts, **extra)
            for name, kid in sorted(kids.items())
        ]

    def find(self, cp: CasPath, maxdepth: int | None, withdirs: bool) -> dict[str, dict[str, Any]]:
        """What fsspec's ``find`` returns, by name (unsorted); {} if ``cp`` does not exist."""
        try:
            top = self.info(cp)
        except FileNotFoundError:
            return {}
        out: dict[str, dict[str, Any]] = {}
        if top["type"] == "file":
            out[cp.path] = top
        else:
            if withdirs and cp.path:
                out[cp.path] = top  # as fsspec's find does, for posix glob semantics
            for info in self._below(cp, maxdepth):
                if withdirs or info["type"] == "file":
                    out[info["name"]] = info
        return out

    def _below(self, cp: CasPath, maxdepth: int | None) -> Iterator[dict[str, Any]]:
        """Every file and directory below a directory, at most ``maxdepth`` levels down."""
        if cp.level < 4:
            if maxdepth is not None and maxdepth < 1:
                return
            for info in self._ls_namespace(cp):
                yield info
                if info["type"] == "directory":
                    yield from self._below(self.parse(info["name"]), None if maxdepth is None else maxdepth - 1)
            return
        # Inside a version: one pass over its entries (one index query for a tree).
        v = self.version_of(cp)
        if isinstance(v, Draft):
            extra = {"version": v.version, "committed": False}
            rows: Iterator[tuple[str, Staged | None]] = v.below(cp.inner)
            for rel, s in rows:
                if maxdepth is not None and rel.count("/") + 1 > maxdepth:
                    continue
                name = cp.join(rel)
                yield file_info(name, s.digest, s.size, s.mtime, **extra) if s else dir_info(name, v.created, **extra)
            return
        if v.kind != TREE:
            return
        ts = v.created_at.timestamp()
        extra = {"version": v.version, "committed": True}
        prefix = f"{cp.inner}/" if cp.inner else ""
        seen: set[str] = set()
        for path, digest, size in self.store.index.tree_entries(v.digest.hex, prefix):
            rel = path[len(prefix) :]
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                d = "/".join(parts[:depth])
                if d not in seen and (maxdepth is None or depth <= maxdepth):
                    seen.add(d)
                    yield dir_info(cp.join(d), ts, **extra)
            if maxdepth is None or len(parts) <= maxdepth:
                yield file_info(cp.join(rel), digest, size, ts, **extra)

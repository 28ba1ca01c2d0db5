"""What every part of the ``cas://`` view shares: parsing paths and looking them up.

``CasFileSystemBase`` resolves a path to its draft or committed version and
builds fsspec info dicts from the index (never from blob bytes).  The write
(``fs_write``) and copy/remove (``fs_copy``) layers and the filesystem itself
(``fs``) build on it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from fsspec.spec import AbstractFileSystem

from cas.errors import ArtifactNotFoundError, PathNotFoundError
from cas.fs.drafts import Draft, DraftMap
from cas.fs.paths import CasPath, parse_path
from cas.store.facade import Store
from cas.version import BLOB, TREE, ArtifactVersion

__all__ = ["CasFileSystemBase", "file_info", "dir_info"]


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


class CasFileSystemBase(AbstractFileSystem):
    """Path parsing and index lookups; state is set up by ``CasFileSystem.__init__``."""

    protocol = "cas"
    root_marker = ""
    store: Store
    _drafts: DraftMap
    _lock: threading.RLock

    def _parse(self, path: Any) -> CasPath:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return parse_path(self._strip_protocol(path))

    def _version_of(self, cp: CasPath) -> Draft | ArtifactVersion:
        """The draft or committed version a level-4+ path is in; PathNotFoundError if none."""
        if isinstance(cp.spec, int):
            draft = self._drafts.get((cp.name, cp.spec))
            if draft is not None:
                return draft
        try:
            return self.store.get_artifact_version(cp.name, cp.spec)
        except ArtifactNotFoundError as e:
            raise PathNotFoundError(f"no such path cas://{cp.path}: {e}", cp.path) from None

    def _names_below(self, cp: CasPath) -> list[str]:
        """Artifact names (live, or with a draft here) at or below a level 1-3 path."""
        if cp.level == 3:
            names = [n for n in self.store.list_artifacts(cp.path) if n == cp.path]
            names += [n for n, _ in self._drafts if n == cp.path]
        else:
            prefix = f"{cp.path}/" if cp.path else ""
            names = self.store.list_artifacts(prefix)
            names += [n for n, _ in self._drafts if n.startswith(prefix)]
        return names

    def _info(self, cp: CasPath) -> dict[str, Any]:
        if cp.level == 0:
            return dir_info("")
        if cp.level < 4:
            if self._names_below(cp) or (self.store.refresh() and self._names_below(cp)):
                return dir_info(cp.path)
            raise PathNotFoundError(f"no such {cp.what}: cas://{cp.path}", cp.path)
        return self._node_info(cp, self._version_of(cp))

    def _node_info(self, cp: CasPath, v: Draft | ArtifactVersion) -> dict[str, Any]:
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

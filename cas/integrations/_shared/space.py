"""A framework's directory tree, laid over cas folders.

A framework writes ``cas://a/b/c/...`` paths as if the store were a plain
filesystem.  A :class:`Layout` (one per framework) decides, from the path
alone, which folder (cas name + alias) holds a path and where inside it;
:class:`PathSpace` then answers the filesystem questions - exists, isdir,
listdir, walk, glob, open, remove, copy - from the folders' versions in the
index, never from blob bytes.

Directories above folders are virtual: they exist while a live folder is
below them (as on object stores, ``makedirs`` creates nothing).
"""

from __future__ import annotations

import io
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from fsspec.utils import glob_translate

from cas.errors import (
    InvalidNameError,
    PathExistsError,
    PathIsDirectoryError,
    PathNotDirectoryError,
    PathNotFoundError,
    ReadOnlyError,
)
from cas.fs.files import SpoolFile, buffered
from cas.integrations._shared.folders import Entry, FolderKey, Folders
from cas.storage.download import Download
from cas.version import BLOB

__all__ = ["Layout", "PathSpace", "Info", "SCHEME"]

SCHEME = "cas://"
Parts = tuple[str, ...]


class Layout(Protocol):
    """How one framework's paths map onto folders.  Must be a bijection:
    ``locate(root_of(key) + inner) == (key, inner)`` for every folder it creates."""

    alias_prefix: str  # every alias this layout makes starts with it
    root: Parts  # the top of the layout, a directory even while empty

    def locate(self, parts: Parts) -> tuple[FolderKey, str] | None:
        """The folder holding ``parts`` and the path inside it ("" = its root);
        None if ``parts`` lies above every folder.  InvalidNameError if it cannot be mapped."""

    def root_of(self, key: FolderKey) -> Parts | None:
        """Where a folder sits; None for a folder this layout did not make."""

    def name_prefix(self, parts: Parts) -> str:
        """A name prefix covering every folder that can sit at or below ``parts``."""


@dataclass(frozen=True)
class Info:
    path: str  # full cas:// URL
    type: str  # "file" or "directory"
    size: int = 0
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.path, "type": self.type, "size": self.size, "digest": self.digest}


#: (folder, path inside it) -> (metadata, lineage) for a version about to be written
Context = Callable[[FolderKey, str], tuple[dict[str, Any], "dict[str, str] | None"]]


def _no_context(key: FolderKey, inner: str) -> tuple[dict[str, Any], None]:
    return {}, None


class PathSpace:
    def __init__(self, folders: Folders, layout: Layout, context: Context = _no_context) -> None:
        self.folders = folders
        self.layout = layout
        self.context = context

    # -- paths -----------------------------------------------------------------

    @staticmethod
    def split(path: str | bytes) -> Parts:
        if isinstance(path, bytes):
            path = path.decode("utf-8")
        if not isinstance(path, str):
            raise InvalidNameError(f"a cas path must be a string, got {type(path).__name__}")
        rest = path[len(SCHEME) :] if path.startswith(SCHEME) else path
        parts = tuple(p for p in rest.split("/") if p)
        for p in parts:
            if p in (".", "..") or "\\" in p or any(ord(ch) < 32 for ch in p):
                raise InvalidNameError(f"invalid cas path {path!r}")
        return parts

    @staticmethod
    def join(parts: Parts) -> str:
        return SCHEME + "/".join(parts)

    def _roots_below(self, parts: Parts) -> Iterator[tuple[Parts, FolderKey, Any]]:
        """(root, key, version) of every live folder strictly below ``parts``."""
        for key, version in self.folders.live(self.layout.name_prefix(parts), self.layout.alias_prefix):
            root = self.layout.root_of(key)
            if root is not None and len(root) > len(parts) and root[: len(parts)] == parts:
                yield root, key, version

    # -- questions -------------------------------------------------------------

    def info(self, path: str | bytes) -> Info:
        parts = self.split(path)
        url = self.join(parts)
        loc = self.layout.locate(parts)
        if loc is not None:
            key, inner = loc
            entries = self.folders.entries(key)
            if entries:
                if inner in entries:
                    e = entries[inner]
                    return Info(url, "file", e.size, e.digest)
                if any(p.startswith(inner + "/") or (not inner and p) for p in entries):
                    size = sum(e.size for p, e in entries.items() if not inner or p.startswith(inner + "/"))
                    return Info(url, "directory", size)
                if "" in entries:
                    raise PathNotDirectoryError(f"not a directory: {url}", url)
        for _ in self._roots_below(parts):
            return Info(url, "directory")
        root = getattr(self.layout, "root", ())
        if parts == tuple(root)[: len(parts)]:
            return Info(url, "directory")  # the layout's root (and what is above it) always exists
        raise PathNotFoundError(f"no such file or directory: {url}", url)

    def exists(self, path: str | bytes) -> bool:
        try:
            self.info(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def isdir(self, path: str | bytes) -> bool:
        try:
            return self.info(path).type == "directory"
        except (FileNotFoundError, NotADirectoryError):
            return False

    def ls(self, path: str | bytes) -> list[Info]:
        """Direct children, sorted by name."""
        parts = self.split(path)
        url = self.join(parts)
        children: dict[str, Info] = {}
        loc = self.layout.locate(parts)
        found = False
        if loc is not None:
            key, inner = loc
            entries = self.folders.entries(key) or {}
            if inner in entries:
                raise PathNotDirectoryError(f"not a directory: {url}", url)
            prefix = inner + "/" if inner else ""
            for p, e in entries.items():
                if not p.startswith(prefix):
                    continue
                found = True
                head, sep, _ = p[len(prefix) :].partition("/")
                child = parts + (head,)
                if sep:
                    old = children.get(head)
                    children[head] = Info(self.join(child), "directory", (old.size if old else 0) + e.size)
                else:
                    children[head] = Info(self.join(child), "file", e.size, e.digest)
        for root, _key, version in self._roots_below(parts):
            found = True
            head = root[len(parts)]
            if len(root) == len(parts) + 1 and version.kind == BLOB:
                children[head] = Info(self.join(root), "file", version.size, version.digest.hex)
            elif head not in children or children[head].type != "file":
                children.setdefault(head, Info(self.join(parts + (head,)), "directory"))
        if not found and parts:
            self.info(path)  # raises the right error for a missing path or a file
        return [children[k] for k in sorted(children)]

    def listdir(self, path: str | bytes) -> list[str]:
        return [posixpath.basename(i.path) for i in self.ls(path)]

    def walk(self, top: str | bytes, topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
        url = self.join(self.split(top))
        infos = self.ls(url)
        dirs = [posixpath.basename(i.path) for i in infos if i.type == "directory"]
        files = [posixpath.basename(i.path) for i in infos if i.type == "file"]
        if topdown:
            yield url, dirs, files
        for d in list(dirs):
            yield from self.walk(f"{url}/{d}" if not url.endswith("/") else url + d, topdown)
        if not topdown:
            yield url, dirs, files

    def find(self, top: str | bytes) -> list[Info]:
        """Every file below ``top`` (``top`` itself if it is a file)."""
        info = self.info(top)
        if info.type == "file":
            return [info]
        out: list[Info] = []
        for child in self.ls(top):
            out.extend(self.find(child.path) if child.type == "directory" else [child])
        return out

    def glob(self, pattern: str | bytes) -> list[str]:
        """Paths matching a glob pattern, as fsspec matches them (``fsspec.utils.glob_translate``:
        ``*``, ``?`` and ``[...]`` within a segment, ``**`` across)."""
        parts = self.split(pattern)
        fixed: list[str] = []
        for p in parts:
            if any(ch in p for ch in "*?["):
                break
            fixed.append(p)
        base = tuple(fixed)
        if len(base) == len(parts):
            return [self.join(parts)] if self.exists(self.join(parts)) else []
        matcher = re.compile(glob_translate("/".join(parts)))
        out = []
        if not self.isdir(self.join(base)):
            return []
        for dirpath, dirs, files in self.walk(self.join(base)):
            rel = dirpath[len(SCHEME) :]
            for name in dirs + files:
                full = f"{rel}/{name}" if rel else name
                if matcher.fullmatch(full):
                    out.append(SCHEME + full)
        return sorted(out)

    # -- bytes -----------------------------------------------------------------

    def _locate(self, path: str | bytes) -> tuple[Parts, FolderKey, str]:
        parts = self.split(path)
        loc = self.layout.locate(parts)
        if loc is None:
            url = self.join(parts)
            raise PathIsDirectoryError(f"{url} is a directory above the stored artifacts", url)
        return parts, loc[0], loc[1]

    def open(self, path: str | bytes, mode: str = "rb") -> Any:
        """Read a file, or write one (published as a new folder version on close).

        Committed files never change in place: ``a``, ``+`` and ``x`` on an
        existing file are refused (ReadOnlyError / PathExistsError).
        """
        parts, key, inner = self._locate(path)
        text = "b" not in mode
        if mode.replace("b", "").replace("t", "") == "r":
            raw = self.folders.open(key, inner)
            return io.TextIOWrapper(raw, encoding="utf-8") if text else raw
        base = mode.replace("b", "").replace("t", "")
        if base not in ("w", "x"):
            raise ReadOnlyError(
                f"cas files are immutable: mode {mode!r} is not supported (write a new file)", self.join(parts)
            )
        if base == "x" and self.exists(path):
            raise PathExistsError(f"file exists: {self.join(parts)}", self.join(parts))
        if not inner and (self.folders.entries(key) or {}).keys() - {""}:
            raise PathIsDirectoryError(f"is a directory: {self.join(parts)}", self.join(parts))

        def commit(digest: str, size: int) -> None:
            metadata, lineage = self.context(key, inner)
            self.folders.put(key, {inner: Entry(inner, digest, size)}, metadata=metadata, lineage=lineage)

        store = self.folders.store
        spool = SpoolFile(store.blobs, commit, name="/".join(parts), batch=store.backend.batch)
        return buffered(spool, text=text)

    def download(self, path: str | bytes, local: str) -> None:
        """Write a file, or everything below a directory, to ``local``: whole and
        verified, or nothing changes there (see :mod:`cas.storage.download`)."""
        info = self.info(path)
        with Download(self.folders.store.contents) as download:
            if info.type == "file":
                download.file(str(info.digest), local)
                return
            base = info.path if info.path.endswith("/") else info.path + "/"
            download.tree([(f.path[len(base) :], str(f.digest)) for f in self.find(path)], local)

    def put_file(self, local: str, path: str | bytes) -> None:
        """Store a local file at ``path`` (hashed first: content already stored writes no blob)."""
        self.put_files({path: local})

    def put_files(self, files: dict[str | bytes, str]) -> None:
        """Store several local files; one new version per folder touched."""
        by_folder: dict[FolderKey, dict[str, Entry]] = {}
        for path, local in files.items():
            _, key, inner = self._locate(path)
            digest, size = self.folders.store_bytes(local)
            by_folder.setdefault(key, {})[inner] = Entry(inner, digest, size)
        for key, entries in sorted(by_folder.items()):
            metadata, lineage = self.context(key, next(iter(entries)))
            self.folders.put(key, entries, metadata=metadata, lineage=lineage)

    def copy(self, src: str | bytes, dst: str | bytes, overwrite: bool = False) -> None:
        """Copy a file: metadata only, no byte moves."""
        _, skey, sinner = self._locate(src)
        dparts, dkey, dinner = self._locate(dst)
        entry = self.folders.file(skey, sinner)
        if not overwrite and self.exists(dst):
            raise PathExistsError(f"file exists: {self.join(dparts)}", self.join(dparts))
        metadata, lineage = self.context(dkey, dinner)
        self.folders.put(dkey, {dinner: Entry(dinner, entry.digest, entry.size)}, metadata=metadata, lineage=lineage)

    def rename(self, src: str | bytes, dst: str | bytes, overwrite: bool = False) -> None:
        self.copy(src, dst, overwrite)
        self.remove(src)

    def remove(self, path: str | bytes) -> None:
        """Remove one file (the folder gets a new version without it)."""
        parts, key, inner = self._locate(path)
        if self.info(path).type != "file":
            raise PathIsDirectoryError(f"is a directory: {self.join(parts)}", self.join(parts))
        metadata, lineage = self.context(key, inner)
        self.folders.remove(key, inner, metadata=metadata)

    def rmtree(self, path: str | bytes) -> None:
        """Remove a directory and everything below it (recorded deletions; bytes go with gc)."""
        parts = self.split(path)
        info = self.info(path)
        if info.type != "directory":
            raise PathNotDirectoryError(f"not a directory: {self.join(parts)}", self.join(parts))
        loc = self.layout.locate(parts)
        if loc is not None:
            key, inner = loc
            if self.folders.entries(key):
                metadata, _ = self.context(key, inner)
                self.folders.remove(key, inner, metadata=metadata)
        for _, key, _ in list(self._roots_below(parts)):
            self.folders.remove(key, "", metadata={})

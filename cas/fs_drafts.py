"""Drafts: versions being written through the ``cas://`` view, not yet committed.

A draft belongs to one filesystem instance and lives in memory: it maps
paths to blobs that are already durable in the backend (content-addressed,
so staging them early is safe; until a version points at them they are
unreferenced and ``gc`` collects them after its grace period).  Until commit
a draft behaves like an ordinary mutable directory — files can be
overwritten and removed, empty directories exist — because nothing in it is
a version yet.  Committing turns it into one immutable version.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Draft", "PendingMove", "Staged"]


@dataclass(frozen=True)
class Staged:
    """One staged file: its blob, size, and when it was staged."""

    digest: str
    size: int
    mtime: float = field(default_factory=time.time)


@dataclass
class PendingMove:
    """The source half of a ``mv`` into drafts: committed versions to delete once
    every draft the move wrote into has committed (a discard cancels it)."""

    deletes: list[tuple[str, int]]  # (name, version)
    waiting: set[tuple[str, int]]  # draft keys not committed yet


def _ancestors(path: str) -> Iterator[str]:
    """``a/b/c`` -> ``a/b``, ``a``."""
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        yield path


class Draft:
    """Version ``version`` of ``name`` being written: a file, or a tree of files."""

    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version = version
        self.created = time.time()
        self.blob: Staged | None = None  # set when the version itself is written as a file
        self.files: dict[str, Staged] = {}
        self.dirs: set[str] = set()  # explicitly made directories (may be empty)
        # directory -> how many files and explicit dirs sit below it; keeps
        # "is this a directory?" O(1) however large the draft grows
        self._below: Counter[str] = Counter()
        self.moves: list[PendingMove] = []  # moves whose sources go when this draft commits

    def __repr__(self) -> str:
        return f"Draft({self.name}@{self.version}, {len(self.files)} files)"

    @property
    def is_file(self) -> bool:
        return self.blob is not None

    def is_empty(self) -> bool:
        return self.blob is None and not self.files and not self.dirs

    # -- questions ---------------------------------------------------------------

    def file(self, inner: str) -> Staged | None:
        return self.files.get(inner)

    def is_dir(self, inner: str) -> bool:
        if inner == "":
            return self.blob is None
        return inner in self.dirs or self._below[inner] > 0

    def has_children(self, inner: str) -> bool:
        if inner == "":
            return bool(self.files or self.dirs)
        return self._below[inner] > 0

    def file_parent(self, inner: str) -> str | None:
        """The first ancestor of ``inner`` that is a file, if any."""
        for parent in _ancestors(inner):
            if parent in self.files:
                return parent
        return None

    def children(self, inner: str) -> list[tuple[str, Staged | None]]:
        """Immediate children of a directory: (name, staged file or None for a directory)."""
        prefix = f"{inner}/" if inner else ""
        out: dict[str, Staged | None] = {}
        for path, staged in self.files.items():
            if path.startswith(prefix):
                head, sep, _ = path[len(prefix) :].partition("/")
                if sep:
                    out.setdefault(head, None)
                else:
                    out[head] = staged
        for path in self.dirs:
            if path.startswith(prefix):
                out.setdefault(path[len(prefix) :].split("/", 1)[0], None)
        return sorted(out.items())

    def below(self, inner: str) -> Iterator[tuple[str, Staged | None]]:
        """Every file and directory below ``inner``: (path relative to it, staged or None)."""
        prefix = f"{inner}/" if inner else ""
        seen: set[str] = set()
        for path, staged in self.files.items():
            if path.startswith(prefix):
                rel = path[len(prefix) :]
                yield rel, staged
                for d in _ancestors(rel):
                    if d not in seen:
                        seen.add(d)
                        yield d, None
        for path in self.dirs:
            if path.startswith(prefix):
                rel = path[len(prefix) :]
                for d in (rel, *_ancestors(rel)):
                    if d not in seen:
                        seen.add(d)
                        yield d, None

    def entries(self) -> list[tuple[str, str, int]]:
        """(path, digest, size) of every file, as a tree manifest lists them."""
        return sorted((p, s.digest, s.size) for p, s in self.files.items())

    # -- changes (the caller has checked the path is writable) ------------------

    def put(self, inner: str, staged: Staged) -> None:
        if inner not in self.files:
            for parent in _ancestors(inner):
                self._below[parent] += 1
        self.files[inner] = staged

    def mkdir(self, inner: str) -> None:
        if inner and inner not in self.dirs:
            self.dirs.add(inner)
            for parent in _ancestors(inner):
                self._below[parent] += 1

    def remove_file(self, inner: str) -> None:
        del self.files[inner]
        self._forget(inner)

    def rmdir(self, inner: str) -> None:
        self.dirs.discard(inner)
        self._forget(inner)

    def remove_tree(self, inner: str) -> None:
        """Remove a directory and everything below it."""
        prefix = f"{inner}/"
        for path in [p for p in self.files if p.startswith(prefix)]:
            self.remove_file(path)
        for path in [d for d in self.dirs if d.startswith(prefix)]:
            self.rmdir(path)
        if inner in self.dirs:
            self.rmdir(inner)

    def _forget(self, inner: str) -> None:
        for parent in _ancestors(inner):
            self._below[parent] -= 1
            if self._below[parent] <= 0:
                del self._below[parent]

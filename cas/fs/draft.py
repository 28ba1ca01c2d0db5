"""A draft: a version being written through the ``cas://`` view, not yet committed.

A draft maps paths to blobs that are already durable in the backend
(content-addressed, so staging them early is safe; until a version points at
them they are unreferenced and ``gc`` collects them after its grace period).
Until commit a draft behaves like an ordinary mutable directory - files can
be overwritten and removed, empty directories exist - because nothing in it
is a version yet.  Committing (:func:`cas.fs.finish.commit_draft`) turns it
into one immutable version.  Its state is rows of its :class:`DraftBook`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from cas.fs.book import DraftBook, Key

__all__ = ["Draft", "Staged"]


@dataclass(frozen=True)
class Staged:
    """One staged file: its blob, size, and when it was staged."""

    digest: str
    size: int
    mtime: float = field(default_factory=time.time)


def _subtree(inner: str) -> tuple[str, str]:
    """Bounds of every path strictly below ``inner`` ('/' sorts just before '0')."""
    return (f"{inner}/", f"{inner}0") if inner else ("", "\U0010ffff")


def _ancestors(path: str) -> Iterator[str]:
    """``a/b/c`` -> ``a/b``, ``a``."""
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        yield path


class Draft:
    """Version ``version`` of ``name`` being written: a file, or a tree of files (rows of its book)."""

    def __init__(self, book: DraftBook, name: str, version: int) -> None:
        self.book = book
        self.name = name
        self.version = version

    def __repr__(self) -> str:
        return f"Draft({self.name}@{self.version})"

    @property
    def key(self) -> Key:
        return (self.name, self.version)

    def _row(self) -> tuple:
        rows = self.book.query(
            "SELECT created, blob_digest, blob_size, blob_mtime, broken FROM drafts WHERE name = ? AND version = ?",
            *self.key,
        )
        return rows[0] if rows else (time.time(), None, None, None, None)

    @property
    def created(self) -> float:
        return self._row()[0]

    @property
    def broken(self) -> str | None:
        return self._row()[4]

    @property
    def blob(self) -> Staged | None:
        """The staged file when the version itself is written as a file."""
        _, digest, size, mtime, _ = self._row()
        return Staged(digest, size, mtime) if digest is not None else None

    @blob.setter
    def blob(self, staged: Staged) -> None:
        with self.book.write() as c:
            c.execute(
                "UPDATE drafts SET blob_digest = ?, blob_size = ?, blob_mtime = ? WHERE name = ? AND version = ?",
                (staged.digest, staged.size, staged.mtime, *self.key),
            )
            self.book.join(c, self.key)

    @property
    def is_file(self) -> bool:
        return self.blob is not None

    def _count(self, table: str, inner: str) -> int:
        lo, hi = _subtree(inner)
        sql = f"SELECT count(*) FROM {table} WHERE name = ? AND version = ? AND path >= ? AND path < ?"
        return self.book.query(sql, *self.key, lo, hi)[0][0]

    def has_files(self) -> bool:
        return self._count("draft_files", "") > 0

    def is_empty(self) -> bool:
        return self.blob is None and not self.has_children("")

    # -- questions ---------------------------------------------------------------

    def file(self, inner: str) -> Staged | None:
        rows = self.book.query(
            "SELECT digest, size, mtime FROM draft_files WHERE name = ? AND version = ? AND path = ?", *self.key, inner
        )
        return Staged(*rows[0]) if rows else None

    def is_dir(self, inner: str) -> bool:
        if inner == "":
            return self.blob is None
        return self.has_dir(inner) or self.has_children(inner)

    def has_dir(self, inner: str) -> bool:
        """Whether ``inner`` was made a directory (by mkdir), not only implied by what is below it."""
        return bool(
            self.book.query("SELECT 1 FROM draft_dirs WHERE name = ? AND version = ? AND path = ?", *self.key, inner)
        )

    def has_children(self, inner: str) -> bool:
        return self._count("draft_files", inner) > 0 or self._count("draft_dirs", inner) > 0

    def file_parent(self, inner: str) -> str | None:
        """The first ancestor of ``inner`` that is a file, if any."""
        for parent in _ancestors(inner):
            if self.file(parent) is not None:
                return parent
        return None

    def _files_below(self, inner: str) -> list[tuple[str, Staged]]:
        lo, hi = _subtree(inner)
        rows = self.book.query(
            "SELECT path, digest, size, mtime FROM draft_files"
            " WHERE name = ? AND version = ? AND path >= ? AND path < ? ORDER BY path",
            *self.key,
            lo,
            hi,
        )
        return [(p, Staged(d, s, m)) for p, d, s, m in rows]

    def _dirs_below(self, inner: str) -> list[str]:
        lo, hi = _subtree(inner)
        rows = self.book.query(
            "SELECT path FROM draft_dirs WHERE name = ? AND version = ? AND path >= ? AND path < ? ORDER BY path",
            *self.key,
            lo,
            hi,
        )
        return [r[0] for r in rows]

    def children(self, inner: str) -> list[tuple[str, Staged | None]]:
        """Immediate children of a directory: (name, staged file or None for a directory)."""
        start = len(inner) + 1 if inner else 0
        out: dict[str, Staged | None] = {}
        for path, staged in self._files_below(inner):
            head, sep, _ = path[start:].partition("/")
            if sep:
                out.setdefault(head, None)
            else:
                out[head] = staged
        for path in self._dirs_below(inner):
            out.setdefault(path[start:].split("/", 1)[0], None)
        return sorted(out.items())

    def below(self, inner: str) -> Iterator[tuple[str, Staged | None]]:
        """Every file and directory below ``inner``: (path relative to it, staged or None)."""
        start = len(inner) + 1 if inner else 0
        seen: set[str] = set()
        for path, staged in self._files_below(inner):
            rel = path[start:]
            yield rel, staged
            for d in _ancestors(rel):
                if d not in seen:
                    seen.add(d)
                    yield d, None
        for path in self._dirs_below(inner):
            rel = path[start:]
            for d in (rel, *_ancestors(rel)):
                if d not in seen:
                    seen.add(d)
                    yield d, None

    def entries(self) -> list[tuple[str, str, int]]:
        """(path, digest, size) of every file, as a tree manifest lists them."""
        return [(p, s.digest, s.size) for p, s in self._files_below("")]

    # -- changes (the caller has checked the path is writable) ------------------

    def put(self, inner: str, staged: Staged) -> None:
        with self.book.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO draft_files VALUES (?, ?, ?, ?, ?, ?)",
                (*self.key, inner, staged.digest, staged.size, staged.mtime),
            )
            self.book.join(c, self.key)

    def mkdir(self, inner: str) -> None:
        if inner:
            with self.book.write() as c:
                c.execute("INSERT OR IGNORE INTO draft_dirs VALUES (?, ?, ?)", (*self.key, inner))
                self.book.join(c, self.key)

    def remove_file(self, inner: str) -> None:
        with self.book.write() as c:
            c.execute("DELETE FROM draft_files WHERE name = ? AND version = ? AND path = ?", (*self.key, inner))
            self.book.join(c, self.key)

    def rmdir(self, inner: str) -> None:
        with self.book.write() as c:
            c.execute("DELETE FROM draft_dirs WHERE name = ? AND version = ? AND path = ?", (*self.key, inner))
            self.book.join(c, self.key)

    def remove_tree(self, inner: str) -> None:
        """Remove a directory and everything below it."""
        lo, hi = _subtree(inner)
        with self.book.write() as c:
            for table in ("draft_files", "draft_dirs"):
                c.execute(
                    f"DELETE FROM {table} WHERE name = ? AND version = ? AND path >= ? AND path < ?",
                    (*self.key, lo, hi),
                )
            c.execute("DELETE FROM draft_dirs WHERE name = ? AND version = ? AND path = ?", (*self.key, inner))
            self.book.join(c, self.key)

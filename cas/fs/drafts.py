"""Drafts: versions being written through the ``cas://`` view, not yet committed.

A draft maps paths to blobs that are already durable in the backend
(content-addressed, so staging them early is safe; until a version points at
them they are unreferenced and ``gc`` collects them after its grace period).
Until commit a draft behaves like an ordinary mutable directory — files can
be overwritten and removed, empty directories exist — because nothing in it
is a version yet.  Committing turns it into one immutable version.

Drafts live in a small SQLite file next to the store's index (the
:class:`DraftBook`), not in one filesystem instance: real writers reach a
store through many instances — fsspec caches one per thread, zarr asks for an
``asynchronous=True`` one, dask ships the filesystem to worker processes —
and every one of them must add to, and see, the same draft.  Each process
that changes a draft is recorded as one of its writers, so the end of the
writing (``cas.fs.finish``) can tell who finishes it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cas.errors import BackendError
from cas.fs.procs import process_token

if TYPE_CHECKING:
    from cas.store.facade import Store

__all__ = ["Draft", "DraftBook", "DraftMap", "Staged", "book_for", "book_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drafts (
    name TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL,
    blob_digest TEXT, blob_size INTEGER, blob_mtime REAL,
    broken TEXT,  -- why it must not be committed without a person deciding
    PRIMARY KEY (name, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS draft_files (
    name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL,
    digest TEXT NOT NULL, size INTEGER NOT NULL, mtime REAL NOT NULL,
    PRIMARY KEY (name, version, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS draft_dirs (
    name TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (name, version, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS moves (id INTEGER PRIMARY KEY AUTOINCREMENT);
CREATE TABLE IF NOT EXISTS move_waits (  -- a cas:// mv into drafts: the drafts it waits for
    move INTEGER NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (move, name, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS move_deletes (  -- its committed sources, deleted once every target committed
    move INTEGER NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS draft_writers (
    name TEXT NOT NULL, version INTEGER NOT NULL, process TEXT NOT NULL,
    PRIMARY KEY (name, version, process)) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Staged:
    """One staged file: its blob, size, and when it was staged."""

    digest: str
    size: int
    mtime: float = field(default_factory=time.time)


def _subtree(inner: str) -> tuple[str, str]:
    """Bounds of every path strictly below ``inner`` ('/' sorts just before '0')."""
    return (f"{inner}/", f"{inner}0") if inner else ("", "\U0010ffff")


class DraftBook:
    """The open drafts of one store on this machine: a SQLite file beside its index."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout = 60000")
            with contextlib.suppress(sqlite3.OperationalError):
                self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise BackendError(f"cannot open the drafts file {path}: {e}", path) from None
        self.pid = os.getpid()
        self.lock = threading.RLock()

    def __repr__(self) -> str:
        return f"DraftBook({self.path!r})"

    def query(self, sql: str, *args) -> list[tuple]:
        with self.lock:
            return self.conn.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers in other processes queue)."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def keys(self) -> list[tuple[str, int]]:
        return [(n, v) for n, v in self.query("SELECT name, version FROM drafts ORDER BY name, version")]

    def mine(self) -> list[tuple[str, int]]:
        """Drafts this process has written to."""
        rows = self.query(
            "SELECT name, version FROM draft_writers WHERE process = ? ORDER BY name, version", process_token()
        )
        return [(n, v) for n, v in rows]

    def writers(self, key: tuple[str, int]) -> list[str]:
        return [r[0] for r in self.query("SELECT process FROM draft_writers WHERE name = ? AND version = ?", *key)]

    def create(self, name: str, version: int) -> Draft:
        with self.write() as c:
            c.execute("INSERT OR IGNORE INTO drafts (name, version, created) VALUES (?, ?, ?)", (name, version, time.time()))
            self._join(c, (name, version))
        return Draft(self, name, version)

    def _join(self, c: sqlite3.Connection, key: tuple[str, int]) -> None:
        c.execute("INSERT OR IGNORE INTO draft_writers VALUES (?, ?, ?)", (*key, process_token()))

    def drop(self, key: tuple[str, int]) -> None:
        with self.write() as c:
            self.delete(c, key)

    @staticmethod
    def delete(c: sqlite3.Connection, key: tuple[str, int]) -> None:
        """Drop a draft; a move still waiting for it is cancelled (its sources stay)."""
        for (move,) in c.execute("SELECT move FROM move_waits WHERE name = ? AND version = ?", key).fetchall():
            for table, column in (("moves", "id"), ("move_waits", "move"), ("move_deletes", "move")):
                c.execute(f"DELETE FROM {table} WHERE {column} = ?", (move,))
        for table in ("drafts", "draft_files", "draft_dirs", "draft_writers"):
            c.execute(f"DELETE FROM {table} WHERE name = ? AND version = ?", key)

    def add_move(self, deletes: list[tuple[str, int]], into: set[tuple[str, int]]) -> None:
        """A ``mv`` copied into the drafts ``into``: delete ``deletes`` once all of them have committed."""
        if not deletes:
            return
        with self.write() as c:
            move = c.execute("INSERT INTO moves DEFAULT VALUES").lastrowid
            c.executemany("INSERT OR IGNORE INTO move_waits VALUES (?, ?, ?)", [(move, *k) for k in into])
            c.executemany("INSERT INTO move_deletes VALUES (?, ?, ?)", [(move, *d) for d in deletes])

    @staticmethod
    def settle_moves(c: sqlite3.Connection, key: tuple[str, int]) -> list[tuple[str, int]]:
        """Draft ``key`` committed: the sources of the moves it completes, now due for deletion."""
        due: list[tuple[str, int]] = []
        for (move,) in c.execute("SELECT move FROM move_waits WHERE name = ? AND version = ?", key).fetchall():
            c.execute("DELETE FROM move_waits WHERE move = ? AND name = ? AND version = ?", (move, *key))
            if c.execute("SELECT 1 FROM move_waits WHERE move = ?", (move,)).fetchone() is None:
                due += c.execute("SELECT name, version FROM move_deletes WHERE move = ?", (move,)).fetchall()
                c.execute("DELETE FROM move_deletes WHERE move = ?", (move,))
                c.execute("DELETE FROM moves WHERE id = ?", (move,))
        return due

    def mark_broken(self, key: tuple[str, int], why: str) -> None:
        with self.write() as c:
            c.execute("UPDATE drafts SET broken = ? WHERE name = ? AND version = ? AND broken IS NULL", (why, *key))


class DraftMap(Mapping):
    """``(name, version) -> Draft``: a filesystem instance's view of its store's drafts.

    The book is opened on the first write; until its file exists, reads
    answer "no drafts" without creating anything.
    """

    def __init__(self, store: Store) -> None:
        from cas.fs import finish as fs_finish

        self.store = store
        fs_finish.watch(store)  # when this process ends, it finishes the drafts it wrote
        self._reader()  # an existing book is opened now: it warns of drafts nothing will commit

    @property
    def book(self) -> DraftBook:
        return book_for(self.store)

    def _reader(self) -> DraftBook | None:
        book = _BOOKS.get(self.store)
        if book is not None and book.pid == os.getpid():
            return book
        path = book_path(self.store.index.path)
        return self.book if path == ":memory:" or os.path.exists(path) else None

    def __getitem__(self, key: tuple[str, int]) -> Draft:
        if key not in self:
            raise KeyError(key)
        return Draft(self.book, *key)

    def __delitem__(self, key: tuple[str, int]) -> None:
        if key not in self:
            raise KeyError(key)
        self.book.drop(key)

    def __contains__(self, key: object) -> bool:
        book = self._reader()
        return (
            book is not None
            and isinstance(key, tuple)
            and bool(book.query("SELECT 1 FROM drafts WHERE name = ? AND version = ?", *key))
        )

    def __iter__(self) -> Iterator[tuple[str, int]]:
        book = self._reader()
        return iter(book.keys() if book is not None else [])

    def __len__(self) -> int:
        book = self._reader()
        return book.query("SELECT count(*) FROM drafts")[0][0] if book is not None else 0

    def create(self, name: str, version: int) -> Draft:
        return self.book.create(name, version)


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
    def key(self) -> tuple[str, int]:
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
            self.book._join(c, self.key)

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
            self.book._join(c, self.key)

    def mkdir(self, inner: str) -> None:
        if inner:
            with self.book.write() as c:
                c.execute("INSERT OR IGNORE INTO draft_dirs VALUES (?, ?, ?)", (*self.key, inner))
                self.book._join(c, self.key)

    def remove_file(self, inner: str) -> None:
        with self.book.write() as c:
            c.execute("DELETE FROM draft_files WHERE name = ? AND version = ? AND path = ?", (*self.key, inner))
            self.book._join(c, self.key)

    def rmdir(self, inner: str) -> None:
        with self.book.write() as c:
            c.execute("DELETE FROM draft_dirs WHERE name = ? AND version = ? AND path = ?", (*self.key, inner))
            self.book._join(c, self.key)

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
            self.book._join(c, self.key)


# One book per Store object; Stores sharing an index file share its book's file.
_BOOKS: weakref.WeakKeyDictionary[Store, DraftBook] = weakref.WeakKeyDictionary()
_BOOKS_LOCK = threading.Lock()


def book_path(index_path: str) -> str:
    if index_path == ":memory:":
        return ":memory:"
    return f"{index_path}-drafts"


def book_for(store: Store) -> DraftBook:
    """The drafts book of ``store`` (opened once per Store, and again in a forked child)."""
    with _BOOKS_LOCK:
        book = _BOOKS.get(store)
        if book is None or book.pid != os.getpid():
            book = _BOOKS[store] = DraftBook(book_path(store.index.path))
        else:
            return book
    from cas.fs import finish as fs_finish

    fs_finish.warn_stale(book)  # drafts nothing will commit: say so to whoever opens the store
    return book

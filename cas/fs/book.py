"""The draft book: one store's open drafts on this machine, a SQLite file beside its index.

Drafts live here, not in one filesystem instance: real writers reach a store
through many instances - fsspec caches one per thread, zarr asks for an
``asynchronous=True`` one, dask ships the filesystem to worker processes -
and every one of them must add to, and see, the same draft.  Each process
that changes a draft is recorded as one of its writers, so the end of the
writing (:mod:`cas.fs.finish`) can tell who finishes it.  The rows of one
draft are read and changed through :class:`cas.fs.draft.Draft`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator

from cas.errors import BackendError
from cas.fs.procs import process_token
from cas.index.db import immediate

__all__ = ["DraftBook", "Key", "book_path"]

#: a draft is version ``version`` of artifact ``name``
Key = tuple[str, int]

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


def book_path(index_path: str) -> str:
    """Where the book of the store whose index is at ``index_path`` lives."""
    if index_path == ":memory:":
        return ":memory:"
    return f"{index_path}-drafts"


class DraftBook:
    """The open drafts of one store on this machine."""

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
        """One write transaction (cas.index.db.immediate), one thread of this process at a time."""
        with self.lock, immediate(self.conn) as conn:
            yield conn

    def keys(self) -> list[Key]:
        return [(n, v) for n, v in self.query("SELECT name, version FROM drafts ORDER BY name, version")]

    def has(self, key: Key) -> bool:
        return bool(self.query("SELECT 1 FROM drafts WHERE name = ? AND version = ?", *key))

    def count(self) -> int:
        return self.query("SELECT count(*) FROM drafts")[0][0]

    def mine(self) -> list[Key]:
        """Drafts this process has written to."""
        rows = self.query(
            "SELECT name, version FROM draft_writers WHERE process = ? ORDER BY name, version", process_token()
        )
        return [(n, v) for n, v in rows]

    def writers(self, key: Key) -> list[str]:
        return [r[0] for r in self.query("SELECT process FROM draft_writers WHERE name = ? AND version = ?", *key)]

    def create(self, key: Key) -> None:
        """Open draft ``key`` (if it is not open) with this process as a writer."""
        with self.write() as c:
            c.execute("INSERT OR IGNORE INTO drafts (name, version, created) VALUES (?, ?, ?)", (*key, time.time()))
            self.join(c, key)

    @staticmethod
    def join(c: sqlite3.Connection, key: Key) -> None:
        """Inside a write: this process is one of draft ``key``'s writers."""
        c.execute("INSERT OR IGNORE INTO draft_writers VALUES (?, ?, ?)", (*key, process_token()))

    def drop(self, key: Key) -> None:
        with self.write() as c:
            self.delete(c, key)

    @staticmethod
    def delete(c: sqlite3.Connection, key: Key) -> None:
        """Drop a draft; a move still waiting for it is cancelled (its sources stay)."""
        for (move,) in c.execute("SELECT move FROM move_waits WHERE name = ? AND version = ?", key).fetchall():
            for table, column in (("moves", "id"), ("move_waits", "move"), ("move_deletes", "move")):
                c.execute(f"DELETE FROM {table} WHERE {column} = ?", (move,))
        for table in ("drafts", "draft_files", "draft_dirs", "draft_writers"):
            c.execute(f"DELETE FROM {table} WHERE name = ? AND version = ?", key)

    def add_move(self, deletes: list[Key], into: set[Key]) -> None:
        """A ``mv`` copied into the drafts ``into``: delete ``deletes`` once all of them have committed."""
        if not deletes:
            return
        with self.write() as c:
            move = c.execute("INSERT INTO moves DEFAULT VALUES").lastrowid
            c.executemany("INSERT OR IGNORE INTO move_waits VALUES (?, ?, ?)", [(move, *k) for k in into])
            c.executemany("INSERT INTO move_deletes VALUES (?, ?, ?)", [(move, *d) for d in deletes])

    @staticmethod
    def settle_moves(c: sqlite3.Connection, key: Key) -> list[Key]:
        """Draft ``key`` committed: the sources of the moves it completes, now due for deletion."""
        due: list[Key] = []
        for (move,) in c.execute("SELECT move FROM move_waits WHERE name = ? AND version = ?", key).fetchall():
            c.execute("DELETE FROM move_waits WHERE move = ? AND name = ? AND version = ?", (move, *key))
            if c.execute("SELECT 1 FROM move_waits WHERE move = ?", (move,)).fetchone() is None:
                due += c.execute("SELECT name, version FROM move_deletes WHERE move = ?", (move,)).fetchall()
                c.execute("DELETE FROM move_deletes WHERE move = ?", (move,))
                c.execute("DELETE FROM moves WHERE id = ?", (move,))
        return due

    def mark_broken(self, key: Key, why: str) -> None:
        with self.write() as c:
            c.execute("UPDATE drafts SET broken = ? WHERE name = ? AND version = ? AND broken IS NULL", (why, *key))

    def close(self) -> None:
        self.conn.close()

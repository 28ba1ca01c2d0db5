"""The index: its connections, transactions and migrations; the queries live by subject.

``Index`` is one object with one style: every question is a method, written in
the module of its subject (versions, content, records, meta, runs, lineage, statcache)
over this module's ``conn``.  sqlite-utils handles schema work.  Every write
runs inside ``BEGIN IMMEDIATE`` so concurrent writers queue on the lock
instead of failing at commit time; methods that write take that transaction.

One ``Index`` may be shared by threads: each thread gets its own connection
(``Index.conn``), opened on first use and closed when the thread ends or the
index closes.  Threads of one process then meet exactly as processes do, on
SQLite's file lock (WAL: readers never wait, writers queue on BEGIN IMMEDIATE
within ``busy_timeout``), a path the multi-process tests already hold to.  A
lock around one shared connection would also serialise every read behind a
long write (reindex) and let a reader see another thread's uncommitted rows.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

from cas.errors import BackendError
from cas.index.content import ContentQueries
from cas.index.lineage import LineageQueries
from cas.index.meta import MetaQueries
from cas.index.packs import PackQueries
from cas.index.records import RecordQueries
from cas.index.runs import RunQueries
from cas.index.schema import MIGRATIONS
from cas.index.statcache import LOCAL_TABLES, StatCacheQueries
from cas.index.versions import VersionQueries

__all__ = ["Index", "immediate"]

BUSY_TIMEOUT_MS = 60_000


class _Connection:
    """One thread's connection; closed when the thread ends and drops its locals."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    __del__ = close



@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on ``conn``: BEGIN IMMEDIATE, so writers in other processes
    queue on SQLite's lock instead of failing later; committed on success, else rolled back.
    The index and the drafts book both write this way."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

class Index(
    VersionQueries, ContentQueries, RecordQueries, MetaQueries, RunQueries, LineageQueries, StatCacheQueries, PackQueries
):
    """The SQLite index of one store (see the module docstring).

    The subject classes hold no state: each asks ``self.conn``, defined here.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._local = threading.local()  # .connection: this thread's _Connection
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()  # every thread's, for close()
        self._open_lock = threading.Lock()  # guards _open and _closed
        self._closed = False
        conn = self.conn
        try:
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self.close()
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise BackendError(f"index {path} stayed locked by another process: {e}", path) from None
            # The index is derived from the backend: deleting it loses nothing.
            raise BackendError(
                f"index {path} is unreadable ({e}); delete it and the next open rebuilds it from the backend", path
            ) from None

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (see the module docstring)."""
        held = getattr(self._local, "connection", None)
        if held is not None:
            return held.conn
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise BackendError(f"cannot open index {self.path}: {e}", self.path) from None
        held = _Connection(conn)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as e:
            held.close()
            raise BackendError(
                f"index {self.path} is unreadable ({e}); delete it and the next open rebuilds it from the backend",
                self.path,
            ) from None
        with self._open_lock:
            if self._closed:
                held.close()
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            self._open.add(held)
        self._local.connection = held
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over this thread's connection, for schema work (reindex, tools).

        Imported on first use: sqlite-utils imports pandas and numpy when they are
        installed, which would add a second to every ``cas`` command."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran: every connection is gone and no new one opens."""
        with self._open_lock:
            return self._closed

    def close(self) -> None:
        with self._open_lock:
            self._closed = True
            opened = list(self._open)
        for held in opened:
            held.close()

    def write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE), committed on success."""
        return immediate(self.conn)

    def in_transaction(self) -> bool:
        """Is this thread inside a write transaction of this index (a :meth:`write` not yet
        ended)?  Then a nested write would fail: callers that could run inside one ask first."""
        return self.conn.in_transaction

    def _migrate(self) -> None:
        with self.write() as c:
            c.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = {row[0] for row in c.execute("SELECT name FROM migrations")}
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                for statement in filter(str.strip, sql.split(";")):
                    c.execute(statement)
                c.execute("INSERT INTO migrations VALUES (?, datetime('now'))", (name,))

    def migrations(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM migrations ORDER BY name")]

    def clear(self, c: sqlite3.Connection) -> None:
        """Empty every table the backend refills, inside the caller's transaction: all but
        ``migrations`` and the tables about this machine's own files (the stat cache).

        Plain sqlite_master rather than sqlite-utils: this runs on every first
        open, where importing sqlite-utils (and the pandas it pulls in) would
        cost a second and ~70 MiB of RSS."""
        tables = c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        for (table,) in tables.fetchall():
            if table != "migrations" and table not in LOCAL_TABLES:
                c.execute(f"DELETE FROM [{table}]")

    def reset(self) -> None:
        """Empty every table (the backend is the truth; reindex refills)."""
        with self.write() as c:
            self.clear(c)

"""Index connection, migrations and the queries the Store needs.

Hot paths (``get_version``) use the raw sqlite3 connection with cached
statements; sqlite-utils handles schema work.  Every write runs inside
``BEGIN IMMEDIATE`` so concurrent writers queue on the lock instead of failing
at commit time.

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
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite_utils

from cas.errors import BackendError
from cas.index.schema import MIGRATIONS

__all__ = ["Index", "VersionRow"]

BUSY_TIMEOUT_MS = 60_000

_VERSION_COLUMNS = (
    "id, name, version, digest, kind, size, created_at, metadata, materializer, record, run_id, step_run_id, deleted_at"
)


@dataclass(frozen=True)
class VersionRow:
    id: int
    name: str
    version: int
    digest: str
    kind: str
    size: int
    created_at: str
    metadata: str
    materializer: str | None
    record: str
    run_id: str | None
    step_run_id: str | None
    deleted_at: str | None


class _Connection:
    """One thread's connection; closed when the thread ends and drops its locals."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    __del__ = close


class Index:
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
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
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

    def close(self) -> None:
        with self._open_lock:
            self._closed = True
            opened = list(self._open)
        for held in opened:
            held.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE), committed on success."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

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
        """Empty every table but ``migrations``, inside the caller's transaction.

        Plain sqlite_master rather than sqlite-utils: this runs on every first
        open, where importing sqlite-utils (and the pandas it pulls in) would
        cost a second and ~70 MiB of RSS."""
        tables = c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        for (table,) in tables.fetchall():
            if table != "migrations":
                c.execute(f"DELETE FROM [{table}]")

    def reset(self) -> None:
        """Empty every table (the backend is the truth; reindex refills)."""
        with self.write() as c:
            self.clear(c)

    # -- meta ----------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.conn).execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- versions ------------------------------------------------------------

    def insert_version(self, c: sqlite3.Connection, record: dict[str, Any], record_digest: str) -> None:
        c.execute(
            "INSERT OR IGNORE INTO versions (name, version, digest, kind, size, created_at, metadata,"
            " materializer, record, run_id, step_run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                record["name"],
                record["version"],
                record["digest"],
                record["kind"],
                record["size"],
                record["created_at"],
                json.dumps(record.get("metadata") or {}, sort_keys=True),
                record.get("materializer"),
                record_digest,
                record.get("run_id"),
                record.get("step_run_id"),
            ),
        )
        if record["kind"] == "blob":
            c.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (record["digest"], record["size"]))

    def insert_tree_entries(self, c: sqlite3.Connection, tree: str, entries: list[tuple[str, str, int]]) -> None:
        c.executemany(
            "INSERT OR IGNORE INTO tree_entries (tree, path, digest, size) VALUES (?, ?, ?, ?)",
            ((tree, path, digest, size) for path, digest, size in entries),
        )
        c.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?)", ((d, s) for _, d, s in entries))

    def has_tree(self, tree: str) -> bool:
        return self.conn.execute("SELECT 1 FROM tree_entries WHERE tree = ? LIMIT 1", (tree,)).fetchone() is not None

    def tree_entries(self, tree: str, prefix: str = "") -> list[tuple[str, str, int]]:
        if prefix:
            rows = self.conn.execute(
                "SELECT path, digest, size FROM tree_entries WHERE tree = ? AND path >= ? AND path < ? ORDER BY path",
                (tree, prefix, prefix + "\U0010ffff"),
            )
        else:
            rows = self.conn.execute(
                "SELECT path, digest, size FROM tree_entries WHERE tree = ? ORDER BY path", (tree,)
            )
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def tree_entry(self, tree: str, path: str) -> tuple[str, int] | None:
        row = self.conn.execute(
            "SELECT digest, size FROM tree_entries WHERE tree = ? AND path = ?", (tree, path)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def tree_has_dir(self, tree: str, path: str) -> bool:
        """Is ``path`` a directory in the tree (some entry lies below it)?  One index probe."""
        prefix = f"{path}/"
        return (
            self.conn.execute(
                "SELECT 1 FROM tree_entries WHERE tree = ? AND path >= ? AND path < ? LIMIT 1",
                (tree, prefix, prefix + "\U0010ffff"),
            ).fetchone()
            is not None
        )

    def live_blob_size(self, digest: str) -> int | None:
        """The size of ``digest`` if a live version (or a live tree's entry) uses it."""
        row = self.conn.execute(
            "SELECT size FROM versions WHERE digest = ? AND kind = 'blob' AND deleted_at IS NULL"
            " UNION ALL SELECT t.size FROM tree_entries t JOIN versions v ON v.digest = t.tree"
            " WHERE t.digest = ? AND v.deleted_at IS NULL LIMIT 1",
            (digest, digest),
        ).fetchone()
        return row[0] if row else None

    def run_ids_of(self, name: str) -> set[str]:
        rows = self.conn.execute("SELECT DISTINCT run_id FROM versions WHERE name = ? AND run_id IS NOT NULL", (name,))
        return {r[0] for r in rows}

    def mark_deleted(self, c: sqlite3.Connection, name: str, version: int, when: str) -> None:
        c.execute(
            "UPDATE versions SET deleted_at = ? WHERE name = ? AND version = ? AND deleted_at IS NULL",
            (when, name, version),
        )

    def get_version(self, name: str, version: int) -> VersionRow | None:
        row = self.conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return VersionRow(*row) if row else None

    def get_version_by_id(self, version_id: int) -> VersionRow | None:
        row = self.conn.execute(f"SELECT {_VERSION_COLUMNS} FROM versions WHERE id = ?", (version_id,)).fetchone()
        return VersionRow(*row) if row else None

    def latest(self, name: str) -> VersionRow | None:
        row = self.conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE name = ? AND deleted_at IS NULL"
            " ORDER BY version DESC LIMIT 1",
            (name,),
        ).fetchone()
        return VersionRow(*row) if row else None

    def max_version(self, name: str) -> int:
        row = self.conn.execute("SELECT MAX(version) FROM versions WHERE name = ?", (name,)).fetchone()
        return row[0] or 0

    def name_exists(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM versions WHERE name = ? LIMIT 1", (name,)).fetchone() is not None

    def list_versions(self, name: str, include_deleted: bool = False) -> list[VersionRow]:
        where = "" if include_deleted else " AND deleted_at IS NULL"
        rows = self.conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE name = ?{where} ORDER BY version", (name,)
        )
        return [VersionRow(*r) for r in rows]

    def list_artifacts(self, prefix: str = "") -> list[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT name FROM versions WHERE deleted_at IS NULL AND name >= ? AND name < ? ORDER BY name",
            (prefix, prefix + "\U0010ffff"),
        )
        return [r[0] for r in rows]

    def versions_with_digest(self, digest: str) -> list[VersionRow]:
        rows = self.conn.execute(f"SELECT {_VERSION_COLUMNS} FROM versions WHERE digest = ?", (digest,))
        return [VersionRow(*r) for r in rows]

    # -- aliases -------------------------------------------------------------

    def set_alias(self, c: sqlite3.Connection, name: str, alias: str, version: int, seq: int) -> None:
        # Highest seq wins, whatever order records arrive in (refresh, sync, reindex).
        c.execute(
            "INSERT INTO aliases (name, alias, version, seq) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, seq = excluded.seq"
            " WHERE excluded.seq > aliases.seq",
            (name, alias, version, seq),
        )

    def resolve_alias(self, name: str, alias: str) -> int | None:
        # version 0: the alias was removed (its highest-seq record says so)
        row = self.conn.execute(
            "SELECT version FROM aliases WHERE name = ? AND alias = ? AND version > 0", (name, alias)
        ).fetchone()
        return row[0] if row else None

    def alias_seq(self, name: str, alias: str) -> int:
        row = self.conn.execute("SELECT seq FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
        return row[0] if row else -1

    def aliases_of(self, name: str) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT alias, version FROM aliases WHERE name = ? AND version > 0 ORDER BY alias", (name,)
        )
        return {a: v for a, v in rows}

    # -- whole-store questions -------------------------------------------------

    def live_digests(self) -> set[str]:
        """Every blob digest a live (not deleted) version needs, trees expanded."""
        live = {r[0] for r in self.conn.execute("SELECT digest FROM versions WHERE deleted_at IS NULL")}
        rows = self.conn.execute(
            "SELECT t.digest FROM tree_entries t JOIN versions v ON v.digest = t.tree WHERE v.deleted_at IS NULL"
        )
        live.update(r[0] for r in rows)
        return live

    def needed_blobs(self) -> dict[str, int | None]:
        """Every blob the store must keep, with its size where the index knows it.

        That is the content of live versions (trees expanded), every tree
        manifest (reindex reads them, deleted versions included) and every
        record.  ``gc`` keeps exactly these and ``verify`` checks exactly these.
        """
        needed: dict[str, int | None] = dict.fromkeys(self.record_digests())
        needed.update(dict.fromkeys(r[0] for r in self.conn.execute("SELECT digest FROM versions WHERE kind = 'tree'")))
        needed.update(dict.fromkeys(self.live_digests()))
        for digest, size in self.conn.execute("SELECT digest, size FROM blobs"):
            if digest in needed:
                needed[digest] = size
        return needed

    def add_record(self, c: sqlite3.Connection, ref: str, digest: str) -> bool:
        """Remember a ref we have applied; False if it was already known."""
        return c.execute("INSERT OR IGNORE INTO records (ref, digest) VALUES (?, ?)", (ref, digest)).rowcount == 1

    def has_record(self, ref: str) -> bool:
        return self.conn.execute("SELECT 1 FROM records WHERE ref = ?", (ref,)).fetchone() is not None

    def record_digests(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT digest FROM records")}

    def iter_records(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        yield from self.conn.execute(
            "SELECT ref, digest FROM records WHERE ref >= ? AND ref < ? ORDER BY ref", (prefix, prefix + "\U0010ffff")
        )

    def add_rejected(self, c: sqlite3.Connection, key: str, message: str) -> bool:
        """Remember a backend object that was refused; False if it was already known."""
        return c.execute("INSERT OR IGNORE INTO rejected (message, key) VALUES (?, ?)", (message, key)).rowcount == 1

    def rejected(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT message FROM rejected ORDER BY message")]

    def all_version_digests(self) -> Iterator[tuple[str, str, int, str]]:
        """(name, version, digest, kind) for every version, deleted or not."""
        yield from self.conn.execute("SELECT name, version, digest, kind FROM versions ORDER BY name, version")

    def stats(self) -> dict[str, int]:
        versions, logical = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM versions WHERE deleted_at IS NULL"
        ).fetchone()
        artifacts = self.conn.execute(
            "SELECT COUNT(DISTINCT name) FROM versions WHERE deleted_at IS NULL"
        ).fetchone()[0]
        blobs, stored = self.conn.execute(
            "WITH live AS ("
            " SELECT digest FROM versions WHERE deleted_at IS NULL AND kind = 'blob'"
            " UNION SELECT t.digest FROM tree_entries t JOIN versions v ON v.digest = t.tree"
            " WHERE v.deleted_at IS NULL)"
            " SELECT COUNT(*), COALESCE(SUM(b.size), 0) FROM blobs b JOIN live USING (digest)"
        ).fetchone()
        return {
            "artifacts": artifacts,
            "versions": versions,
            "blobs": blobs,
            "logical_bytes": logical,
            "stored_bytes": stored,
        }

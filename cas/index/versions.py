"""Versions and aliases in the index: what ``get_artifact_version`` and listing ask.

Hot paths (``get_version``) use the raw sqlite3 connection with cached statements.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["VERSION_COLUMNS", "VersionQueries", "VersionRow"]

# The columns of a VersionRow, in its field order (other subjects select versions too).
VERSION_COLUMNS = (
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


class VersionQueries:
    """The ``versions`` and ``aliases`` tables (part of :class:`cas.index.Index`)."""

    conn: sqlite3.Connection  # this thread's connection (cas.index.db)

    # -- writes (appliers only, inside the caller's transaction) --------------

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
            if record.get("chunks") is not None:  # format 2: a chunked file
                self.add_chunk_lists(c, [(record["digest"], record["chunks"])])

    def mark_deleted(self, c: sqlite3.Connection, name: str, version: int, when: str) -> None:
        c.execute(
            "UPDATE versions SET deleted_at = ? WHERE name = ? AND version = ? AND deleted_at IS NULL",
            (when, name, version),
        )

    def set_alias(self, c: sqlite3.Connection, name: str, alias: str, version: int, seq: int) -> None:
        # Highest seq wins, whatever order records arrive in (refresh, sync, reindex).
        c.execute(
            "INSERT INTO aliases (name, alias, version, seq) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, seq = excluded.seq"
            " WHERE excluded.seq > aliases.seq",
            (name, alias, version, seq),
        )

    # -- versions --------------------------------------------------------------

    def get_version(self, name: str, version: int) -> VersionRow | None:
        row = self.conn.execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return VersionRow(*row) if row else None

    def get_version_by_id(self, version_id: int) -> VersionRow | None:
        row = self.conn.execute(f"SELECT {VERSION_COLUMNS} FROM versions WHERE id = ?", (version_id,)).fetchone()
        return VersionRow(*row) if row else None

    def latest(self, name: str) -> VersionRow | None:
        row = self.conn.execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE name = ? AND deleted_at IS NULL"
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
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE name = ?{where} ORDER BY version", (name,)
        )
        return [VersionRow(*r) for r in rows]

    def list_artifacts(self, prefix: str = "") -> list[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT name FROM versions WHERE deleted_at IS NULL AND name >= ? AND name < ? ORDER BY name",
            (prefix, prefix + "\U0010ffff"),
        )
        return [r[0] for r in rows]

    def versions_with_digest(self, digest: str) -> list[VersionRow]:
        rows = self.conn.execute(f"SELECT {VERSION_COLUMNS} FROM versions WHERE digest = ?", (digest,))
        return [VersionRow(*r) for r in rows]

    def run_ids_of(self, name: str) -> set[str]:
        rows = self.conn.execute("SELECT DISTINCT run_id FROM versions WHERE name = ? AND run_id IS NOT NULL", (name,))
        return {r[0] for r in rows}

    def all_version_digests(self) -> Iterator[tuple[str, int, str, str]]:
        """(name, version, digest, kind) for every version, deleted or not."""
        yield from self.conn.execute("SELECT name, version, digest, kind FROM versions ORDER BY name, version")

    # -- aliases ---------------------------------------------------------------

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

"""Schema migrations, applied in order and recorded in the database itself.

Append new migrations to ``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE IF NOT EXISTS records (
            ref TEXT PRIMARY KEY,
            digest TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS blobs (
            digest TEXT PRIMARY KEY,
            size INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS versions (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            digest TEXT NOT NULL,
            kind TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            materializer TEXT,
            record TEXT NOT NULL,
            run_id TEXT,
            step_run_id TEXT,
            deleted_at TEXT,
            UNIQUE (name, version)
        );
        CREATE INDEX IF NOT EXISTS versions_digest ON versions (digest);
        CREATE INDEX IF NOT EXISTS versions_step_run ON versions (step_run_id);
        CREATE TABLE IF NOT EXISTS aliases (
            name TEXT NOT NULL,
            alias TEXT NOT NULL,
            version INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (name, alias)
        );
        CREATE TABLE IF NOT EXISTS runs (
            id TEXT PRIMARY KEY,
            pipeline TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT,
            params TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX IF NOT EXISTS runs_pipeline ON runs (pipeline, started_at);
        CREATE TABLE IF NOT EXISTS step_runs (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            step TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT
        );
        CREATE INDEX IF NOT EXISTS step_runs_run ON step_runs (run_id);
        CREATE TABLE IF NOT EXISTS step_inputs (
            step_run_id TEXT NOT NULL,
            version_id INTEGER NOT NULL,
            PRIMARY KEY (step_run_id, version_id)
        );
        CREATE INDEX IF NOT EXISTS step_inputs_version ON step_inputs (version_id);
        CREATE TABLE IF NOT EXISTS tree_entries (
            tree TEXT NOT NULL,
            path TEXT NOT NULL,
            digest TEXT NOT NULL,
            size INTEGER NOT NULL,
            PRIMARY KEY (tree, path)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS tree_entries_digest ON tree_entries (digest);
        """,
    ),
    (
        # Lineage.  Step inputs are keyed by (name, version), not by the versions
        # row id: a run record can be applied before the version it consumed
        # (reindex replays runs first; sync may bring runs without every input),
        # and a deleted version keeps its row, so edges never dangle.  The
        # dropped table was never written to; the index is derived anyway, and
        # forgetting store_id makes the next open rebuild it from the backend.
        "0002_lineage",
        """
        DROP TABLE IF EXISTS step_inputs;
        CREATE TABLE step_inputs (
            step_run_id TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (step_run_id, name, version)
        ) WITHOUT ROWID;
        CREATE INDEX step_inputs_version ON step_inputs (name, version, step_run_id);
        ALTER TABLE runs ADD COLUMN error TEXT;
        ALTER TABLE step_runs ADD COLUMN error TEXT;
        CREATE INDEX IF NOT EXISTS step_runs_run_step ON step_runs (run_id, step);
        CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
        DELETE FROM meta WHERE key = 'store_id'
        """,
    ),
    (
        # The end event with the highest seq wins, whatever order records are
        # applied in (journal order for refresh, seq order for reindex).
        "0003_end_seq",
        """
        ALTER TABLE runs ADD COLUMN end_seq INTEGER;
        ALTER TABLE step_runs ADD COLUMN end_seq INTEGER;
        DELETE FROM meta WHERE key = 'store_id'
        """,
    ),
    (
        # Objects read from the backend that break the format (invariant 12):
        # skipped by refresh and reindex, listed by verify.  An index built
        # before validation may hold what it now refuses: forgetting store_id
        # rebuilds it from the backend, through the validating decoders.
        "0004_rejected",
        """
        CREATE TABLE IF NOT EXISTS rejected (
            message TEXT PRIMARY KEY,
            key TEXT NOT NULL
        ) WITHOUT ROWID;
        DELETE FROM meta WHERE key = 'store_id'
        """,
    ),
    (
        # Format 2: a chunked file's whole-file digest -> its chunk list's digest, as the
        # version record or tree manifest entry carried it (docs/format.md, chunk lists).
        # New rows only: format-1 content has none, so nothing needs rebuilding.
        "0005_chunk_lists",
        """
        CREATE TABLE IF NOT EXISTS chunk_lists (
            digest TEXT PRIMARY KEY,
            list TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    (
        # The stat cache (cas.index.statcache): what this machine hashed, by path.  Local
        # facts, not a view of the backend: nothing to rebuild, so store_id stays.
        "0006_stat_cache",
        """
        CREATE TABLE IF NOT EXISTS stat_cache (
            path BLOB PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            ctime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            dev INTEGER NOT NULL,
            digest BLOB NOT NULL,
            recorded_ns INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
    ),
    (
        # Packs (format 2): which pack holds which small blob, from the pack index
        # records (cas.core.packs).  ``pack_files.id`` orders packs newest first,
        # so after a repack the new pack is read before the one gc retires.
        "0007_packs",
        """
        CREATE TABLE IF NOT EXISTS pack_files (
            id INTEGER PRIMARY KEY,
            pack TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS packed (
            digest TEXT NOT NULL,
            pack TEXT NOT NULL,
            offset INTEGER NOT NULL,
            length INTEGER NOT NULL,
            PRIMARY KEY (digest, pack)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS packed_pack ON packed (pack)
        """,
    ),
]

"""Runs, step runs and step inputs in the index: the SQL behind :mod:`cas.lineage`.

Rows are written only by the record appliers, so every method that writes
takes the open write transaction ``c``; every one of them is idempotent and
accepts records in any order (a run's end may be applied before its start
when records arrive by sync).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cas.index.versions import VERSION_COLUMNS, VersionRow

__all__ = ["STEP_COLUMNS", "RunQueries", "RunRow", "StepRow"]

_RUN_COLUMNS = "id, pipeline, status, started_at, ended_at, params, error"
# The columns of a StepRow from ``step_runs s LEFT JOIN runs r`` (lineage selects steps too).
STEP_COLUMNS = "s.id, s.run_id, s.step, s.status, s.started_at, s.ended_at, s.error, r.pipeline"


@dataclass(frozen=True)
class RunRow:
    id: str
    pipeline: str
    status: str
    started_at: str | None
    ended_at: str | None
    params: str
    error: str | None


@dataclass(frozen=True)
class StepRow:
    id: str
    run_id: str
    step: str
    status: str
    started_at: str | None
    ended_at: str | None
    error: str | None
    pipeline: str | None


class RunQueries:
    """The ``runs``, ``step_runs`` and ``step_inputs`` tables (part of :class:`cas.index.Index`)."""

    conn: sqlite3.Connection  # this thread's connection (cas.index.db)

    # -- writes (appliers only) -------------------------------------------------

    def upsert_run_start(
        self, c: sqlite3.Connection, run_id: str, pipeline: str, started_at: str, params: dict[str, Any]
    ) -> None:
        # A start never moves the status: an end applied earlier stays the truth.
        c.execute(
            "INSERT INTO runs (id, pipeline, status, started_at, params) VALUES (?, ?, 'running', ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET pipeline = excluded.pipeline, params = excluded.params,"
            " started_at = COALESCE(MIN(runs.started_at, excluded.started_at), excluded.started_at)",
            (run_id, pipeline, started_at, json.dumps(params, sort_keys=True)),
        )

    def upsert_run_end(
        self, c: sqlite3.Connection, run_id: str, status: str, ended_at: str, error: str | None, seq: int
    ) -> None:
        c.execute(
            "INSERT INTO runs (id, pipeline, status, ended_at, error, end_seq) VALUES (?, '', ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status, ended_at = excluded.ended_at,"
            " error = excluded.error, end_seq = excluded.end_seq"
            " WHERE runs.end_seq IS NULL OR excluded.end_seq > runs.end_seq",
            (run_id, status, ended_at, error, seq),
        )

    def upsert_step_start(
        self, c: sqlite3.Connection, step_run_id: str, run_id: str, step: str, started_at: str
    ) -> None:
        c.execute(
            "INSERT INTO step_runs (id, run_id, step, status, started_at) VALUES (?, ?, ?, 'running', ?)"
            " ON CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, step = excluded.step,"
            " started_at = COALESCE(MIN(step_runs.started_at, excluded.started_at), excluded.started_at)",
            (step_run_id, run_id, step, started_at),
        )

    def upsert_step_end(
        self,
        c: sqlite3.Connection,
        step_run_id: str,
        run_id: str,
        step: str,
        status: str,
        ended_at: str,
        error: str | None,
        seq: int,
    ) -> None:
        c.execute(
            "INSERT INTO step_runs (id, run_id, step, status, ended_at, error, end_seq) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status, ended_at = excluded.ended_at,"
            " error = excluded.error, end_seq = excluded.end_seq"
            " WHERE step_runs.end_seq IS NULL OR excluded.end_seq > step_runs.end_seq",
            (step_run_id, run_id, step, status, ended_at, error, seq),
        )

    def insert_step_inputs(self, c: sqlite3.Connection, step_run_id: str, inputs: Iterable[tuple[str, int]]) -> None:
        c.executemany(
            "INSERT OR IGNORE INTO step_inputs (step_run_id, name, version) VALUES (?, ?, ?)",
            ((step_run_id, name, int(version)) for name, version in inputs),
        )

    # -- reads -----------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRow | None:
        row = self.conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunRow(*row) if row else None

    def list_runs(self, pipeline: str | None = None, status: str | None = None, limit: int | None = None) -> list[RunRow]:
        where: list[str] = []
        args: list[Any] = []
        if pipeline is not None:
            where.append("pipeline = ?")
            args.append(pipeline)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [RunRow(*r) for r in self.conn.execute(sql, args)]

    def get_step(self, step_run_id: str) -> StepRow | None:
        row = self.conn.execute(
            f"SELECT {STEP_COLUMNS} FROM step_runs s LEFT JOIN runs r ON r.id = s.run_id WHERE s.id = ?", (step_run_id,)
        ).fetchone()
        return StepRow(*row) if row else None

    def find_step(self, run_id: str, step: str) -> StepRow | None:
        row = self.conn.execute(
            f"SELECT {STEP_COLUMNS} FROM step_runs s LEFT JOIN runs r ON r.id = s.run_id"
            " WHERE s.run_id = ? AND s.step = ?",
            (run_id, step),
        ).fetchone()
        return StepRow(*row) if row else None

    def steps_of_run(self, run_id: str) -> list[StepRow]:
        rows = self.conn.execute(
            f"SELECT {STEP_COLUMNS} FROM step_runs s LEFT JOIN runs r ON r.id = s.run_id"
            " WHERE s.run_id = ? ORDER BY s.started_at, s.step",
            (run_id,),
        )
        return [StepRow(*r) for r in rows]

    def step_input_refs(self, step_run_id: str) -> list[tuple[str, int]]:
        """(name, version) of every input, whether or not this index holds the version."""
        rows = self.conn.execute(
            "SELECT name, version FROM step_inputs WHERE step_run_id = ? ORDER BY name, version", (step_run_id,)
        )
        return [(r[0], r[1]) for r in rows]

    def step_input_rows(self, step_run_id: str) -> list[VersionRow]:
        cols = ", ".join(f"v.{c.strip()}" for c in VERSION_COLUMNS.split(","))
        rows = self.conn.execute(
            f"SELECT {cols} FROM step_inputs si JOIN versions v ON v.name = si.name AND v.version = si.version"
            " WHERE si.step_run_id = ? ORDER BY v.name, v.version",
            (step_run_id,),
        )
        return [VersionRow(*r) for r in rows]

    def step_output_rows(self, step_run_id: str) -> list[VersionRow]:
        rows = self.conn.execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE step_run_id = ? ORDER BY name, version", (step_run_id,)
        )
        return [VersionRow(*r) for r in rows]

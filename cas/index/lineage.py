"""Lineage as recursive CTEs over the index.

The lineage graph is bipartite: versions and step runs.  A step run *consumed*
the versions in ``step_inputs`` and *produced* the versions whose
``versions.step_run_id`` names it.  Both walks below recurse over versions
only (one recursive term, so any SQLite >= 3.8.3 runs them) and then fetch the
step runs and edges between the versions found, with indexed lookups:

* up   - version -> its producer step -> that step's inputs -> ...
* down - version -> the steps that consumed it -> what they produced -> ...

``depth`` counts steps: depth 1 is the version, its producer (or consumers)
and their inputs (or outputs).  ``None`` walks to the end.  The walks use
``UNION``, so a cycle (possible when concurrent steps read each other's
outputs) still terminates: without a depth limit the depth column stays 0 and
every version is visited once.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from cas.index.runs import STEP_COLUMNS, StepRow
from cas.index.versions import VERSION_COLUMNS, VersionRow

__all__ = ["DOWN", "UP", "LineageQueries", "LineageRows"]

UP = "up"
DOWN = "down"

_V_COLS = ", ".join(f"v.{c.strip()}" for c in VERSION_COLUMNS.split(","))

# {step}: the join from a version to the versions one step away; {inc}: how depth grows.
_WALK = """
WITH RECURSIVE walk(name, version, depth) AS (
    SELECT ?, ?, 0
    UNION
    SELECT nxt.name, nxt.version, {inc}
      FROM walk w {step}
     WHERE w.depth < ?
)
SELECT w.name, w.version, MIN(w.depth), {v_cols}
  FROM walk w LEFT JOIN versions v ON v.name = w.name AND v.version = w.version
 GROUP BY w.name, w.version
"""

_UP_STEP = (
    "JOIN versions cur ON cur.name = w.name AND cur.version = w.version"
    " JOIN step_inputs nxt ON nxt.step_run_id = cur.step_run_id"
)
_DOWN_STEP = (
    "JOIN step_inputs si ON si.name = w.name AND si.version = w.version"
    " JOIN versions nxt ON nxt.step_run_id = si.step_run_id"
)


def _walk_sql(step: str, limited: bool) -> str:
    return _WALK.format(step=step, inc="w.depth + 1" if limited else "0", v_cols=_V_COLS)


_SQL = {
    (UP, True): _walk_sql(_UP_STEP, True),
    (UP, False): _walk_sql(_UP_STEP, False),
    (DOWN, True): _walk_sql(_DOWN_STEP, True),
    (DOWN, False): _walk_sql(_DOWN_STEP, False),
}


@dataclass
class LineageRows:
    """What a trace found: versions (``None`` row: consumed but unknown to this index), steps, edges."""

    versions: dict[tuple[str, int], VersionRow | None] = field(default_factory=dict)
    depths: dict[tuple[str, int], int] = field(default_factory=dict)
    steps: dict[str, StepRow] = field(default_factory=dict)
    inputs: list[tuple[tuple[str, int], str]] = field(default_factory=list)  # version -> step that consumed it
    outputs: list[tuple[str, tuple[str, int]]] = field(default_factory=list)  # step -> version it produced


class LineageQueries:
    """The walks over ``versions`` and ``step_inputs`` (part of :class:`cas.index.Index`)."""

    conn: sqlite3.Connection  # this thread's connection (cas.index.db)

    def trace(self, name: str, version: int, direction: str, depth: int | None) -> LineageRows:
        """Everything within ``depth`` steps of ``name@version``, walking ``direction``."""
        limited = depth is not None
        bound = depth if depth is not None else 1  # unlimited: depth stays 0, so "0 < 1" always holds
        rows = self.conn.execute(_SQL[(direction, limited)], (name, version, bound)).fetchall()
        out = LineageRows()
        for row in rows:
            key = (row[0], row[1])
            out.depths[key] = row[2]
            out.versions[key] = VersionRow(*row[3:]) if row[3] is not None else None
        # Versions whose neighbours were walked: all of them, unless at the depth limit.
        open_keys = [k for k, d in out.depths.items() if not limited or d < bound]
        if direction == UP:
            producers = {}
            for key in open_keys:
                row = out.versions[key]
                if row is not None and row.step_run_id:
                    producers[row.step_run_id] = key
            step_ids = sorted(producers)
            out.outputs = [
                (sid, key) for key in out.versions if (r := out.versions[key]) and (sid := r.step_run_id) in producers
            ]
            out.inputs = [
                ((n, v), sid)
                for sid, n, v in self.conn.execute(
                    "SELECT si.step_run_id, si.name, si.version FROM step_inputs si"
                    " JOIN json_each(?) j ON si.step_run_id = j.value",
                    (json.dumps(step_ids),),
                )
            ]
        else:
            consumed = self.conn.execute(
                "SELECT si.step_run_id, si.name, si.version FROM json_each(?) j"
                " JOIN step_inputs si ON si.name = json_extract(j.value, '$[0]')"
                " AND si.version = json_extract(j.value, '$[1]')",
                (json.dumps([list(k) for k in open_keys]),),
            ).fetchall()
            step_ids = sorted({sid for sid, _, _ in consumed})
            out.inputs = [((n, v), sid) for sid, n, v in consumed]
            wanted = set(step_ids)
            out.outputs = [
                (r.step_run_id, key)
                for key, r in out.versions.items()
                if r is not None and r.step_run_id in wanted
            ]
        if step_ids:
            for r in self.conn.execute(
                f"SELECT {STEP_COLUMNS} FROM json_each(?) j JOIN step_runs s ON s.id = j.value"
                " LEFT JOIN runs r ON r.id = s.run_id",
                (json.dumps(step_ids),),
            ):
                out.steps[r[0]] = StepRow(*r)
        # A step known only from a version's step_run_id (its records not synced here)
        # still gets a node, so no edge ever dangles.
        for sid in step_ids:
            if sid not in out.steps:
                out.steps[sid] = StepRow(sid, "", "", "unknown", None, None, None, None)
        out.inputs.sort()
        out.outputs.sort()
        return out

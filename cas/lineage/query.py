"""Tracing lineage: the graph of a version, up to what it came from or down to what came of it.

``store.lineage(version, direction="up")`` answers "where did this come from"
(the producing step, its inputs, their producers, ...); ``direction="down"``
answers "what was derived from this".  Both are one recursive walk in the
index (:meth:`cas.index.Index.trace`), no backend reads; the result is a
:class:`cas.lineage.graph.LineageGraph`.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from cas.index.lineage import DOWN, UP
from cas.lineage.graph import Edge, LineageGraph, RunNode, StepNode, VersionNode

if TYPE_CHECKING:
    from cas.index import LineageRows, RunRow, StepRow, VersionRow
    from cas.store.facade import Store
    from cas.version import ArtifactVersion

__all__ = ["DOWN", "UP", "LineageGraph", "build_graph", "live_events"]


def _hops(rows: LineageRows, root: tuple[str, int], direction: str) -> dict[tuple[str, int], int]:
    """Steps from the root to each version, walking the edges found (breadth first)."""
    nxt: dict[Any, list[Any]] = {}
    if direction == UP:
        for sid, key in rows.outputs:
            nxt.setdefault(key, []).append(sid)
        for key, sid in rows.inputs:
            nxt.setdefault(sid, []).append(key)
    else:
        for key, sid in rows.inputs:
            nxt.setdefault(key, []).append(sid)
        for sid, key in rows.outputs:
            nxt.setdefault(sid, []).append(key)
    dist: dict[Any, int] = {root: 0}
    frontier = [root]
    while frontier:
        new = []
        for node in frontier:
            for n in nxt.get(node, ()):
                if n not in dist:
                    dist[n] = dist[node] + (1 if isinstance(n, str) else 0)
                    new.append(n)
        frontier = new
    return {k: d for k, d in dist.items() if isinstance(k, tuple)}


def build_graph(store: Store, version: ArtifactVersion, direction: str = UP, depth: int | None = None) -> LineageGraph:
    """The lineage graph of ``version`` from the index (recursive CTEs, no backend reads)."""
    if direction not in (UP, DOWN):
        raise ValueError(f"direction must be {UP!r} or {DOWN!r}, not {direction!r}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ValueError(f"depth must be a non-negative int or None, not {depth!r}")
    rows = store.index.trace(version.name, version.version, direction, depth)
    hops = _hops(rows, (version.name, version.version), direction)
    versions: dict[str, VersionNode] = {}
    # Nearest first, then by name: exports and JSON read from the root outwards.
    for (name, number), row in sorted(rows.versions.items(), key=lambda kv: (hops.get(kv[0], 1 << 30), kv[0])):
        node = _version_node(name, number, row)
        versions[node.id] = node
    steps = {sid: _step_node(sid, r) for sid, r in sorted(rows.steps.items(), key=lambda kv: (kv[1].started_at or "", kv[0]))}
    edges = [Edge(f"{n}@{v}", sid, "input") for (n, v), sid in rows.inputs]
    edges += [Edge(sid, f"{n}@{v}", "output") for sid, (n, v) in rows.outputs]
    runs: dict[str, RunNode] = {}
    for s in steps.values():
        if s.run_id and s.run_id not in runs:
            r = store.index.get_run(s.run_id)
            if r is not None:
                runs[r.id] = _run_node(r)
    return LineageGraph(
        root=version.ref,
        direction=direction,
        depth=depth,
        versions=versions,
        steps=steps,
        edges=tuple(edges),
        runs=runs,
        namespace=store.url,
    )


def _version_node(name: str, number: int, row: VersionRow | None) -> VersionNode:
    if row is None:
        return VersionNode(name=name, version=number, known=False)
    return VersionNode(
        name=name,
        version=number,
        digest=row.digest,
        kind=row.kind,
        size=row.size,
        created_at=row.created_at,
        materializer=row.materializer,
        run_id=row.run_id,
        step_run_id=row.step_run_id,
        deleted=row.deleted_at is not None,
    )


def _step_node(sid: str, r: StepRow) -> StepNode:
    return StepNode(
        id=sid,
        run_id=r.run_id,
        pipeline=r.pipeline or "",
        step=r.step,
        status=r.status,
        started_at=r.started_at,
        ended_at=r.ended_at,
        error=r.error,
    )


def _run_node(r: RunRow) -> RunNode:
    return RunNode(r.id, r.pipeline, r.status, r.started_at, r.ended_at, json.loads(r.params or "{}"))


def live_events(store: Store, run_id: str, step_run_id: str | None, phase: str) -> list[dict[str, Any]]:
    """The OpenLineage event of one moment of a run (``phase``: ``"start"`` or ``"end"``):
    the pipeline run's, or with ``step_run_id`` the step's with its datasets - the same
    event :meth:`LineageGraph.to_openlineage` exports later."""
    index = store.index
    run = index.get_run(run_id)
    if run is None:
        return []
    versions: dict[str, VersionNode] = {}
    steps: dict[str, StepNode] = {}
    edges: list[Edge] = []
    if step_run_id is not None:
        row = index.get_step(step_run_id)
        if row is None:
            return []
        steps[step_run_id] = _step_node(step_run_id, row)
        found_by_kind = (("input", index.step_input_rows(step_run_id)), ("output", index.step_output_rows(step_run_id)))
        for kind, found in found_by_kind:
            for v in found:
                if kind == "output" and v.deleted_at is not None:
                    continue  # retracted (a step that failed after writing): not an output
                node = _version_node(v.name, v.version, v)
                versions[node.id] = node
                edges.append(Edge(node.id, step_run_id, kind) if kind == "input" else Edge(step_run_id, node.id, kind))
    graph = LineageGraph(
        root="",
        direction=UP,
        depth=None,
        versions=versions,
        steps=steps,
        edges=tuple(edges),
        runs={run.id: _run_node(run)} if step_run_id is None else {},
        namespace=store.url,
    )
    # OPENLINEAGE_NAMESPACE: the job namespace OpenLineage integrations (Airflow, dbt) read.
    events = graph.to_openlineage(job_namespace=os.environ.get("OPENLINEAGE_NAMESPACE") or "cas")
    return [e for e in events if (e["eventType"] == "START") == (phase == "start")]

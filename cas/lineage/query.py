"""The lineage graph of a version, and its exports: text, JSON, DOT, Mermaid, OpenLineage.

``store.lineage(version, direction="up")`` answers "where did this come from"
(the producing step, its inputs, their producers, ...); ``direction="down"``
answers "what was derived from this".  The graph is bipartite: version nodes
(id ``name@version``) and step-run nodes (id: the step run's UUID), joined by
``input`` edges (version -> step that consumed it) and ``output`` edges
(step -> version it produced).  Every edge's two ends are nodes of the
graph: a deleted version stays as a node marked ``deleted``, and an input
this index does not hold (a partial sync) as one marked ``known=False``.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from cas.core.units import human_bytes
from cas.index import lineage as lq
from cas.index import runs as rq

if TYPE_CHECKING:
    from cas.store.facade import Store
    from cas.version import ArtifactVersion

__all__ = ["LineageGraph", "VersionNode", "StepNode", "RunNode", "Edge", "build_graph", "UP", "DOWN", "FORMATS"]

UP = lq.UP
DOWN = lq.DOWN
FORMATS = ("text", "json", "dot", "mermaid", "openlineage")

# Pipeline runs with an id that is not a UUID get a stable one for OpenLineage.
_RUN_NAMESPACE = uuid.UUID("0b8e4f5e-7a43-5c2e-8f3b-6361732d6f6c")
OPENLINEAGE_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACET_SCHEMAS = {
    "parent": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "version": "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
    "outputStatistics": (
        "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json"
        "#/$defs/OutputStatisticsOutputDatasetFacet"
    ),
    "errorMessage": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
}
_OL_STATE = {"running": "START", "completed": "COMPLETE", "failed": "FAIL", "cancelled": "ABORT"}


@dataclass(frozen=True)
class VersionNode:
    name: str
    version: int
    digest: str | None = None
    kind: str | None = None
    size: int | None = None
    created_at: str | None = None
    materializer: str | None = None
    run_id: str | None = None
    step_run_id: str | None = None
    deleted: bool = False
    known: bool = True  # False: consumed by a step, but not in this index

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": "version", **asdict(self)}


@dataclass(frozen=True)
class StepNode:
    id: str
    run_id: str
    pipeline: str
    step: str
    status: str
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "step", **asdict(self)}


@dataclass(frozen=True)
class RunNode:
    """The pipeline run a step belongs to (not a graph node; context for exports)."""

    id: str
    pipeline: str
    status: str
    started_at: str | None = None
    ended_at: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


class Edge(NamedTuple):  # a tuple: graphs hold thousands, built in one go
    source: str
    target: str
    kind: str  # "input": version -> step; "output": step -> version

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "target": self.target, "type": self.kind}


@dataclass(frozen=True)
class LineageGraph:
    root: str
    direction: str
    depth: int | None
    versions: dict[str, VersionNode]
    steps: dict[str, StepNode]
    edges: tuple[Edge, ...]
    runs: dict[str, RunNode] = field(default_factory=dict)
    namespace: str = "cas"  # where the versions live (the store URL), for OpenLineage

    # -- navigation ------------------------------------------------------------------

    @property
    def nodes(self) -> list[VersionNode | StepNode]:
        """Every version and step node of the graph."""
        return [*self.versions.values(), *self.steps.values()]

    def producer(self, version_id: str) -> StepNode | None:
        """The step that produced version ``version_id``, or None (saved outside a run, or beyond the depth)."""
        for e in self.edges:
            if e.kind == "output" and e.target == version_id:
                return self.steps[e.source]
        return None

    def inputs_of(self, step_id: str) -> list[VersionNode]:
        """The versions step ``step_id`` consumed."""
        return [self.versions[e.source] for e in self.edges if e.kind == "input" and e.target == step_id]

    def outputs_of(self, step_id: str) -> list[VersionNode]:
        """The versions step ``step_id`` produced."""
        return [self.versions[e.target] for e in self.edges if e.kind == "output" and e.source == step_id]

    def consumers(self, version_id: str) -> list[StepNode]:
        """The steps that consumed version ``version_id``."""
        return [self.steps[e.target] for e in self.edges if e.kind == "input" and e.source == version_id]

    def refs(self) -> list[str]:
        """Every version in the graph but the root, ``name@version``, sorted."""
        return sorted(v for v in self.versions if v != self.root)

    # -- exports ---------------------------------------------------------------------

    def export(self, fmt: str, **kwargs: Any) -> str:
        """One of :data:`FORMATS` as text."""
        if fmt == "text":
            return self.to_text()
        if fmt == "json":
            return self.to_json()
        if fmt == "dot":
            return self.to_dot()
        if fmt == "mermaid":
            return self.to_mermaid()
        if fmt == "openlineage":
            return json.dumps(self.to_openlineage(**kwargs), indent=2, sort_keys=True)
        raise ValueError(f"unknown lineage format {fmt!r}; use one of {', '.join(FORMATS)}")

    def to_dict(self) -> dict[str, Any]:
        """Nodes and edges as plain JSON-ready data."""
        return {
            "root": self.root,
            "direction": self.direction,
            "depth": self.depth,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def to_text(self) -> str:
        """A readable tree from the root; a node reached twice is shown once, then referred to."""
        lines: list[str] = [_version_label(self.versions[self.root])]
        seen: set[str] = {self.root}

        def children(node_id: str) -> list[str]:
            if node_id in self.versions:
                if self.direction == UP:
                    return [e.source for e in self.edges if e.kind == "output" and e.target == node_id]
                return [e.target for e in self.edges if e.kind == "input" and e.source == node_id]
            if self.direction == UP:
                return [e.source for e in self.edges if e.kind == "input" and e.target == node_id]
            return [e.target for e in self.edges if e.kind == "output" and e.source == node_id]

        def walk(node_id: str, prefix: str) -> None:
            kids = children(node_id)
            for i, kid in enumerate(kids):
                last = i == len(kids) - 1
                branch, cont = ("└── ", "    ") if last else ("├── ", "│   ")
                if kid in self.steps:
                    verb = "produced by" if self.direction == UP else "consumed by"
                    label = f"{verb} {_step_label(self.steps[kid])}"
                else:
                    label = _version_label(self.versions[kid])
                if kid in seen:
                    lines.append(f"{prefix}{branch}{label}  (see above)")
                    continue
                seen.add(kid)
                lines.append(f"{prefix}{branch}{label}")
                walk(kid, prefix + cont)

        walk(self.root, "")
        if len(lines) == 1:
            lines.append("    (no recorded " + ("producer)" if self.direction == UP else "consumers)"))
        return "\n".join(lines)

    def to_dot(self) -> str:
        """Graphviz DOT, left to right: versions as boxes, steps as ellipses."""
        out = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
        for v in self.versions.values():
            attrs = {"shape": "box", "label": f"{v.id}\n{_size_text(v)}".rstrip()}
            if v.deleted or not v.known:
                attrs["style"] = "dashed"
            if v.id == self.root:
                attrs["penwidth"] = "2"
            out.append(f"  {_dot_id(v.id)} [{_dot_attrs(attrs)}];")
        for s in self.steps.values():
            attrs = {"shape": "ellipse", "label": f"{s.pipeline}/{s.step}\nrun {s.run_id[:8]} {s.status}"}
            if s.status == "failed":
                attrs["color"] = "red"
            out.append(f"  {_dot_id('step:' + s.id)} [{_dot_attrs(attrs)}];")
        for e in self.edges:
            src = e.source if e.kind == "input" else "step:" + e.source
            dst = "step:" + e.target if e.kind == "input" else e.target
            out.append(f"  {_dot_id(src)} -> {_dot_id(dst)};")
        out.append("}")
        return "\n".join(out)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart (renders on GitHub and in most Markdown viewers)."""
        ids: dict[str, str] = {}
        out = ["flowchart LR"]
        for i, v in enumerate(self.versions.values()):
            ids[v.id] = f"v{i}"
            label = v.id + (" (deleted)" if v.deleted else "") + ("" if v.known else " (unknown here)")
            out.append(f'    v{i}["{_mermaid_text(label)}"]')
        for i, s in enumerate(self.steps.values()):
            ids["step:" + s.id] = f"s{i}"
            out.append(f'    s{i}(["{_mermaid_text(f"{s.pipeline}/{s.step} · {s.status}")}"])')
        for e in self.edges:
            src = ids[e.source] if e.kind == "input" else ids["step:" + e.source]
            dst = ids["step:" + e.target] if e.kind == "input" else ids[e.target]
            out.append(f"    {src} --> {dst}")
        dashed = [ids[v.id] for v in self.versions.values() if v.deleted or not v.known]
        failed = [ids["step:" + s.id] for s in self.steps.values() if s.status == "failed"]
        if dashed:
            out.append("    classDef deleted stroke-dasharray: 5 5")
            out.append(f"    class {','.join(dashed)} deleted")
        if failed:
            out.append("    classDef failed stroke:#c00,color:#c00")
            out.append(f"    class {','.join(failed)} failed")
        return "\n".join(out)

    def to_openlineage(self, *, job_namespace: str = "cas", producer: str | None = None) -> list[dict[str, Any]]:
        """OpenLineage 2-0-2 RunEvents (plain dicts, ready to serialise or POST).

        Each pipeline run is a job named after the pipeline; each step run a
        job ``<pipeline>.<step>`` with a ``parent`` facet pointing at its
        pipeline run.  Every run gets a START event and, once ended, a
        COMPLETE / FAIL / ABORT event; step events carry their inputs and
        outputs as datasets in the store's namespace, with the version number
        in the ``version`` facet.  Events are ordered by time.
        """
        producer = producer or _default_producer()
        events: list[dict[str, Any]] = []
        for run in self.runs.values():
            job = {"namespace": job_namespace, "name": run.pipeline}
            events += _run_events(producer, openlineage_run_id(run.id), job, run.status, run.started_at, run.ended_at)
        for s in self.steps.values():
            job = {"namespace": job_namespace, "name": f"{s.pipeline}.{s.step}" if s.pipeline else s.step}
            parent = {
                "_producer": producer,
                "_schemaURL": _FACET_SCHEMAS["parent"],
                "run": {"runId": openlineage_run_id(s.run_id), "facets": {}},
                "job": {"namespace": job_namespace, "name": s.pipeline or s.run_id, "facets": {}},
            }
            facets: dict[str, Any] = {"parent": parent}
            inputs = [self._ol_dataset(v, producer, output=False) for v in self.inputs_of(s.id)]
            outputs = [self._ol_dataset(v, producer, output=True) for v in self.outputs_of(s.id)]
            end_facets = dict(facets)
            if s.status == "failed" and s.error:
                end_facets["errorMessage"] = {
                    "_producer": producer,
                    "_schemaURL": _FACET_SCHEMAS["errorMessage"],
                    "message": s.error,
                    "programmingLanguage": "python",
                }
            events += _run_events(
                producer, s.id, job, s.status, s.started_at, s.ended_at, facets, end_facets, inputs, outputs
            )
        events.sort(key=lambda e: (e["eventTime"], e["eventType"] != "START"))
        return events

    def _ol_dataset(self, v: VersionNode, producer: str, *, output: bool) -> dict[str, Any]:
        ds: dict[str, Any] = {
            "namespace": self.namespace,
            "name": v.name,
            "facets": {
                "version": {
                    "_producer": producer,
                    "_schemaURL": _FACET_SCHEMAS["version"],
                    # the content's digest: the same bytes are the same dataset version anywhere
                    "datasetVersion": f"blake3:{v.digest}" if v.digest else str(v.version),
                }
            },
        }
        if output:
            ds["outputFacets"] = {}
            if v.size is not None:
                ds["outputFacets"]["outputStatistics"] = {
                    "_producer": producer,
                    "_schemaURL": _FACET_SCHEMAS["outputStatistics"],
                    "size": v.size,
                }
        else:
            ds["inputFacets"] = {}
        return ds

    def openlineage_events(self, **kwargs: Any) -> list[Any]:
        """The same events as ``openlineage.client.event_v2.RunEvent`` objects, for
        ``OpenLineageClient.emit`` (needs the ``openlineage`` extra)."""
        return [openlineage_event(e) for e in self.to_openlineage(**kwargs)]


def _run_events(
    producer: str,
    run_id: str,
    job: dict[str, Any],
    status: str,
    started_at: str | None,
    ended_at: str | None,
    facets: dict[str, Any] | None = None,
    end_facets: dict[str, Any] | None = None,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    def event(kind: str, when: str, run_facets: dict[str, Any], outs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "eventType": kind,
            "eventTime": when,
            "producer": producer,
            "schemaURL": OPENLINEAGE_SCHEMA,
            "run": {"runId": run_id, "facets": run_facets},
            "job": {**job, "facets": {}},
            "inputs": list(inputs or []),
            "outputs": outs,
        }

    events = []
    start = started_at or ended_at
    if start:
        events.append(event("START", start, dict(facets or {}), [] if status != "running" else list(outputs or [])))
    if status != "running" and ended_at:
        events.append(event(_OL_STATE.get(status, "OTHER"), ended_at, dict(end_facets or facets or {}), list(outputs or [])))
    return events


def openlineage_event(event: dict[str, Any]) -> Any:
    """Build an ``openlineage.client.event_v2.RunEvent`` from one of our event dicts.

    The library's attrs classes validate as they are built (UUID run ids, ISO
    times, URIs), so this is also how the tests check the event shape.
    """
    try:
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import (
            dataset_version_dataset,
            error_message_run,
            output_statistics_output_dataset,
            parent_run,
        )
    except ImportError:
        raise ImportError("OpenLineage objects need the openlineage extra: pip install 'cas-store[openlineage]'") from None

    producer = event["producer"]

    def run_facets(facets: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "parent" in facets:
            p = facets["parent"]
            out["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=p["run"]["runId"]),
                job=parent_run.Job(namespace=p["job"]["namespace"], name=p["job"]["name"]),
                producer=p["_producer"],
            )
        if "errorMessage" in facets:
            m = facets["errorMessage"]
            out["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=m["message"], programmingLanguage=m["programmingLanguage"], producer=m["_producer"]
            )
        unknown = set(facets) - set(out)
        if unknown:
            raise ValueError(f"unknown run facets {sorted(unknown)}")
        return out

    def dataset_facets(d: dict[str, Any]) -> dict[str, Any]:
        f = d["facets"]["version"]
        return {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=f["datasetVersion"], producer=f["_producer"])}

    inputs = [InputDataset(namespace=d["namespace"], name=d["name"], facets=dataset_facets(d)) for d in event["inputs"]]
    outputs = []
    for d in event["outputs"]:
        out_facets: dict[str, Any] = {}
        if "outputStatistics" in d.get("outputFacets", {}):
            st = d["outputFacets"]["outputStatistics"]
            out_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                size=st["size"], producer=st["_producer"]
            )
        outputs.append(
            OutputDataset(namespace=d["namespace"], name=d["name"], facets=dataset_facets(d), outputFacets=out_facets)
        )
    return RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        producer=producer,
        run=Run(runId=event["run"]["runId"], facets=run_facets(event["run"]["facets"])),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"]),
        inputs=inputs,
        outputs=outputs,
    )


def openlineage_run_id(run_id: str) -> str:
    """``run_id`` if it is a UUID, else a UUID derived from it (stable everywhere)."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(_RUN_NAMESPACE, run_id))


def _default_producer() -> str:
    from cas import __version__

    return f"urn:cas-store:{__version__}"




def _size_text(v: VersionNode) -> str:
    if not v.known:
        return "not in this index"
    text = f"{v.kind} {human_bytes(v.size or 0)}"
    return text + (" deleted" if v.deleted else "")


def _version_label(v: VersionNode) -> str:
    if not v.known:
        return f"{v.id}  [not in this index]"
    digest = (v.digest or "")[:12]
    return f"{v.id}  {v.kind} {human_bytes(v.size or 0)}  {digest}" + ("  [deleted]" if v.deleted else "")


def _step_label(s: StepNode) -> str:
    run = f"run {s.run_id[:8]}" if s.run_id else "run ?"
    return f"step {s.step} ({run}, {s.status})"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_attrs(attrs: dict[str, str]) -> str:
    parts = []
    for k, v in attrs.items():
        escaped = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{k}="{escaped}"')
    return ", ".join(parts)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


# -- building ----------------------------------------------------------------------------


def _hops(rows: lq.LineageRows, root: tuple[str, int], direction: str) -> dict[tuple[str, int], int]:
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
    conn = store.index.conn
    rows = lq.trace(conn, version.name, version.version, direction, depth)
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
            r = rq.get_run(conn, s.run_id)
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


def _version_node(name: str, number: int, row: Any) -> VersionNode:
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


def _step_node(sid: str, r: Any) -> StepNode:
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


def _run_node(r: Any) -> RunNode:
    return RunNode(r.id, r.pipeline, r.status, r.started_at, r.ended_at, json.loads(r.params or "{}"))


def live_events(store: Store, run_id: str, step_run_id: str | None, phase: str) -> list[dict[str, Any]]:
    """The OpenLineage event of one moment of a run (``phase``: ``"start"`` or ``"end"``):
    the pipeline run's, or with ``step_run_id`` the step's with its datasets - the same
    event :meth:`LineageGraph.to_openlineage` exports later."""
    conn = store.index.conn
    run = rq.get_run(conn, run_id)
    if run is None:
        return []
    versions: dict[str, VersionNode] = {}
    steps: dict[str, StepNode] = {}
    edges: list[Edge] = []
    if step_run_id is not None:
        row = rq.get_step(conn, step_run_id)
        if row is None:
            return []
        steps[step_run_id] = _step_node(step_run_id, row)
        for kind, found in (("input", rq.step_input_rows(conn, step_run_id)), ("output", rq.step_output_rows(conn, step_run_id))):
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

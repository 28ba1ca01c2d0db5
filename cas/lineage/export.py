"""Writing a lineage graph out: text, JSON, DOT, Mermaid and OpenLineage events.

OpenLineage: each pipeline run is a job named after the pipeline, each step run
a job ``<pipeline>.<step>`` whose ``parent`` facet points at its pipeline run;
datasets live in the store's namespace with the content digest as their version.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from cas.core.about import __version__
from cas.core.units import human_bytes
from cas.index.lineage import UP

if TYPE_CHECKING:
    from cas.lineage.graph import LineageGraph, StepNode, VersionNode

__all__ = [
    "FORMATS",
    "OPENLINEAGE_SCHEMA",
    "export",
    "openlineage_event",
    "openlineage_run_id",
    "to_dot",
    "to_mermaid",
    "to_openlineage",
    "to_text",
]

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


def export(graph: LineageGraph, fmt: str, **kwargs: Any) -> str:
    """One of :data:`FORMATS` as text."""
    if fmt == "text":
        return to_text(graph)
    if fmt == "json":
        return graph.to_json()
    if fmt == "dot":
        return to_dot(graph)
    if fmt == "mermaid":
        return to_mermaid(graph)
    if fmt == "openlineage":
        return json.dumps(to_openlineage(graph, **kwargs), indent=2, sort_keys=True)
    raise ValueError(f"unknown lineage format {fmt!r}; use one of {', '.join(FORMATS)}")


def to_text(graph: LineageGraph) -> str:
    """A readable tree from the root; a node reached twice is shown once, then referred to."""
    lines: list[str] = [_version_label(graph.versions[graph.root])]
    seen: set[str] = {graph.root}

    def children(node_id: str) -> list[str]:
        if node_id in graph.versions:
            if graph.direction == UP:
                return [e.source for e in graph.edges if e.kind == "output" and e.target == node_id]
            return [e.target for e in graph.edges if e.kind == "input" and e.source == node_id]
        if graph.direction == UP:
            return [e.source for e in graph.edges if e.kind == "input" and e.target == node_id]
        return [e.target for e in graph.edges if e.kind == "output" and e.source == node_id]

    def walk(node_id: str, prefix: str) -> None:
        kids = children(node_id)
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            branch, cont = ("└── ", "    ") if last else ("├── ", "│   ")
            if kid in graph.steps:
                verb = "produced by" if graph.direction == UP else "consumed by"
                label = f"{verb} {_step_label(graph.steps[kid])}"
            else:
                label = _version_label(graph.versions[kid])
            if kid in seen:
                lines.append(f"{prefix}{branch}{label}  (see above)")
                continue
            seen.add(kid)
            lines.append(f"{prefix}{branch}{label}")
            walk(kid, prefix + cont)

    walk(graph.root, "")
    if len(lines) == 1:
        lines.append("    (no recorded " + ("producer)" if graph.direction == UP else "consumers)"))
    return "\n".join(lines)


def to_dot(graph: LineageGraph) -> str:
    """Graphviz DOT, left to right: versions as boxes, steps as ellipses."""
    out = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for v in graph.versions.values():
        attrs = {"shape": "box", "label": f"{v.id}\n{_size_text(v)}".rstrip()}
        if v.deleted or not v.known:
            attrs["style"] = "dashed"
        if v.id == graph.root:
            attrs["penwidth"] = "2"
        out.append(f"  {_dot_id(v.id)} [{_dot_attrs(attrs)}];")
    for s in graph.steps.values():
        attrs = {"shape": "ellipse", "label": f"{s.pipeline}/{s.step}\nrun {s.run_id[:8]} {s.status}"}
        if s.status == "failed":
            attrs["color"] = "red"
        out.append(f"  {_dot_id('step:' + s.id)} [{_dot_attrs(attrs)}];")
    for e in graph.edges:
        src = e.source if e.kind == "input" else "step:" + e.source
        dst = "step:" + e.target if e.kind == "input" else e.target
        out.append(f"  {_dot_id(src)} -> {_dot_id(dst)};")
    out.append("}")
    return "\n".join(out)


def to_mermaid(graph: LineageGraph) -> str:
    """A Mermaid flowchart (renders on GitHub and in most Markdown viewers)."""
    ids: dict[str, str] = {}
    out = ["flowchart LR"]
    for i, v in enumerate(graph.versions.values()):
        ids[v.id] = f"v{i}"
        label = v.id + (" (deleted)" if v.deleted else "") + ("" if v.known else " (unknown here)")
        out.append(f'    v{i}["{_mermaid_text(label)}"]')
    for i, s in enumerate(graph.steps.values()):
        ids["step:" + s.id] = f"s{i}"
        out.append(f'    s{i}(["{_mermaid_text(f"{s.pipeline}/{s.step} · {s.status}")}"])')
    for e in graph.edges:
        src = ids[e.source] if e.kind == "input" else ids["step:" + e.source]
        dst = ids["step:" + e.target] if e.kind == "input" else ids[e.target]
        out.append(f"    {src} --> {dst}")
    dashed = [ids[v.id] for v in graph.versions.values() if v.deleted or not v.known]
    failed = [ids["step:" + s.id] for s in graph.steps.values() if s.status == "failed"]
    if dashed:
        out.append("    classDef deleted stroke-dasharray: 5 5")
        out.append(f"    class {','.join(dashed)} deleted")
    if failed:
        out.append("    classDef failed stroke:#c00,color:#c00")
        out.append(f"    class {','.join(failed)} failed")
    return "\n".join(out)


def to_openlineage(graph: LineageGraph, *, job_namespace: str = "cas", producer: str | None = None) -> list[dict[str, Any]]:
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
    for run in graph.runs.values():
        job = {"namespace": job_namespace, "name": run.pipeline}
        events += _run_events(producer, openlineage_run_id(run.id), job, run.status, run.started_at, run.ended_at)
    for s in graph.steps.values():
        job = {"namespace": job_namespace, "name": f"{s.pipeline}.{s.step}" if s.pipeline else s.step}
        parent = {
            "_producer": producer,
            "_schemaURL": _FACET_SCHEMAS["parent"],
            "run": {"runId": openlineage_run_id(s.run_id), "facets": {}},
            "job": {"namespace": job_namespace, "name": s.pipeline or s.run_id, "facets": {}},
        }
        facets: dict[str, Any] = {"parent": parent}
        inputs = [_dataset(graph, v, producer, output=False) for v in graph.inputs_of(s.id)]
        outputs = [_dataset(graph, v, producer, output=True) for v in graph.outputs_of(s.id)]
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


def _dataset(graph: LineageGraph, v: VersionNode, producer: str, *, output: bool) -> dict[str, Any]:
    ds: dict[str, Any] = {
        "namespace": graph.namespace,
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

"""The lineage graph: version and step-run nodes joined by input and output edges.

The graph is bipartite: version nodes (id ``name@version``) and step-run nodes
(id: the step run's UUID), joined by ``input`` edges (version -> step that
consumed it) and ``output`` edges (step -> version it produced).  Every edge's
two ends are nodes of the graph: a deleted version stays as a node marked
``deleted``, and an input this index does not hold (a partial sync) as one
marked ``known=False``.  :mod:`cas.lineage.query` builds graphs;
:mod:`cas.lineage.export` writes them out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from cas.lineage import export

__all__ = ["Edge", "LineageGraph", "RunNode", "StepNode", "VersionNode"]


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

    # -- exports (cas.lineage.export) ---------------------------------------------------

    def export(self, fmt: str, **kwargs: Any) -> str:
        """One of :data:`cas.lineage.export.FORMATS` as text."""
        return export.export(self, fmt, **kwargs)

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
        return export.to_text(self)

    def to_dot(self) -> str:
        """Graphviz DOT, left to right: versions as boxes, steps as ellipses."""
        return export.to_dot(self)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart (renders on GitHub and in most Markdown viewers)."""
        return export.to_mermaid(self)

    def to_openlineage(self, *, job_namespace: str = "cas", producer: str | None = None) -> list[dict[str, Any]]:
        """OpenLineage 2-0-2 RunEvents (plain dicts, ready to serialise or POST); see
        :func:`cas.lineage.export.to_openlineage`."""
        return export.to_openlineage(self, job_namespace=job_namespace, producer=producer)

    def openlineage_events(self, **kwargs: Any) -> list[Any]:
        """The same events as ``openlineage.client.event_v2.RunEvent`` objects, for
        ``OpenLineageClient.emit`` (needs the ``openlineage`` extra)."""
        return [export.openlineage_event(e) for e in self.to_openlineage(**kwargs)]

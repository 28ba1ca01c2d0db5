"""Lay out a lineage graph as an SVG picture, top to bottom.

Ancestors (``up``) sit above the root, descendants (``down``) below it; each
row is one hop from the root, alternating versions and step runs, so a chain
reads as a column and a step with many inputs as a row.  Rows are ordered by
the mean position of each node's neighbours in the row nearer the root
(one barycenter pass), which keeps most edges from crossing.  No layout
library needed: the graph is bipartite and layered by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cas.core.units import human_bytes
from cas.lineage.graph import LineageGraph, StepNode, VersionNode

__all__ = ["Drawing", "layout"]

NODE_W, NODE_H = 250, 46
GAP_X, GAP_Y = 24, 44
MARGIN = 16
LABEL_CHARS = 34


@dataclass
class Box:
    id: str
    kind: str  # "version" or "step"
    lines: tuple[str, str]
    title: str
    href: str | None
    classes: str
    x: int = 0
    y: int = 0


@dataclass
class Drawing:
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    paths: list[tuple[str, str]] = field(default_factory=list)  # (svg path, css class)
    node_w: int = NODE_W
    node_h: int = NODE_H

    @property
    def versions(self) -> int:
        return sum(1 for b in self.boxes if b.kind == "version")

    @property
    def steps(self) -> int:
        return sum(1 for b in self.boxes if b.kind == "step")


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else "…" + text[-(LABEL_CHARS - 1) :]


def _version_box(v: VersionNode, root: str, href: Callable[[Any], str]) -> Box:
    if not v.known:
        detail, classes = "not in this index", "version unknown"
    else:
        detail = f"{v.kind} · {human_bytes(v.size or 0)}" + (" · deleted" if v.deleted else "")
        classes = "version" + (" deleted" if v.deleted else "")
    if v.id == root:
        classes += " root"
    return Box(v.id, "version", (_short(v.id), detail), f"{v.id} ({detail})", href(v) if v.known else None, classes)


def _step_box(s: StepNode, href: Callable[[Any], str]) -> Box:
    label = f"{s.pipeline}/{s.step}" if s.pipeline else s.step
    detail = f"{s.status} · run {s.run_id[:8]}"
    title = f"step {label}, run {s.run_id}, {s.status}" + (f": {s.error}" if s.error else "")
    return Box("step:" + s.id, "step", (_short(label), detail), title, href(s) if s.run_id else None, f"step {s.status}")


def _levels(g: LineageGraph, sign: int) -> dict[str, int]:
    """Row of each node: hops from the root (breadth first), negative upwards."""
    nxt: dict[str, list[str]] = {}
    for e in g.edges:
        src = e.source if e.kind == "input" else "step:" + e.source
        dst = "step:" + e.target if e.kind == "input" else e.target
        a, b = (dst, src) if sign < 0 else (src, dst)  # walk against the data flow when going up
        nxt.setdefault(a, []).append(b)
    rows = {g.root: 0}
    frontier = [g.root]
    while frontier:
        new = []
        for node in frontier:
            for n in nxt.get(node, ()):
                if n not in rows:
                    rows[n] = rows[node] + sign
                    new.append(n)
        frontier = new
    return rows


def layout(
    root: str,
    up: LineageGraph | None,
    down: LineageGraph | None,
    *,
    version_href: Callable[[Any], str],
    step_href: Callable[[Any], str],
) -> Drawing:
    boxes: dict[str, Box] = {}
    rows: dict[str, int] = {}
    edges: set[tuple[str, str]] = set()  # (upstream node, downstream node): data flows down
    for g, sign in ((up, -1), (down, 1)):
        if g is None:
            continue
        for v in g.versions.values():
            boxes.setdefault(v.id, _version_box(v, root, version_href))
        for s in g.steps.values():
            boxes.setdefault("step:" + s.id, _step_box(s, step_href))
        for node, row in _levels(g, sign).items():
            rows.setdefault(node, row)
        for e in g.edges:
            edges.add((e.source, "step:" + e.target) if e.kind == "input" else ("step:" + e.source, e.target))
    for node in boxes:
        rows.setdefault(node, 0)  # not reached from the root (cannot happen in a traced graph)
    by_row: dict[int, list[str]] = {}
    for node, row in rows.items():
        if node in boxes:
            by_row.setdefault(row, []).append(node)
    neighbours: dict[str, list[str]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    position: dict[str, float] = {root: 0.0}
    order = sorted(by_row, key=lambda r: (abs(r), r))  # outwards from the root
    for row in order:
        nodes = by_row[row]
        nearer = row + 1 if row < 0 else row - 1

        def weight(n: str, nearer: int = nearer) -> tuple[float, str]:
            placed = [position[m] for m in neighbours.get(n, ()) if rows.get(m) == nearer and m in position]
            return (sum(placed) / len(placed) if placed else 0.0, n)

        nodes.sort(key=weight)
        for i, n in enumerate(nodes):
            position[n] = i - (len(nodes) - 1) / 2
    widest = max(len(n) for n in by_row.values())
    width = 2 * MARGIN + widest * NODE_W + (widest - 1) * GAP_X
    top = min(by_row)
    for row, nodes in by_row.items():
        span = len(nodes) * NODE_W + (len(nodes) - 1) * GAP_X
        left = (width - span) // 2
        for i, n in enumerate(nodes):
            boxes[n].x = left + i * (NODE_W + GAP_X)
            boxes[n].y = MARGIN + (row - top) * (NODE_H + GAP_Y)
    height = 2 * MARGIN + len(by_row) * NODE_H + (len(by_row) - 1) * GAP_Y
    paths = []
    for a, b in sorted(edges):
        if a not in boxes or b not in boxes:
            continue
        s, t = boxes[a], boxes[b]
        x1, x2 = s.x + NODE_W // 2, t.x + NODE_W // 2
        if t.y > s.y:
            y1, y2 = s.y + NODE_H, t.y
        else:  # drawn against the flow (a node reached first the other way): leave from the top
            y1, y2 = s.y, t.y + NODE_H
        mid = (y1 + y2) / 2
        cls = "edge failed" if "failed" in (s.classes + t.classes) else "edge"
        paths.append((f"M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2}", cls))
    ordered = sorted(boxes.values(), key=lambda b: (b.y, b.x))
    return Drawing(width, height, ordered, paths)

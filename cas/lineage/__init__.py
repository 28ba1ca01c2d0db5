"""Lineage: recording runs and steps as they happen, and answering where a version came from and went.

record (active runs, steps) publishes events (events); runs reads them back; query traces graphs (graph), export writes them.
The names below are imported on first use (cas.core.lazy): a store that only applies run events
(cas.lineage.events) does not load graph and export."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cas.core.lazy import lazy_exports

if TYPE_CHECKING:
    from cas.lineage.export import openlineage_event, openlineage_run_id
    from cas.lineage.graph import LineageGraph

__all__ = ["LineageGraph", "openlineage_event", "openlineage_run_id"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "LineageGraph": "cas.lineage.graph",
    "openlineage_event": "cas.lineage.export",
    "openlineage_run_id": "cas.lineage.export",
})

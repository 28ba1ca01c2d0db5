"""Lineage: recording runs and steps as they happen, and answering where a version came from and went.

record (active runs, steps) publishes events (events); runs reads them back; query traces graphs (graph), export writes them."""

from cas.lineage.export import openlineage_event, openlineage_run_id
from cas.lineage.graph import LineageGraph

__all__ = ["LineageGraph", "openlineage_event", "openlineage_run_id"]

"""Lineage: recording runs and steps as they happen, and answering where a version came from and went.

Recording publishes run events through the store; queries read the index; export speaks OpenLineage."""

from cas.lineage.query import LineageGraph, openlineage_event, openlineage_run_id

__all__ = ["LineageGraph", "openlineage_event", "openlineage_run_id"]

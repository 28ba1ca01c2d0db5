"""The run family of records: run and step events (docs/format.md, Records).

Their schemas, which ``cas.core.records`` decodes them against; they are built
by ``cas.lineage.record`` and applied by ``cas.lineage.events``.  Every event of
one run is claimed under ``refs/runs/<run id>/<seq>``.  Pure: no I/O.
"""

from __future__ import annotations

from cas.core import fields as f
from cas.core.names import MAX_VERSION

__all__ = ["END_STATUSES", "SCHEMAS"]

#: how a run or a step can end
END_STATUSES = ("completed", "failed", "cancelled")

_STATUS = f.one_of(*END_STATUSES)
_ERROR = f.optional(f.text)
_RUN_EVENT = {"run_id": f.segment, "seq": f.integer(0, MAX_VERSION)}
_STEP_EVENT = {**_RUN_EVENT, "step_run_id": f.segment, "step": f.segment}

#: type -> (ref kind it lives under, required fields, optional fields)
SCHEMAS: dict[str, tuple[str, dict[str, f.Check], dict[str, f.Check]]] = {
    "run_start": ("runs", {**_RUN_EVENT, "pipeline": f.segment, "started_at": f.time}, {"params": f.optional(f.json_map)}),
    "run_end": ("runs", {**_RUN_EVENT, "status": _STATUS, "ended_at": f.time}, {"error": _ERROR}),
    "step_start": ("runs", {**_STEP_EVENT, "started_at": f.time}, {"inputs": f.optional(f.inputs)}),
    "step_input": ("runs", {**_STEP_EVENT, "created_at": f.time}, {"inputs": f.optional(f.inputs)}),
    "step_end": ("runs", {**_STEP_EVENT, "status": _STATUS, "ended_at": f.time}, {"error": _ERROR}),
}

"""Run events: the records a run publishes, and how each one becomes index rows.

Every event is an immutable record under ``refs/runs/<run id>/<seq>``
(invariant 3), claimed create-only like an alias move: seq 0 is the run's
start and is what makes a run id unique across machines; later events take
the next free seq.  Record types:

    run_start   run_id, pipeline, params, started_at              (seq 0)
    step_start  run_id, step_run_id, step, started_at, inputs
    step_input  run_id, step_run_id, step, inputs, created_at     (a load inside a step)
    step_end    run_id, step_run_id, step, status, ended_at, error
    run_end     run_id, status, ended_at, error

A version saved by a step carries ``run_id`` and ``step_run_id`` in its own
record, so "what produced this" needs no run record at all.  A step run id
is derived from (run id, step name), so two processes that save outputs of
the same step of the same run agree on it without talking to each other.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from cas.core.records import now_iso
from cas.core.refs import run_ref

if TYPE_CHECKING:
    from types import ModuleType

    from cas.store.facade import Store

__all__ = [
    "APPLIERS",
    "publish_run_end",
    "publish_run_start",
    "publish_step_end",
    "publish_step_input",
    "publish_step_start",
    "run_known",
    "step_run_id_for",
]

# Fixed namespace for step run ids: uuid5(namespace, "<run id>/<step>").
_STEP_NAMESPACE = uuid.UUID("6f0f2c53-4c1e-5d53-9a55-6361732d7275")


def _live() -> ModuleType:
    """OpenLineage's live events, imported once a run is recorded: applying events never needs them."""
    from cas.lineage import live

    return live


def step_run_id_for(run_id: str, step: str) -> str:
    """The id of step ``step`` of run ``run_id``: the same on every machine."""
    return str(uuid.uuid5(_STEP_NAMESPACE, f"{run_id}/{step}"))


# -- publishing events -------------------------------------------------------------


def _publish(store: Store, run_id: str, record: dict[str, Any], *, seq: int | None = None) -> bool:
    """Claim a ref for ``record`` under the run; with a fixed ``seq``, False if it is taken."""
    first = seq if seq is not None else store.index.max_ref_seq(run_ref(run_id, 0)[:-1]) + 1
    return store.publisher.publish(record, "seq", first, lambda n: run_ref(run_id, n), exact=seq is not None)


def run_known(store: Store, run_id: str) -> bool:
    """Has run ``run_id`` started, as this index or (asked now) the backend knows?"""
    if store.index.get_run(run_id) is not None:
        return True
    store.publisher.learn(run_ref(run_id, 0))
    return store.index.get_run(run_id) is not None


def publish_run_start(store: Store, pipeline: str, params: dict[str, Any], run_id: str) -> bool:
    """Start run ``run_id``; False if that id is taken (here or on any machine)."""
    record = {"type": "run_start", "run_id": run_id, "pipeline": pipeline, "params": params, "started_at": now_iso()}
    started = _publish(store, run_id, record, seq=0)
    if started:
        _live().emit_run(store, run_id, "start")
    return started


def publish_run_end(store: Store, run_id: str, status: str, error: str | None) -> None:
    record = {"type": "run_end", "run_id": run_id, "status": status, "ended_at": now_iso(), "error": error}
    _publish(store, run_id, record)
    _live().emit_run(store, run_id, "end")


def publish_step_start(store: Store, run_id: str, step: str, inputs: list[tuple[str, int]]) -> str:
    """Start step ``step`` of the run with these inputs; returns its step run id."""
    step_run_id = step_run_id_for(run_id, step)
    record = {
        "type": "step_start",
        "run_id": run_id,
        "step_run_id": step_run_id,
        "step": step,
        "started_at": now_iso(),
        "inputs": [list(i) for i in inputs],
    }
    _publish(store, run_id, record)
    _live().emit_step(store, run_id, step_run_id, "start")
    return step_run_id


def publish_step_input(store: Store, run_id: str, step_run_id: str, step: str, inputs: list[tuple[str, int]]) -> None:
    """Record more inputs of a step; those the index already holds are left out (nothing new: no record)."""
    known = set(store.index.step_input_refs(step_run_id))
    new = [i for i in dict.fromkeys(inputs) if i not in known]
    if not new:
        return
    record = {
        "type": "step_input",
        "run_id": run_id,
        "step_run_id": step_run_id,
        "step": step,
        "inputs": [list(i) for i in new],
        "created_at": now_iso(),
    }
    _publish(store, run_id, record)


def publish_step_end(store: Store, run_id: str, step_run_id: str, step: str, status: str, error: str | None) -> None:
    record = {
        "type": "step_end",
        "run_id": run_id,
        "step_run_id": step_run_id,
        "step": step,
        "status": status,
        "ended_at": now_iso(),
        "error": error,
    }
    _publish(store, run_id, record)
    _live().emit_step(store, run_id, step_run_id, "end")


# -- appliers: records -> index rows (registered into store.APPLIERS) -------------------


def _apply_run_start(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    store.index.upsert_run_start(c, record["run_id"], record["pipeline"], record["started_at"], record.get("params") or {})


def _apply_run_end(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    store.index.upsert_run_end(
        c, record["run_id"], record["status"], record["ended_at"], record.get("error"), record.get("seq", 0)
    )


def _apply_step_start(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    store.index.upsert_step_start(c, record["step_run_id"], record["run_id"], record["step"], record["started_at"])
    store.index.insert_step_inputs(c, record["step_run_id"], [tuple(i) for i in record.get("inputs") or ()])


def _apply_step_input(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    store.index.insert_step_inputs(c, record["step_run_id"], [tuple(i) for i in record.get("inputs") or ()])


def _apply_step_end(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    store.index.upsert_step_end(
        c,
        record["step_run_id"],
        record["run_id"],
        record["step"],
        record["status"],
        record["ended_at"],
        record.get("error"),
        record.get("seq", 0),
    )


APPLIERS = {
    "run_start": _apply_run_start,
    "run_end": _apply_run_end,
    "step_start": _apply_step_start,
    "step_input": _apply_step_input,
    "step_end": _apply_step_end,
}

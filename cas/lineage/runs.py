"""What a run was: ``PipelineRun`` and ``StepRun``, read from the index.

A step run lists the versions it consumed and produced; a pipeline run its
steps in start order.  ``get_run`` and ``list_runs`` refresh first: a run's
status changes on other machines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cas.errors import InvalidNameError, RunError
from cas.version import ArtifactVersion

if TYPE_CHECKING:
    from cas.index import RunRow, StepRow
    from cas.store.facade import Store

__all__ = ["PipelineRun", "StepRun", "get_run", "list_runs", "producer_inputs", "step_run"]


@dataclass(frozen=True)
class StepRun:
    """One step of one run: what it consumed and what it produced."""

    id: str
    run_id: str
    pipeline: str
    step: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    inputs: tuple[ArtifactVersion, ...]
    outputs: tuple[ArtifactVersion, ...]
    unknown_inputs: tuple[str, ...] = ()  # consumed versions this index does not hold (partial sync)

    def to_dict(self) -> dict[str, Any]:
        """The step run as JSON-ready data (versions as refs)."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "step": self.step,
            "status": self.status,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "error": self.error,
            "inputs": [v.ref for v in self.inputs] + list(self.unknown_inputs),
            "outputs": [v.ref for v in self.outputs],
        }


@dataclass(frozen=True)
class PipelineRun:
    """One run of a pipeline and its steps, in start order."""

    id: str
    pipeline: str
    status: str
    params: dict[str, Any]
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    steps: tuple[StepRun, ...]

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None while the run is still open."""
        if self.started_at and self.ended_at:
            return (self.ended_at - self.started_at).total_seconds()
        return None

    @property
    def outputs(self) -> tuple[ArtifactVersion, ...]:
        """Every version the run's steps produced, in step order."""
        return tuple(v for s in self.steps for v in s.outputs)

    def step(self, name: str) -> StepRun:
        """The step run named ``name``; ``KeyError`` if the run has none."""
        for s in self.steps:
            if s.step == name:
                return s
        raise KeyError(f"run {self.id} has no step {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The run, with its steps, as JSON-ready data."""
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "params": self.params,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration": self.duration,
            "error": self.error,
            "steps": [s.to_dict() for s in self.steps],
        }


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _step_run(store: Store, row: StepRow) -> StepRun:
    index = store.index
    inputs = tuple(ArtifactVersion.from_row(store, r) for r in index.step_input_rows(row.id))
    have = {(v.name, v.version) for v in inputs}
    unknown = tuple(f"{n}@{v}" for n, v in index.step_input_refs(row.id) if (n, v) not in have)
    outputs = tuple(ArtifactVersion.from_row(store, r) for r in index.step_output_rows(row.id))
    return StepRun(
        id=row.id,
        run_id=row.run_id,
        pipeline=row.pipeline or "",
        step=row.step,
        status=row.status,
        started_at=_dt(row.started_at),
        ended_at=_dt(row.ended_at),
        error=row.error,
        inputs=inputs,
        outputs=outputs,
        unknown_inputs=unknown,
    )


def _pipeline_run(store: Store, row: RunRow) -> PipelineRun:
    steps = tuple(_step_run(store, s) for s in store.index.steps_of_run(row.id))
    return PipelineRun(
        id=row.id,
        pipeline=row.pipeline,
        status=row.status,
        params=json.loads(row.params or "{}"),
        started_at=_dt(row.started_at),
        ended_at=_dt(row.ended_at),
        error=row.error,
        steps=steps,
    )


def get_run(store: Store, run_id: str) -> PipelineRun:
    if not isinstance(run_id, str) or not run_id:
        raise InvalidNameError(f"invalid run id {run_id!r}")
    store.refresh()  # a run's status changes: catch up with other machines first (one read if nothing new)
    row = store.index.get_run(run_id)
    if row is None:
        raise RunError(f"no run {run_id}")
    return _pipeline_run(store, row)


def list_runs(store: Store, pipeline: str | None = None, status: str | None = None, limit: int | None = None) -> list[PipelineRun]:
    if limit is not None and limit < 0:
        raise InvalidNameError("limit must be >= 0")
    store.refresh()
    return [_pipeline_run(store, r) for r in store.index.list_runs(pipeline, status, limit)]


def step_run(store: Store, step_run_id: str | None) -> StepRun | None:
    if not step_run_id:
        return None
    row = store.index.get_step(step_run_id)
    return _step_run(store, row) if row is not None else None


def producer_inputs(store: Store, version: ArtifactVersion) -> list[ArtifactVersion]:
    if not version.step_run_id:
        return []
    return [ArtifactVersion.from_row(store, r) for r in store.index.step_input_rows(version.step_run_id)]

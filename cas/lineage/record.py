"""Runs and steps: which step of which run consumed and produced each version.

Recording::

    with store.run("churn", params={"lr": 0.1}) as run:
        with run.step("train", inputs=[features_v]) as step:
            model_v = step.save(model, "model")        # churn/train/model, produced by this step
            extra = step.load("churn/prep/extra")     # recorded as an input of this step

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

import json
import uuid
from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cas.core.names import check_segment, parse_ref
from cas.core.records import END_STATUSES, check_json_map, now_iso, run_ref
from cas.errors import InvalidNameError, InvalidValueError, RunError, RunNotFoundError
from cas.index import runs as q
from cas.lineage import live as live_lineage
from cas.version import ArtifactVersion

if TYPE_CHECKING:
    from cas.store.facade import Store

__all__ = [
    "ActiveRun",
    "ActiveStep",
    "PipelineRun",
    "StepRun",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "step_run_id_for",
    "current_step",
]

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"

# Fixed namespace for step run ids: uuid5(namespace, "<run id>/<step>").
_STEP_NAMESPACE = uuid.UUID("6f0f2c53-4c1e-5d53-9a55-6361732d7275")
_MAX_ERROR = 500

_CURRENT_STEP: ContextVar[ActiveStep | None] = ContextVar("cas_current_step", default=None)


def step_run_id_for(run_id: str, step: str) -> str:
    """The id of step ``step`` of run ``run_id``: the same on every machine."""
    return str(uuid.uuid5(_STEP_NAMESPACE, f"{run_id}/{step}"))


def current_step() -> ActiveStep | None:
    """The step whose ``with`` block is running in this context, if any."""
    return _CURRENT_STEP.get()


def _check_run_id(run_id: str) -> str:
    return check_segment(run_id, "run id")


def _check_params(params: dict[str, Any] | None) -> dict[str, Any]:
    return check_json_map(params, "params")


def _error_text(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_MAX_ERROR]


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


# -- publishing events -------------------------------------------------------------


def _publish(store: Store, run_id: str, record: dict[str, Any], *, seq: int | None = None) -> bool:
    """Claim a ref for ``record`` under the run; with a fixed ``seq``, False if it is taken."""
    first = seq if seq is not None else q.max_ref_seq(store.index.conn, run_ref(run_id, 0)[:-1]) + 1
    claimed = store._claim(record, "seq", first, lambda n: run_ref(run_id, n), exact=seq is not None)
    if claimed is None:
        return False
    store._commit(claimed[0], claimed[1], record)
    return True


def _run_known(store: Store, run_id: str) -> bool:
    if q.get_run(store.index.conn, run_id) is not None:
        return True
    store._learn_ref(run_ref(run_id, 0))
    return q.get_run(store.index.conn, run_id) is not None


def _start_run(store: Store, pipeline: str, params: dict[str, Any], run_id: str) -> bool:
    record = {"type": "run_start", "run_id": run_id, "pipeline": pipeline, "params": params, "started_at": now_iso()}
    started = _publish(store, run_id, record, seq=0)
    if started:
        live_lineage.emit_run(store, run_id, "start")
    return started


def _end_run(store: Store, run_id: str, status: str, error: str | None) -> None:
    record = {"type": "run_end", "run_id": run_id, "status": status, "ended_at": now_iso(), "error": error}
    _publish(store, run_id, record)
    live_lineage.emit_run(store, run_id, "end")


def _start_step(store: Store, run_id: str, step: str, inputs: list[tuple[str, int]]) -> str:
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
    live_lineage.emit_step(store, run_id, step_run_id, "start")
    return step_run_id


def _add_inputs(store: Store, run_id: str, step_run_id: str, step: str, inputs: list[tuple[str, int]]) -> None:
    known = set(q.step_input_refs(store.index.conn, step_run_id))
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


def _end_step(store: Store, run_id: str, step_run_id: str, step: str, status: str, error: str | None) -> None:
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
    live_lineage.emit_step(store, run_id, step_run_id, "end")


def _check_status(status: str) -> str:
    if status not in END_STATUSES:
        raise InvalidValueError(f"status must be one of {', '.join(END_STATUSES)}, not {status!r}")
    return status


def resolve_inputs(store: Store, inputs: Iterable[Any]) -> list[tuple[str, int]]:
    """(name, version) of each input: an ArtifactVersion or a ``name@version`` string.

    A string is resolved now (``latest`` and aliases become a number); an
    ArtifactVersion already deleted stays a valid input of what it fed.
    """
    if isinstance(inputs, (str, ArtifactVersion)):
        inputs = [inputs]
    out: list[tuple[str, int]] = []
    for item in inputs:
        if isinstance(item, ArtifactVersion):
            if store.index.get_version(item.name, item.version) is None:
                raise RunError(f"input {item.ref} is not a version of this store")
            out.append((item.name, item.version))
        elif isinstance(item, str):
            aname, spec = parse_ref(item)
            v = store.get_artifact_version(str(aname), spec)
            out.append((v.name, v.version))
        else:
            raise InvalidValueError(f"an input must be an ArtifactVersion or a 'name@version' string, not {type(item).__name__}")
    return list(dict.fromkeys(out))


# -- recording handles ---------------------------------------------------------------


class ActiveRun:
    """A run being recorded.  Use as a context manager: leaving it ends the run,
    ``failed`` if the block raised or any of its steps failed."""

    def __init__(self, store: Store, pipeline: str, *, params: dict[str, Any] | None = None, run_id: str | None = None):
        self.store = store
        self.pipeline = check_segment(pipeline, "pipeline name")
        self.params = _check_params(params)
        self.id = _check_run_id(run_id) if run_id is not None else str(uuid.uuid4())
        self.status = RUNNING
        self._steps: dict[str, ActiveStep] = {}
        self._failed_steps: list[str] = []
        if not _start_run(store, self.pipeline, self.params, self.id):
            raise RunError(f"run {self.id} already exists; pick another run id")

    def __repr__(self) -> str:
        return f"ActiveRun({self.pipeline!r}, id={self.id!r}, status={self.status!r})"

    def step(self, name: str, inputs: Iterable[Any] = ()) -> ActiveStep:
        """Start step ``name`` of this run, consuming ``inputs`` (versions or ``name@version``)."""
        self._check_open()
        check_segment(name, "step name")
        if name in self._steps or q.find_step(self.store.index.conn, self.id, name) is not None:
            raise RunError(f"step {name!r} already ran in run {self.id}; give each step of a run its own name")
        step = ActiveStep(self, name, resolve_inputs(self.store, inputs))
        self._steps[name] = step
        return step

    def end(self, status: str | None = None, error: str | None = None) -> None:
        """Record the end of the run (default: failed if a step failed, else completed)."""
        self._check_open()
        if status is None:
            status = FAILED if self._failed_steps else COMPLETED
        _check_status(status)
        if error is None and self._failed_steps:
            error = f"step {self._failed_steps[0]} failed"
        for step in self._steps.values():
            if step.status == RUNNING:  # a step left open: the run ends it
                step.end(FAILED if status != COMPLETED else COMPLETED)
        _end_run(self.store, self.id, status, error)
        self.status = status

    def info(self) -> PipelineRun:
        return self.store.get_run(self.id)

    def _check_open(self) -> None:
        if self.status != RUNNING:
            raise RunError(f"run {self.id} has ended ({self.status})")

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.status != RUNNING:
            return
        if exc is not None:
            self.end(FAILED, _error_text(exc))
        else:
            self.end()


class ActiveStep:
    """A step being recorded.  Inside its ``with`` block, reading any version of
    the same store (``load``, ``read_bytes``, ``open``, ``download``) records it as
    an input, and ``store.save`` attaches what it saves to this step."""

    def __init__(self, run: ActiveRun, name: str, inputs: list[tuple[str, int]]):
        self.run = run
        self.store = run.store
        self.name = name
        self.status = RUNNING
        self.id = _start_step(self.store, run.id, name, inputs)
        self._inputs: set[tuple[str, int]] = set(inputs)
        self._token: Token | None = None

    def __repr__(self) -> str:
        return f"ActiveStep({self.name!r}, run={self.run.id!r}, status={self.status!r})"

    @property
    def link(self) -> dict[str, str]:
        """What a version record carries to name its producer."""
        return {"run_id": self.run.id, "step_run_id": self.id}

    def _check_open(self) -> None:
        if self.status != RUNNING:
            raise RunError(f"step {self.name} of run {self.run.id} has ended ({self.status})")

    def save(self, data: Any, name: str, **kwargs: Any) -> ArtifactVersion:
        """Save an output.  A bare ``name`` becomes ``<pipeline>/<step>/<name>``."""
        self._check_open()
        full = name if "/" in name else f"{self.run.pipeline}/{self.name}/{name}"
        for key in ("run_id", "step", "inputs"):
            if key in kwargs:
                raise RunError(f"step.save() takes no {key}=: the step is the producer")
        return self.store.save(data, full, _extra=self.link, **kwargs)

    def get_artifact_version(self, name: str, version: int | str | None = None) -> ArtifactVersion:
        """Find a version and record it as an input of this step."""
        v = self.store.get_artifact_version(name, version)
        self.add_inputs(v)
        return v

    def load(self, name: str, version: int | str | None = None, *, allow_pickle: bool = False) -> Any:
        """Load a version's object and record it as an input of this step."""
        return self.get_artifact_version(name, version).load(allow_pickle=allow_pickle)

    def add_inputs(self, *versions: Any) -> None:
        """Record versions (or ``name@version`` strings) as inputs of this step."""
        self._check_open()
        self._add_refs(resolve_inputs(self.store, versions))

    def _add_refs(self, refs: list[tuple[str, int]]) -> None:
        refs = [r for r in refs if r not in self._inputs]
        if refs:
            _add_inputs(self.store, self.run.id, self.id, self.name, refs)
            self._inputs.update(refs)

    def _note_read(self, version: ArtifactVersion) -> None:
        key = (version.name, version.version)
        if self.status != RUNNING or key in self._inputs or version.step_run_id == self.id:
            return  # already known, or this step's own output: not an input
        _add_inputs(self.store, self.run.id, self.id, self.name, [key])
        self._inputs.add(key)

    def end(self, status: str = COMPLETED, error: str | None = None) -> None:
        self._check_open()
        _check_status(status)
        _end_step(self.store, self.run.id, self.id, self.name, status, error)
        self.status = status
        if status == FAILED:
            self.run._failed_steps.append(self.name)

    def __enter__(self) -> ActiveStep:
        self._check_open()
        self._token = _CURRENT_STEP.set(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._token is not None:
            _CURRENT_STEP.reset(self._token)
            self._token = None
        if self.status == RUNNING:
            if exc is not None:
                self.end(FAILED, _error_text(exc))
            else:
                self.end(COMPLETED)


def note_read(version: ArtifactVersion) -> None:
    """Called on every content read: record it as an input of the active step, if any."""
    step = _CURRENT_STEP.get()
    if step is not None and version.store is not None and step.store.store_id == version.store.store_id:
        step._note_read(version)


# -- the plain-function form (frameworks) --------------------------------------------------


def link_for_save(
    store: Store, pipeline: str, default_step: str, run_id: str | None, step: str | None, inputs: Iterable[Any]
) -> _ActiveLink | _PlainLink | None:
    """Validate the lineage arguments of ``store.save``; nothing is written until ``commit``.

    No arguments inside an active step of this store: the step is the producer.
    """
    inputs = list(inputs) if not isinstance(inputs, (str, ArtifactVersion)) else [inputs]
    active = _CURRENT_STEP.get()
    if active is not None and active.store.store_id != store.store_id:
        active = None
    if run_id is None:
        if active is None:
            if step is not None or inputs:
                raise RunError("step= and inputs= need run_id= (or an active step of this store)")
            return None
        if step is not None and step != active.name:
            raise RunError(f"step={step!r} needs run_id=: the active step is {active.name!r}")
        return _ActiveLink(active, resolve_inputs(store, inputs))
    run_id = _check_run_id(run_id)
    step = check_segment(step if step is not None else default_step, "step name")
    return _PlainLink(store, run_id, step, pipeline, resolve_inputs(store, inputs))


@dataclass
class _ActiveLink:
    step: ActiveStep
    inputs: list[tuple[str, int]]

    def commit(self) -> dict[str, str]:
        self.step._check_open()
        if self.inputs:
            self.step._add_refs(self.inputs)
        return self.step.link


@dataclass
class _PlainLink:
    store: Store
    run_id: str
    step: str
    pipeline: str
    inputs: list[tuple[str, int]]

    def commit(self) -> dict[str, str]:
        ensure_run(self.store, self.run_id, self.pipeline)
        return {"run_id": self.run_id, "step_run_id": ensure_step(self.store, self.run_id, self.step, self.inputs)}


def ensure_run(store: Store, run_id: str, pipeline: str) -> None:
    """Start run ``run_id`` unless it exists (here or, already, in the backend)."""
    if not _run_known(store, run_id):
        _start_run(store, check_segment(pipeline, "pipeline name"), {}, run_id)


def ensure_step(store: Store, run_id: str, step: str, inputs: list[tuple[str, int]] = ()) -> str:  # type: ignore[assignment]
    """The step run id of ``step`` in ``run_id``, starting it if needed; adds new inputs."""
    step_run_id = step_run_id_for(run_id, step)
    if q.get_step(store.index.conn, step_run_id) is None:
        store.refresh()  # another process may have started it
    if q.get_step(store.index.conn, step_run_id) is None:
        _start_step(store, run_id, step, list(inputs))
    elif inputs:
        _add_inputs(store, run_id, step_run_id, step, list(inputs))
    return step_run_id


def end_step(store: Store, run_id: str, step: str, status: str = COMPLETED, error: str | None = None) -> None:
    _check_status(status)
    step_run_id = step_run_id_for(_check_run_id(run_id), check_segment(step, "step name"))
    if q.get_step(store.index.conn, step_run_id) is None:
        store.refresh()  # another process may have started it
        if q.get_step(store.index.conn, step_run_id) is None:
            raise RunNotFoundError(f"run {run_id} has no step {step!r}")
    _end_step(store, run_id, step_run_id, step, status, error)


def end_run(store: Store, run_id: str, status: str = COMPLETED, error: str | None = None) -> None:
    _check_status(status)
    if not _run_known(store, _check_run_id(run_id)):
        raise RunNotFoundError(f"no run {run_id}")
    _end_run(store, run_id, status, error)


# -- query results ---------------------------------------------------------------------


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


def _step_run(store: Store, row: q.StepRow) -> StepRun:
    conn = store.index.conn
    inputs = tuple(ArtifactVersion.from_row(store, r) for r in q.step_input_rows(conn, row.id))
    have = {(v.name, v.version) for v in inputs}
    unknown = tuple(f"{n}@{v}" for n, v in q.step_input_refs(conn, row.id) if (n, v) not in have)
    outputs = tuple(ArtifactVersion.from_row(store, r) for r in q.step_output_rows(conn, row.id))
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


def _pipeline_run(store: Store, row: q.RunRow) -> PipelineRun:
    steps = tuple(_step_run(store, s) for s in q.steps_of_run(store.index.conn, row.id))
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
    row = q.get_run(store.index.conn, run_id)
    if row is None:
        raise RunNotFoundError(f"no run {run_id}")
    return _pipeline_run(store, row)


def list_runs(store: Store, pipeline: str | None = None, status: str | None = None, limit: int | None = None) -> list[PipelineRun]:
    if limit is not None and limit < 0:
        raise InvalidValueError("limit must be >= 0")
    store.refresh()
    return [_pipeline_run(store, r) for r in q.list_runs(store.index.conn, pipeline, status, limit)]


def step_run(store: Store, step_run_id: str | None) -> StepRun | None:
    if not step_run_id:
        return None
    row = q.get_step(store.index.conn, step_run_id)
    return _step_run(store, row) if row is not None else None


def producer_inputs(store: Store, version: ArtifactVersion) -> list[ArtifactVersion]:
    if not version.step_run_id:
        return []
    return [ArtifactVersion.from_row(store, r) for r in q.step_input_rows(store.index.conn, version.step_run_id)]


# -- appliers: records -> index rows (registered into store.APPLIERS) -------------------


def _apply_run_start(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    q.upsert_run_start(c, record["run_id"], record["pipeline"], record["started_at"], record.get("params") or {})


def _apply_run_end(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    q.upsert_run_end(c, record["run_id"], record["status"], record["ended_at"], record.get("error"), record.get("seq", 0))


def _apply_step_start(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    q.upsert_step_start(c, record["step_run_id"], record["run_id"], record["step"], record["started_at"])
    q.insert_step_inputs(c, record["step_run_id"], [tuple(i) for i in record.get("inputs") or ()])


def _apply_step_input(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    q.insert_step_inputs(c, record["step_run_id"], [tuple(i) for i in record.get("inputs") or ()])


def _apply_step_end(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    q.upsert_step_end(
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

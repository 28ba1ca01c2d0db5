"""Recording runs and steps: which step of which run consumed and produced each version.

Recording::

    with store.run("churn", params={"lr": 0.1}) as run:
        with run.step("train", inputs=[features_v]) as step:
            model_v = step.save(model, "model")        # churn/train/model, produced by this step
            extra = step.load("churn/prep/extra")     # recorded as an input of this step

Each handle publishes run events (:mod:`cas.lineage.events`) as it goes;
what a run was is read back as :mod:`cas.lineage.runs` models.  Inside a
step's ``with`` block every content read of the same store is recorded as
an input (``note_read``); frameworks that cannot hold a ``with`` block use
the plain functions (``link_for_save``, ``ensure_run``, ``ensure_step``,
``end_step``, ``end_run``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cas.core.names import check_segment, parse_ref
from cas.core.records import END_STATUSES, check_json_map
from cas.errors import InvalidNameError, RunError
from cas.lineage import events
from cas.lineage.events import step_run_id_for
from cas.lineage.runs import PipelineRun, StepRun
from cas.version import ArtifactVersion

# Reached through this module by cas.store.facade and the integrations until they
# import cas.lineage.runs and cas.lineage.events themselves (issue 10 merge).
from cas.lineage.events import APPLIERS  # noqa: F401  isort: skip
from cas.lineage.runs import get_run, list_runs, step_run  # noqa: F401  isort: skip

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

_MAX_ERROR = 500

_CURRENT_STEP: ContextVar[ActiveStep | None] = ContextVar("cas_current_step", default=None)


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


def _check_status(status: str) -> str:
    if status not in END_STATUSES:
        raise InvalidNameError(f"status must be one of {', '.join(END_STATUSES)}, not {status!r}")
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
            raise InvalidNameError(f"an input must be an ArtifactVersion or a 'name@version' string, not {type(item).__name__}")
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
        if not events.publish_run_start(store, self.pipeline, self.params, self.id):
            raise RunError(f"run {self.id} already exists; pick another run id")

    def __repr__(self) -> str:
        return f"ActiveRun({self.pipeline!r}, id={self.id!r}, status={self.status!r})"

    def step(self, name: str, inputs: Iterable[Any] = ()) -> ActiveStep:
        """Start step ``name`` of this run, consuming ``inputs`` (versions or ``name@version``)."""
        self._check_open()
        check_segment(name, "step name")
        if name in self._steps or self.store.index.find_step(self.id, name) is not None:
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
        events.publish_run_end(self.store, self.id, status, error)
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
        self.id = events.publish_step_start(self.store, run.id, name, inputs)
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
            events.publish_step_input(self.store, self.run.id, self.id, self.name, refs)
            self._inputs.update(refs)

    def _note_read(self, version: ArtifactVersion) -> None:
        key = (version.name, version.version)
        if self.status != RUNNING or key in self._inputs or version.step_run_id == self.id:
            return  # already known, or this step's own output: not an input
        events.publish_step_input(self.store, self.run.id, self.id, self.name, [key])
        self._inputs.add(key)

    def end(self, status: str = COMPLETED, error: str | None = None) -> None:
        self._check_open()
        _check_status(status)
        events.publish_step_end(self.store, self.run.id, self.id, self.name, status, error)
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
    if not events.run_known(store, run_id):
        events.publish_run_start(store, check_segment(pipeline, "pipeline name"), {}, run_id)


def ensure_step(store: Store, run_id: str, step: str, inputs: list[tuple[str, int]] = ()) -> str:  # type: ignore[assignment]
    """The step run id of ``step`` in ``run_id``, starting it if needed; adds new inputs."""
    step_run_id = step_run_id_for(run_id, step)
    if store.index.get_step(step_run_id) is None:
        store.refresh()  # another process may have started it
    if store.index.get_step(step_run_id) is None:
        events.publish_step_start(store, run_id, step, list(inputs))
    elif inputs:
        events.publish_step_input(store, run_id, step_run_id, step, list(inputs))
    return step_run_id


def end_step(store: Store, run_id: str, step: str, status: str = COMPLETED, error: str | None = None) -> None:
    _check_status(status)
    step_run_id = step_run_id_for(_check_run_id(run_id), check_segment(step, "step name"))
    if store.index.get_step(step_run_id) is None:
        store.refresh()  # another process may have started it
        if store.index.get_step(step_run_id) is None:
            raise RunError(f"run {run_id} has no step {step!r}")
    events.publish_step_end(store, run_id, step_run_id, step, status, error)


def end_run(store: Store, run_id: str, status: str = COMPLETED, error: str | None = None) -> None:
    _check_status(status)
    if not events.run_known(store, _check_run_id(run_id)):
        raise RunError(f"no run {run_id}")
    events.publish_run_end(store, run_id, status, error)

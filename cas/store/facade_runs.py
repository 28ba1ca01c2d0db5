"""The Store's runs and lineage: recording runs and steps, reading them back, lineage graphs.

A mixin of :class:`cas.store.facade.Store`, kept apart so the facade stays about
opening a store and saving and finding versions.  Each method delegates to
``cas.lineage`` (recording: ``record``; reading: ``runs``; graphs: ``query``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cas.errors import InvalidValueError, VersionDeletedError
from cas.index.lineage import UP
from cas.lineage import record as _record
from cas.lineage import runs as _runs
from cas.version import ArtifactVersion

if TYPE_CHECKING:
    # imported by the method that uses it: show, log and ls never load graphs
    from cas.lineage.graph import LineageGraph
    from cas.store.facade import Store

__all__ = ["RunsAndLineage"]


class RunsAndLineage:
    """``Store`` methods about runs, steps and lineage (``self`` is a Store)."""

    def run(self: Store, pipeline: str, *, params: dict[str, Any] | None = None, run_id: str | None = None) -> _record.ActiveRun:
        """Start recording a run of ``pipeline`` (id generated unless given; a taken id is refused)."""
        return _record.ActiveRun(self, pipeline, params=params, run_id=run_id)

    def get_run(self: Store, run_id: str) -> _runs.PipelineRun:
        """A run with its steps, each with the versions it consumed and produced."""
        return _runs.get_run(self, run_id)

    def list_runs(
        self: Store, pipeline: str | None = None, *, status: str | None = None, limit: int | None = None
    ) -> list[_runs.PipelineRun]:
        """Runs, newest first."""
        return _runs.list_runs(self, pipeline, status, limit)

    def step_run(self: Store, step_run_id: str | None) -> _runs.StepRun | None:
        """The step run with this id (None for None: a version saved outside any run)."""
        return _runs.step_run(self, step_run_id)

    def producer_inputs(self: Store, version: ArtifactVersion) -> list[ArtifactVersion]:
        """The versions the step that produced ``version`` consumed (deleted ones included, marked)."""
        return _runs.producer_inputs(self, version)

    def end_step(self: Store, run_id: str, step: str, status: str = _record.COMPLETED, error: str | None = None) -> None:
        """End a step recorded through ``save(..., run_id=, step=)`` (the framework form)."""
        _record.end_step(self, run_id, step, status, error)

    def end_run(self: Store, run_id: str, status: str = _record.COMPLETED, error: str | None = None) -> None:
        """End a run recorded through ``save(..., run_id=)`` (the framework form)."""
        _record.end_run(self, run_id, status, error)

    def materialize(self: Store, obj: Any, name: str, run_id: str, step_name: str, project_name: str = "default") -> str:
        """FlowyML's ``ArtifactStore.materialize``: save ``obj`` as
        ``<project_name>/<step_name>/<name>``, produced by that step of run
        ``run_id``; returns the version's ``cas://`` path."""
        v = self.save(obj, f"{project_name}/{step_name}/{name}", run_id=run_id, step=step_name)
        return f"cas://{v.name}/{v.version}"

    def lineage(
        self: Store, version: ArtifactVersion | str, direction: str = UP, depth: int | None = None
    ) -> LineageGraph:
        """The lineage graph of a version: ``"up"`` to what it came from, ``"down"``
        to what was derived from it, ``depth`` steps at most (None: all)."""
        if isinstance(version, str):
            try:
                version = self.get_artifact_version(version)
            except VersionDeletedError as e:  # a deleted version keeps its lineage
                version = ArtifactVersion.from_row(self, self.versions.committed(e.name, e.version))
        elif not isinstance(version, ArtifactVersion):
            raise InvalidValueError(f"lineage needs an ArtifactVersion or 'name@version', not {type(version).__name__}")
        from cas.lineage.query import build_graph
        return build_graph(self, version, direction, depth)

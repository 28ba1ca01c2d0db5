"""The cas artifact store: ZenML's filesystem calls answered by cas folders.

Paths map onto cas names as :mod:`.layout` says.  Step outputs carry lineage:
``prepare_step_run`` starts a cas run (id = ZenML's pipeline run id, pipeline
= ZenML's pipeline name) and step (its inputs = the cas versions behind the
step's input artifacts); versions of the step's output folders record it as
their producer.  ZenML writes a step's outputs *after* ``cleanup_step_run``
and may still fail while doing so, so the step ends with ZenML's own final
status, read when the next step is prepared or at exit; a step that did not
complete keeps no live version (see docs/zenml.md).
"""

# No ``from __future__ import annotations``: ZenML sanitizes the arguments
# annotated ``PathType`` by comparing the annotation objects themselves.
from collections.abc import Callable, Iterable
from typing import Any, cast

from zenml.artifact_stores import BaseArtifactStore
from zenml.artifact_stores.base_artifact_store import PathType

from cas.integrations._shared.folders import FolderKey, Folders
from cas.integrations._shared.segments import encode
from cas.integrations._shared.space import PathSpace
from cas.integrations._shared.stores import shared_store
from cas.integrations.zenml.config import CasArtifactStoreConfig
from cas.integrations.zenml.layout import ALIAS, ZenMLLayout
from cas.lineage import record as cas_runs
from cas.store.facade import Store

__all__ = ["CasArtifactStore"]

# The step now running, per namespace: set by prepare_step_run, read by writes.
_ACTIVE: dict[str, dict[str, Any]] = {}


def _store_for(config: CasArtifactStoreConfig) -> tuple[Store, Folders]:
    """The process's store for ``config`` (never kept on the pydantic model)."""
    return shared_store(config.store, index=config.index, **config.options())


class CasArtifactStore(BaseArtifactStore):
    """Artifact store over a cas store (``path`` = ``cas://<namespace>``)."""

    @property
    def config(self) -> CasArtifactStoreConfig:
        return cast(CasArtifactStoreConfig, self._config)

    @property
    def space(self) -> PathSpace:
        store, folders = _store_for(self.config)
        layout = ZenMLLayout(PathSpace.split(self.path))
        return PathSpace(folders, layout, self._lineage_context)

    # -- lineage ---------------------------------------------------------------

    def _lineage_context(self, key: FolderKey, inner: str) -> tuple[dict[str, Any], dict[str, str] | None]:
        active = _ACTIVE.get(self.path)
        # Only a step's output folders (alias zenml.<step run id>.<id>) are its products.
        if active is None or not key.alias.startswith(f"{ALIAS}.{active['zenml_step_run_id']}."):
            return {}, None
        return {"zenml": dict(active["metadata"])}, active["lineage"]

    def prepare_step_run(self, info: Any) -> None:
        _settle()  # the previous step's outputs are stored by now: record how it ended
        try:
            store, _ = _store_for(self.config)
            run_id = str(info.run_id)
            pipeline = encode(info.pipeline.name)
            step = encode(info.pipeline_step_name)
            cas_runs.ensure_run(store, run_id, pipeline)
            step_run_id = cas_runs.ensure_step(store, run_id, step, self._input_refs(info))
        except Exception as e:  # lineage must never break a pipeline
            from zenml.logger import get_logger

            get_logger(__name__).warning("cas: could not record lineage for step %s: %s", info.pipeline_step_name, e)
            return
        _ACTIVE[self.path] = {
            "zenml_step_run_id": str(info.step_run_id),
            "lineage": {"run_id": run_id, "step_run_id": step_run_id},
            "metadata": {
                "pipeline": info.pipeline.name,
                "run": info.run_name,
                "run_id": run_id,
                "step": info.pipeline_step_name,
                "step_run_id": str(info.step_run_id),
            },
            "cas_step": step,
            "config": self.config,
        }

    def _input_refs(self, info: Any) -> list[tuple[str, int]]:
        """(name, version) of the cas versions behind the step's input artifacts."""
        refs = []
        space = self.space
        inputs = getattr(info.step_run, "inputs", {}) or {}
        for value in inputs.values():
            for artifact in value if isinstance(value, list) else [value]:
                uri = getattr(artifact, "uri", None)
                if not uri or not str(uri).startswith(self.path):
                    continue
                loc = space.layout.locate(space.split(uri))
                version = space.folders.current(loc[0]) if loc else None
                if version is not None:
                    refs.append((version.name, version.version))
        return refs

    def cleanup_step_run(self, info: Any, step_failed: bool) -> None:
        # ZenML calls this *before* it stores the step's outputs, and storing them
        # can still fail (a materializer raising mid-write).  So a step that did not
        # raise stays open and producing; its final status is ZenML's, read when the
        # next step is prepared or when this process exits (_settle).
        active = _ACTIVE.get(self.path)
        if active is None or active["zenml_step_run_id"] != str(info.step_run_id):
            return
        if step_failed:
            _ACTIVE.pop(self.path, None)
            _end_step(self.config, active, cas_runs.FAILED)
        else:
            active["pending"] = True
            _settle_at_exit()

    # -- ZenML's filesystem interface ---------------------------------------------

    def open(self, path: PathType, mode: str = "r") -> Any:
        return self.space.open(path, mode)

    def copyfile(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        self.space.copy(src, dst, overwrite)

    def exists(self, path: PathType) -> bool:
        return self.space.exists(path)

    def glob(self, pattern: PathType) -> list[PathType]:
        return cast(list[PathType], self.space.glob(pattern))

    def isdir(self, path: PathType) -> bool:
        return self.space.isdir(path)

    def listdir(self, path: PathType) -> list[PathType]:
        return cast(list[PathType], self.space.listdir(path))

    def makedirs(self, path: PathType) -> None:
        # Directories exist while something is below them (as on object stores).
        self.space.split(path)

    def mkdir(self, path: PathType) -> None:
        self.space.split(path)

    def remove(self, path: PathType) -> None:
        self.space.remove(path)

    def rename(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        self.space.rename(src, dst, overwrite)

    def rmtree(self, path: PathType) -> None:
        self.space.rmtree(path)

    def stat(self, path: PathType) -> Any:
        return self.space.info(path).to_dict()

    def size(self, path: PathType) -> int | None:
        return self.space.info(path).size

    def walk(
        self,
        top: PathType,
        topdown: bool = True,
        onerror: Callable[..., None] | None = None,
    ) -> Iterable[tuple[PathType, list[PathType], list[PathType]]]:
        try:
            yield from self.space.walk(top, topdown)
        except OSError as e:
            if onerror is not None:
                onerror(e)
            else:
                raise


# -- how a step and its run ended: ZenML's word, never a guess -----------------------------------

# ZenML's execution statuses that are final, as cas statuses.
_FINAL = {
    "completed": cas_runs.COMPLETED,
    "cached": cas_runs.COMPLETED,
    "failed": cas_runs.FAILED,
    "stopped": cas_runs.CANCELLED,
    "cancelled": cas_runs.CANCELLED,
}
_AT_EXIT: list[bool] = []


def _zenml_status(kind: str, ident: str) -> str | None:
    from zenml.client import Client

    client = Client()
    model = (
        client.get_run_step(ident, hydrate=False) if kind == "step" else client.get_pipeline_run(ident, hydrate=False)
    )
    return _FINAL.get(str(getattr(model.status, "value", model.status)))


def _settle() -> None:
    """End every step left open by cleanup_step_run with ZenML's status for it, then
    its run if ZenML has ended the run."""
    for path, active in list(_ACTIVE.items()):
        if not active.get("pending"):
            continue
        try:
            status = _zenml_status("step", active["zenml_step_run_id"])
        except Exception:
            status = None
        # Still "running" in ZenML once its outputs should be stored: they were not.
        _ACTIVE.pop(path, None)
        _end_step(active["config"], active, status or cas_runs.FAILED)


def _settle_at_exit() -> None:
    if not _AT_EXIT:
        import atexit

        atexit.register(_settle)
        _AT_EXIT.append(True)


def _end_step(config: CasArtifactStoreConfig, active: dict[str, Any], status: str) -> None:
    """Record a step's end; a step that did not complete publishes nothing (its
    versions are deleted, as ``cas rm``); end the run once ZenML has ended it."""
    store, _ = _store_for(config)
    run_id = active["lineage"]["run_id"]
    try:
        if status != cas_runs.COMPLETED:
            step = cas_runs.step_run(store, active["lineage"]["step_run_id"])
            for version in step.outputs if step is not None else ():
                if not version.deleted:
                    store.delete_version(version.name, version.version)
        cas_runs.end_step(store, run_id, active["cas_step"], status)
        try:
            run_status = _zenml_status("run", active["metadata"]["run_id"])
        except Exception:
            run_status = None
        if run_status is None and status != cas_runs.COMPLETED:
            run_status = cas_runs.FAILED  # ZenML fails a run whose step failed; it may not say so yet
        if run_status is not None and cas_runs.get_run(store, run_id).status == cas_runs.RUNNING:
            cas_runs.end_run(store, run_id, run_status)
    except Exception as e:  # lineage must never break a pipeline
        from zenml.logger import get_logger

        get_logger(__name__).warning("cas: could not end step %s: %s", active["metadata"]["step"], e)

"""``CasArtifactStore``: FlowyML's ``flowyml.storage.artifacts.ArtifactStore`` over a cas store.

FlowyML's executor calls ``materialize(obj=..., name="output", run_id=...,
step_name=..., project_name=<pipeline name>)`` after every step and ignores
any exception it raises, so this store logs every failure before raising it.
Each output becomes the next version of ``<pipeline>/<step>/<name>`` (path
components that are not valid segments are escaped reversibly, see
``cas.integrations._shared.segments``), produced by that step of a cas run whose id
is FlowyML's run id.  When the pipeline ends (a FlowyML pipeline-end hook) the
store completes the lineage: a cached step's output is recorded for this run
too (same blob, no bytes written), each step's inputs are the versions its
declared inputs came from, and steps and run end with FlowyML's status.

``base_path`` is a local directory for FlowyML's own files: its orchestrator
also writes DataFrame outputs under ``Path(base_path)`` and its UI reads it.
It is never the store, and never a ``cas://`` string (``Path`` would make a
local folder named ``cas:``).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path, PurePosixPath
from typing import Any

from flowyml.core.hooks import get_global_hooks
from flowyml.plugins.base import PluginMetadata, PluginType
from flowyml.storage.artifacts import ArtifactStore

from cas.core.about import __version__
from cas.errors import ArtifactNotFoundError, InvalidNameError, PathNotFoundError, UnsupportedDataError
from cas.fs.paths import parse_path
from cas.integrations._shared.segments import decode, encode
from cas.lineage import record as _runs
from cas.store.facade import Store, open_store
from cas.version import ArtifactVersion

__all__ = ["CasArtifactStore"]

log = logging.getLogger("cas.flowyml")

SCHEME = "cas://"
SHORT_PIPELINE, SHORT_STEP = "flowyml", "files"  # where paths of one or two components go


class CasArtifactStore(ArtifactStore):
    """A FlowyML artifact store whose every artifact is a cas version.

    ``store``: a :class:`cas.Store`, or a URL/path (default ``$CAS_STORE``,
    else ``./.cas``); ``index`` and ``storage_options`` go to
    :func:`cas.open_store`.  ``allow_pickle``: let ``load`` unpickle outputs
    that only pickle could store (off by default: loading never runs code).
    """

    METADATA = PluginMetadata(
        name="cas",
        description="cas: a content-addressed, versioned artifact store with lineage",
        plugin_type=PluginType.ARTIFACT_STORE,
        version=__version__,
        author="cas",
        packages=["cas", "flowyml"],  # import names: FlowyML checks them with importlib.util.find_spec
        tags=["artifact-store", "versioning", "lineage"],
    )

    def __init__(
        self,
        name: str | None = None,
        store: Store | str | os.PathLike | None = None,
        *,
        base_path: str | os.PathLike = ".flowyml/artifacts",
        index: str | None = None,
        allow_pickle: bool = False,
        **storage_options: Any,
    ) -> None:
        if str(base_path).startswith(SCHEME):
            raise InvalidNameError(
                f"base_path {str(base_path)!r} must be a local directory for FlowyML's own files; pass the store as store="
            )
        self.name = name or "cas"
        self.store = store if isinstance(store, Store) else open_store(store, index=index, **storage_options)
        self.base_path = Path(base_path)
        self.base_path.mkdir(parents=True, exist_ok=True)
        self.allow_pickle = allow_pickle
        self._produced: dict[tuple[str, str], ArtifactVersion] = {}  # (run id, step) -> its output
        self._lock = threading.Lock()
        _install_hooks()

    def __repr__(self) -> str:
        return f"CasArtifactStore({self.store!r})"

    # -- FlowyML paths <-> cas names -------------------------------------------------------

    @staticmethod
    def name_for(path: str | os.PathLike) -> str:
        """The cas name of a FlowyML path ``pipeline/step/artifact``; one or two parts go under
        ``flowyml/files/`` and ``flowyml/``; more than three are refused (a cas name has three)."""
        text = os.fspath(path)
        parts = PurePosixPath(text).parts
        if not parts or len(parts) > 3 or text.startswith("/") or "\\" in text or any(p in (".", "..") for p in parts):
            raise InvalidNameError(f"invalid artifact path {text!r}: a relative path like pipeline/step/artifact")
        if len(parts) == 1:
            parts = (SHORT_PIPELINE, SHORT_STEP, *parts)
        elif len(parts) == 2:
            parts = (SHORT_PIPELINE, *parts)
        return "/".join(encode(p) for p in parts)

    @staticmethod
    def path_for(name: str) -> str:
        """The FlowyML path of a cas name (the inverse of :meth:`name_for` for three-part paths)."""
        return "/".join(decode(s) for s in name.split("/"))

    def _resolve(self, path: str | os.PathLike) -> tuple[str, int | str | None]:
        """A path or URI -> (cas name, version): ``cas://p/s/a/N`` (what materialize and save return),
        ``cas://p/s/a`` or a FlowyML path (latest), ``path@N`` or ``path@alias``."""
        text = os.fspath(path)
        if text.startswith(SCHEME):
            cp = parse_path(text[len(SCHEME) :])
            if cp.level == 3:
                return cp.path, None
            if cp.level != 4 or cp.inner:
                raise InvalidNameError(f"{text!r} is not an artifact version: cas://pipeline/step/artifact[/version]")
            return cp.name, cp.spec
        if "@" in text:
            text, _, spec = text.rpartition("@")
            return self.name_for(text), int(spec) if spec.isdigit() else spec
        return self.name_for(text), None

    def _version(self, path: str | os.PathLike) -> ArtifactVersion:
        """The version at ``path``; FileNotFoundError (as FlowyML's local store raises) if none."""
        name, spec = self._resolve(path)
        try:
            return self.store.get_artifact_version(name, spec)
        except ArtifactNotFoundError as e:
            raise PathNotFoundError(f"no artifact at {os.fspath(path)!r}: {e}", os.fspath(path)) from None

    def _save(self, obj: Any, name: str, **kwargs: Any) -> ArtifactVersion:
        try:
            return self.store.save(obj, name, **kwargs)
        except UnsupportedDataError:
            # FlowyML passes any Python object between steps; only pickle can keep these,
            # and loading them back needs allow_pickle.
            return self.store.save(obj, name, materializer="pickle", **kwargs)

    @staticmethod
    def _uri(v: ArtifactVersion) -> str:
        return f"{SCHEME}{v.name}/{v.version}"

    # -- FlowyML's ArtifactStore -------------------------------------------------------------

    def save(self, artifact: Any, path: str, metadata: dict | None = None) -> str:
        """Save ``artifact`` as the next version of ``path``'s cas name; returns its ``cas://`` URI."""
        return self._uri(self._save(artifact, self.name_for(path), metadata=metadata))

    def load(self, path: str) -> Any:
        """Load what ``save`` or ``materialize`` stored; any URI they return, a path (latest) or ``path@N``."""
        return self._version(path).load(allow_pickle=self.allow_pickle)

    def exists(self, path: str) -> bool:
        try:
            self._version(path)
        except FileNotFoundError:  # never saved, or deleted
            return False
        return True

    def delete(self, path: str) -> None:
        """Record the deletion of one version (a versioned URI) or of every version of a path."""
        name, spec = self._resolve(path)
        try:
            targets = [self.store.get_artifact_version(name, spec)] if spec is not None else self.store.list_versions(name)
        except (ArtifactNotFoundError, FileNotFoundError):
            return  # as FlowyML's local store: deleting what is not there does nothing
        for v in targets:
            self.store.delete_version(v.name, v.version)

    def list_artifacts(self, prefix: str = "") -> list[str]:
        """``cas://`` URIs of every live version whose cas name starts with ``prefix``."""
        prefix = prefix[len(SCHEME) :] if prefix.startswith(SCHEME) else prefix
        out = []
        for name in self.store.list_artifacts(prefix):
            out.extend(self._uri(v) for v in self.store.list_versions(name))
        return sorted(out)

    def get_metadata(self, path: str) -> dict | None:
        try:
            v = self._version(path)
        except FileNotFoundError:
            return None
        return {**v.metadata, "uri": self._uri(v), "digest": str(v.digest), "size": v.size, "kind": v.kind}

    def size(self, path: str) -> int:
        try:
            return self._version(path).size
        except FileNotFoundError:
            return 0

    def materialize(
        self, obj: Any, name: str, run_id: str, step_name: str, project_name: str = "default"
    ) -> str:
        """Store a step's output as ``<project_name>/<step_name>/<name>``, produced by that step of run ``run_id``."""
        try:
            v = self._save(
                obj,
                f"{encode(project_name)}/{encode(step_name)}/{encode(name)}",
                run_id=run_id,
                step=encode(step_name),
                metadata={"flowyml_run_id": run_id, "flowyml_step": step_name, "flowyml_type": type(obj).__name__},
            )
        except Exception:
            # FlowyML's executor discards this exception: make sure someone sees it.
            log.exception("cas could not store the output of step %r of run %s", step_name, run_id)
            raise
        with self._lock:
            self._produced[(run_id, step_name)] = v
        return self._uri(v)

    # -- the end of a FlowyML run: lineage and status ----------------------------------------

    def finish_run(self, pipeline: Any, run_id: str, step_results: dict[str, Any], success: bool) -> None:
        """Record cached outputs, each step's inputs and FlowyML's final status for run ``run_id``."""
        _runs.ensure_run(self.store, run_id, encode(pipeline.name))
        producer = {out: s.name for s in pipeline.steps for out in (s.outputs or [])}
        for step in pipeline.steps:
            outcome = step_results.get(step.name)
            if outcome is None:
                continue
            if (run_id, step.name) not in self._produced and outcome.success and outcome.output is not None:
                self.materialize(outcome.output, "output", run_id, step.name, pipeline.name)  # cached: no new bytes
            inputs = [
                (v.name, v.version)
                for i in (step.inputs or [])
                if (v := self._produced.get((run_id, producer.get(i, "")))) is not None
            ]
            cas_step = encode(step.name)
            _runs.ensure_step(self.store, run_id, cas_step, inputs)
            _runs.end_step(
                self.store, run_id, cas_step, _runs.COMPLETED if outcome.success else _runs.FAILED, outcome.error
            )
        _runs.end_run(self.store, run_id, _runs.COMPLETED if success else _runs.FAILED)
        with self._lock:
            for key in [k for k in self._produced if k[0] == run_id]:
                del self._produced[key]


# FlowyML's hooks carry no run id while a pipeline runs, and on a failed step its
# orchestrator returns without running pipeline-end hooks.  So each thread keeps
# the pipeline it is running (from the start hook), its run id (FlowyML's
# checkpoint knows it; so does every materialize call) and the step results so
# far, and a failed step finishes the run.
_ACTIVE = threading.local()
_HOOKED = False
_HOOK_LOCK = threading.Lock()


def _ours(pipeline: Any) -> CasArtifactStore | None:
    store = getattr(getattr(pipeline, "stack", None), "artifact_store", None)
    return store if isinstance(store, CasArtifactStore) else None


def _on_pipeline_start(pipeline: Any) -> None:
    store = _ours(pipeline)
    run_id = getattr(getattr(pipeline, "_checkpoint", None), "run_id", None)
    _ACTIVE.run = {"pipeline": pipeline, "store": store, "run_id": run_id, "results": {}} if store else None


def _on_step_end(step: Any, outcome: Any) -> None:
    active = getattr(_ACTIVE, "run", None)
    if not active:
        return
    active["results"][step.name] = outcome
    if outcome.success:
        return
    store: CasArtifactStore = active["store"]
    run_id = active["run_id"] or next((k[0] for k in store._produced), None)
    _ACTIVE.run = None
    if run_id is None:
        log.error(
            "cas cannot record that step %r failed: FlowyML gave no run id (enable checkpointing,"
            " FlowyML's default, so cas can learn it)", step.name
        )
        return
    _finish(store, active["pipeline"], run_id, active["results"], success=False)


def _on_pipeline_end(pipeline: Any, result: Any) -> None:
    store = _ours(pipeline)
    _ACTIVE.run = None
    if store is not None:
        _finish(store, pipeline, result.run_id, result.step_results, success=result.success)


def _finish(store: CasArtifactStore, pipeline: Any, run_id: str, results: dict[str, Any], success: bool) -> None:
    try:
        store.finish_run(pipeline, run_id, results, success)
    except Exception:
        log.exception("cas could not record the end of FlowyML run %s", run_id)  # FlowyML swallows hook errors
        raise


def _install_hooks() -> None:
    """One set of hooks per process; they act only for pipelines whose stack uses a CasArtifactStore."""
    global _HOOKED
    with _HOOK_LOCK:
        if not _HOOKED:
            hooks = get_global_hooks()
            hooks.register_pipeline_start_hook(_on_pipeline_start)
            hooks.register_step_end_hook(_on_step_end)
            hooks.register_pipeline_end_hook(_on_pipeline_end)
            _HOOKED = True

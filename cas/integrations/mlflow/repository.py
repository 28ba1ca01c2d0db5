"""The ``cas`` MLflow artifact repository.

Which store: ``$CAS_STORE`` (a path or fsspec URL; default ``./.cas``) with
filesystem options from ``$CAS_STORAGE_OPTIONS`` (a JSON object, for
credentials too: it is read, never stored) - set them wherever MLflow reads
or writes artifacts (the client, and an ``mlflow server`` that proxies them).
Where paths land: :mod:`.layout`.  Lineage: every version written under a
run's artifacts records that run (cas run id = MLflow run id, pipeline = the
location's pipeline segment, step = its step segment); logged models record
the model id in their metadata.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tempfile
from typing import Any

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.utils.validation import bad_path_message, path_not_unique

from cas.errors import (
    ArtifactNotFoundError,
    CasError,
    InvalidNameError,
    InvalidValueError,
    PathExistsError,
    PathIsDirectoryError,
    PathNotDirectoryError,
    PathNotFoundError,
    ReadOnlyError,
    VersionDeletedError,
    VersionExistsError,
)
from cas.integrations._shared.folders import FolderKey, Folders
from cas.integrations._shared.space import PathSpace
from cas.integrations._shared.stores import shared_store
from cas.integrations.mlflow.layout import RUN, MlflowLayout
from cas.lineage import record as cas_runs
from cas.store.facade import DEFAULT_STORE, Store

__all__ = ["CasArtifactRepository", "CasArtifactError", "store_from_env"]

_ENDED = {"FINISHED": cas_runs.COMPLETED, "FAILED": cas_runs.FAILED, "KILLED": cas_runs.CANCELLED}
_RUN_ID = re.compile(r"[0-9a-f]{32}\Z")
# Experiment and model names by (tracking uri, what, id): a name, once used for cas names, stays.
_NAMES: dict[tuple[str | None, str, str], str] = {}
# The caller's fault: MLflow answers INVALID_PARAMETER_VALUE (HTTP 400, which its client does not retry).
_REFUSED = (
    InvalidNameError,
    PathExistsError,
    PathIsDirectoryError,
    PathNotDirectoryError,
    ReadOnlyError,
    VersionExistsError,
)
_MISSING = (PathNotFoundError, ArtifactNotFoundError, VersionDeletedError)
# What ``mlflow server`` tells its workers (mlflow.server.constants; importing it loads the whole server).
_SERVER_BACKEND = "_MLFLOW_SERVER_FILE_STORE"
_SERVER_ARTIFACTS_ONLY = "_MLFLOW_SERVER_ARTIFACTS_ONLY"


class CasArtifactError(MlflowException):
    """A cas error as MLflow reports it: cas's one-line message and an MLflow error code."""


class CasArtifactNotFoundError(CasArtifactError, FileNotFoundError):
    """A missing artifact: RESOURCE_DOES_NOT_EXIST to MLflow, FileNotFoundError to Python callers."""


def store_from_env() -> tuple[Store, Folders]:
    """The store named by ``$CAS_STORE`` / ``$CAS_STORAGE_OPTIONS``, opened once per process."""
    url = os.environ.get("CAS_STORE") or DEFAULT_STORE
    raw = os.environ.get("CAS_STORAGE_OPTIONS") or "{}"
    try:
        options = json.loads(raw)
    except ValueError:
        raise InvalidValueError("CAS_STORAGE_OPTIONS must be a JSON object") from None
    if not isinstance(options, dict):
        raise InvalidValueError("CAS_STORAGE_OPTIONS must be a JSON object")
    return shared_store(url, **options)


class CasArtifactRepository(ArtifactRepository):
    """Artifacts of one MLflow root URI (a run's, a logged model's, or any prefix of them)."""

    def __init__(self, artifact_uri: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(artifact_uri, *args, **kwargs)
        store, folders = store_from_env()
        self.root = _wrap(PathSpace.split, artifact_uri)
        # Refuse a URI that cannot map before anything is written.
        layout = _wrap(MlflowLayout, self.root, self._name_of)
        self.space = PathSpace(folders, layout, self._lineage)

    def _tracking(self) -> str | None:
        """The tracking store to ask: inside ``mlflow server``, the server's own backend."""
        return os.environ.get(_SERVER_BACKEND) or self.tracking_uri

    def _name_of(self, what: str, ident: str) -> str:
        """An experiment's or logged model's name, asked of MLflow once per process."""
        key = (self._tracking(), what, ident)
        if key not in _NAMES:
            if os.environ.get(_SERVER_ARTIFACTS_ONLY):
                return f"{what}-{ident}"  # an artifacts-only server has no tracking store to ask
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=key[0])
            if what == "experiment":
                _NAMES[key] = client.get_experiment(ident).name
            else:
                _NAMES[key] = client.get_logged_model(ident).name
        return _NAMES[key]

    # -- paths -------------------------------------------------------------------

    def _path(self, rel: str | None) -> str:
        # As MLflow's local repository: an absolute or non-normal path is refused, never re-rooted.
        if rel and path_not_unique(rel.rstrip("/")):
            raise CasArtifactError(
                f"Invalid artifact path: {rel!r}. {bad_path_message(rel)}", error_code=INVALID_PARAMETER_VALUE
            )
        rel = (rel or "").strip("/")
        parts = self.root + (tuple(p for p in rel.split("/") if p) if rel else ())
        return PathSpace.join(parts)

    def _lineage(self, key: FolderKey, inner: str) -> tuple[dict[str, Any], dict[str, str] | None]:
        bits = key.alias.split(".")
        kind, ident = bits[-2], bits[-1]  # mlflow[.<experiment id>].<kind>.<id>
        if kind != RUN:
            return {"mlflow": {kind: ident}}, None
        store = self.space.folders.store
        pipeline, step, _ = key.name.split("/")
        if not any(r.id == ident for r in cas_runs.list_runs(store, pipeline, cas_runs.RUNNING)):
            self._end_finished_runs(pipeline)  # a new run starts: close the ones MLflow has ended
        cas_runs.ensure_run(store, ident, pipeline)
        step_run_id = cas_runs.ensure_step(store, ident, step)
        return {"mlflow": {"run_id": ident}}, {"run_id": ident, "step_run_id": step_run_id}

    def _end_finished_runs(self, pipeline: str | None = None, only: str | None = None) -> None:
        """End cas runs whose MLflow run has ended.  MLflow never tells an artifact
        repository that a run ended, so this is checked when a run starts writing
        and when a run's artifacts are listed."""
        store = self.space.folders.store
        try:
            running = [r for r in cas_runs.list_runs(store, pipeline, cas_runs.RUNNING) if only in (None, r.id)]
            if not running:
                return
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self._tracking())
            for r in running:
                status = client.get_run(r.id).info.status
                if status in _ENDED:
                    for s in r.steps:
                        if s.status == cas_runs.RUNNING:
                            cas_runs.end_step(store, r.id, s.step, _ENDED[status])
                    cas_runs.end_run(store, r.id, _ENDED[status])
        except Exception:  # lineage bookkeeping never breaks artifact logging
            return

    # -- writing -----------------------------------------------------------------

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        self._path(artifact_path)
        target = posixpath.join(artifact_path or "", os.path.basename(local_file))
        _wrap(self.space.put_files, {self._path(target): local_file})

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        self._path(artifact_path)
        files = {}
        for dirpath, _, filenames in os.walk(local_dir):
            rel_dir = os.path.relpath(dirpath, local_dir)
            for name in filenames:
                rel = name if rel_dir == "." else posixpath.join(*rel_dir.split(os.sep), name)
                files[self._path(posixpath.join(artifact_path or "", rel))] = os.path.join(dirpath, name)
        if files:
            _wrap(self.space.put_files, files)  # one new version per top-level artifact

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        path = self._path(artifact_path)
        if not _wrap(self.space.exists, path):
            return
        if self.space.isdir(path):
            _wrap(self.space.rmtree, path)
        else:
            _wrap(self.space.remove, path)

    # -- reading -----------------------------------------------------------------

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """Direct children of ``path``; [] for a file or a missing path (as MLflow's local repo)."""
        full = self._path(path)
        parts = PathSpace.split(full)  # behind `mlflow server`, the run id is in the path, not the root
        run_id = next((p for i, p in enumerate(parts[:-1]) if _RUN_ID.match(p) and parts[i + 1] == "artifacts"), None)
        if run_id is not None:
            self._end_finished_runs(only=run_id)
        try:
            infos = self.space.ls(full)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except CasError as e:
            raise _mlflow_error(e) from None
        prefix = (path or "").strip("/")
        out = []
        for info in infos:
            rel = posixpath.join(prefix, posixpath.basename(info.path)) if prefix else posixpath.basename(info.path)
            is_dir = info.type == "directory"
            out.append(FileInfo(rel, is_dir, None if is_dir else info.size))
        return out

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        _wrap(self.space.download, self._path(remote_file_path), local_path)

    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        """MLflow's contract (``dst_path`` must exist; default: a new temp directory),
        all or nothing: a file or directory appears whole and verified, or not at all."""
        made = dst_path is None
        dst_path = os.path.abspath(tempfile.mkdtemp() if dst_path is None else dst_path)
        if not os.path.isdir(dst_path):
            raise MlflowException(f"The destination path for downloaded artifacts does not exist: {dst_path}")
        rel = (artifact_path or "").strip("/")
        local = os.path.join(dst_path, *rel.split("/")) if rel else dst_path
        try:
            _wrap(self.space.download, self._path(rel), local)
        except BaseException:
            if made:
                os.rmdir(dst_path)  # the download left it empty: leave nothing at all
            raise
        return local


def _mlflow_error(e: CasError) -> CasArtifactError:
    if isinstance(e, _MISSING):
        return CasArtifactNotFoundError(str(e), error_code=RESOURCE_DOES_NOT_EXIST)
    return CasArtifactError(str(e), error_code=INVALID_PARAMETER_VALUE if isinstance(e, _REFUSED) else INTERNAL_ERROR)


def _wrap(fn, *args, **kwargs):
    """cas errors as MlflowException (what MLflow's callers catch, and what ``mlflow server``
    turns into an HTTP status), with cas's one-line message."""
    try:
        return fn(*args, **kwargs)
    except CasError as e:
        raise _mlflow_error(e) from None

"""The Store facade: opening a store, and the API that wraps its services' rows into versions.

The work is done by the services beside it: ``publish`` (the one write path),
``ingest`` (content in), ``versions`` (names, aliases, deletion), ``verify``,
``gc``, ``stats`` and ``sync``.  The facade adds what only it may know: the
``ArtifactVersion`` objects, materializers, and runs and lineage (``cas.lineage``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cas import materializers as _materializers
from cas.backends.base import Backend
from cas.backends.factory import open_backend
from cas.backends.secrets import redact_url
from cas.core.digest import Digest
from cas.core.format import new_store_format
from cas.core.names import check_alias, parse_name
from cas.core.records import BLOB, Lineage, check_json_map
from cas.errors import (
    InvalidValueError,
    StoreNotFoundError,
    UnsupportedDataError,
    VersionDeletedError,
)
from cas.index import Index, VersionRow
from cas.lineage import events as _events
from cas.lineage import query as _lineage
from cas.lineage import record as _record
from cas.lineage import runs as _runs
from cas.lineage.graph import LineageGraph
from cas.storage.blobs import BlobStore
from cas.storage.chunked import Contents
from cas.storage.records import RecordStore
from cas.store import gc as _gc
from cas.store import sync as _sync
from cas.store import upgrade as _upgrade
from cas.store import verify as _verify
from cas.store.gc import DEFAULT_GC_GRACE, GcReport
from cas.store.ingest import Ingest
from cas.store.location import DEFAULT_STORE, INDEX_FILE, default_index_path, refuse_planted_index
from cas.store.publish import APPLIERS, Publisher
from cas.store.stats import StoreStats, stats
from cas.store.verify import VerifyReport
from cas.store.versions import Versions
from cas.version import ArtifactVersion

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = [
    "DEFAULT_GC_GRACE", "DEFAULT_STORE", "INDEX_FILE", "GcReport", "Store", "StoreStats",
    "UnsupportedDataError", "VerifyReport", "open_store",
]

# Run and step events (cas.lineage.record) are applied by that module's functions.
APPLIERS.update(_events.APPLIERS)


def open_store(
    url: str | os.PathLike | None = None,
    *,
    index: str | None = None,
    create: bool = True,
    format: int | None = None,
    **storage_options,
) -> Store:
    """Open (and by default create) the store at ``url``.

    ``url`` defaults to ``$CAS_STORE``, else ``./.cas``.  Any fsspec URL works;
    ``storage_options`` go to the fsspec filesystem and are never stored.
    ``index`` overrides where the SQLite index lives.  ``format`` is the format
    a *new* store is created with (docs/format.md); an existing store keeps its own.
    """
    if url is None:
        url = os.environ.get("CAS_STORE") or DEFAULT_STORE
    backend = open_backend(os.fspath(url), **storage_options)
    return Store(backend, index=index, create=create, format=format)


class Store:
    """A cas store: a backend (any fsspec URL) holding blobs and records, plus a
    local SQLite index of them.  Open one with :func:`open_store`.

    Contract, in short (docs/api.md has the whole of it):

    * ``save`` stores content once under its BLAKE3 digest and creates the
      next version of a name; a version never changes afterwards.
    * ``get_artifact_version``, ``list_versions``, ``list_artifacts``,
      ``aliases`` and ``stats`` answer from the index without reading content;
      a lookup that misses catches up with the backend first.
    * Every read of content is verified against its digest.
    * Deleting is recorded (``delete_version``); only ``gc`` removes bytes.
    * The backend is the truth: ``reindex`` rebuilds the same answers from it,
      ``refresh`` applies what other machines wrote.

    Use it as a context manager, or call ``close``.  Its services are public for
    the layers above: ``publisher`` (the one write path), ``ingest``, ``versions``.
    """

    def __init__(self, backend: Backend, *, index: str | None = None, create: bool = True, format: int | None = None) -> None:
        self.backend = backend
        self.blobs = BlobStore(backend)
        self.records = RecordStore(backend, self.blobs)
        fmt = self.records.read_format()
        if fmt is None:
            if not create:
                raise StoreNotFoundError(backend.url)
            fmt = self.records.init_format(new_store_format(format))
        self.store_id: str = fmt["store_id"]
        self.format: int = int(fmt["format"])  # what this store's backend holds: docs/format.md
        if index is None:
            refuse_planted_index(backend)
        self.index = Index(index or default_index_path(backend))
        self.contents = Contents(self.blobs, self.index.chunk_list)  # content by digest: a blob, or chunked (format 2)
        # on_read: every content read of a version comes to the publisher; inside a step it is an input.
        self.publisher = Publisher(backend, self.blobs, self.records, self.index, self.store_id, _record.note_read, self.format)
        self.versions = Versions(self.publisher)
        self.ingest = Ingest(self.publisher, self.versions)
        if self.index.get_meta("store_id") != self.store_id:
            self.reindex()  # a new index, or one left from another store at this place
        else:
            self.refresh()

    @property
    def url(self) -> str:
        """The backend URL (credentials never included)."""
        return self.backend.url

    def __repr__(self) -> str:
        return f"Store({redact_url(self.url)!r})"

    def close(self) -> None:
        """Close the index and the backend's connections; the store is unusable afterwards (also ``with open_store(...)``)."""
        self.index.close()
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _wrap(self, row: VersionRow) -> ArtifactVersion:
        return ArtifactVersion.from_row(self, row)

    # -- saving ----------------------------------------------------------------

    def save(
        self,
        data: Any,
        name: str,
        *,
        metadata: dict[str, Any] | None = None,
        aliases: Iterable[str] = (),
        progress: Callback | None = None,
        materializer: str | None = None,
        run_id: str | None = None,
        step: str | None = None,
        inputs: Iterable[Any] = (),
        if_changed: bool = False,
        lineage: Lineage | None = None,
        _extra: dict[str, Any] | None = None,
    ) -> ArtifactVersion:
        """Store ``data`` as the next version of ``name``.

        ``data``: ``bytes``; ``str`` (saved as UTF-8 text); a ``pathlib.Path``
        (or other ``os.PathLike``) to a file or a directory (saved as a tree);
        a binary file object; or any object a materializer handles (plain
        JSON/msgpack data, numpy arrays, DataFrames, Arrow tables, plugins).
        ``materializer`` picks one by name (``"pickle"`` only this way); the
        choice is recorded so ``version.load()`` needs no hint.

        Lineage (see :mod:`cas.lineage.record`): inside ``with run.step(...)`` the version
        is that step's output.  Frameworks name the producer instead:
        ``run_id`` (started if new), ``step`` (default: the name's step part)
        and ``inputs`` (versions or ``name@version`` strings it consumed).
        ``lineage`` (``run_id``, ``step_run_id``) names an already recorded producer.

        ``if_changed``: when the content (digest and kind) equals the latest
        live version's, no version is created and that version is returned
        (``aliases`` still move to it; ``metadata`` is not compared).  Equal
        content is a dedupe hit, so nothing new is written either.
        ``_extra``: record fields written as given (tests forge old records with it).
        """
        aname = parse_name(name)
        aliases = [check_alias(a) for a in aliases]
        metadata = check_json_map(metadata, "metadata")
        mat = _materializers.select(data, materializer)
        link = _record.link_for_save(self, aname.pipeline, aname.step, run_id, step, inputs) if lineage is None else None
        row = self.ingest.save(
            data, aname, lambda: _materializers.materialize(mat, data),
            materializer=mat.name, metadata=metadata, aliases=aliases, progress=progress, if_changed=if_changed,
            # a link records the step's inputs only once a version will be made
            lineage=link.commit if link is not None else lambda: lineage,
            extra=_extra,
        )
        return self._wrap(row)

    # -- versions of content already stored (metadata-only; used by the cas:// view) --

    def next_version(self, name: str) -> int:
        """The number the next version of ``name`` would get now (a hint: claiming decides)."""
        return self.versions.next_number(name)

    def link(
        self,
        name: str,
        digest: str | Digest,
        kind: str = BLOB,
        *,
        version: int | None = None,
        metadata: dict[str, Any] | None = None,
        lineage: Lineage | None = None,
    ) -> ArtifactVersion:
        """Create a version of ``name`` bound to content that is already stored.

        No content byte is read or written: only the version record, its ref
        and the index row.  ``digest`` names a blob (``kind="blob"``) or a tree
        manifest (``kind="tree"``) present in the backend, else BlobNotFoundError.
        ``version``: claim exactly that number, which must be the next one
        (VersionExistsError if it is taken, InvalidNameError if it would leave
        a gap); by default the next free number is claimed.  ``lineage``
        (``run_id``, ``step_run_id``) names the producing step, as in :meth:`save`.
        """
        return self._wrap(self.ingest.link(name, digest, kind, version=version, metadata=metadata, lineage=lineage))

    def link_tree(
        self,
        name: str,
        entries: Iterable[tuple[str, str, int]],
        *,
        version: int | None = None,
        metadata: dict[str, Any] | None = None,
        lineage: Lineage | None = None,
    ) -> ArtifactVersion:
        """Create a tree version from blobs that are already stored.

        ``entries``: (path inside the tree, blob digest, size).  Every blob must be
        in the backend with that size (BlobNotFoundError / IntegrityError); only
        the manifest (a dedupe hit if the same tree exists) and the version
        record are written.  ``version`` and ``lineage`` as for :meth:`link`.
        """
        return self._wrap(self.ingest.link_tree(name, entries, version=version, metadata=metadata, lineage=lineage))

    # -- aliases and deletion --------------------------------------------------

    def set_alias(self, name: str, version: int | str, alias: str) -> ArtifactVersion:
        """Point ``alias`` at ``version`` of ``name`` (moving it if it pointed elsewhere)."""
        target = self.get_artifact_version(name, version)
        self.versions.move_alias(target.name, check_alias(alias), target.version)
        return target

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove ``alias`` from ``name``; returns the version it pointed at.

        Recorded like a move (an alias record with ``version`` 0, the highest
        ``seq`` wins), so other machines, sync and reindex agree.  ``latest``
        is maintained by cas and cannot be removed.
        """
        return self.versions.delete_alias(name, alias)

    def delete_version(self, name: str, version: int | str) -> ArtifactVersion:
        """Record that a version is deleted.  Its bytes stay until ``gc``."""
        target = self.get_artifact_version(name, version)
        self.versions.record_deletion(target.name, target.version)
        return target

    # -- finding -----------------------------------------------------------------

    def get_artifact_version(self, name: str, version: int | str | None = None) -> ArtifactVersion:
        """``version``: an int, ``"latest"`` (default), or an alias; or ``name@version``."""
        return self._wrap(self.versions.find(name, version))

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[ArtifactVersion]:
        """Versions of ``name``, oldest first; deleted ones only with ``include_deleted``. ``ArtifactNotFoundError`` for an unknown name."""
        return [self._wrap(r) for r in self.versions.rows(name, include_deleted=include_deleted)]

    def list_artifacts(self, prefix: str = "") -> list[str]:
        """Names of artifacts with a live version whose name starts with ``prefix``, sorted. Answered from the index."""
        return self.versions.names(prefix)

    def aliases(self, name: str) -> dict[str, int]:
        """User aliases of ``name`` and the version each points at (``latest`` is implicit, not listed)."""
        return self.versions.aliases(name)

    def stats(self) -> StoreStats:
        """Counts and bytes from the index: artifacts, live versions, content blobs, logical and stored bytes."""
        return stats(self.index)

    # -- loading, runs and lineage (cas.materializers, cas.lineage.record, cas.lineage) ------------

    def load(self, name: str, version: int | str | None = None, *, allow_pickle: bool = False) -> Any:
        """``get_artifact_version(name, version).load(allow_pickle=...)``."""
        return self.get_artifact_version(name, version).load(allow_pickle=allow_pickle)

    def run(self, pipeline: str, *, params: dict[str, Any] | None = None, run_id: str | None = None) -> _record.ActiveRun:
        """Start recording a run of ``pipeline`` (id generated unless given; a taken id is refused)."""
        return _record.ActiveRun(self, pipeline, params=params, run_id=run_id)

    def get_run(self, run_id: str) -> _runs.PipelineRun:
        """A run with its steps, each with the versions it consumed and produced."""
        return _runs.get_run(self, run_id)

    def list_runs(
        self, pipeline: str | None = None, *, status: str | None = None, limit: int | None = None
    ) -> list[_runs.PipelineRun]:
        """Runs, newest first."""
        return _runs.list_runs(self, pipeline, status, limit)

    def step_run(self, step_run_id: str | None) -> _runs.StepRun | None:
        """The step run with this id (None for None: a version saved outside any run)."""
        return _runs.step_run(self, step_run_id)

    def producer_inputs(self, version: ArtifactVersion) -> list[ArtifactVersion]:
        """The versions the step that produced ``version`` consumed (deleted ones included, marked)."""
        return _runs.producer_inputs(self, version)

    def end_step(self, run_id: str, step: str, status: str = _record.COMPLETED, error: str | None = None) -> None:
        """End a step recorded through ``save(..., run_id=, step=)`` (the framework form)."""
        _record.end_step(self, run_id, step, status, error)

    def end_run(self, run_id: str, status: str = _record.COMPLETED, error: str | None = None) -> None:
        """End a run recorded through ``save(..., run_id=)`` (the framework form)."""
        _record.end_run(self, run_id, status, error)

    def materialize(self, obj: Any, name: str, run_id: str, step_name: str, project_name: str = "default") -> str:
        """FlowyML's ``ArtifactStore.materialize``: save ``obj`` as
        ``<project_name>/<step_name>/<name>``, produced by that step of run
        ``run_id``; returns the version's ``cas://`` path."""
        v = self.save(obj, f"{project_name}/{step_name}/{name}", run_id=run_id, step=step_name)
        return f"cas://{v.name}/{v.version}"

    def lineage(
        self, version: ArtifactVersion | str, direction: str = _lineage.UP, depth: int | None = None
    ) -> LineageGraph:
        """The lineage graph of a version: ``"up"`` to what it came from, ``"down"``
        to what was derived from it, ``depth`` steps at most (None: all)."""
        if isinstance(version, str):
            try:
                version = self.get_artifact_version(version)
            except VersionDeletedError as e:  # a deleted version keeps its lineage
                version = self._wrap(self.versions.committed(e.name, e.version))
        elif not isinstance(version, ArtifactVersion):
            raise InvalidValueError(f"lineage needs an ArtifactVersion or 'name@version', not {type(version).__name__}")
        return _lineage.build_graph(self, version, direction, depth)

    # -- keeping the index in step with the backend ---------------------------------

    def refresh(self) -> int:
        """Apply journal entries this index has not seen; returns how many were new.

        Reads only what is new: one read per new entry, plus one to find the end.
        An entry that is garbage, or whose record is, is skipped and remembered
        for ``verify`` (invariant 12): one bad object never blocks the store.
        """
        return self.publisher.refresh()

    def reindex(self, progress: Callback | None = None) -> int:
        """Rebuild the index from the backend alone; returns the number of refs applied.
        Safe while others write; bad objects are skipped for ``verify`` (``Publisher.reindex``)."""
        return self.publisher.reindex(progress)

    # -- sync, verify, gc and upgrade ------------------------------------------------
    upgrade = _upgrade.upgrade_store  # store.upgrade(dry_run=False, progress=None): format 1 -> 2, in place

    def sync_to(
        self,
        other: Store,
        names: Iterable[str] = (),
        *,
        jobs: int | None = None,
        dry_run: bool = False,
        progress: Callback | None = None,
    ) -> _sync.SyncResult:
        """Copy this store's versions, aliases and lineage (or those of ``names``,
        glob patterns) into ``other``, sending only the blobs it lacks.
        Returns a :class:`cas.store.sync.SyncResult`; see ``cas.store.sync`` for the rules."""
        return _sync.sync(self, other, names, jobs=jobs or _sync.DEFAULT_JOBS, dry_run=dry_run, progress=progress)

    def verify(self, deep: bool = False, progress: Callback | None = None) -> VerifyReport:
        """Check every blob a version or record needs is present with the right size;
        with ``deep``, rehash every blob.  Finds missing, corrupt and foreign files,
        and refs that dangle; completes orphan refs (claimed, never journalled)."""
        return _verify.verify(self.publisher, deep, progress)

    def gc(self, grace: float = DEFAULT_GC_GRACE, dry_run: bool = False) -> GcReport:
        """Remove blobs no live version or record needs, once older than ``grace`` seconds.

        What is needed is decided from the refs in the backend, not only from
        this index: a ref no journal entry announced (its writer died after
        claiming) is journalled first.  The grace period protects saves in
        flight elsewhere, whose blobs land before their version is claimed; a
        save that reuses a stored blob is protected by the sweep mark written
        before the refs are listed (docs/format.md, gc).
        """
        return _gc.gc(self.publisher, grace, dry_run)

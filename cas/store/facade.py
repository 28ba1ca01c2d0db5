"""The Store facade: opening a store, and the API that wraps its services' rows into versions.

The work is done by the services beside it: ``publish`` (the one write path),
``ingest`` (content in), ``versions`` (names, aliases, deletion), ``verify``,
``gc``, ``stats`` and ``sync``.  The facade adds what only it may know: the
``ArtifactVersion`` objects, materializers, and runs and lineage (``cas.lineage``).
This module opens a store and saves and finds versions; runs and lineage are
``facade_runs``, the services over a whole store ``facade_upkeep`` (mixins of ``Store``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cas.backends.base import Backend
from cas.backends.factory import open_backend
from cas.backends.secrets import redact_url
from cas.core.digest import Digest
from cas.core.format import new_store_format
from cas.core.names import check_alias, parse_name
from cas.core.records import BLOB, Lineage, check_json_map
from cas.errors import StoreNotFoundError, UnsupportedDataError
from cas.index import Index, VersionRow
from cas.lineage import events as _events
from cas.lineage import record as _record
from cas.storage.blobs import BlobStore
from cas.storage.chunked import Contents
from cas.storage.records import RecordStore
from cas.store import packing
from cas.store.facade_runs import RunsAndLineage
from cas.store.facade_upkeep import Upkeep
from cas.store.gc import DEFAULT_GC_GRACE, GcReport
from cas.store.ingest import Ingest
from cas.store.location import DEFAULT_STORE, INDEX_FILE, default_index_path, refuse_planted_index
from cas.store.publish import APPLIERS, Publisher
from cas.store.stats import StoreStats
from cas.store.verify import VerifyReport
from cas.store.versions import Versions
from cas.version import ArtifactVersion

if TYPE_CHECKING:
    # imported by the methods that use them (so are the materializers): show, log and ls never load them
    from fsspec.callbacks import Callback

__all__ = ["DEFAULT_GC_GRACE", "DEFAULT_STORE", "INDEX_FILE", "GcReport", "Store", "StoreStats", "UnsupportedDataError", "VerifyReport", "open_store"]

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


class Store(RunsAndLineage, Upkeep):
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
        if index is None:
            refuse_planted_index(backend)
        self.index = Index(index or default_index_path(backend))
        self.contents = Contents(self.blobs, self.index.chunk_list)  # content by digest: a blob, or chunked (format 2)
        # on_read: every content read of a version comes to the publisher; inside a step it is an input.
        self.publisher = Publisher(backend, self.blobs, self.records, self.index, self.store_id, _record.note_read)
        self.publisher.on_format = self._follow_format
        self.publisher.set_format(int(fmt["format"]))
        self.versions = Versions(self.publisher)
        self.ingest = Ingest(self.publisher, self.versions)
        if self.index.get_meta("store_id") != self.store_id:
            self.publisher.reindex(format_read=True)  # a new index, or one left from another store at this place
        else:
            self.publisher.refresh(format_read=True)

    @property
    def format(self) -> int:
        """The format this store's backend holds (docs/format.md).  It moves up when this
        Store upgrades it, or when a refresh sees that another process did."""
        return self.publisher.format

    def _follow_format(self, format: int) -> None:
        # Everything that depends on the store's format is set up here, the one place: at open
        # and whenever the publisher's format moves up (its own upgrade, or another process's).
        packing.install_reader(self.publisher)  # format 2: small blobs may be packed

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
        lineage: Lineage | None = None, rehash: bool = False,
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
        content is a dedupe hit, so nothing new is written either.  ``rehash``: bypass the stat cache.
        ``_extra``: record fields written as given (tests forge old records with it).
        """
        aname = parse_name(name)
        aliases = [check_alias(a) for a in aliases]
        metadata = check_json_map(metadata, "metadata")
        from cas import materializers as _materializers
        mat = _materializers.select(data, materializer)
        link = _record.link_for_save(self, aname.pipeline, aname.step, run_id, step, inputs) if lineage is None else None
        row = self.ingest.save(
            data, aname, lambda: _materializers.materialize(mat, data),
            materializer=mat.name, metadata=metadata, aliases=aliases, progress=progress, if_changed=if_changed,
            # a link records the step's inputs only once a version will be made
            lineage=link.commit if link is not None else lambda: lineage,
            extra=_extra, rehash=rehash,
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

    # -- loading (cas.materializers) --------------------------------------------------

    def load(self, name: str, version: int | str | None = None, *, allow_pickle: bool = False) -> Any:
        """``get_artifact_version(name, version).load(allow_pickle=...)``."""
        return self.get_artifact_version(name, version).load(allow_pickle=allow_pickle)

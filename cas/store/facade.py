"""The Store facade: save, find, alias, delete, verify, gc, reindex.

Every write publishes in order (invariant 4): blobs -> tree manifest ->
version record -> create-only ref -> journal entry -> index row.  A crash at
any point leaves, at worst, unreferenced blobs for ``gc``, or a ref claimed
but never journalled (an orphan), which whoever meets it journals.  Every
claim checks gc's sweep marks (``cas.storage.sweeps``) before it is journalled.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cas import materializers as _materializers
from cas.backends.base import Backend, LocalBackend, open_backend, redact_url
from cas.core.digest import Digest
from cas.core.names import LATEST, ArtifactName, check_alias, parse_name, parse_ref, parse_version
from cas.core.progress import as_callback, item_done
from cas.core.records import (
    REFS,
    RecordStore,
    alias_ref,
    check_json_map,
    deletion_ref,
    journal_path,
    now_iso,
    parse_ref_path,
    ref_order,
    version_ref,
)
from cas.core.tree import check_entries, decode_manifest, encode_manifest, walk_files
from cas.errors import (
    ArtifactNotFoundError,
    BackendError,
    BlobNotFoundError,
    CasError,
    CorruptRecordError,
    IntegrityError,
    InvalidNameError,
    StoreNotFoundError,
    UnsupportedDataError,
    VersionDeletedError,
    VersionExistsError,
    VersionNotFoundError,
)
from cas.index import Index
from cas.lineage import query as _lineage
from cas.lineage import record as _runs
from cas.storage import sweeps
from cas.storage.blobs import BlobStore, PutResult
from cas.version import BLOB, TREE, ArtifactVersion

__all__ = ["Store", "open_store", "VerifyReport", "GcReport", "StoreStats", "UnsupportedDataError", "Progress"]

DEFAULT_STORE = "./.cas"
DEFAULT_GC_GRACE = 24 * 3600.0
INDEX_FILE = "index.sqlite"
# SQLite's companion files: a symlink planted under any of these names would
# make it create or write a database outside the store.
_INDEX_FILES = (INDEX_FILE, f"{INDEX_FILE}-wal", f"{INDEX_FILE}-shm", f"{INDEX_FILE}-journal")

log = logging.getLogger(__name__)

#: progress callback ``progress(nbytes, items=0)``: called with the bytes read as they
#: are read (save, download, verify --deep, sync), and with ``(0, 1)`` as each item
#: (a file of a tree, a blob, a ref) is done.  Called often: keep it cheap.
Progress = Callable[..., None]


@dataclass(frozen=True)
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)  # digests a version or record needs
    corrupt: list[str] = field(default_factory=list)  # content does not match its name
    foreign: list[str] = field(default_factory=list)  # files under blobs/ that are not blobs
    orphans: list[str] = field(default_factory=list)  # refs claimed but never journalled: journalled now
    dangling: list[str] = field(default_factory=list)  # refs whose record (or an orphan's content) is missing
    # records, manifests, journal entries, refs and keys that break the format ("<key>: <what is wrong>")
    invalid: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, corrupt, foreign, invalid or dangling."""
        return not (self.missing or self.corrupt or self.foreign or self.invalid or self.dangling)


@dataclass(frozen=True)
class GcReport:
    removed: int
    removed_bytes: int
    kept: int
    dry_run: bool


@dataclass(frozen=True)
class StoreStats:
    artifacts: int
    versions: int
    blobs: int
    logical_bytes: int
    stored_bytes: int

    @property
    def dedupe_ratio(self) -> float:
        """Logical bytes over stored bytes (1.0 for an empty store)."""
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 1.0


# Record appliers: record type -> fn(store, conn, record, record_digest).  Other
# modules (lineage) add their own types here.
APPLIERS: dict[str, Callable[[Store, Any, dict[str, Any], str], None]] = {}


def applier(kind: str):
    def register(fn):
        APPLIERS[kind] = fn
        return fn

    return register


# Run and step events (cas.lineage.record) are applied by that module's functions.
APPLIERS.update(_runs.APPLIERS)


def default_index_path(backend: Backend) -> str:
    if isinstance(backend, LocalBackend):
        return os.path.join(backend.root, INDEX_FILE)
    key = hashlib.sha256(backend.url.encode()).hexdigest()[:24]
    if backend.url.startswith("memory://"):
        # memory:// lives and dies with this process; so does its index
        base = os.path.join(tempfile.gettempdir(), f"cas-memory-{os.getuid()}-{os.getpid()}")
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.environ.get("CAS_INDEX_DIR") or os.path.join(cache, "cas", "indexes")
    return os.path.join(base, f"{key}.sqlite")


def open_store(url: str | os.PathLike | None = None, *, index: str | None = None, create: bool = True, **storage_options) -> Store:
    """Open (and by default create) the store at ``url``.

    ``url`` defaults to ``$CAS_STORE``, else ``./.cas``.  Any fsspec URL works;
    ``storage_options`` go to the fsspec filesystem and are never stored.
    ``index`` overrides where the SQLite index lives.
    """
    if url is None:
        url = os.environ.get("CAS_STORE") or DEFAULT_STORE
    backend = open_backend(os.fspath(url), **storage_options)
    return Store(backend, index=index, create=create)


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

    Use it as a context manager, or call ``close``.
    """

    def __init__(self, backend: Backend, *, index: str | None = None, create: bool = True) -> None:
        self.backend = backend
        self.blobs = BlobStore(backend)
        self.records = RecordStore(backend, self.blobs)
        fmt = self.records.read_format()
        if fmt is None:
            if not create:
                raise StoreNotFoundError(backend.url)
            fmt = self.records.init_format()
        self.store_id: str = fmt["store_id"]
        if index is None and isinstance(backend, LocalBackend):
            for name in _INDEX_FILES:
                if backend.is_symlink(name):
                    raise BackendError(f"refusing to follow a symlink inside the store: {name}", name)
        self.index = Index(index or default_index_path(backend))
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

    # -- saving ----------------------------------------------------------------

    def save(
        self,
        data: Any,
        name: str,
        *,
        metadata: dict[str, Any] | None = None,
        aliases: Iterable[str] = (),
        progress: Progress | None = None,
        materializer: str | None = None,
        run_id: str | None = None,
        step: str | None = None,
        inputs: Iterable[Any] = (),
        if_changed: bool = False,
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

        ``if_changed``: when the content (digest and kind) equals the latest
        live version's, no version is created and that version is returned
        (``aliases`` still move to it; ``metadata`` is not compared).  Equal
        content is a dedupe hit, so nothing new is written either.
        """
        aname = parse_name(name)
        aliases = [check_alias(a) for a in aliases]
        metadata = _check_metadata(metadata)
        mat = _materializers.select(data, materializer)
        extra = dict(_extra or {})
        link = None
        if "step_run_id" not in extra:
            link = _runs.link_for_save(self, aname.pipeline, aname.step, run_id, step, inputs)
        started, position = time.time(), _position(data)
        with _materializers.materialize(mat, data) as payload:
            kind, result, entries = self._put_content(payload, progress)
        if if_changed and (same := self._latest_if_same(str(aname), kind, result.digest)) is not None:
            for alias in aliases:
                self._move_alias(str(aname), alias, same)
            return self._version(str(aname), same)
        if link is not None:
            extra.update(link.commit())
        record = {
            "type": "version",
            "name": str(aname),
            "digest": result.digest,
            "kind": kind,
            "size": result.size,
            "created_at": now_iso(),
            "metadata": metadata,
            "materializer": mat.name,
            **extra,
        }

        def restore() -> None:
            # Put the content again, from the data the caller gave (materialized again).
            if position is None:  # a one-pass stream: it can only be checked
                self._check_present(kind, result.digest, entries)
                return
            if hasattr(data, "read"):
                data.seek(position)
            with _materializers.materialize(mat, data) as payload:
                again = self._put_content(payload, None)[1]
            if again.digest != result.digest:
                raise IntegrityError(result.digest, again.digest, "the content changed while it was being saved")

        version = self._claim_version(aname, record, entries, since=started, restore=restore)
        for alias in aliases:
            self._move_alias(str(aname), alias, version)
        return self._version(str(aname), version)

    def _put_content(self, data, progress: Progress | None) -> tuple[str, PutResult, list | None]:
        if isinstance(data, (bytes, bytearray, memoryview)):
            with self.backend.batch():
                return BLOB, self.blobs.put_bytes(bytes(data)), None
        if isinstance(data, str):
            with self.backend.batch():
                return BLOB, self.blobs.put_bytes(data.encode("utf-8")), None
        if isinstance(data, os.PathLike):
            path = os.fspath(data)
            self._refuse_own(path)
            if os.path.isdir(path):
                return self._put_tree(path, progress)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no such file or directory: {path}")
            with self.backend.batch():
                result = self.blobs.put_file(path, progress)
            return BLOB, result, None
        if hasattr(data, "read"):
            with self.backend.batch():
                return BLOB, self.blobs.put_stream(data, progress), None
        raise UnsupportedDataError(
            f"cannot save a {type(data).__name__}: pass bytes, str, a pathlib.Path, or a binary file object"
        )

    def _put_tree(self, root: str, progress: Progress | None):
        entries: list[tuple[str, str, int]] = []
        # Walk (and validate every path) before writing anything: a refused
        # symlink or bad file name must leave the store unchanged.
        files = list(walk_files(root, exclude=self._own_files()))
        with self.backend.batch():
            for rel, abspath in files:
                result = self.blobs.put_file(abspath, progress)
                entries.append((rel, result.digest, result.size))
                item_done(as_callback(progress))
            manifest = self.blobs.put_bytes(encode_manifest(entries))
        total = sum(size for _, _, size in entries)
        return TREE, PutResult(manifest.digest, total, manifest.written), sorted(entries)

    def _latest_if_same(self, name: str, kind: str, digest: str) -> int | None:
        rows = self.index.list_versions(name, include_deleted=False)
        latest = ArtifactVersion.from_row(self, rows[-1]) if rows else None
        if latest is not None and latest.kind == kind and latest.digest.hex == digest:
            return latest.version
        return None

    def _refuse_own(self, path: str) -> None:
        own = self._own_files()
        if any(_identity(p) in own for p in _self_and_parents(path)):
            raise InvalidNameError(f"refusing to save {path!r}: it is part of the store it would be saved into")

    def _own_files(self) -> set[tuple[int, int]]:
        """Identities of this store's own directory and live index files: a
        directory being saved never includes the store it is saved into."""
        paths = [self.index.path + suffix for suffix in ("", "-wal", "-shm", "-journal")]
        if isinstance(self.backend, LocalBackend):
            paths.append(self.backend.root)
        return {ident for p in paths if (ident := _identity(p)) is not None}

    # -- versions of content already stored (metadata-only; used by the cas:// view) --

    def next_version(self, name: str) -> int:
        """The number the next version of ``name`` would get now (a hint: claiming decides)."""
        return self.index.max_version(str(parse_name(name))) + 1

    def link(
        self,
        name: str,
        digest: str | Digest,
        kind: str = BLOB,
        *,
        version: int | None = None,
        metadata: dict[str, Any] | None = None,
        _extra: dict[str, Any] | None = None,
    ) -> ArtifactVersion:
        """Create a version of ``name`` bound to content that is already stored.

        No content byte is read or written: only the version record, its ref
        and the index row.  ``digest`` names a blob (``kind="blob"``) or a tree
        manifest (``kind="tree"``) present in the backend, else BlobNotFoundError.
        ``version``: claim exactly that number, which must be the next one
        (VersionExistsError if it is taken, InvalidNameError if it would leave
        a gap); by default the next free number is claimed.
        """
        started = time.time()  # before the blobs are checked: see _claim_version
        aname = parse_name(name)
        hexdigest = Digest.parse(digest).hex
        metadata = _check_metadata(metadata)
        self.refresh()  # the index vouches for blobs of live versions: not for ones deleted (and collected) elsewhere
        exact = self._check_exact_version(str(aname), version)
        entries = None
        if kind == BLOB:
            size = self.blobs.size(hexdigest)  # BlobNotFoundError if absent
        elif kind == TREE:
            if self.index.has_tree(hexdigest):
                if not self.blobs.exists(hexdigest):
                    raise BlobNotFoundError(hexdigest)
                listed = self.index.tree_entries(hexdigest)
            else:
                listed = entries = decode_manifest(self.blobs.read_bytes(hexdigest), hexdigest)
            if not any(row.deleted_at is None for row in self.index.versions_with_digest(hexdigest)):
                # No live version protects these blobs from gc: check they are all there.
                self._require_blobs((d, s) for _, d, s in listed)
            size = sum(s for _, _, s in listed)
        else:
            raise InvalidNameError(f"invalid kind {kind!r}: expected {BLOB!r} or {TREE!r}")
        record = {
            "type": "version",
            "name": str(aname),
            "digest": hexdigest,
            "kind": kind,
            "size": size,
            "created_at": now_iso(),
            "metadata": metadata,
            **(_extra or {}),  # lineage (run_id, step_run_id), as in save()
        }
        number = self._claim_version(
            aname, record, entries, exact=exact, since=started, restore=lambda: self._check_present(kind, hexdigest, None)
        )
        return self._version(str(aname), number)

    def link_tree(
        self,
        name: str,
        entries: Iterable[tuple[str, str, int]],
        *,
        version: int | None = None,
        metadata: dict[str, Any] | None = None,
        _extra: dict[str, Any] | None = None,
    ) -> ArtifactVersion:
        """Create a tree version from blobs that are already stored.

        ``entries``: (path inside the tree, blob digest, size).  Every blob must be
        in the backend with that size (BlobNotFoundError / IntegrityError); only
        the manifest (a dedupe hit if the same tree exists) and the version
        record are written.  ``version`` as for :meth:`link`.
        """
        aname = parse_name(name)
        metadata = _check_metadata(metadata)
        clean = check_entries(entries)
        exact = self._check_exact_version(str(aname), version)
        started = time.time()
        self.refresh()  # as in link(): a version deleted elsewhere no longer vouches for its blobs
        self._require_blobs((d, s) for _, d, s in clean)
        manifest = self.blobs.put_bytes(encode_manifest(clean))
        record = {
            "type": "version",
            "name": str(aname),
            "digest": manifest.digest,
            "kind": TREE,
            "size": sum(s for _, _, s in clean),
            "created_at": now_iso(),
            "metadata": metadata,
            **(_extra or {}),  # lineage (run_id, step_run_id), as in save()
        }

        def restore() -> None:
            self.blobs.put_bytes(encode_manifest(clean))
            self._check_present(TREE, manifest.digest, clean)

        number = self._claim_version(aname, record, clean, exact=exact, since=started, restore=restore)
        return self._version(str(aname), number)

    def _check_exact_version(self, name: str, version: int | None) -> int | None:
        if version is None:
            return None
        number = parse_version(version)
        if not isinstance(number, int):
            raise InvalidNameError(f"cannot create {name}@{number}: new versions are numbers; aliases only point")
        following = self.index.max_version(name) + 1
        if number > following:
            self.refresh()  # another machine may have written the versions in between
            following = self.index.max_version(name) + 1
        if number < following:
            raise VersionExistsError(
                f"{name}@{number} already exists or existed (numbers are never reused); the next is {following}",
                f"{name}@{number}",
            )
        if number > following:
            raise InvalidNameError(f"cannot create {name}@{number}: versions are numbered in order, the next is {following}")
        return number

    def _require_blobs(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Every blob is stored with that size.  A blob a live version already
        uses is known without asking the backend, so re-linking a tree with one
        new file costs one request, not one per file."""
        seen: set[str] = set()
        for digest, size in pairs:
            if digest in seen:
                continue
            seen.add(digest)
            actual = self.index.live_blob_size(digest)
            if actual is None:
                actual = self.blobs.size(digest)  # BlobNotFoundError if absent
            if actual != size:
                raise IntegrityError(digest, "?", f"blob is {actual} bytes, the entry says {size}")

    def _claim(
        self,
        record: dict[str, Any],
        field: str,
        first: int,
        ref_for: Callable[[int], str],
        *,
        exact: bool = False,
        next_after: Callable[[int], int] | None = None,
        since: float | None = None,
        blobs: Callable[[], Iterable[str]] = tuple,
    ) -> tuple[str, str, int, bool] | None:
        """Claim the first free number from ``first`` for ``record`` (invariant 6).

        The number goes into ``record[field]``; the record is stored, then its
        ref ``ref_for(n)`` is written create-only.  A lost claim is learned and
        the next number tried (``next_after(n)``, default n + 1), unless
        ``exact``, which returns None instead.  Returns (ref, record digest, n,
        swept), not yet journalled: the caller passes them to :meth:`_commit`.
        ``swept``: a gc sweep that may have removed the record or ``blobs()``
        ran since ``since`` (default: when the record was first stored), so the
        record was put back, and the caller must put back (or check) the blobs
        it wrote or reused before then (docs/format.md, gc).
        """
        number = first
        since = time.time() if since is None else since
        while True:
            record[field] = number
            record_digest = self.records.put_record(record)
            ref = ref_for(number)
            if self.records.claim(ref, record_digest):
                return ref, record_digest, number, self._after_claim(record, record_digest, since, blobs)
            self._learn_ref(ref)  # someone else's: learn it
            if exact:
                return None
            number = next_after(number) if next_after else number + 1

    def _claim_version(
        self,
        aname: ArtifactName,
        record: dict[str, Any],
        entries,
        exact: int | None = None,
        since: float | None = None,
        restore: Callable[[], None] | None = None,
    ) -> int:
        """Claim the next free number, or exactly ``exact`` (VersionExistsError if taken).

        ``since``: when the save began storing content; ``restore`` puts that
        content back (or checks it is there) if a gc sweep ran since then.
        """
        name = str(aname)
        caught_up = False

        def after(lost: int) -> int:
            nonlocal caught_up
            if not caught_up:
                # This index is behind (another machine wrote): catch up once from
                # the journal rather than failing one claim per missed version.
                self.refresh()
                caught_up = True
            return max(lost + 1, self.index.max_version(name) + 1)

        first = exact if exact is not None else self.index.max_version(name) + 1
        claimed = self._claim(
            record,
            "version",
            first,
            lambda n: version_ref(name, n),
            exact=exact is not None,
            next_after=after,
            since=since,
            blobs=lambda: self._content_blobs(record, entries),
        )
        if claimed is None:
            raise VersionExistsError(f"{name}@{exact} was claimed by another writer", f"{name}@{exact}")
        ref, record_digest, version, swept = claimed
        if swept and restore is not None:
            try:
                restore()
            except Exception:
                # Reused content is gone and cannot be put back (a one-pass stream, a
                # source file that changed or vanished): the number is spent, so the
                # version is committed and its deletion recorded at once - never left
                # as an orphan that someone would complete into a version without content.
                self._commit(ref, record_digest, record, entries)
                self._record_deletion(name, version)
                raise
        self._commit(ref, record_digest, record, entries)
        return version

    def _after_claim(
        self, record: dict[str, Any], record_digest: str, since: float, blobs: Callable[[], Iterable[str]] = tuple
    ) -> bool:
        """After a won claim: could a gc sweep since ``since`` have removed the record
        or ``blobs()``?  If so (once it is over) put the record back."""
        if not sweeps.overlapping(self.backend, since, lambda: [record_digest, *blobs()]):
            return False
        self.records.put_record(record)
        return True

    def _content_blobs(self, record: dict[str, Any], entries) -> list[str]:
        """The content blobs of a version record: its digest, and a tree's files."""
        if record["kind"] != TREE:
            return [record["digest"]]
        listed = entries if entries is not None else self.index.tree_entries(record["digest"])
        return [record["digest"], *(d for _, d, _ in listed)]

    def _check_present(self, kind: str, digest: str, entries) -> None:
        """Every blob of this content is in the backend (asked there: the index may be behind)."""
        self.blobs.size(digest)  # BlobNotFoundError if absent
        if kind == TREE:
            listed = entries if entries is not None else decode_manifest(self.blobs.read_bytes(digest), digest)
            for _, d, _ in listed:
                self.blobs.size(d)

    def _commit(self, ref: str, record_digest: str, record: dict[str, Any], entries=None) -> None:
        """Journal a freshly claimed ref, then show it in the index."""
        hint = int(self.index.get_meta("journal_hint", "0"))
        seq = self.records.append_journal(ref, record_digest, hint)
        with self.index.write() as c:
            if int(self.index.get_meta("journal_hint", "0")) <= seq:  # only forward (threads, processes)
                self.index.set_meta("journal_hint", str(seq + 1), c)
            if self.index.get_meta("journal_next", "0") == str(seq):
                # every entry before ours is applied: the next refresh can start after it
                self.index.set_meta("journal_next", str(seq + 1), c)
            self._apply(c, ref, record_digest, record, entries)

    def _learn_ref(self, ref: str) -> None:
        """Learn a ref someone else claimed (a lost claim).  A bad one is reported and
        skipped: the claim loop moves past it rather than failing every later save.
        One the journal does not announce - its writer died between the claim and
        the journal entry - is completed: journalled here, so every other index
        learns it too."""
        if self.index.has_record(ref):
            return
        try:
            record_digest = self.records.read_ref(ref)
            record, entries = self._load(ref, record_digest)
        except FileNotFoundError:
            return
        except CorruptRecordError as e:
            with self.index.write() as c:
                self._reject(c, e)
            return
        self.refresh()
        if not self.index.has_record(ref):
            self._complete(ref, record_digest)

    def _load(self, ref: str, record_digest: str) -> tuple[dict[str, Any], list | None]:
        """The validated record ``ref`` claims, and the tree entries of a tree version
        the index does not know yet: everything decoded before anything is applied."""
        record = self.records.get_record(record_digest, ref)
        entries = None
        if record["type"] == "version" and record["kind"] == TREE and not self.index.has_tree(record["digest"]):
            entries = self.records.get_manifest(record["digest"], ref)
        return record, entries

    def _load_journalled(self, seq: int, ref: str, record_digest: str) -> tuple[dict[str, Any], list | None]:
        """:meth:`_load` for a journal entry: an error also names the entry, the file to look at."""
        try:
            return self._load(ref, record_digest)
        except CorruptRecordError as e:
            raise CorruptRecordError(journal_path(seq), str(e)) from None

    def _reject(self, c, error: CorruptRecordError) -> None:
        """Remember a bad object for ``verify`` and say so once; the rest goes on."""
        if self.index.add_rejected(c, error.key, str(error)):
            log.warning("cas: skipped %s (cas verify lists what was refused)", error)

    def _orphan(self, ref: str, record_digest: str) -> tuple[dict[str, Any], Any] | None:
        """(record, tree entries) of a ref no journal announced, or None if it dangles:
        its record is missing or unreadable, or (a version) some of its content is.
        Content can be missing only if a sweep took it before the claim; then the
        writer, if alive, puts it back and journals the ref itself - completing it
        first would show everyone a version without its bytes."""
        try:
            record, entries = self._load(ref, record_digest)  # validated (cas.core.records)
            if record["type"] == "version":
                self._check_present(record["kind"], record["digest"], entries)
        except CasError:
            return None
        return record, entries

    def _complete(self, ref: str, record_digest: str) -> bool:
        """Journal and apply an orphan ref; False if it dangles (left alone: verify reports it)."""
        found = self._orphan(ref, record_digest)
        if found is None:
            return False
        self._commit(ref, record_digest, found[0], found[1])
        return True

    def _unknown_refs(self) -> list[tuple[str, str | None]]:
        """(ref, record digest or None if unreadable) for every ref in the backend this
        index does not know: orphans, and claims whose writer has not journalled yet."""
        self.refresh()
        known = {ref for ref, _ in self.index.iter_records()}
        out: list[tuple[str, str | None]] = []
        for ref in self.records.list_refs(on_invalid=lambda e: None):  # bad keys: verify lists them as invalid
            if ref in known:
                continue
            try:
                out.append((ref, self.records.read_ref(ref)))
            except FileNotFoundError:
                continue
            except CasError:
                out.append((ref, None))
        return sorted(out, key=lambda item: ref_order((item[0], "")))

    def _complete_orphans(self) -> tuple[list[str], list[str]]:
        """Journal every ref the backend holds and the journal never announced.
        Returns (completed refs, dangling refs)."""
        completed, dangling = [], []
        for ref, record_digest in self._unknown_refs():
            try:
                done = record_digest is not None and self._complete(ref, record_digest)
            except (OSError, BackendError):
                completed.append(ref)  # reported; journalling needs write access (read-only credentials)
                continue
            (completed if done else dangling).append(ref)
        return completed, dangling

    def _apply(self, c, ref: str, record_digest: str, record: dict[str, Any], entries=None) -> None:
        """Make one record visible in the index; applying twice changes nothing."""
        if not self.index.add_record(c, ref, record_digest):
            return
        fn = APPLIERS.get(record.get("type", ""))
        if fn is None:
            return  # a record type from a newer cas: kept in the backend, ignored here
        if record.get("type") == "version" and entries is not None:
            fn(self, c, dict(record, _entries=entries), record_digest)
        else:
            fn(self, c, record, record_digest)

    # -- aliases and deletion --------------------------------------------------

    def set_alias(self, name: str, version: int | str, alias: str) -> ArtifactVersion:
        """Point ``alias`` at ``version`` of ``name`` (moving it if it pointed elsewhere)."""
        target = self.get_artifact_version(name, version)
        self._move_alias(target.name, check_alias(alias), target.version)
        return target

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove ``alias`` from ``name``; returns the version it pointed at.

        Recorded like a move (an alias record with ``version`` 0, the highest
        ``seq`` wins), so other machines, sync and reindex agree.  ``latest``
        is maintained by cas and cannot be removed.
        """
        aname = str(parse_name(name))
        alias = check_alias(alias)
        if alias == LATEST:
            raise InvalidNameError("'latest' is maintained by cas and cannot be removed")
        self.refresh()
        version = self.index.resolve_alias(aname, alias)
        if version is None:
            self._require_name(aname)
            raise VersionNotFoundError(f"{aname} has no alias {alias!r}")
        self._move_alias(aname, alias, 0)
        return version

    def _move_alias(self, name: str, alias: str, version: int, *, after: int | None = None) -> bool:
        """Move ``alias``; with ``after``, only as the move right after seq ``after``
        (False if another process moved it first: a compare-and-swap for folders)."""
        record = {"type": "alias", "name": name, "alias": alias, "version": version, "created_at": now_iso()}
        first = self.index.alias_seq(name, alias) + 1 if after is None else after + 1
        claimed = self._claim(record, "seq", first, lambda n: alias_ref(name, alias, n), exact=after is not None)
        if claimed is None:
            return False
        self._commit(claimed[0], claimed[1], record)
        return True

    def delete_version(self, name: str, version: int | str) -> ArtifactVersion:
        """Record that a version is deleted.  Its bytes stay until ``gc``."""
        target = self.get_artifact_version(name, version)
        self._record_deletion(target.name, target.version)
        return target

    def _record_deletion(self, name: str, version: int) -> None:
        record = {"type": "delete", "name": name, "version": version, "deleted_at": now_iso()}
        since = time.time()
        record_digest = self.records.put_record(record)
        ref = deletion_ref(name, version)
        if not self.records.claim(ref, record_digest):
            self._learn_ref(ref)
            raise VersionDeletedError(name, version)
        self._after_claim(record, record_digest, since)
        self._commit(ref, record_digest, record)

    # -- finding -----------------------------------------------------------------

    def get_artifact_version(self, name: str, version: int | str | None = None) -> ArtifactVersion:
        """``version``: an int, ``"latest"`` (default), or an alias; or ``name@version``."""
        aname, spec = parse_ref(name, version)
        try:
            return self._resolve(str(aname), spec)
        except (ArtifactNotFoundError, VersionNotFoundError):
            # The index may be behind the backend (another machine wrote): catch up once.
            if not self.refresh():
                if not isinstance(spec, int):
                    raise
                # A numbered version the journal never announced may still be claimed
                # (an orphan ref): one read finds it, and completes it for everyone.
                self._learn_ref(version_ref(str(aname), spec))
            return self._resolve(str(aname), spec)

    def _resolve(self, name: str, spec: int | str) -> ArtifactVersion:
        index = self.index
        if spec == LATEST:
            row = index.latest(name)
            if row is None:
                if index.name_exists(name):
                    raise VersionNotFoundError(f"{name} has no live versions (all were deleted)")
                raise ArtifactNotFoundError(f"no artifact named {name}")
        else:
            if isinstance(spec, str):
                number = index.resolve_alias(name, spec)
                if number is None:
                    self._require_name(name)
                    raise VersionNotFoundError(f"{name} has no alias {spec!r}")
            else:
                number = spec
            row = index.get_version(name, number)
            if row is None:
                self._require_name(name)
                raise VersionNotFoundError(f"{name} has no version {number}")
            if row.deleted_at is not None:
                raise VersionDeletedError(name, number)
        return ArtifactVersion.from_row(self, row)

    def _require_name(self, name: str) -> None:
        if not self.index.name_exists(name):
            raise ArtifactNotFoundError(f"no artifact named {name}")

    def _version(self, name: str, version: int) -> ArtifactVersion:
        row = self.index.get_version(name, version)
        assert row is not None, "a committed version is in the index"
        return ArtifactVersion.from_row(self, row)

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[ArtifactVersion]:
        """Versions of ``name``, oldest first; deleted ones only with ``include_deleted``. ``ArtifactNotFoundError`` for an unknown name."""
        aname = str(parse_name(name))
        rows = self.index.list_versions(aname, include_deleted=include_deleted)
        if not rows:
            self._require_name(aname)
        return [ArtifactVersion.from_row(self, r) for r in rows]

    def list_artifacts(self, prefix: str = "") -> list[str]:
        """Names of artifacts with a live version whose name starts with ``prefix``, sorted. Answered from the index."""
        if not isinstance(prefix, str) or any(ord(ch) < 32 for ch in prefix) or "\\" in prefix:
            raise InvalidNameError(f"invalid prefix {prefix!r}")
        return self.index.list_artifacts(prefix)

    def aliases(self, name: str) -> dict[str, int]:
        """User aliases of ``name`` and the version each points at (``latest`` is implicit, not listed)."""
        return self.index.aliases_of(str(parse_name(name)))

    def stats(self) -> StoreStats:
        """Counts and bytes from the index: artifacts, live versions, content blobs, logical and stored bytes."""
        return StoreStats(**self.index.stats())

    # -- loading, runs and lineage (cas.materializers, cas.lineage.record, cas.lineage) ------------

    def load(self, name: str, version: int | str | None = None, *, allow_pickle: bool = False) -> Any:
        """``get_artifact_version(name, version).load(allow_pickle=...)``."""
        return self.get_artifact_version(name, version).load(allow_pickle=allow_pickle)

    def run(self, pipeline: str, *, params: dict[str, Any] | None = None, run_id: str | None = None) -> _runs.ActiveRun:
        """Start recording a run of ``pipeline`` (id generated unless given; a taken id is refused)."""
        return _runs.ActiveRun(self, pipeline, params=params, run_id=run_id)

    def get_run(self, run_id: str) -> _runs.PipelineRun:
        """A run with its steps, each with the versions it consumed and produced."""
        return _runs.get_run(self, run_id)

    def list_runs(
        self, pipeline: str | None = None, *, status: str | None = None, limit: int | None = None
    ) -> list[_runs.PipelineRun]:
        """Runs, newest first."""
        return _runs.list_runs(self, pipeline, status, limit)

    def end_step(self, run_id: str, step: str, status: str = _runs.COMPLETED, error: str | None = None) -> None:
        """End a step recorded through ``save(..., run_id=, step=)`` (the framework form)."""
        _runs.end_step(self, run_id, step, status, error)

    def end_run(self, run_id: str, status: str = _runs.COMPLETED, error: str | None = None) -> None:
        """End a run recorded through ``save(..., run_id=)`` (the framework form)."""
        _runs.end_run(self, run_id, status, error)

    def materialize(self, obj: Any, name: str, run_id: str, step_name: str, project_name: str = "default") -> str:
        """FlowyML's ``ArtifactStore.materialize``: save ``obj`` as
        ``<project_name>/<step_name>/<name>``, produced by that step of run
        ``run_id``; returns the version's ``cas://`` path."""
        v = self.save(obj, f"{project_name}/{step_name}/{name}", run_id=run_id, step=step_name)
        return f"cas://{v.name}/{v.version}"

    def lineage(
        self, version: ArtifactVersion | str, direction: str = _lineage.UP, depth: int | None = None
    ) -> _lineage.LineageGraph:
        """The lineage graph of a version: ``"up"`` to what it came from, ``"down"``
        to what was derived from it, ``depth`` steps at most (None: all)."""
        if isinstance(version, str):
            try:
                version = self.get_artifact_version(version)
            except VersionDeletedError as e:  # a deleted version keeps its lineage
                version = self._version(e.name, e.version)
        elif not isinstance(version, ArtifactVersion):
            raise InvalidNameError(f"lineage needs an ArtifactVersion or 'name@version', not {type(version).__name__}")
        return _lineage.build_graph(self, version, direction, depth)

    def _note_read(self, version: ArtifactVersion) -> None:
        # Every content read of a version comes here: inside a step it is an input.
        _runs.note_read(version)

    # -- keeping the index in step with the backend ---------------------------------

    def refresh(self) -> int:
        """Apply journal entries this index has not seen; returns how many were new.

        Reads only what is new: one read per new entry, plus one to find the end.
        An entry that is garbage, or whose record is, is skipped and remembered
        for ``verify`` (invariant 12): one bad object never blocks the store.
        """
        seq = int(self.index.get_meta("journal_next", "0"))
        applied = 0
        while True:
            try:
                entry = self.records.read_journal(seq)
                if entry is None:
                    break
                ref, record_digest = entry.ref.path, entry.record
                if not self.index.has_record(ref):
                    record, entries = self._load_journalled(seq, ref, record_digest)
                    with self.index.write() as c:
                        self._apply(c, ref, record_digest, record, entries)
                    applied += 1
            except CorruptRecordError as e:
                with self.index.write() as c:
                    self._reject(c, e)
            seq += 1
        if applied or seq != int(self.index.get_meta("journal_next", "0")):
            with self.index.write() as c:
                # Only forward: another thread or process may have moved it further meanwhile.
                if int(self.index.get_meta("journal_next", "0")) < seq:
                    self.index.set_meta("journal_next", str(seq), c)
                if int(self.index.get_meta("journal_hint", "0")) < seq:
                    self.index.set_meta("journal_hint", str(seq), c)
        return applied

    def reindex(self, progress: Progress | None = None) -> int:
        """Rebuild the index from the backend alone; returns the number of refs applied.

        Safe while others write: a ref claimed after the listing began is
        journaled at or after ``start``, and the journal is replayed from there
        inside the same transaction, so no committed version ever vanishes
        from the index, not even for a moment.  Bad refs, records and journal
        entries are skipped and remembered for ``verify``.
        """
        start = self.records.journal_end()
        rejected: list[CorruptRecordError] = []
        refs = sorted(self.records.iter_refs(on_invalid=rejected.append), key=ref_order)
        journalled, _ = self.records.journalled_refs()
        found = []
        for ref, record_digest in refs:
            if ref in journalled:
                try:
                    record, entries = self._load(ref, record_digest)
                except CorruptRecordError as e:
                    rejected.append(e)
                    continue
                except BlobNotFoundError:
                    continue  # a dangling ref: nothing to show; verify reports it
            else:
                # An orphan: shown (and completed) on the terms every other machine applies.
                orphan = self._orphan(ref, record_digest)
                if orphan is None:
                    continue
                record, entries = orphan
                # Journalled for every other index.  Best effort: a reader with read-only
                # credentials still rebuilds its own; gc, verify or the next claimer complete it.
                with contextlib.suppress(OSError, CasError):
                    self.records.append_journal(ref, record_digest, start)
            found.append((ref, record_digest, record, entries))
        applied = 0
        with self.index.write() as c:
            self.index.clear(c)
            for ref, record_digest, record, entries in found:
                self._apply(c, ref, record_digest, record, entries)
                applied += 1
                item_done(as_callback(progress))
            seq = start
            while True:
                try:
                    entry = self.records.read_journal(seq)
                    if entry is None:
                        break
                    if not self.index.has_record(entry.ref.path):  # same connection: sees this transaction
                        record, entries = self._load_journalled(seq, entry.ref.path, entry.record)
                        self._apply(c, entry.ref.path, entry.record, record, entries)
                except CorruptRecordError as e:
                    rejected.append(e)
                seq += 1
            for e in rejected:
                self._reject(c, e)
            self.index.set_meta("store_id", self.store_id, c)
            self.index.set_meta("journal_next", str(seq), c)
            self.index.set_meta("journal_hint", str(seq), c)
        return applied

    # -- sync ------------------------------------------------------------------------

    def sync_to(
        self,
        other: Store,
        names: Iterable[str] = (),
        *,
        jobs: int | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ):
        """Copy this store's versions, aliases and lineage (or those of ``names``,
        glob patterns) into ``other``, sending only the blobs it lacks.
        Returns a :class:`cas.store.sync.SyncResult`; see ``cas.store.sync`` for the rules."""
        from cas.store.sync import DEFAULT_JOBS, sync

        return sync(self, other, names, jobs=jobs or DEFAULT_JOBS, dry_run=dry_run, progress=progress)

    # -- verify and gc -------------------------------------------------------------

    def verify(self, deep: bool = False, progress: Progress | None = None) -> VerifyReport:
        """Check every blob a version or record needs is present with the right size;
        with ``deep``, rehash every blob.  Finds missing, corrupt and foreign files,
        and refs that dangle; completes orphan refs (claimed, never journalled)."""
        orphans, dangling = self._complete_orphans()
        present: dict[str, int] = {}
        foreign: list[str] = []
        for digest, path, size, _ in self.blobs.iter_digests():
            if digest is None or (isinstance(self.backend, LocalBackend) and self.backend.is_symlink(path)):
                foreign.append(path)
            else:
                present[digest] = size
        # Exactly what gc keeps: a deleted version's bytes may be gone, by design.
        needed = self.index.needed_blobs()
        missing = sorted(d for d in needed if d not in present)
        corrupt = sorted(d for d, size in needed.items() if size is not None and d in present and present[d] != size)
        checked = 0
        if deep:
            bad = set(corrupt)
            for digest in present:
                try:
                    actual, _ = self.blobs.check(digest, progress)
                except CasError:
                    actual = ""
                if actual != digest:
                    bad.add(digest)
                checked += 1
                item_done(as_callback(progress))
            corrupt = sorted(bad)
        else:
            checked = len(needed)
        return VerifyReport(
            checked=checked, missing=missing, corrupt=corrupt, foreign=sorted(foreign), invalid=self._invalid_objects(),
            orphans=orphans,
            dangling=dangling,
        )

    def _invalid_objects(self) -> list[str]:
        """What refresh and reindex refused, plus listed ref and journal keys that
        break the layout or lie beyond the journal's end (a listing each: keys only)."""
        found = set(self.index.rejected())
        found.update(str(e) for e in self.records.scan_journal()[1])
        for entry in self.backend.list(REFS):
            try:
                parse_ref_path(entry.path)
            except CorruptRecordError as e:
                found.add(str(e))
        return sorted(found)

    def gc(self, grace: float = DEFAULT_GC_GRACE, dry_run: bool = False) -> GcReport:
        """Remove blobs no live version or record needs, once older than ``grace`` seconds.

        What is needed is decided from the refs in the backend, not only from
        this index: a ref no journal entry announced (its writer died after
        claiming) is journalled first.  The grace period protects saves in
        flight elsewhere, whose blobs land before their version is claimed; a
        save that reuses a stored blob is protected by the sweep mark written
        before the refs are listed (docs/format.md, gc).
        """
        if grace < 0:
            raise InvalidNameError("grace must be >= 0 seconds")
        self.refresh()
        cutoff = time.time() - grace
        listed = list(self.blobs.iter_digests())
        keep = set(self.index.needed_blobs())
        candidates = [
            (digest, size) for digest, _, size, mtime in listed
            if digest is not None and digest not in keep and (mtime is None or mtime <= cutoff)
        ]
        # Mark before listing the refs, and only if there may be something to remove.
        sweep = sweeps.begin(self.backend, [d for d, _ in candidates]) if candidates and not dry_run else None
        removed = removed_bytes = 0
        try:
            for ref, record_digest in self._unknown_refs():
                if record_digest is None:
                    continue
                if dry_run:  # change nothing: just keep what the orphan needs
                    keep |= self._orphan_blobs(ref, record_digest)
                else:
                    self._complete(ref, record_digest)
            keep.update(self.index.needed_blobs())
            for digest, size in candidates:
                if digest in keep:
                    continue
                if sweep is not None:
                    if not sweep.may_delete():
                        break  # past the promised deadline: writers no longer wait for us
                    self.blobs.remove(digest)
                removed += 1
                removed_bytes += size
            if not dry_run:
                for entry in list(self.backend.list("tmp")):
                    if entry.mtime is not None and entry.mtime <= cutoff:
                        self.backend.remove(entry.path)
                # object stores: unfinished multipart uploads left by killed writers (cas.backends.cloud)
                abort_stale = getattr(self.backend, "abort_stale_uploads", None)
                if abort_stale is not None:
                    abort_stale(cutoff)
        finally:
            if sweep is not None:
                sweep.done()
                sweeps.prune(self.backend, time.time() - sweeps.MARK_KEEP)
        kept = len(listed) - removed
        return GcReport(removed=removed, removed_bytes=removed_bytes, kept=kept, dry_run=dry_run)

    def _orphan_blobs(self, ref: str, record_digest: str) -> set[str]:
        """Every blob an orphan ref needs (its record, content, manifest, tree files)."""
        found = self._orphan(ref, record_digest)
        if found is None:
            return {record_digest}
        record, entries = found
        blobs = {record_digest}
        if record.get("type") == "version":
            blobs.add(record["digest"])
            blobs.update(d for _, d, _ in entries or ())
        return blobs


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _self_and_parents(path: str) -> Iterable[str]:
    path = os.path.abspath(path)
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _position(payload: Any) -> int | None:
    """Where the content of ``payload`` starts, if it can be read again (None: a one-pass stream)."""
    if not hasattr(payload, "read"):
        return 0  # bytes, str, a path: read again from where they are
    try:
        return payload.tell() if payload.seekable() else None
    except (OSError, ValueError):
        return None


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    return check_json_map(metadata, "metadata")


# -- appliers for the core record types ----------------------------------------


@applier("version")
def _apply_version(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    store.index.insert_version(c, record, record_digest)
    if record["kind"] == TREE and not store.index.has_tree(record["digest"]):
        entries = record.get("_entries")
        if entries is None:
            entries = decode_manifest(store.blobs.read_bytes(record["digest"]), record["digest"])
        store.index.insert_tree_entries(c, record["digest"], entries)


@applier("alias")
def _apply_alias(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    store.index.set_alias(c, record["name"], record["alias"], record["version"], record["seq"])


@applier("delete")
def _apply_delete(store: Store, c, record: dict[str, Any], record_digest: str) -> None:
    store.index.mark_deleted(c, record["name"], record["version"], record["deleted_at"])

"""The Publisher: the one write path of a store, and how the index follows the backend.

Every record is published in order (invariant 4): the record is stored, its
create-only ref claimed, the journal entry appended, then the index row made.
A crash in between leaves a ref claimed but never journalled (an orphan), which
whoever meets it completes.  Every claim checks gc's sweep marks
(``cas.storage.sweeps``) before it is journalled.  Runs, sync, aliases,
deletions and saves all publish through :class:`Publisher`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from cas.backends.base import Backend
from cas.core.format import FORMAT_VERSION
from cas.core.records import BLOB, TREE
from cas.core.refs import journal_path, ref_order
from cas.core.tree import chunks_of, decode_manifest
from cas.errors import BackendError, CasError, CorruptRecordError
from cas.index import Index
from cas.storage import sweeps
from cas.storage.blobs import BlobStore
from cas.storage.chunked import read_chunk_list
from cas.storage.records import RecordStore
from cas.store import follow

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["APPLIERS", "Claim", "Publisher", "applier"]

log = logging.getLogger(__name__)

# Record appliers: record type -> fn(publisher, conn, record, record digest), which makes
# the index rows of one record.  Other layers (lineage: run and step events) add theirs.
APPLIERS: dict[str, Callable[[Publisher, Any, dict[str, Any], str], None]] = {}


def applier(kind: str):
    def register(fn):
        APPLIERS[kind] = fn
        return fn

    return register


class Claim(NamedTuple):
    """A won claim, not yet journalled: pass it to :meth:`Publisher.commit`."""

    ref: str
    record_digest: str
    number: int
    #: a gc sweep may have removed what the record needs since the claim began: the
    #: record was put back, and the claimer must put back (or check) its content
    swept: bool


class Publisher:
    """Claims refs, journals them and applies records to the index, for one store."""

    def __init__(
        self,
        backend: Backend,
        blobs: BlobStore,
        records: RecordStore,
        index: Index,
        store_id: str,
        on_read: Callable[[Any], None] | None = None,
        format: int = 1,
        on_format: Callable[[int], None] | None = None,
    ) -> None:
        self.format = format  # the store's format (docs/format.md): what its writers write
        self.on_format = on_format  # told every format this publisher moves to (set_format)
        self.backend = backend
        self.blobs = blobs
        self.records = records
        self.index = index
        self.store_id = store_id
        self.on_read = on_read
        self._batches = threading.local()  # this thread's open batch (format 2): commits waiting

    # -- claiming and committing -------------------------------------------------------

    def claim(
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
    ) -> Claim | None:
        """Claim the first free number from ``first`` for ``record`` (invariant 6).

        The number goes into ``record[field]``; the record is stored, then its
        ref ``ref_for(n)`` is written create-only.  A lost claim is learned and
        the next number tried (``next_after(n)``, default n + 1), unless
        ``exact``, which returns None instead.  The claim is not yet journalled:
        the caller passes it to :meth:`commit`.  ``since`` (default: when the
        record was first stored) and ``blobs()`` decide ``Claim.swept`` (docs/format.md, gc).
        """
        number = first
        since = time.time() if since is None else since
        while True:
            record[field] = number
            record_digest = self.records.put_record(record)
            ref = ref_for(number)
            if self.format >= 2:
                self.records.journal2.check_writable()  # a refused entry must come before the claim
            if self.records.claim(ref, record_digest):
                return Claim(ref, record_digest, number, self.after_claim(record, record_digest, since, blobs))
            self.learn(ref)  # someone else's: learn it
            if exact:
                return None
            number = next_after(number) if next_after else number + 1

    def publish(
        self, record: dict[str, Any], field: str, first: int, ref_for: Callable[[int], str], *, exact: bool = False
    ) -> bool:
        """Claim (as :meth:`claim`) and commit a record that needs no content; False if ``exact`` lost."""
        claimed = self.claim(record, field, first, ref_for, exact=exact)
        if claimed is None:
            return False
        self.commit(claimed.ref, claimed.record_digest, record)
        return True

    def after_claim(
        self, record: dict[str, Any], record_digest: str, since: float, blobs: Callable[[], Iterable[str]] = tuple
    ) -> bool:
        """After a won claim: could a gc sweep since ``since`` have removed the record
        or ``blobs()``?  If so (once it is over) put the record back."""
        if not sweeps.overlapping(self.backend, since, lambda: [record_digest, *blobs()]):
            return False
        self.records.put_record(record)
        return True

    def commit(self, ref: str, record_digest: str, record: dict[str, Any], entries=None) -> None:
        """Journal a freshly claimed ref, then show it in the index.  Inside
        :meth:`batch` (format 2), both wait for the batch to end."""
        if self.format >= 2:
            pending = getattr(self._batches, "pending", None)
            if pending is None:
                follow.commit2(self, [(ref, record_digest, record, entries)])
            else:
                pending.append((ref, record_digest, record, entries))
            return
        seq = self.records.append_journal(ref, record_digest, self.index.journal_cursor().hint)
        with self.index.write() as c:
            self.index.journal_appended(c, seq)
            self.apply(c, ref, record_digest, record, entries)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Every commit of this thread inside goes into ONE journal entry, written when
        the batch ends, even by an exception (format 2; format 1 journals each at once).

        What a batch claimed is shown in the index only when it ends.  A crash
        before then leaves orphans, completed as any other (docs/format.md).
        """
        if self.format < 2 or getattr(self._batches, "pending", None) is not None:
            yield  # format 1, or already inside a batch: the outer one writes
            return
        self._batches.pending = []
        try:
            yield
        finally:
            pending, self._batches.pending = self._batches.pending, None
            if pending:
                follow.commit2(self, pending)

    def note_read(self, version: Any) -> None:
        """Every content read of a version comes here (inside a step it is an input)."""
        if self.on_read is not None:
            self.on_read(version)

    # -- refs someone else claimed ------------------------------------------------------

    def learn(self, ref: str) -> None:
        """Learn a ref someone else claimed (a lost claim).  A bad one is reported and
        skipped: the claim loop moves past it rather than failing every later save.
        One the journal does not announce - its writer died between the claim and
        the journal entry - is completed: journalled here, so every other index
        learns it too."""
        if self.index.has_record(ref):
            return
        try:
            record_digest = self.records.read_ref(ref)
            record, entries = self.load(ref, record_digest)
        except FileNotFoundError:
            return
        except CorruptRecordError as e:
            with self.index.write() as c:
                self.reject(c, e)
            return
        self.refresh()
        if not self.index.has_record(ref) and not self.complete(ref, record_digest):
            # Its content may be in a pack whose index is an orphan too (a writer killed before
            # the one entry announcing both): those are completed, then it is checked again.
            for pack, pack_record in self.unknown_refs("packs"):
                if pack_record is not None:
                    self.complete(pack, pack_record)
            self.complete(ref, record_digest)

    def load(self, ref: str, record_digest: str) -> tuple[dict[str, Any], list | None]:
        """The validated record ``ref`` claims, and the tree entries of a tree version
        the index does not know yet: everything decoded before anything is applied."""
        record = self.records.get_record(record_digest, ref)
        entries = None
        if record["type"] == "version" and record["kind"] == TREE and not self.index.has_tree(record["digest"]):
            entries = self.records.get_manifest(record["digest"], ref)
        return record, entries

    def load_journalled(self, seq: int, ref: str, record_digest: str) -> tuple[dict[str, Any], list | None]:
        """:meth:`load` for a journal entry: an error also names the entry, the file to look at."""
        try:
            return self.load(ref, record_digest)
        except CorruptRecordError as e:
            raise CorruptRecordError(journal_path(seq), str(e)) from None

    def reject(self, c, error: CorruptRecordError) -> None:
        """Remember a bad object for ``verify`` and say so once; the rest goes on."""
        if self.index.add_rejected(c, error.key, str(error)):
            log.warning("cas: skipped %s (cas verify lists what was refused)", error)

    def check_present(self, kind: str, digest: str, entries, chunks: str | None = None) -> None:
        """Every blob of this content is in the backend (asked there: the index may be behind).
        ``chunks``: a chunked file's list (format 2), read and each chunk asked for."""
        if chunks is not None:
            for chunk in read_chunk_list(self.blobs, chunks).chunks:
                self.blobs.size(chunk.digest)
            return
        self.blobs.size(digest)  # BlobNotFoundError if absent
        if kind == TREE:
            listed = entries if entries is not None else decode_manifest(self.blobs.read_bytes(digest), digest)
            for entry in listed:
                self.check_present(BLOB, entry[1], None, chunks_of(entry))

    def orphan(self, ref: str, record_digest: str) -> tuple[dict[str, Any], Any] | None:
        """(record, tree entries) of a ref no journal announced, or None if it dangles:
        its record is missing or unreadable, or (a version) some of its content is.
        Content can be missing only if a sweep took it before the claim; then the
        writer, if alive, puts it back and journals the ref itself - completing it
        first would show everyone a version without its bytes."""
        try:
            record, entries = self.load(ref, record_digest)  # validated (cas.core.records)
            if record["type"] == "version":
                self.check_present(record["kind"], record["digest"], entries, record.get("chunks"))
        except CasError:
            return None
        return record, entries

    def complete(self, ref: str, record_digest: str) -> bool:
        """Journal and apply an orphan ref; False if it dangles (left alone: verify reports it)."""
        found = self.orphan(ref, record_digest)
        if found is None:
            return False
        self.commit(ref, record_digest, found[0], found[1])
        return True

    def unknown_refs(self, kind: str = "") -> list[tuple[str, str | None]]:
        """(ref, record digest or None if unreadable) for every ref (of ``kind``) in the backend
        this index does not know: orphans, and claims whose writer has not journalled yet."""
        self.refresh()
        known = {ref for ref, _ in self.index.iter_records()}
        out: list[tuple[str, str | None]] = []
        for ref in self.records.list_refs(kind, on_invalid=lambda e: None):  # bad keys: verify lists them as invalid
            if ref in known:
                continue
            try:
                out.append((ref, self.records.read_ref(ref)))
            except FileNotFoundError:
                continue
            except CasError:
                out.append((ref, None))
        return sorted(out, key=lambda item: ref_order((item[0], "")))

    def complete_orphans(self) -> tuple[list[str], list[str]]:
        """Journal every ref the backend holds and the journal never announced.
        Returns (completed refs, dangling refs)."""
        completed, dangling = [], []
        for ref, record_digest in self.unknown_refs():
            try:
                done = record_digest is not None and self.complete(ref, record_digest)
            except (OSError, BackendError):
                completed.append(ref)  # reported; journalling needs write access (read-only credentials)
                continue
            (completed if done else dangling).append(ref)
        return completed, dangling

    # -- the index follows the backend ---------------------------------------------------

    def apply(self, c, ref: str, record_digest: str, record: dict[str, Any], entries=None) -> None:
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

    def set_format(self, format: int) -> None:
        """The store is now ``format`` (opened so, upgraded here, or seen upgraded elsewhere)."""
        self.format = format
        if self.on_format is not None:
            self.on_format(format)

    def follow_format(self) -> None:
        """Below the newest format, re-read ``cas-format`` (one small read): another process may
        have upgraded the store, whose writers then journal in the new format only (docs/format.md)."""
        if self.format >= FORMAT_VERSION:
            return
        fmt = self.records.read_format()
        if fmt is not None and int(fmt["format"]) > self.format:
            self.set_format(int(fmt["format"]))

    def refresh(self, *, format_read: bool = False) -> int:
        """Apply journal entries this index has not seen; returns how many were new.

        Reads only what is new: one read per new entry, plus one to find the end
        (and :meth:`follow_format`, unless ``format_read``: the caller just did).
        An entry that is garbage, or whose record is, is skipped and remembered
        for ``verify`` (invariant 12): one bad object never blocks the store.
        """
        if not format_read:
            self.follow_format()
        applied = follow.refresh1(self)
        if self.format >= 2:
            # A format-2 store may have been upgraded: its format-1 journal is read too
            # (above: one read when nothing is new), then the format-2 one.
            applied += follow.refresh2(self)
        return applied

    def reindex(self, progress: Callback | None = None, *, format_read: bool = False) -> int:
        """Rebuild the index from the backend alone; returns the number of refs applied.

        Safe while others write: a ref claimed after the listing began is
        journaled after it started, and the journal is replayed from there
        inside the same transaction, so no committed version ever vanishes
        from the index, not even for a moment.  Bad refs, records and journal
        entries are skipped and remembered for ``verify``.  ``format_read``: as for refresh.
        """
        if not format_read:
            self.follow_format()
        return follow.reindex(self, progress)


# -- appliers for the core record types ----------------------------------------


@applier("version")
def _apply_version(pub: Publisher, c, record: dict[str, Any], record_digest: str) -> None:
    pub.index.insert_version(c, record, record_digest)
    if record["kind"] == TREE and not pub.index.has_tree(record["digest"]):
        entries = record.get("_entries")
        if entries is None:
            entries = decode_manifest(pub.blobs.read_bytes(record["digest"]), record["digest"])
        pub.index.insert_tree_entries(c, record["digest"], entries)


@applier("alias")
def _apply_alias(pub: Publisher, c, record: dict[str, Any], record_digest: str) -> None:
    pub.index.set_alias(c, record["name"], record["alias"], record["version"], record["seq"])


@applier("delete")
def _apply_delete(pub: Publisher, c, record: dict[str, Any], record_digest: str) -> None:
    pub.index.mark_deleted(c, record["name"], record["version"], record["deleted_at"])

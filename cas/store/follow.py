"""How an index follows the journal: the format-2 commit and refresh, and reindex.

Format 2 (docs/format.md, Journal (format 2)) has no shared counter.  A commit
writes one object announcing every ref of one save or sync; a refresh lists
the time slots from its horizon to a little past now (writers' clocks may be
ahead), reads only the entries it has not applied yet, and moves the horizon
to :data:`~cas.storage.journal.WINDOW` before now: whatever is named earlier
than that has surely landed, so a later listing can skip it.  Entries listed
after the horizon are remembered (``Journal2Cursor.seen``), so re-listing the
window costs a listing, never a second read.

The :class:`~cas.store.publish.Publisher` calls these; nothing else does.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from cas.core.progress import as_callback, item_done
from cas.core.refs import Journal2Key, journal_path, parse_ref_path, ref_order
from cas.errors import BlobNotFoundError, CasError, CorruptRecordError
from cas.storage.journal import SKEW, WINDOW, now_us

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from cas.store.publish import Publisher

__all__ = ["claimed", "commit2", "refresh1", "refresh2", "reindex"]

_US = 1_000_000

#: (ref, record digest, record, tree entries or None): what one commit shows
Item = tuple[str, str, dict[str, Any], Any]


def commit2(pub: Publisher, items: list[Item]) -> None:
    """Announce ``items`` in one journal entry, then show them in the index (format 2)."""
    unique: dict[str, Item] = {}
    for item in items:
        unique.setdefault(item[0], item)
    keys = pub.records.journal2.append([(ref, digest) for ref, digest, _, _ in unique.values()])
    with pub.index.write() as c:
        pub.index.journal2_seen(c, keys)  # our own entries: a refresh need not read them back
        for ref, digest, record, entries in unique.values():
            pub.apply(c, ref, digest, record, entries)


def refresh1(pub: Publisher) -> int:
    """Apply the format-1 journal entries this index has not seen; returns how many were new.
    One read per new entry and one per new ref (an entry announces a claim, it is not one),
    plus one to find the end."""
    start = seq = pub.index.journal_cursor().next
    applied = 0
    while True:
        try:
            entry = pub.records.read_journal(seq)
            if entry is None:
                break
            ref, record_digest = entry.ref.path, entry.record
            if not pub.index.has_record(ref):
                claimed(pub, ref, record_digest, seq)
                record, entries = pub.load_journalled(seq, ref, record_digest)
                with pub.index.write() as c:
                    pub.apply(c, ref, record_digest, record, entries)
                applied += 1
        except CorruptRecordError as e:
            with pub.index.write() as c:
                pub.reject(c, e)
        seq += 1
    if applied or seq != start:
        with pub.index.write() as c:
            pub.index.journal_applied(c, seq)
    return applied


def _entry_items(
    pub: Publisher, key: Journal2Key, rejected: list[CorruptRecordError], skip: frozenset[str] = frozenset()
) -> list[Item]:
    """The refs one entry announces that the index lacks, loaded and validated.
    A bad entry, or a ref whose record is bad, is rejected; the rest goes on."""
    try:
        pairs = pub.records.journal2.read(key)
    except CorruptRecordError as e:
        rejected.append(e)
        return []
    items = []
    for entry in pairs:
        ref = entry.ref.path
        if pub.index.has_record(ref) or ref in skip:
            continue
        try:
            claimed(pub, ref, entry.record)
            record, tree = pub.load(ref, entry.record)
        except CorruptRecordError as e:
            rejected.append(CorruptRecordError(key.path, str(e)))
            continue
        items.append((ref, entry.record, record, tree))
    return items


def claimed(pub: Publisher, ref: str, record_digest: str, seq: int | None = None) -> None:
    """An entry announces a claim, it is not one: the ref must hold that record (the refs are
    the truth, invariant 3), else a lie would show a version a reindex or a claimer contradicts.
    ``seq``: a format-1 entry, named in the error (the file to look at)."""
    try:
        held = pub.records.read_ref(ref)
    except FileNotFoundError:
        held = None
    if held == record_digest:
        return
    error = CorruptRecordError(ref, f"announced with record {record_digest}, it holds {held}" if held else "announced, but never claimed")
    raise error if seq is None else CorruptRecordError(journal_path(seq), str(error))


def _gather(
    pub: Publisher, horizon: int | None, seen: frozenset[str], rejected: list, listed_refs: frozenset[str] = frozenset()
) -> tuple[list[Item], list[Journal2Key]]:
    """One listing of the slots after ``horizon`` (all of them if None): (refs to apply,
    the keys that announce them), read and loaded outside any write transaction.
    ``listed_refs``: refs a reindex listing already decided on (applied, or refused)."""
    listed = pub.records.journal2.listed(horizon, now_us() + int(SKEW * _US), rejected.append)
    items: list[Item] = []
    done = []
    for key in listed:
        if (horizon is not None and key.stamp <= horizon) or key.path in seen:
            continue  # settled at an earlier listing, or read already
        items += _entry_items(pub, key, rejected, listed_refs)
        done.append(key)
    return items, done


def refresh2(pub: Publisher) -> int:
    """Apply the format-2 entries this index has not seen; returns how many refs were new.

    Costs one listing per slot since the horizon (two or three when refreshed
    often; about one per day away) and one read per new entry.
    """
    started = now_us()  # before listing: what was named WINDOW before this has landed
    cursor = pub.index.journal2_cursor()
    rejected: list[CorruptRecordError] = []
    items, done = _gather(pub, cursor.horizon, cursor.seen, rejected)
    with pub.index.write() as c:
        for ref, digest, record, entries in items:
            pub.apply(c, ref, digest, record, entries)  # False (nothing) if another refresh got it first
        for e in rejected:
            pub.reject(c, e)
        pub.index.journal2_seen(c, done)
        pub.index.journal2_advanced(c, started - int(WINDOW * _US))
    return len(items)


def _learn_packs(pub: Publisher, found: list[Item]) -> None:
    """Apply the pack index records among ``found`` (so far: only pack refs) to the index."""
    with pub.index.write() as c:
        for ref, record_digest, record, entries in found:
            pub.apply(c, ref, record_digest, record, entries)


def reindex(pub: Publisher, progress: Callback | None = None) -> int:
    """Rebuild the index from the backend alone (``Publisher.reindex`` says the rest)."""
    progress = as_callback(progress)
    started = now_us()  # before the refs are listed: later claims are journalled after it
    start = pub.records.journal_end()
    rejected: list[CorruptRecordError] = []
    refs = sorted(pub.records.iter_refs(on_invalid=rejected.append), key=ref_order)
    journalled, _ = pub.records.journalled_refs()
    if pub.format >= 2:
        journalled |= pub.records.journal2.announced_refs(rejected.append)
    found, orphans = [], []
    packs_learned = False
    for ref, record_digest in refs:  # pack refs first (ref_order)
        if ref not in journalled and not packs_learned and parse_ref_path(ref).kind != "packs":
            # An orphan's content is checked next, and packed content is found only through
            # the pack indexes listed above (orphans too: a writer killed before the one entry
            # announcing a pack and its version): made known first.  A pack row shows nothing.
            _learn_packs(pub, found)
            packs_learned = True
        if ref in journalled:
            try:
                record, entries = pub.load(ref, record_digest)
            except CorruptRecordError as e:
                rejected.append(e)
                continue
            except BlobNotFoundError:
                continue  # a dangling ref: nothing to show; verify reports it
        else:
            # An orphan: shown (and completed) on the terms every other machine applies.
            orphan = pub.orphan(ref, record_digest)
            if orphan is None:
                continue
            record, entries = orphan
            orphans.append((ref, record_digest))
        found.append((ref, record_digest, record, entries))
    # Orphans are journalled for every other index.  Best effort: a reader with read-only
    # credentials still rebuilds its own; gc, verify or the next claimer complete them.
    with contextlib.suppress(OSError, CasError):
        if pub.format >= 2 and orphans:
            pub.records.journal2.append(orphans)
        for ref, record_digest in orphans if pub.format < 2 else ():
            pub.records.append_journal(ref, record_digest, start)
    applied = 0
    with pub.index.write() as c:
        pub.index.clear(c)
        for ref, record_digest, record, entries in found:
            pub.apply(c, ref, record_digest, record, entries)
            applied += 1
            item_done(progress)
        seq = start
        while True:
            try:
                entry = pub.records.read_journal(seq)
                if entry is None:
                    break
                if not pub.index.has_record(entry.ref.path):  # same connection: sees this transaction
                    claimed(pub, entry.ref.path, entry.record, seq)
                    record, entries = pub.load_journalled(seq, entry.ref.path, entry.record)
                    pub.apply(c, entry.ref.path, entry.record, record, entries)
            except CorruptRecordError as e:
                rejected.append(e)
            seq += 1
        if pub.format >= 2:
            # Entries named WINDOW before the listing began announce refs it saw;
            # the later ones may announce refs claimed after it: replayed here.
            horizon = started - int(WINDOW * _US)
            # A ref the listing saw was decided there (a refused one stays refused).
            listed = frozenset([ref for ref, _ in refs] + [e.key for e in rejected])
            items, done = _gather(pub, horizon, frozenset(), rejected, listed)
            for ref, digest, record, entries in items:
                pub.apply(c, ref, digest, record, entries)
            pub.index.journal2_rebuilt(c, horizon, done)
        for e in rejected:
            pub.reject(c, e)
        pub.index.set_meta("store_id", pub.store_id, c)
        pub.index.journal_rebuilt(c, seq)
    return applied

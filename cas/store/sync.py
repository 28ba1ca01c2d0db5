"""Copy versions, aliases and lineage between two stores, sending only what is missing.

``status`` decides what the destination lacks; ``transfer`` sends it.  The
order is invariant 4's: every blob (content, tree manifests, record blobs)
first, then each ref, claimed create-only in the destination and announced in
the destination's *own* journal, so the destination's other readers pick it
up with ``refresh``.  A sync killed at any point leaves a consistent
destination (at worst blobs no ref points at yet); running it again finishes
the job, and a sync with nothing new sends nothing.

Deciding what is missing (the expensive part on a big bucket):

1. The destination's index answers first: a blob its live versions, tree
   manifests or records need is there (that is what ``gc`` keeps).  For the
   common case -- a destination that is this store's mirror -- that answers
   for nearly every blob with zero requests.
2. The rest are asked of the backend, whichever way is cheaper, as DVC's
   ``oids_exist`` does: count one of the 256 ``blobs/xx/`` shards to estimate
   how many blobs the destination holds, then either one ``exists`` per
   unknown blob (in parallel) or one full listing, by comparing the number of
   unknown blobs with the number of listing pages the estimate implies.
   A local destination always uses ``exists`` (a stat).

Conflicts: a ref is immutable.  If the destination holds a *different* record
at a ref the source wants to send (both stores made version 3 of a name on
their own), nothing of that artifact name is sent and the name is reported.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cas.core.digest import CHUNK, hash_bytes
from cas.core.progress import as_callback, item_done
from cas.core.records import parse_ref_path, ref_order
from cas.errors import CorruptRecordError, IntegrityError, InvalidNameError
from cas.storage import sweeps
from cas.storage.blobs import BLOB_PREFIX, blob_path, digest_from_path
from cas.store.facade import Store
from cas.version import TREE

if TYPE_CHECKING:
    from cas.core.progress import Callback

__all__ = ["SyncPlan", "SyncResult", "status", "transfer", "sync", "DEFAULT_JOBS"]

DEFAULT_JOBS = 8
# Blobs up to this size are copied in memory; larger ones stream through a spool file.
_IN_MEMORY = 4 << 20
# DVC's measured constants for object stores (dvc-objects ObjectDB).
_LIST_PAGE = 1000
_HUGE_REMOTE = 500_000
_HUGE_WEIGHT = 5
_SHARDS = 256
# A local destination publishes blobs in batches of this many (one syncfs each).
_LOCAL_BATCH = 2000


@dataclass(frozen=True)
class SyncPlan:
    """What the destination lacks.  ``blobs``: digest -> size (None: unknown, a record)."""

    refs: tuple[tuple[str, str], ...]  # (ref, record digest) to publish, in publish order
    blobs: dict[str, int | None]
    skipped_blobs: int
    skipped_bytes: int
    refs_present: int
    conflicts: tuple[str, ...]  # artifact names whose history differs at the destination
    method: str  # how missing blobs were found: "index", "exists" or "list"
    planned_at: float = 0.0  # when presence was first asked (0: unknown, so re-checked)

    @property
    def bytes_missing(self) -> int:
        return sum(s or 0 for s in self.blobs.values())


@dataclass(frozen=True)
class SyncResult:
    blobs_sent: int
    bytes_sent: int
    blobs_skipped: int
    bytes_skipped: int
    refs_sent: int
    refs_skipped: int
    conflicts: tuple[str, ...] = ()
    dry_run: bool = False
    method: str = "index"

    def as_dict(self) -> dict:
        return {
            "blobs_sent": self.blobs_sent,
            "bytes_sent": self.bytes_sent,
            "blobs_skipped": self.blobs_skipped,
            "bytes_skipped": self.bytes_skipped,
            "refs_sent": self.refs_sent,
            "refs_skipped": self.refs_skipped,
            "conflicts": list(self.conflicts),
            "dry_run": self.dry_run,
            "method": self.method,
        }


# -- choosing what to copy ---------------------------------------------------------


def _name_of(ref: str) -> str | None:
    """The artifact name a versions/aliases/deletions ref belongs to (refs come from
    the index, validated when they entered it; the parser is the one records uses)."""
    return parse_ref_path(ref).name


def _matcher(patterns: Iterable[str]) -> Callable[[str], bool] | None:
    pats = [p for p in patterns if p]
    for p in pats:
        if any(ord(ch) < 32 for ch in p) or "\\" in p:
            raise InvalidNameError(f"invalid name pattern {p!r}")
    if not pats:
        return None

    def match(name: str) -> bool:
        for p in pats:
            if fnmatch.fnmatchcase(name, p) or name.startswith(p.rstrip("/") + "/"):
                return True
        return False

    return match


def _selected_refs(src: Store, match: Callable[[str], bool] | None) -> list[tuple[str, str]]:
    refs = list(src.index.iter_records())
    if match is None:
        return refs
    names = {n for n in (_name_of(r) for r, _ in refs) if n is not None and match(n)}
    runs = {run_id for name in names for run_id in src.index.run_ids_of(name)}
    keys = [(parse_ref_path(r), d) for r, d in refs]
    return [(k.path, d) for k, d in keys if k.name in names or (k.kind == "runs" and k.owner in runs)]


def _needed_blobs(src: Store, refs: list[tuple[str, str]]) -> dict[str, int | None]:
    """Every blob the selected refs need: records, content of live versions, tree manifests."""
    needed: dict[str, int | None] = {}
    for _, record_digest in refs:
        needed.setdefault(record_digest, None)
    version_refs = [key for key in (parse_ref_path(r) for r, _ in refs) if key.kind == "versions"]
    for key in version_refs:
        row = src.index.get_version(key.owner, key.number)
        if row is None:
            continue
        if row.kind == TREE:
            needed.setdefault(row.digest, None)  # manifests are kept even for deleted versions (reindex reads them)
            if row.deleted_at is None:
                for _, entry_digest, entry_size in src.index.tree_entries(row.digest):
                    needed[entry_digest] = entry_size
        elif row.deleted_at is None:
            needed[row.digest] = row.size
    return needed


def _present_by_backend(dst: Store, unknown: set[str], jobs: int) -> tuple[set[str], str]:
    """Which of ``unknown`` the destination backend holds, by exists or by listing."""
    if not unknown:
        return set(), "index"
    backend = dst.backend
    if backend.is_local or len(unknown) == 1:
        return {d for d in unknown if dst.blobs.exists(d)}, "exists"
    # Estimate the destination's size from one shard (blobs are uniform over shards).
    shard = {d for d in (digest_from_path(e.path) for e in backend.list(f"{BLOB_PREFIX}/00")) if d}
    estimate = max(len(shard), 1) * _SHARDS
    pages = estimate / _LIST_PAGE
    weight = pages * _HUGE_WEIGHT if estimate > _HUGE_REMOTE else pages
    if len(unknown) < weight:
        known = unknown & shard
        rest = sorted(unknown - known)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            found = [d for d, ok in zip(rest, pool.map(dst.blobs.exists, rest), strict=True) if ok]
        return known | set(found), "exists"
    listed = {digest for digest, *_ in dst.blobs.iter_digests() if digest is not None}
    return unknown & listed, "list"


def _fill_sizes(src: Store, blobs: dict[str, int | None], jobs: int) -> None:
    """Sizes the index does not hold (record blobs), so reports count exact bytes."""
    unknown = [d for d, s in blobs.items() if s is None]
    if not unknown:
        return
    if src.backend.is_local:
        blobs.update(zip(unknown, map(src.blobs.size, unknown), strict=True))
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        blobs.update(zip(unknown, pool.map(src.blobs.size, unknown), strict=True))


def status(src: Store, dst: Store, names: Iterable[str] = (), *, jobs: int = DEFAULT_JOBS) -> SyncPlan:
    """What ``dst`` lacks of ``src`` (restricted to artifact ``names`` patterns, if given)."""
    match = _matcher(names)
    planned_at = time.time()
    src.refresh()
    dst.refresh()
    refs = _selected_refs(src, match)
    dst_refs = dict(dst.index.iter_records())
    conflicts = sorted({_name_of(r) or r for r, d in refs if r in dst_refs and dst_refs[r] != d})
    conflicted = set(conflicts)
    refs = [(r, d) for r, d in refs if (_name_of(r) or r) not in conflicted]
    missing_refs = [(r, d) for r, d in refs if r not in dst_refs]
    needed = _needed_blobs(src, refs)
    known = dst.index.needed_blobs()
    unknown = {d for d in needed if d not in known}
    present, method = _present_by_backend(dst, unknown, jobs)
    missing = {d: needed[d] for d in unknown - present}
    _fill_sizes(src, missing, jobs)
    skipped = [d for d in needed if d not in missing]
    return SyncPlan(
        refs=tuple(sorted(missing_refs, key=ref_order)),
        blobs=missing,
        skipped_blobs=len(skipped),
        skipped_bytes=sum(needed[d] or 0 for d in skipped),
        refs_present=len(refs) - len(missing_refs),
        conflicts=tuple(conflicts),
        method=method,
        planned_at=planned_at,
    )


# -- sending -------------------------------------------------------------------------


def _copy_blob(src: Store, dst: Store, digest: str, size: int | None, progress: Callback) -> int:
    """Copy one blob, hashing while copying; returns bytes written (0 if it was there).
    The bytes read go to ``progress`` from the worker thread."""
    rel = blob_path(digest)
    if size is None or size <= _IN_MEMORY:
        try:
            data = src.backend.read_bytes(rel)
        except FileNotFoundError:
            from cas.errors import BlobNotFoundError

            raise BlobNotFoundError(digest) from None
        actual = hash_bytes(data)
        if actual != digest:
            raise IntegrityError(digest, actual, f"source {rel}")
        progress.relative_update(len(data))
        return len(data) if dst.backend.create_bytes(rel, data, content_addressed=True) else 0
    # Large: stream through a spool file next to the destination (bounded memory),
    # verified before it is published under its final name.
    spool = dst.blobs.spool()
    try:
        with src.blobs.open(digest) as reader:
            raw = reader.raw
            while block := raw.read(CHUNK):
                spool.write(block)
                progress.relative_update(len(block))
        if spool.hexdigest() != digest:
            raise IntegrityError(digest, spool.hexdigest(), f"source {rel}")
    except BaseException:
        spool.discard()
        raise
    result = spool.commit()
    return result.size if result.written else 0


def _copy_in_batch(batch: object, src: Store, dst: Store, digest: str, size: int | None, progress: Callback) -> int:
    # A batch belongs to the thread that opened it; pool workers join it explicitly.
    with dst.backend.join(batch):
        return _copy_blob(src, dst, digest, size, progress)


def _send_blobs(src: Store, dst: Store, blobs: dict[str, int | None], jobs: int, progress: Callback | None) -> tuple[int, int]:
    progress = as_callback(progress)
    sent = sent_bytes = 0
    # Largest first keeps the pool busy to the end; small ones fill the gaps.
    order = sorted(blobs.items(), key=lambda kv: -(kv[1] or 0))
    step = _LOCAL_BATCH if dst.backend.is_local else max(len(order), 1)
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            with dst.backend.batch() as batch:  # local: one syncfs per chunk; a no-op elsewhere
                futures = [pool.submit(_copy_in_batch, batch, src, dst, d, s, progress) for d, s in chunk]
                try:
                    for fut in _as_done(futures):
                        n = fut.result()
                        if n:
                            sent += 1
                            sent_bytes += n
                        item_done(progress)
                except BaseException:
                    for f in futures:
                        f.cancel()
                    wait(futures)
                    raise
    return sent, sent_bytes


def _as_done(futures):
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        yield from done


def _group_of(ref: str) -> str:
    """Refs of one artifact name (or one run) are claimed in order, one after another."""
    return parse_ref_path(ref).group


def _claim_group(src: Store, dst: Store, refs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Claim one group's refs in order; (ref, digest, outcome) with outcome
    "claimed", "ours" (claimed by an interrupted earlier run) or "conflict"."""
    out: list[tuple[str, str, str]] = []
    for i, (ref, digest) in enumerate(refs):
        if dst.records.claim(ref, digest):
            out.append((ref, digest, "claimed"))
        elif _held_by(dst, ref) == digest:
            out.append((ref, digest, "ours"))
        else:
            # A history that differs at the destination: nothing more of it is claimed.
            out.append((ref, digest, "conflict"))
            out.extend((r, d, "conflict") for r, d in refs[i + 1 :])
            break
    return out


def _held_by(dst: Store, ref: str) -> str | None:
    """The record digest ``dst`` holds at ``ref``; None for a bad ref (then the
    histories differ: a conflict, reported, rather than a failed sync)."""
    try:
        return dst.records.read_ref(ref)
    except CorruptRecordError:
        return None


def _restore_after_sweep(src: Store, dst: Store, refs: list[tuple[str, str]], since: float, jobs: int) -> None:
    """Blobs the plan found present were not sent; a gc sweep at the destination since
    then may have removed them.  Once it is over, send back whatever is missing
    (docs/format.md, gc: the same rule as a save's dedupe hit)."""
    needed: dict[str, int | None] = {}

    def blobs() -> dict[str, int | None]:  # only asked for if a recent sweep lists what it may remove
        if not needed:
            needed.update(_needed_blobs(src, refs))
        return needed

    if not refs or not sweeps.overlapping(dst.backend, since, blobs):
        return
    digests = sorted(blobs())
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        present = list(pool.map(dst.blobs.exists, digests))
    gone = {d: needed[d] for d, ok in zip(digests, present, strict=True) if not ok}
    _send_blobs(src, dst, gone, jobs, None)


def _publish_refs(
    src: Store, dst: Store, refs: list[tuple[str, str]], jobs: int, since: float = 0.0
) -> tuple[int, int, list[str]]:
    """Claim refs in ``dst`` (create-only), then journal and index them in publish order.

    Claims run in parallel across artifact names and runs, in order within one;
    journal entries are appended one by one, because readers stop at the first
    missing entry.  A ref claimed but not journaled (killed in between) is
    recognised as ours by the next run and journaled then.
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    for ref, digest in refs:
        groups.setdefault(_group_of(ref), []).append((ref, digest))
    outcome: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for claimed in pool.map(lambda g: _claim_group(src, dst, g), groups.values()):
            outcome.update((ref, result) for ref, _, result in claimed)
    _restore_after_sweep(src, dst, [(r, d) for r, d in refs if outcome[r] != "conflict"], since, jobs)
    sent = skipped = 0
    conflicts: set[str] = set()
    for ref, digest in refs:  # already in publish order
        result = outcome[ref]
        if result == "conflict":
            conflicts.add(_name_of(ref) or ref)
            continue
        if result == "claimed" or not dst.index.has_record(ref):
            dst._commit(ref, digest, src.records.get_record(digest, ref))
        if result == "claimed":
            sent += 1
        else:
            skipped += 1
    return sent, skipped, sorted(conflicts)


def transfer(src: Store, dst: Store, plan: SyncPlan, *, jobs: int = DEFAULT_JOBS, progress: Callback | None = None) -> SyncResult:
    """Send what ``plan`` says is missing: blobs, then refs (invariant 4).  Bytes
    sent and blobs done go to ``progress``, from the worker threads."""
    sent, sent_bytes = _send_blobs(src, dst, plan.blobs, jobs, progress)
    already = len(plan.blobs) - sent
    refs_sent, refs_skipped, late_conflicts = _publish_refs(src, dst, list(plan.refs), jobs, plan.planned_at)
    return SyncResult(
        blobs_sent=sent,
        bytes_sent=sent_bytes,
        blobs_skipped=plan.skipped_blobs + already,
        bytes_skipped=plan.skipped_bytes + (plan.bytes_missing - sent_bytes if already else 0),
        refs_sent=refs_sent,
        refs_skipped=plan.refs_present + refs_skipped,
        conflicts=tuple(sorted(set(plan.conflicts) | set(late_conflicts))),
        method=plan.method,
    )


def sync(
    src: Store,
    dst: Store,
    names: Iterable[str] = (),
    *,
    jobs: int = DEFAULT_JOBS,
    dry_run: bool = False,
    progress: Callback | None = None,
) -> SyncResult:
    """Make ``dst`` hold every version, alias and lineage record of ``src`` (or of ``names``)."""
    plan = status(src, dst, names, jobs=jobs)
    if dry_run:
        return SyncResult(
            blobs_sent=len(plan.blobs),
            bytes_sent=plan.bytes_missing,
            blobs_skipped=plan.skipped_blobs,
            bytes_skipped=plan.skipped_bytes,
            refs_sent=len(plan.refs),
            refs_skipped=plan.refs_present,
            conflicts=plan.conflicts,
            dry_run=True,
            method=plan.method,
        )
    return transfer(src, dst, plan, jobs=jobs, progress=progress)

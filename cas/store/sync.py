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
   unknown blob (``jobs`` in parallel) or one full listing, by comparing the
   rounds of ``exists`` with the listing pages the estimate implies (pages are
   sequential and each costs several requests' time).
   A local destination always uses ``exists`` (a stat).

What the destination says is a claim (invariant 12), so it can only cause an
extra copy, never a missing one: a listing only narrows which blobs to ask
about (one it leaves out is sent; one it shows is confirmed by ``exists``, the
answer a create-only write takes as success), and a blob its pack indexes
place in a pack counts only once that range is read and verified
(:func:`cas.store.send.held`).  The common case costs nothing extra: the blobs
left unknown after step 1 are the new ones, which are absent.

Conflicts: a ref is immutable.  If the destination holds a *different* record
at a ref the source wants to send (both stores made version 3 of a name on
their own), nothing of that artifact name is sent and the name is reported.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cas.core.progress import as_callback, item_done
from cas.core.refs import parse_ref_path, ref_order
from cas.errors import InvalidNameError
from cas.storage.blobs import BLOB_PREFIX, digest_from_path
from cas.store import packing
from cas.store.send import held, needed_blobs, publish_refs, refuse_chunked, send_blobs

if TYPE_CHECKING:
    from cas.core.progress import Callback
    from cas.store.facade import Store

__all__ = ["SyncPlan", "SyncResult", "status", "transfer", "sync", "DEFAULT_JOBS"]

DEFAULT_JOBS = 8
# DVC's measured constants for object stores (dvc-objects ObjectDB).
_LIST_PAGE = 1000
_HUGE_REMOTE = 500_000
_HUGE_WEIGHT = 5
_SHARDS = 256
# One listing page (1,000 keys) costs about as long as this many exists requests: on
# moto, listing 4,458 keys took 9.8 s where 48 HEADs, 8 at a time, took well under 1 s.
_PAGE_COST = 10


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
    names = {n for n in (parse_ref_path(r).name for r, _ in refs) if n is not None and match(n)}
    runs = {run_id for name in names for run_id in src.index.run_ids_of(name)}
    keys = [(parse_ref_path(r), d) for r, d in refs]
    return [(k.path, d) for k, d in keys if k.name in names or (k.kind == "runs" and k.owner in runs)]


def _present_by_backend(dst: Store, unknown: set[str], jobs: int) -> tuple[set[str], str]:
    """Which of ``unknown`` the destination backend holds, by exists or by listing.

    Only an answer the write path would also take counts as "present" (see
    :func:`cas.store.send.held`): a listing narrows what to ask, it never vouches for a blob
    on its own, so a listing that claims too much costs a request, never a copy."""
    if not unknown:
        return set(), "index"
    backend = dst.backend
    if backend.capabilities.local or len(unknown) == 1:
        return _confirm(dst, unknown, jobs), "exists"
    # Estimate the destination's size from one shard (blobs are uniform over shards).
    shard = {d for d in (digest_from_path(e.path) for e in backend.list(f"{BLOB_PREFIX}/00")) if d}
    estimate = max(len(shard), 1) * _SHARDS
    pages = estimate / _LIST_PAGE
    weight = pages * _HUGE_WEIGHT if estimate > _HUGE_REMOTE else pages
    # Listing pages come one after another, exists requests ``jobs`` at a time.
    if len(unknown) / max(jobs, 1) < weight * _PAGE_COST:
        return _confirm(dst, unknown, jobs), "exists"
    listed = {digest for digest, *_ in dst.blobs.iter_digests() if digest is not None}
    # not listed: missing, or packed (format 2), which the listing of blobs/ cannot show
    packed = {d for d in unknown - listed if dst.index.pack_locations(d)}
    return _confirm(dst, (unknown & listed) | packed, jobs), "list"


def _confirm(dst: Store, digests: set[str], jobs: int) -> set[str]:
    if dst.backend.capabilities.local or len(digests) <= 1:
        return {d for d in digests if held(dst, d)}
    rest = sorted(digests)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return {d for d, ok in zip(rest, pool.map(lambda d: held(dst, d), rest), strict=True) if ok}


def _fill_sizes(src: Store, blobs: dict[str, int | None], jobs: int) -> None:
    """Sizes the index does not hold (record blobs), so reports count exact bytes."""
    unknown = [d for d, s in blobs.items() if s is None]
    if not unknown:
        return
    if src.backend.capabilities.local:
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
    refs = packing.sendable(dst.publisher, _selected_refs(src, match))  # pack indexes: format 2 only
    dst_refs = dict(dst.index.iter_records())
    conflicts = sorted({parse_ref_path(r).name or r for r, d in refs if r in dst_refs and dst_refs[r] != d})
    conflicted = set(conflicts)
    refs = [(r, d) for r, d in refs if (parse_ref_path(r).name or r) not in conflicted]
    missing_refs = [(r, d) for r, d in refs if r not in dst_refs]
    refuse_chunked(src, dst, missing_refs)
    needed = needed_blobs(src, refs)
    unknown = set(needed) - dst.index.kept_among(needed)
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


def transfer(src: Store, dst: Store, plan: SyncPlan, *, jobs: int = DEFAULT_JOBS, progress: Callback | None = None) -> SyncResult:
    """Send what ``plan`` says is missing: blobs, then refs (invariant 4).  Bytes
    sent and blobs done go to ``progress``, from the worker threads."""
    # format 2 -> 2: packs whose index is sent go whole (verified); the rest as blobs
    progress = as_callback(progress)
    covered = packing.send_packs(src.publisher, dst.publisher, plan.refs, plan.blobs)
    progress.relative_update(sum(covered.values()))  # a whole pack's blobs are bytes sent and blobs done too
    item_done(progress, len(covered))
    sent, sent_bytes = send_blobs(src, dst, {d: n for d, n in plan.blobs.items() if d not in covered}, jobs, progress)
    sent, sent_bytes = sent + len(covered), sent_bytes + sum(covered.values())  # content bytes, as a dry run counts
    already = len(plan.blobs) - sent
    refs_sent, refs_skipped, late_conflicts = publish_refs(src, dst, list(plan.refs), jobs, plan.planned_at)
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

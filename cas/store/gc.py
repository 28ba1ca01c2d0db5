"""``gc``: remove the blobs no live version or record needs, once older than a grace period."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from cas.core.tree import chunks_of
from cas.errors import CasError, InvalidValueError
from cas.storage import sweeps
from cas.storage.chunked import chunk_blobs
from cas.store import packgc
from cas.store.publish import Publisher

__all__ = ["DEFAULT_GC_GRACE", "GcReport", "gc"]

DEFAULT_GC_GRACE = 24 * 3600.0


@dataclass(frozen=True)
class GcReport:
    removed: int
    removed_bytes: int
    kept: int
    dry_run: bool


def gc(pub: Publisher, grace: float = DEFAULT_GC_GRACE, dry_run: bool = False) -> GcReport:
    """:meth:`cas.Store.gc` (its docstring says what gc keeps and why)."""
    if grace < 0:
        raise InvalidValueError("grace must be >= 0 seconds")
    backend = pub.backend
    pub.refresh()
    cutoff = time.time() - grace
    listed = list(pub.blobs.iter_digests())
    keep = _needed(pub)
    candidates = [
        (digest, size) for digest, _, size, mtime in listed
        if digest is not None and digest not in keep and (mtime is None or mtime <= cutoff)
    ]
    packs = packgc.plan(pub, keep, cutoff)  # format 2: packs to drop or repack
    marked = [d for d, _ in candidates] + packs.candidates(keep)
    # Mark before listing the refs, and only if there may be something to remove.
    sweep = sweeps.begin(backend, marked, unknown=bool(packs.unannounced)) if (marked or packs.unannounced) and not dry_run else None
    removed = removed_bytes = 0
    try:
        for ref, record_digest in pub.unknown_refs():
            if record_digest is None:
                continue
            if dry_run or not pub.complete(ref, record_digest):
                # A dry run changes nothing; a ref that dangles from here (its content looks
                # missing: a sweep's, or in packs this Store does not read) is kept as it is.
                keep |= _orphan_blobs(pub, ref, record_digest)
        keep.update(_needed(pub))
        for digest, size in candidates:
            if digest in keep:
                continue
            if sweep is not None:
                if not sweep.may_delete():
                    break  # past the promised deadline: writers no longer wait for us
                pub.blobs.remove(digest)
            removed += 1
            removed_bytes += size
        packed_removed, packs_freed = packgc.sweep(pub, packs, keep, sweep, dry_run)
        removed, removed_bytes = removed + packed_removed, removed_bytes + packs_freed
        if not dry_run:
            for entry in list(backend.list("tmp")):
                if entry.mtime is not None and entry.mtime <= cutoff:
                    backend.remove(entry.path)
            # object stores: unfinished multipart uploads left by killed writers (cas.backends.cloud)
            if backend.capabilities.stale_uploads:
                backend.abort_stale_uploads(cutoff)  # type: ignore[attr-defined]
    finally:
        if sweep is not None:
            sweep.done()
            sweeps.prune(backend, time.time() - sweeps.MARK_KEEP)
    kept = len(listed) + packs.listed - removed
    return GcReport(removed=removed, removed_bytes=removed_bytes, kept=kept, dry_run=dry_run)


def _needed(pub: Publisher) -> set[str]:
    """What the index says live versions and records need, chunked files (format 2)
    followed to their lists and chunks: a list that cannot be read stops gc before it
    removes anything (its chunks cannot be told from garbage)."""
    needed = set(pub.index.needed_blobs())
    lists = pub.index.chunk_lists()
    if lists:
        needed.update(chunk_blobs(pub.blobs, lists, needed))
    return needed


def _orphan_blobs(pub: Publisher, ref: str, record_digest: str) -> set[str]:
    """Every blob an orphan ref needs (its record, content, manifest, tree files), as far
    as they can be read (a dangling one's: what of it is there)."""
    try:
        record, entries = pub.load(ref, record_digest)
    except CasError:
        return {record_digest}
    blobs = {record_digest}
    if record.get("type") == "version":
        blobs.add(record["digest"])
        blobs.update(d for _, d, _ in entries or ())
        lists = {e[1]: chunks_of(e) for e in entries or () if chunks_of(e)}
        if record.get("chunks") is not None:
            lists[record["digest"]] = record["chunks"]
        with contextlib.suppress(CasError):  # an unreadable list: its chunks cannot be told from garbage
            blobs.update(chunk_blobs(pub.blobs, lists, lists))  # type: ignore[arg-type]
    return blobs

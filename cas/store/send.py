"""Sending for sync: blobs copied verified and in parallel, then refs claimed create-only
in the destination and committed through its Publisher, in publish order.

``cas.store.sync`` decides what to send (``status``); this module sends it
(invariant 4: every blob first, then the refs that need them).
"""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from cas.core.digest import CHUNK, hash_bytes
from cas.core.progress import as_callback, item_done
from cas.core.records import TREE
from cas.core.refs import parse_ref_path
from cas.errors import BlobNotFoundError, CorruptRecordError, IntegrityError, UnsupportedFormatError
from cas.storage import sweeps
from cas.storage.blobs import blob_path
from cas.storage.chunked import chunk_blobs
from cas.store import packing

if TYPE_CHECKING:
    from cas.core.progress import Callback
    from cas.store.facade import Store

__all__ = ["held", "needed_blobs", "publish_refs", "refuse_chunked", "send_blobs"]

# Blobs up to this size are copied in memory; larger ones stream through a spool file.
_IN_MEMORY = 4 << 20
# A local destination publishes blobs in batches of this many (their fsyncs in parallel, each directory once).
_LOCAL_BATCH = 2000


def needed_blobs(src: Store, refs: list[tuple[str, str]]) -> dict[str, int | None]:
    """Every blob the selected refs need: records, content of live versions, tree manifests."""
    needed: dict[str, int | None] = {}
    for _, record_digest in refs:
        needed.setdefault(record_digest, None)
    version_refs = [key for key in (parse_ref_path(r) for r, _ in refs) if key.kind == "versions"]
    lists = src.index.chunk_lists()  # format 2: chunked files need their list and chunks instead
    chunked: list[str] = []
    for key in version_refs:
        row = src.index.get_version(key.owner, key.number)
        if row is None:
            continue
        if row.kind == TREE:
            needed.setdefault(row.digest, None)  # manifests are kept even for deleted versions (reindex reads them)
            if row.deleted_at is None:
                for _, entry_digest, entry_size in src.index.tree_entries(row.digest):
                    if entry_digest in lists:
                        chunked.append(entry_digest)
                    else:
                        needed[entry_digest] = entry_size
        elif row.deleted_at is None:
            if row.digest in lists:
                chunked.append(row.digest)
            else:
                needed[row.digest] = row.size
    needed.update(chunk_blobs(src.blobs, lists, chunked))
    return needed


def refuse_chunked(src: Store, dst: Store, refs: list[tuple[str, str]]) -> None:
    """A format-1 destination cannot hold a chunked file's version (its record names a
    chunk list, which format 1 does not have): refused before anything is sent."""
    lists = src.index.chunk_lists()
    if dst.format >= 2 or not lists:
        return
    for key in (parse_ref_path(r) for r, _ in refs):
        row = src.index.get_version(key.owner, key.number) if key.kind == "versions" else None
        if row is None:
            continue
        files = [d for _, d, _ in src.index.tree_entries(row.digest)] if row.kind == TREE else [row.digest]
        if any(d in lists for d in files):
            raise UnsupportedFormatError(
                f"cannot sync {row.name}@{row.version} to {dst.backend.url}: it holds a chunked file (format 2)"
                f" and that store is format {dst.format}; upgrade it first (cas upgrade)"
            )


def held(dst: Store, digest: str) -> bool:
    """Does ``dst`` hold ``digest``, by an answer sync may skip a copy on?

    A loose blob: the backend says the key exists (a stat, a HEAD) - the same
    answer a create-only write of it takes as success (invariant 5), so a copy
    would change nothing.  A packed one (format 2): a pack index is a record read
    from the backend (invariant 12), a claim; its range is read and verified, and
    an entry that points at the wrong bytes makes the blob missing, so it is sent."""
    if dst.backend.exists(blob_path(digest)):
        return True
    packs = dst.blobs.packs
    if packs is None:
        return False
    try:
        return packs.read(digest) is not None
    except IntegrityError:
        return False


def _copy_blob(src: Store, dst: Store, digest: str, size: int | None, progress: Callback, sink=None) -> int:
    """Copy one blob, hashing while copying; returns bytes written (0 if it was there).
    The bytes read go to ``progress`` from the worker thread."""
    rel = blob_path(digest)
    if size is None or size <= _IN_MEMORY:
        data = src.blobs.packs.read(digest) if src.blobs.packs is not None else None  # format 2: verified
        if data is None:
            try:
                data = src.backend.read_bytes(rel)
            except FileNotFoundError:
                raise BlobNotFoundError(digest) from None
            actual = hash_bytes(data)
            if actual != digest:
                raise IntegrityError(digest, actual, f"source {rel}")
        progress.relative_update(len(data))
        if sink is not None and digest in sink.packable:
            return len(data) if sink.put_bytes(data).written else 0
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


def _copy_in_batch(batch: object, src: Store, dst: Store, digest: str, size: int | None, progress: Callback, sink) -> int:
    # A batch belongs to the thread that opened it; pool workers join it explicitly.
    with dst.backend.join(batch):
        return _copy_blob(src, dst, digest, size, progress, sink)


def send_blobs(src: Store, dst: Store, blobs: dict[str, int | None], jobs: int, progress: Callback | None) -> tuple[int, int]:
    progress = as_callback(progress)
    sent = sent_bytes = 0
    # Largest first keeps the pool busy to the end; small ones fill the gaps.
    order = sorted(blobs.items(), key=lambda kv: -(kv[1] or 0))
    step = _LOCAL_BATCH if dst.backend.capabilities.local else max(len(order), 1)
    # format 2: small content goes into packs, published once every batch made them durable
    with packing.sync_session(src.publisher, dst.publisher, blobs) as sink, ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            with dst.backend.batch() as batch:  # local: fsynced together per chunk; a no-op elsewhere
                futures = [pool.submit(_copy_in_batch, batch, src, dst, d, s, progress, sink) for d, s in chunk]
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


def _tree_entries(src: Store, dst: Store, record: dict, lists: dict[str, str]) -> list | None:
    """A tree version's entries from the source's index, so the destination's index need
    not read back and decode the manifest just sent (the same validated bytes: the tree
    digest names them).  None (the destination decodes it) for a tree it knows already,
    and for one with chunked files: the manifest alone says which chunk list each has."""
    if record.get("type") != "version" or record.get("kind") != TREE or dst.index.has_tree(record["digest"]):
        return None
    entries = src.index.tree_entries(record["digest"])
    if not entries or any(d in lists for _, d, _ in entries):
        return None
    return entries


def _restore_after_sweep(src: Store, dst: Store, refs: list[tuple[str, str]], since: float, jobs: int) -> None:
    """Blobs the plan found present were not sent; a gc sweep at the destination since
    then may have removed them.  Once it is over, send back whatever is missing
    (docs/format.md, gc: the same rule as a save's dedupe hit)."""
    needed: dict[str, int | None] = {}

    def blobs() -> dict[str, int | None]:  # only asked for if a recent sweep lists what it may remove
        if not needed:
            needed.update(needed_blobs(src, refs))
        return needed

    if not refs or not sweeps.overlapping(dst.backend, since, blobs):
        return
    digests = sorted(blobs())
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        present = list(pool.map(lambda d: held(dst, d), digests))
    gone = {d: needed[d] for d, ok in zip(digests, present, strict=True) if not ok}
    send_blobs(src, dst, gone, jobs, None)


def publish_refs(
    src: Store, dst: Store, refs: list[tuple[str, str]], jobs: int, since: float = 0.0
) -> tuple[int, int, list[str]]:
    """Claim refs in ``dst`` (create-only), then journal and index them in publish order.

    Claims run in parallel across artifact names and runs, in order within one;
    pack refs (format 2) are all claimed before any other, so a kill never leaves a
    version whose packed content no claimed pack index finds.  Journal entries are
    appended one by one (format 1: readers stop at the first missing entry), or all
    in one entry (format 2).  A ref claimed but not journaled (killed in between) is
    recognised as ours by the next run and journaled then.
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    for ref, digest in refs:
        groups.setdefault(parse_ref_path(ref).group, []).append((ref, digest))
    packs = [g for g in groups.values() if parse_ref_path(g[0][0]).kind == "packs"]
    others = [g for g in groups.values() if parse_ref_path(g[0][0]).kind != "packs"]
    outcome: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for phase in (packs, others):  # the pool drains one phase before the next begins
            for claimed in pool.map(lambda g: _claim_group(src, dst, g), phase):
                outcome.update((ref, result) for ref, _, result in claimed)
    _restore_after_sweep(src, dst, [(r, d) for r, d in refs if outcome[r] != "conflict"], since, jobs)
    sent = skipped = 0
    conflicts: set[str] = set()
    lists = src.index.chunk_lists()
    with dst.publisher.batch():  # format 2: one journal entry for the whole sync
        for ref, digest in refs:  # already in publish order
            result = outcome[ref]
            if result == "conflict":
                conflicts.add(parse_ref_path(ref).name or ref)
                continue
            if result == "claimed" or not dst.index.has_record(ref):
                record = src.records.get_record(digest, ref)
                dst.publisher.commit(ref, digest, record, _tree_entries(src, dst, record, lists))
            if result == "claimed":
                sent += 1
            else:
                skipped += 1
    return sent, skipped, sorted(conflicts)

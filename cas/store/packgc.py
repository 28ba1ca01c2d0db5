"""gc and verify of packs (format 2): drop whole packs of garbage, repack mostly-garbage ones, check them.

gc follows the rules it follows for loose blobs (docs/format.md, gc): nothing
younger than the grace period is touched; what is live is decided after the
refs in the backend were listed (orphans completed), and the sweep mark,
written before that listing, names every blob a dropped or repacked pack may
lose, so a save that reused one of them puts it back before it commits
(invariant 13).  A repack writes the new pack and publishes its index before
the old pack is removed, so a live blob is never without a home.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from cas.core.digest import hash_bytes
from cas.core.packs import REPACK_BELOW, PackEntry
from cas.core.refs import pack_ref
from cas.errors import BackendError
from cas.storage.packs import PackBuilder, iter_packs, pack_path
from cas.storage.sweeps import Sweep
from cas.store.packing import publish_pack
from cas.store.publish import Publisher

__all__ = ["PackCheck", "PackPlan", "check_packs", "plan", "sweep"]


@dataclass
class PackPlan:
    """What gc may do to packs older than its grace period."""

    #: blobs in the packs listed, as verify counts them (an unannounced or foreign pack counts as one)
    listed: int = 0
    #: pack -> (size, entries) of announced packs old enough to drop or repack
    old: dict[str, tuple[int, list[PackEntry]]] = field(default_factory=dict)
    #: pack -> size of packs no index announced (a writer died before publishing it)
    unannounced: dict[str, int] = field(default_factory=dict)

    def candidates(self, keep: Collection[str]) -> list[str]:
        """Every blob a sweep of these packs may remove (for the sweep mark)."""
        return sorted({e.digest for _, entries in self.old.values() for e in entries if e.digest not in keep})


def plan(pub: Publisher, keep: Collection[str], cutoff: float) -> PackPlan:
    """The packs gc may touch: older than ``cutoff``, and holding garbage or announced by no index."""
    out = PackPlan()
    if pub.format < 2:
        return out
    known = pub.index.known_packs()
    for pack, _, size, mtime in iter_packs(pub.backend):
        entries = pub.index.pack_entries(pack) if pack in known else []
        out.listed += len(entries) or 1
        if pack is None or (mtime is not None and mtime > cutoff):
            continue  # foreign (verify reports it), or young: a save may be publishing it
        if pack not in known:
            if not pub.records.ref_exists(pack_ref(pack)):  # claimed, its index unreadable: kept (verify says why)
                out.unannounced[pack] = size
            continue
        if any(e.digest not in keep for e in entries):
            out.old[pack] = (size, entries)
    return out


def sweep(pub: Publisher, todo: PackPlan, keep: Collection[str], marked: Sweep | None, dry_run: bool) -> tuple[int, int]:
    """Drop or repack what ``todo`` found, given the final ``keep``; returns (blobs removed, bytes
    freed), counted as ``todo.listed`` counts them: a dropped pack's garbage blobs, not the pack."""
    removed = freed = 0
    known = pub.index.known_packs()
    for pack, size in todo.unannounced.items():
        if pack in known:
            continue  # an orphan ref completed meanwhile announced it
        if not _may(marked, dry_run):
            return removed, freed
        if marked is not None:
            pub.backend.remove(pack_path(pack))
        removed, freed = removed + 1, freed + size
    for pack, (size, entries) in todo.old.items():
        live = [e for e in entries if e.digest in keep]
        if live and sum(e.length for e in live) >= REPACK_BELOW * sum(e.length for e in entries):
            continue  # mostly live: not worth rewriting
        if not _may(marked, dry_run):
            break
        new_size = 0
        if marked is not None:
            if live:
                new_size = _repack(pub, pack, live)
                if new_size is None:
                    continue  # a live blob does not match: keep the pack (verify reports it)
            # Its index rows stay, here as on every machine: readers skip a pack the backend no
            # longer holds, and a save that stores the very same pack again needs them back.
            pub.backend.remove(pack_path(pack))
        removed, freed = removed + len(entries) - len(live), freed + size - (new_size or 0)
    return removed, freed


def _may(marked: Sweep | None, dry_run: bool) -> bool:
    return dry_run or (marked is not None and marked.may_delete())


def _repack(pub: Publisher, pack: str, live: list[PackEntry]) -> int | None:
    """Copy ``live`` into a new pack, stored and announced; its size, or None if a blob is corrupt."""
    data = pub.backend.read_bytes(pack_path(pack))
    builder = PackBuilder(pub.backend)
    stored = []
    for e in live:
        blob = data[e.offset : e.offset + e.length]
        if hash_bytes(blob) != e.digest:
            return None
        if (full := builder.add(e.digest, blob)) is not None:
            stored.append(full)
    if (last := builder.store()) is not None:
        stored.append(last)
    for s in stored:
        publish_pack(pub, s, in_sweep=True)  # durable (stored outside a batch) and journalled before the old pack goes
    return sum(s.size for s in stored)


@dataclass
class PackCheck:
    """What verify found about packs: blobs present in them, and what is wrong."""

    present: dict[str, int] = field(default_factory=dict)  # blob -> length, in packs the backend holds
    foreign: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # packs and packed blobs that do not match
    checked: int = 0
    rehashed: int = 0  # bytes read and hashed (deep), for progress


def check_packs(pub: Publisher, deep: bool) -> PackCheck:
    """Every announced pack the backend holds, with the size its index says; with ``deep``,
    every pack rehashed against its name and every entry against its blob's digest."""
    out = PackCheck()
    if pub.format < 2:
        return out
    known = pub.index.known_packs()
    held: dict[str, int] = {}
    for pack, path, size, _ in iter_packs(pub.backend):
        if pack is None or pub.backend.is_symlink(path):
            out.foreign.append(path)
        else:
            held[pack] = size
    for pack, size in sorted(held.items()):
        if pack not in known:
            continue  # never announced: unreferenced bytes, which gc collects
        if size != known[pack]:
            out.corrupt.append(pack_path(pack))
            continue
        entries = pub.index.pack_entries(pack)
        if deep:
            try:
                data = pub.backend.read_bytes(pack_path(pack))
            except (OSError, BackendError):
                data = b""
            if hash_bytes(data) != pack:
                out.corrupt.append(pack_path(pack))
            good = [e for e in entries if hash_bytes(data[e.offset : e.offset + e.length]) == e.digest]
            out.corrupt.extend(e.digest for e in entries if e not in good)
            out.checked += len(entries)
            out.rehashed += len(data)
            entries = good
        out.present.update((e.digest, e.length) for e in entries)
    out.corrupt = sorted(set(out.corrupt))
    return out

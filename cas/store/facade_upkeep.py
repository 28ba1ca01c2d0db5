"""The Store's upkeep: following the backend, and the services over a whole store.

A mixin of :class:`cas.store.facade.Store`: ``refresh`` and ``reindex`` (the index
follows the backend), ``stats``, ``verify``, ``gc``, ``sync_to`` and ``upgrade``.
Each delegates to its service; sync and upgrade are imported by the methods that
use them, so a quick command (``cas show``) never loads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from cas.store import gc as _gc
from cas.store import verify as _verify
from cas.store.gc import DEFAULT_GC_GRACE, GcReport
from cas.store.stats import StoreStats, stats
from cas.store.verify import VerifyReport

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from cas.store.facade import Store
    from cas.store.sync import SyncResult
    from cas.store.upgrade import UpgradeReport

__all__ = ["Upkeep"]


class Upkeep:
    """``Store`` methods over the whole store (``self`` is a Store)."""

    # -- keeping the index in step with the backend ---------------------------------

    def refresh(self: Store) -> int:
        """Apply journal entries this index has not seen; returns how many were new.

        Reads only what is new: one read per new entry, plus one to find the end
        (below the newest format, ``cas-format`` too: another process may have upgraded
        the store).  An entry that is garbage, or whose record is, is skipped and
        remembered for ``verify`` (invariant 12): one bad object never blocks the store.
        """
        return self.publisher.refresh()

    def reindex(self: Store, progress: Callback | None = None) -> int:
        """Rebuild the index from the backend alone; returns the number of refs applied.
        Safe while others write; bad objects are skipped for ``verify`` (``Publisher.reindex``)."""
        return self.publisher.reindex(progress)

    def stats(self: Store) -> StoreStats:
        """Counts and bytes from the index: artifacts, live versions, content blobs, logical and stored bytes."""
        return stats(self.index)

    # -- sync, verify, gc and upgrade ------------------------------------------------

    def upgrade(self: Store, *, dry_run: bool = False, progress: Callback | None = None) -> UpgradeReport:
        """Convert this store in place to the newest format cas writes (format 1 -> 2).

        Resumable: kill it, run it again, and it ends as one uninterrupted run
        would.  Every version stays readable throughout, by this cas and by the
        older one, until ``cas-format`` is rewritten, last; from then on a cas that
        does not know the new format refuses the store.  A store already at the newest
        format is left alone (``report.nothing_to_do``).  ``dry_run`` changes nothing
        and reports what would run.  See docs/format.md, Upgrading.
        """
        from cas.store.upgrade import upgrade_store
        return upgrade_store(self, dry_run=dry_run, progress=progress)

    def sync_to(
        self: Store,
        other: Store,
        names: Iterable[str] = (),
        *,
        jobs: int | None = None,
        dry_run: bool = False,
        progress: Callback | None = None,
    ) -> SyncResult:
        """Copy this store's versions, aliases and lineage (or those of ``names``,
        glob patterns) into ``other``, sending only the blobs it lacks.
        Returns a :class:`cas.store.sync.SyncResult`; see ``cas.store.sync`` for the rules."""
        from cas.store.sync import DEFAULT_JOBS, sync
        return sync(self, other, names, jobs=jobs or DEFAULT_JOBS, dry_run=dry_run, progress=progress)

    def verify(self: Store, deep: bool = False, progress: Callback | None = None) -> VerifyReport:
        """Check every blob a version or record needs is present with the right size;
        with ``deep``, rehash every blob.  Finds missing, corrupt and foreign files,
        and refs that dangle; completes orphan refs (claimed, never journalled)."""
        return _verify.verify(self.publisher, deep, progress)

    def gc(self: Store, grace: float = DEFAULT_GC_GRACE, dry_run: bool = False) -> GcReport:
        """Remove blobs no live version or record needs, once older than ``grace`` seconds.

        What is needed is decided from the refs in the backend, not only from
        this index: a ref no journal entry announced (its writer died after
        claiming) is journalled first.  The grace period protects saves in
        flight elsewhere, whose blobs land before their version is claimed; a
        save that reuses a stored blob is protected by the sweep mark written
        before the refs are listed (docs/format.md, gc).
        """
        return _gc.gc(self.publisher, grace, dry_run)

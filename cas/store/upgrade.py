"""``upgrade``: convert a store in place to the newest format (docs/format.md, Upgrading).

An upgrade to format N is the list ``STEPS[N]``, run in order, then one last
write: ``cas-format`` is rewritten to N.  Until that write the store *is*
format N-1 for every reader and writer, old cas included, so every step keeps
it a valid format-(N-1) store:

* a step only **adds** objects (journal entries, packs, markers); it never
  removes or rewrites an object an older cas reads.  What format N no longer
  needs is left to gc, after the flip, under its grace period;
* a step is **idempotent**: killed anywhere, it is run again from the start
  and ends where an uninterrupted run ends.  Once it has finished, its marker
  ``upgrade/<N>/<step>`` is created (create-only), so a rerun skips it;
* the format file is rewritten **last**, atomically (``Backend.replace_bytes``:
  a rename on a local disk, one PUT on an object store), with the same store
  id and creation time, so two upgraders racing write the same bytes.

Writers that opened the store before the flip go on writing format N-1
objects.  Format N reads every one of them, and a ref stays the truth in
every format: a late entry is learned from the old journal or completed as an
orphan by the next claimer, gc, verify or reindex, never lost.  On a backend
without atomic creates the upgrade's first write takes the writer lease, so
another writing process on this machine is refused instead of racing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cas.core.format import FORMAT_VERSION
from cas.core.progress import as_callback, item_done
from cas.store.publish import Publisher

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from cas.store.facade import Store

__all__ = ["FORMAT_STEP", "STEPS", "Step", "StepReport", "UpgradeReport", "upgrade", "upgrade_store"]

#: the name the last step, the rewrite of ``cas-format``, has in a report
FORMAT_STEP = "cas-format"


@dataclass(frozen=True)
class Step:
    """One idempotent step of an upgrade (see the module docstring for the rules)."""

    name: str  # a key segment: its marker is upgrade/<format>/<name>
    does: str  # what it changes, in a few words (``cas upgrade --dry-run``)
    run: Callable[[Publisher], str]  # does the work; returns what it did, in one line
    plan: Callable[[Publisher], str]  # changes nothing in the backend; returns what run would do


@dataclass(frozen=True)
class StepReport:
    name: str
    does: str
    #: "done" (by this call), "already done" (by an earlier, maybe killed, run), "would run" (dry run)
    status: str
    detail: str = ""


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`upgrade` did, or with ``dry_run`` would do."""

    url: str
    from_format: int
    to_format: int
    dry_run: bool
    steps: tuple[StepReport, ...] = ()

    @property
    def nothing_to_do(self) -> bool:
        """The store was already at the newest format this cas writes."""
        return self.from_format >= self.to_format

    @property
    def upgraded(self) -> bool:
        """The store's ``cas-format`` now says ``to_format`` (because of this call)."""
        return not self.dry_run and not self.nothing_to_do


# -- the steps of the upgrade to format 2 -------------------------------------------


def _complete_orphans(pub: Publisher) -> str:
    # Not Publisher.complete_orphans, which reports a ref it could not journal (verify with
    # read-only credentials): here a failed write must fail the step, so it is never marked done.
    completed = dangling = 0
    for ref, record_digest in pub.unknown_refs():
        if record_digest is not None and pub.complete(ref, record_digest):
            completed += 1
        else:
            dangling += 1
    left = f"; {dangling} dangling refs left for cas verify" if dangling else ""
    return f"journalled {completed} orphan refs{left}"


def _plan_orphans(pub: Publisher) -> str:
    unknown = pub.unknown_refs()  # the local index catches up; the backend is not written
    return f"{len(unknown)} refs no journal entry announces would be journalled"


#: target format -> its steps, in order.  The format-2 pieces of issue 14 add theirs here,
#: BEFORE the flip and after "complete-orphans" (they may rely on a whole journal):
#:   journal: "journal-v2-start" - write the marker from which format-2 readers read
#:            the new journal, after the last format-1 entry;
#:   packs:   "repack-small-blobs" - optional: loose format-1 blobs stay readable, so
#:            packing them is an optimisation; it only adds packs, gc drops the loose copies;
#:   chunks:  none needed - a format-1 whole blob is a valid format-2 content; new saves chunk.
STEPS: dict[int, list[Step]] = {
    2: [
        Step(
            "complete-orphans",
            "journal every ref a killed writer claimed but never journalled, so the journal is whole",
            _complete_orphans,
            _plan_orphans,
        ),
    ],
}


# -- running them ----------------------------------------------------------------------


def upgrade(pub: Publisher, *, dry_run: bool = False, progress: Callback | None = None) -> UpgradeReport:
    """Bring the store behind ``pub`` to ``FORMAT_VERSION``, one format at a time.

    Resumable: steps already marked done are skipped, the others run from their
    start.  ``dry_run``: change nothing in the backend and report what would run.
    ``progress`` gets one item per step (the format rewrite included).
    """
    progress = as_callback(progress)
    pub.follow_format()  # now, not when the store was opened: another upgrader may have run
    start = pub.format
    reports: list[StepReport] = []
    targets = range(start + 1, FORMAT_VERSION + 1)
    progress.set_size(sum(len(STEPS[t]) + 1 for t in targets))
    for target in targets:
        for step in STEPS[target]:
            if pub.records.upgrade_step_done(target, step.name):
                reports.append(StepReport(step.name, step.does, "already done"))
            elif dry_run:
                reports.append(StepReport(step.name, step.does, "would run", step.plan(pub)))
            else:
                detail = step.run(pub)
                pub.records.mark_upgrade_step(target, step.name)
                reports.append(StepReport(step.name, step.does, "done", detail))
            item_done(progress)
        does = f"rewrite {FORMAT_STEP} to format {target}: from then on a cas older than that refuses the store"
        if dry_run:
            reports.append(StepReport(FORMAT_STEP, does, "would run", f"format {target - 1} -> {target}"))
        else:
            pub.set_format(int(pub.records.rewrite_format(target)["format"]))  # the facade follows
            reports.append(StepReport(FORMAT_STEP, does, "done", f"format {target - 1} -> {pub.format}"))
        item_done(progress)
    return UpgradeReport(pub.backend.url, start, max(start, FORMAT_VERSION), dry_run, tuple(reports))


def upgrade_store(store: Store, *, dry_run: bool = False, progress: Callback | None = None) -> UpgradeReport:
    """:meth:`cas.Store.upgrade` (its docstring says what an upgrade guarantees)."""
    return upgrade(store.publisher, dry_run=dry_run, progress=progress)

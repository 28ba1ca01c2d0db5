"""gc sweep marks: how a writer learns that a gc may have removed a blob it reuses.

A gc run announces itself before it lists the refs it keeps (``gc/<id>.start``,
holding the time after which it promises to delete nothing) and records its end
(``gc/<id>.done``).  A writer whose save reused stored content checks the marks
*after* claiming its ref: either gc listed the refs after the claim (and keeps
the content), or the writer sees the mark, waits for that sweep to end, and
re-uploads whatever is missing before it journals.  docs/format.md gives the
argument; this module only reads and writes the marks.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from cas.backends.base import Backend

__all__ = ["Sweep", "SWEEP_LIMIT", "CLOCK_SKEW", "MARK_KEEP", "begin", "overlapping", "prune"]

log = logging.getLogger(__name__)

GC_DIR = "gc"
#: a sweep deletes nothing later than this many seconds after its start mark (plus per candidate)
SWEEP_LIMIT = 600.0
SWEEP_PER_BLOB = 0.05
#: and never later than this: what a writer waits for at most, whatever a mark says
MAX_SWEEP = 6 * 3600.0
#: a start mark lists the blobs the sweep may remove up to this many (else: "any")
MAX_LISTED = 10_000
#: clocks of machines sharing a bucket may differ by this much
CLOCK_SKEW = 300.0
#: finished marks are kept this long; a save that took longer re-checks its blobs regardless
MARK_KEEP = 24 * 3600.0
_POLL = 0.05


@dataclass
class Sweep:
    backend: Backend
    id: str
    deadline: float

    def may_delete(self) -> bool:
        """False once past the promised deadline (a gc paused that long must stop)."""
        return time.time() < self.deadline

    def done(self) -> None:
        self.backend.create_bytes(f"{GC_DIR}/{self.id}.done", b"{}\n")


def begin(backend: Backend, candidates: Collection[str], *, unknown: bool = False) -> Sweep:
    """Write this gc's start mark (create-only) before it lists any ref.

    The mark names the blobs this sweep may remove (when there are not too
    many), so a writer relying on none of them need not wait for it.
    ``unknown``: it may also remove blobs it cannot name (a pack no index
    announces: gc cannot tell which blobs a writer paused before announcing
    it put there), so the mark names none, and every writer it overlaps waits.
    """
    sweep_id = f"{int(time.time() * 1000):016d}-{uuid.uuid4().hex[:12]}"
    deadline = time.time() + min(SWEEP_LIMIT + SWEEP_PER_BLOB * len(candidates), MAX_SWEEP)
    listed = sorted(candidates) if len(candidates) <= MAX_LISTED and not unknown else None
    mark = {"deadline": deadline, "candidates": listed}
    backend.create_bytes(f"{GC_DIR}/{sweep_id}.start", json.dumps(mark).encode() + b"\n")
    return Sweep(backend, sweep_id, deadline)


def _marks(backend: Backend) -> dict[str, dict[str, float | None]]:
    marks: dict[str, dict[str, float | None]] = {}
    for e in backend.list(GC_DIR):
        sweep_id, dot, kind = e.path.rsplit("/", 1)[-1].rpartition(".")
        if dot and kind in ("start", "done"):
            marks.setdefault(sweep_id, {})[kind] = e.mtime
    return marks


def _start_mark(backend: Backend, sweep_id: str) -> tuple[float, set[str] | None]:
    """(deadline, the blobs it may remove or None for any) of a sweep's start mark."""
    try:
        mark = json.loads(backend.read_bytes(f"{GC_DIR}/{sweep_id}.start"))
        listed = mark.get("candidates")
        return float(mark["deadline"]), None if listed is None else {str(d) for d in listed}
    except FileNotFoundError:
        return 0.0, set()  # pruned meanwhile: long over
    except (ValueError, KeyError, TypeError, AttributeError):
        return time.time() + SWEEP_LIMIT, None  # unreadable: assume the longest sweep, removing anything


def overlapping(backend: Backend, since: float, blobs: Callable[[], Iterable[str]]) -> bool:
    """Could a gc sweep that ran after ``since`` (this machine's clock) have removed
    one of ``blobs``?  Waits for such sweeps still running (until they finish or
    pass their deadline), so that on return none of them can remove anything more.
    One listing of ``gc/`` when no sweep is recent.
    """
    if time.time() - since > MARK_KEEP - CLOCK_SKEW:
        return True  # marks of sweeps that overlapped may have been pruned
    mine: set[str] | None = None
    overlapped = False
    for sweep_id, kinds in _marks(backend).items():
        if "done" in kinds:
            finished = kinds["done"]
            if finished is not None and finished < since - CLOCK_SKEW:
                continue  # ended before this writer began
        deadline, candidates = _start_mark(backend, sweep_id)
        if candidates is not None:
            mine = set(blobs()) if mine is None else mine
            if not candidates & mine:
                continue  # removes nothing this writer relies on
        overlapped = True
        started = kinds.get("start")
        if started is not None:
            deadline = min(deadline, started + MAX_SWEEP)
        if "done" not in kinds and time.time() < deadline + CLOCK_SKEW:
            left = deadline + CLOCK_SKEW - time.time()
            log.warning("cas: waiting for gc sweep %s to end (at the latest in %.0f s)", sweep_id, left)
        while "done" not in kinds and time.time() < deadline + CLOCK_SKEW:
            if backend.exists(f"{GC_DIR}/{sweep_id}.done"):
                break
            time.sleep(_POLL)
    return overlapped


def prune(backend: Backend, keep_after: float) -> None:
    """Remove marks of sweeps that ended (or passed their deadline) before ``keep_after``."""
    for sweep_id, kinds in _marks(backend).items():
        if "done" in kinds:
            finished = kinds["done"]
            if finished is None or finished >= keep_after:
                continue
        elif "start" not in kinds or _start_mark(backend, sweep_id)[0] + CLOCK_SKEW >= keep_after:
            continue
        for kind in ("done", "start"):
            if kind in kinds:
                backend.remove(f"{GC_DIR}/{sweep_id}.{kind}")

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
import time
import uuid
from dataclasses import dataclass

from .backend import Backend

__all__ = ["Sweep", "SWEEP_LIMIT", "CLOCK_SKEW", "MARK_KEEP", "begin", "overlapping", "prune"]

GC_DIR = "gc"
#: a sweep deletes nothing later than this many seconds after its start mark
SWEEP_LIMIT = 3600.0
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


def begin(backend: Backend) -> Sweep:
    """Write this gc's start mark (create-only) before it lists any ref."""
    sweep_id = f"{int(time.time() * 1000):016d}-{uuid.uuid4().hex[:12]}"
    deadline = time.time() + SWEEP_LIMIT
    backend.create_bytes(f"{GC_DIR}/{sweep_id}.start", json.dumps({"deadline": deadline}).encode() + b"\n")
    return Sweep(backend, sweep_id, deadline)


def _marks(backend: Backend) -> dict[str, dict[str, float | None]]:
    marks: dict[str, dict[str, float | None]] = {}
    for e in backend.list(GC_DIR):
        sweep_id, dot, kind = e.path.rsplit("/", 1)[-1].rpartition(".")
        if dot and kind in ("start", "done"):
            marks.setdefault(sweep_id, {})[kind] = e.mtime
    return marks


def _deadline(backend: Backend, sweep_id: str) -> float:
    try:
        return float(json.loads(backend.read_bytes(f"{GC_DIR}/{sweep_id}.start"))["deadline"])
    except FileNotFoundError:
        return 0.0  # pruned meanwhile: long over
    except (ValueError, KeyError, TypeError):
        return time.time() + SWEEP_LIMIT  # unreadable: assume the longest sweep


def overlapping(backend: Backend, since: float) -> bool:
    """Did a gc sweep run at any moment after ``since`` (this machine's clock)?

    Waits for sweeps still running (until they finish or pass their deadline),
    so that on return no sweep that could still delete something is going on.
    One listing of ``gc/`` when nothing overlapped.
    """
    if time.time() - since > MARK_KEEP - CLOCK_SKEW:
        return True  # marks of sweeps that overlapped may have been pruned
    overlapped = False
    for sweep_id, kinds in _marks(backend).items():
        if "done" in kinds:
            finished = kinds["done"]
            if finished is None or finished >= since - CLOCK_SKEW:
                overlapped = True
            continue
        overlapped = True
        deadline = _deadline(backend, sweep_id)
        while time.time() < deadline + CLOCK_SKEW and not backend.exists(f"{GC_DIR}/{sweep_id}.done"):
            time.sleep(_POLL)
    return overlapped


def prune(backend: Backend, keep_after: float) -> None:
    """Remove marks of sweeps that ended (or passed their deadline) before ``keep_after``."""
    for sweep_id, kinds in _marks(backend).items():
        finished = kinds.get("done")
        if finished is None:
            if "start" not in kinds or _deadline(backend, sweep_id) + CLOCK_SKEW >= keep_after:
                continue
        elif finished >= keep_after:
            continue
        for kind in ("done", "start"):
            if kind in kinds:
                backend.remove(f"{GC_DIR}/{sweep_id}.{kind}")

"""SIGKILL at counted points: the counter the crash tests' child processes arm.

A child process (``python -c CHILD``) imports this module, arms it with the call
to die at, and does its work.  Every counted call ticks once before and once
after it runs; the tick that reaches ``crash_at`` SIGKILLs the process, so the
test can kill it anywhere in a save, a batch or an upgrade and check what is
left.  ``crash_at`` 0 never kills: a run with it counts how many ticks the work
takes (:func:`calls`), and the test picks its points from that.

Children find this module through ``PYTHONPATH`` (:func:`child_env`), as pytest
finds it for the tests themselves.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["OS_CALLS", "arm", "calls", "child_env", "count_method", "counted", "tick"]

#: the os functions a store's writes go through (a local batch fsyncs from a pool)
OS_CALLS = ("write", "fsync", "link", "rename", "replace", "unlink")

_crash_at = 0
_calls = 0
_counting = threading.Lock()  # a local batch fsyncs from a pool: count each call exactly once


def tick() -> None:
    """One counted point: SIGKILL this process if it is the armed one."""
    global _calls
    with _counting:
        _calls += 1
        hit = _calls == _crash_at
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)


def calls() -> int:
    """How many points were counted so far."""
    return _calls


def counted(fn: Callable[..., Any], *, after: bool = True) -> Callable[..., Any]:
    """``fn`` with a point before each call, and (``after``) one after it returns."""

    def wrapper(*args, **kwargs):
        tick()
        result = fn(*args, **kwargs)
        if after:
            tick()
        return result

    return wrapper


def count_method(cls: type, name: str, *, after: bool = True) -> None:
    """Count every call of ``cls.name``."""
    setattr(cls, name, counted(getattr(cls, name), after=after))


def arm(crash_at: int, os_calls: Iterable[str] = OS_CALLS, *, index_writes: bool = True) -> None:
    """Die at point ``crash_at`` (0: never) of the counted calls: ``os_calls``, and with
    ``index_writes`` the start of every index write transaction (``Index.write``)."""
    global _crash_at
    _crash_at = crash_at
    for name in os_calls:
        setattr(os, name, counted(getattr(os, name)))
    if index_writes:
        import cas.index.db

        count_method(cas.index.db.Index, "write", after=False)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child that imports this module: ``tests/`` on its path."""
    tests = str(Path(__file__).resolve().parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": tests + (os.pathsep + path if path else ""), **extra}

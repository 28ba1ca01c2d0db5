"""Naming processes for the draft book: who writes a draft, and whether it still runs.

A process is named ``<pid>:<start time>`` (Linux clock ticks since boot,
from ``/proc``), so a pid the kernel reuses for another program is not taken
for the writer that held it.  Without ``/proc`` the start time is empty and
liveness falls back to ``kill(pid, 0)``.
"""

from __future__ import annotations

import os

__all__ = ["process_alive", "process_token"]


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state is [0], start time [19])."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _token(pid: int) -> str:
    fields = _stat(pid)
    return f"{pid}:{fields[19].decode() if fields else ''}"


_OWN: tuple[int, str] = (0, "")


def process_token() -> str:
    """This process's name."""
    global _OWN
    pid = os.getpid()
    if _OWN[0] != pid:
        _OWN = (pid, _token(pid))
    return _OWN[1]


def process_alive(token: str) -> bool:
    pid_text, _, ticks = token.partition(":")
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat(pid)
    if fields is None:
        return not ticks
    return fields[19].decode() == ticks and fields[0] != b"Z"  # a zombie has ended

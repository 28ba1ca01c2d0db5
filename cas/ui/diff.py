"""Files added, removed and changed between two versions of a tree.

A small stand-in until the CLI's ``cas diff`` offers the same comparison in
the core; it only needs each version's ``files()`` listing (from the index,
no blob is read).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TreeDiff", "diff_files"]


@dataclass(frozen=True)
class TreeDiff:
    added: list[tuple[str, int]] = field(default_factory=list)  # (path, size)
    removed: list[tuple[str, int]] = field(default_factory=list)
    changed: list[tuple[str, int, int]] = field(default_factory=list)  # (path, old size, new size)
    unchanged: int = 0

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_files(old: Iterable[tuple[str, Any, int]], new: Iterable[tuple[str, Any, int]]) -> TreeDiff:
    """Compare two ``ArtifactVersion.files()`` listings by path and digest."""
    before = {p: (str(d), s) for p, d, s in old}
    after = {p: (str(d), s) for p, d, s in new}
    result = TreeDiff()
    for path in sorted(before.keys() | after.keys()):
        if path not in before:
            result.added.append((path, after[path][1]))
        elif path not in after:
            result.removed.append((path, before[path][1]))
        elif before[path][0] != after[path][0]:
            result.changed.append((path, before[path][1], after[path][1]))
    return TreeDiff(result.added, result.removed, result.changed, len(before.keys() & after.keys()) - len(result.changed))

"""Which versions a retention policy removes (``cas rm --keep-last/--older-than``).

restic's ``forget`` is the model: a version is kept if any rule keeps it,
and removed only if every rule given lets it go.  Deleting is then the
ordinary recorded deletion; bytes go with ``gc``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from cas.core.names import LATEST
from cas.errors import InvalidValueError

if TYPE_CHECKING:
    from cas.store.facade import Store
    from cas.version import ArtifactVersion

__all__ = ["names_matching", "select_expired"]


def names_matching(store: Store, name_or_prefix: str) -> list[str]:
    """An artifact name itself, else every artifact under that prefix."""
    found = store.list_artifacts(name_or_prefix)
    return [name_or_prefix] if name_or_prefix in found else found


def select_expired(
    store: Store,
    names: list[str],
    *,
    keep_last: int | None = None,
    older_than: float | None = None,
    keep_aliased: bool = True,
    now: datetime | None = None,
) -> list[ArtifactVersion]:
    """Live versions of ``names`` that no rule keeps, oldest first.

    Kept: the ``keep_last`` newest of each name; those younger than
    ``older_than`` seconds; with ``keep_aliased``, any version an alias
    other than ``latest`` points at.  At least one of ``keep_last`` and
    ``older_than`` must be given.
    """
    if keep_last is None and older_than is None:
        raise InvalidValueError("give a retention rule: --keep-last N and/or --older-than DURATION")
    if keep_last is not None and keep_last < 0:
        raise InvalidValueError("keep_last must be >= 0")
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(seconds=older_than) if older_than is not None else None
    expired: list[ArtifactVersion] = []
    for name in names:
        versions = store.list_versions(name)  # live, oldest first
        aliased = {v for a, v in store.aliases(name).items() if a != LATEST} if keep_aliased else set()
        recent = {v.version for v in versions[-keep_last:]} if keep_last else set()
        for v in versions:
            if keep_last is not None and v.version in recent:
                continue
            if cutoff is not None and v.created_at > cutoff:
                continue
            if v.version in aliased:
                continue
            expired.append(v)
    return expired

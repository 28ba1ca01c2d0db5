"""Versions by name: resolving ``name@version`` and aliases, moving aliases, deleting.

Answers are index rows (``cas.index.VersionRow``); the facade turns them into
``ArtifactVersion``s.  Writes (alias moves, deletions) go through the Publisher.
"""

from __future__ import annotations

from cas.core.names import LATEST, check_alias, parse_name, parse_ref, parse_version
from cas.core.records import alias_record, deletion_record
from cas.core.refs import alias_ref, deletion_ref, version_ref
from cas.errors import (
    ArtifactNotFoundError,
    InvalidNameError,
    InvalidValueError,
    VersionDeletedError,
    VersionExistsError,
    VersionNotFoundError,
)
from cas.index import VersionRow
from cas.index.versions import HistoryRow
from cas.store.publish import Publisher

__all__ = ["Versions"]


class Versions:
    """Finding versions and aliases of one store, and recording alias moves and deletions."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.index = publisher.index

    # -- finding -------------------------------------------------------------------------

    def find(self, name: str, version: int | str | None = None) -> VersionRow:
        """The live version ``version`` (an int, ``"latest"`` (default), an alias) of ``name``, or ``name@version``."""
        aname, spec = parse_ref(name, version)
        try:
            return self.resolve(str(aname), spec)
        except (ArtifactNotFoundError, VersionNotFoundError):
            # The index may be behind the backend (another machine wrote): catch up once.
            if not self.publisher.refresh():
                if not isinstance(spec, int):
                    raise
                # A numbered version the journal never announced may still be claimed
                # (an orphan ref): one read finds it, and completes it for everyone.
                self.publisher.learn(version_ref(str(aname), spec))
            return self.resolve(str(aname), spec)

    def resolve(self, name: str, spec: int | str) -> VersionRow:
        """The row ``spec`` names, from the index alone."""
        index = self.index
        if spec == LATEST:
            row = index.latest(name)
            if row is None:
                if index.name_exists(name):
                    raise VersionNotFoundError(f"{name} has no live versions (all were deleted)")
                raise ArtifactNotFoundError(f"no artifact named {name}")
        else:
            if isinstance(spec, str):
                number = index.resolve_alias(name, spec)
                if number is None:
                    self.require_name(name)
                    raise VersionNotFoundError(f"{name} has no alias {spec!r}")
            else:
                number = spec
            row = index.get_version(name, number)
            if row is None:
                self.require_name(name)
                raise VersionNotFoundError(f"{name} has no version {number}")
            if row.deleted_at is not None:
                raise VersionDeletedError(name, number)
        return row

    def require_name(self, name: str) -> None:
        if not self.index.name_exists(name):
            raise ArtifactNotFoundError(f"no artifact named {name}")

    def committed(self, name: str, version: int) -> VersionRow:
        """The row of a version this process has just committed (or that is known to exist)."""
        row = self.index.get_version(name, version)
        assert row is not None, "a committed version is in the index"
        return row

    def rows(
        self, name: str, *, include_deleted: bool = False, newest_first: bool = False, limit: int | None = None
    ) -> list[VersionRow]:
        """Rows of ``name``'s versions, oldest first (or the ``limit`` newest, newest first);
        ``ArtifactNotFoundError`` for an unknown name."""
        aname = str(parse_name(name))
        rows = self.index.list_versions(aname, include_deleted=include_deleted, newest_first=newest_first, limit=limit)
        if not rows:
            self.require_name(aname)
        return rows

    def history(self, name: str, *, include_deleted: bool = False, limit: int | None = None) -> list[HistoryRow]:
        """The ``limit`` newest versions of ``name`` (all by default), only what a listing prints."""
        aname = str(parse_name(name))
        rows = self.index.history(aname, include_deleted=include_deleted, limit=limit)
        if not rows:
            self.require_name(aname)
        return rows

    def names(self, prefix: str = "") -> list[str]:
        """Names of artifacts with a live version whose name starts with ``prefix``, sorted."""
        return self.index.list_artifacts(_check_prefix(prefix))

    def latest_rows(self, prefix: str = "") -> list[VersionRow]:
        """The latest live version of each name starting with ``prefix``, sorted by name (one query)."""
        return self.index.latest_under(_check_prefix(prefix))

    def aliases(self, name: str) -> dict[str, int]:
        return self.index.aliases_of(str(parse_name(name)))

    def next_number(self, name: str) -> int:
        """The number the next version of ``name`` would get now (a hint: claiming decides)."""
        return self.index.max_version(str(parse_name(name))) + 1

    def check_exact(self, name: str, version: int | None) -> int | None:
        """``version`` if it is exactly the next number of ``name`` (None: any next number)."""
        if version is None:
            return None
        number = parse_version(version)
        if not isinstance(number, int):
            raise InvalidValueError(f"cannot create {name}@{number}: new versions are numbers; aliases only point")
        following = self.index.max_version(name) + 1
        if number > following:
            self.publisher.refresh()  # another machine may have written the versions in between
            following = self.index.max_version(name) + 1
        if number < following:
            raise VersionExistsError(
                f"{name}@{number} already exists or existed (numbers are never reused); the next is {following}",
                f"{name}@{number}",
            )
        if number > following:
            raise InvalidValueError(f"cannot create {name}@{number}: versions are numbered in order, the next is {following}")
        return number

    # -- aliases and deletion -------------------------------------------------------------

    def move_alias(self, name: str, alias: str, version: int, *, after: int | None = None) -> bool:
        """Move ``alias``; with ``after``, only as the move right after seq ``after``
        (False if another process moved it first: a compare-and-swap for folders)."""
        record = alias_record(name, alias, version)
        first = self.index.alias_seq(name, alias) + 1 if after is None else after + 1
        return self.publisher.publish(record, "seq", first, lambda n: alias_ref(name, alias, n), exact=after is not None)

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove ``alias`` (recorded as a move to version 0); returns the version it pointed at."""
        aname = str(parse_name(name))
        alias = check_alias(alias)
        if alias == LATEST:
            raise InvalidValueError("'latest' is maintained by cas and cannot be removed")
        self.publisher.refresh()
        version = self.index.resolve_alias(aname, alias)
        if version is None:
            self.require_name(aname)
            raise VersionNotFoundError(f"{aname} has no alias {alias!r}")
        self.move_alias(aname, alias, 0)
        return version

    def record_deletion(self, name: str, version: int) -> None:
        """Record that ``name@version`` is deleted (VersionDeletedError if it already is)."""
        record = deletion_record(name, version)
        # Exactly one ref can say so: the claim of that very number, lost if already deleted.
        claimed = self.publisher.claim(record, "version", version, lambda n: deletion_ref(name, n), exact=True)
        if claimed is None:
            raise VersionDeletedError(name, version)
        self.publisher.commit(claimed.ref, claimed.record_digest, record)


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or any(ord(ch) < 32 for ch in prefix) or "\\" in prefix:
        raise InvalidNameError(f"invalid prefix {prefix!r}")
    return prefix

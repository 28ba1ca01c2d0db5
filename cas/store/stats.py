"""``stats``: counts and bytes of a store, answered from its index."""

from __future__ import annotations

from dataclasses import dataclass

from cas.index import Index

__all__ = ["StoreStats", "stats", "new_bytes"]


@dataclass(frozen=True)
class StoreStats:
    artifacts: int
    versions: int
    blobs: int
    logical_bytes: int
    stored_bytes: int

    @property
    def dedupe_ratio(self) -> float:
        """Logical bytes over stored bytes (1.0 for an empty store)."""
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 1.0


def stats(index: Index) -> StoreStats:
    """Artifacts, live versions, content blobs, logical and stored bytes."""
    return StoreStats(**index.stats())


def new_bytes(index: Index, version_id: int) -> int:
    """How many stored bytes the version with this index id added: its blobs no other live
    version uses.  ``cas put`` reports it; the cost follows the version, not the store."""
    return index.bytes_only_in(version_id)

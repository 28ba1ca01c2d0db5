"""The Store facade (open_store, Store) and the services behind it.

Publishing (the one write path), ingesting content, resolving versions, verify, gc, stats and sync."""

from cas.store.facade import (
    DEFAULT_GC_GRACE,
    DEFAULT_STORE,
    INDEX_FILE,
    GcReport,
    Store,
    StoreStats,
    VerifyReport,
    open_store,
)

__all__ = ["DEFAULT_GC_GRACE", "DEFAULT_STORE", "INDEX_FILE", "GcReport", "Store", "StoreStats", "VerifyReport", "open_store"]

"""The Store facade (open_store, Store) and the services behind it.

Publishing (the one write path), ingesting content, resolving versions, verify, gc, stats and sync.
The names below are imported on first use (cas.core.lazy), so importing one service (the CLI's
``cas.store.config``) does not import the facade and every service behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cas.core.lazy import lazy_exports

if TYPE_CHECKING:
    from cas.store.facade import Store, open_store
    from cas.store.gc import DEFAULT_GC_GRACE, GcReport
    from cas.store.location import DEFAULT_STORE, INDEX_FILE
    from cas.store.stats import StoreStats
    from cas.store.verify import VerifyReport

__all__ = ["DEFAULT_GC_GRACE", "DEFAULT_STORE", "INDEX_FILE", "GcReport", "Store", "StoreStats", "VerifyReport", "open_store"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "DEFAULT_GC_GRACE": "cas.store.gc",
    "DEFAULT_STORE": "cas.store.location",
    "INDEX_FILE": "cas.store.location",
    "GcReport": "cas.store.gc",
    "Store": "cas.store.facade",
    "StoreStats": "cas.store.stats",
    "VerifyReport": "cas.store.verify",
    "open_store": "cas.store.facade",
})

"""One open store per location and process, shared by every framework object that names it.

ZenML makes many artifact-store objects (and pickles them), MLflow one
repository per artifact URI: each would otherwise open its own index and
draft nothing in common.  Stores are kept here, keyed by location, options
and index, never on the framework's objects.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from cas.integrations._shared.folders import Folders
from cas.store.facade import Store, open_store

__all__ = ["shared_store"]

_STORES: dict[str, tuple[Store, Folders]] = {}
_LOCK = threading.Lock()


def shared_store(url: str | os.PathLike, *, index: str | None = None, **options: Any) -> tuple[Store, Folders]:
    """The store at ``url`` (opened by :func:`cas.open_store` on first use) and its folders."""
    url = os.fspath(url)
    where = os.path.abspath(url) if "://" not in url else url
    key = json.dumps([where, options, index], sort_keys=True, default=str)
    with _LOCK:
        if key not in _STORES:
            store = open_store(url, index=index, **options)
            _STORES[key] = (store, Folders(store))
        return _STORES[key]

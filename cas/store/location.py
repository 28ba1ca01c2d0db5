"""Where a store and its index live: the default store, the index file beside a local
store or in the per-user cache, and the refusal to follow a symlink planted as the index."""

from __future__ import annotations

import os
import tempfile

from cas.backends.base import Backend
from cas.errors import BackendError

__all__ = ["DEFAULT_STORE", "INDEX_FILE", "default_index_path", "refuse_planted_index"]

DEFAULT_STORE = "./.cas"
INDEX_FILE = "index.sqlite"
# SQLite's companion files: a symlink planted under any of these names would
# make it create or write a database outside the store.
_INDEX_FILES = (INDEX_FILE, f"{INDEX_FILE}-wal", f"{INDEX_FILE}-shm", f"{INDEX_FILE}-journal")


def default_index_path(backend: Backend) -> str:
    if backend.capabilities.local:
        return os.path.join(backend.root, INDEX_FILE)  # type: ignore[attr-defined]  # a local backend's directory
    import hashlib  # only here: loading OpenSSL's hashes is a measurable part of a local `cas show`

    key = hashlib.sha256(backend.url.encode()).hexdigest()[:24]
    if backend.capabilities.in_process:
        # memory:// lives and dies with this process; so does its index
        base = os.path.join(tempfile.gettempdir(), f"cas-memory-{os.getuid()}-{os.getpid()}")
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.environ.get("CAS_INDEX_DIR") or os.path.join(cache, "cas", "indexes")
    return os.path.join(base, f"{key}.sqlite")


def refuse_planted_index(backend: Backend) -> None:
    """BackendError if the index file (or a companion) inside a local store is a symlink."""
    for name in _INDEX_FILES:
        if backend.is_symlink(name):
            raise BackendError(f"refusing to follow a symlink inside the store: {name}", name)

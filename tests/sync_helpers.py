"""Test helpers for sync and multi-machine tests: a request-counting backend and store factories."""

from __future__ import annotations

import collections
import threading
from typing import Any

import cas
from cas.backends.base import Backend
from cas.backends.factory import open_backend
from cas.store import Store


class CountingBackend(Backend):
    """Wraps a real backend and counts every call and every byte written through it.

    Only successful creates count as writes: ``written`` holds the paths this
    wrapper actually created, ``bytes_written`` their sizes.
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.capabilities = inner.capabilities  # every capability as the wrapped backend
        self.calls: collections.Counter[str] = collections.Counter()
        self.written: dict[str, int] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # root, abspath, part_size, ...
        return getattr(self.inner, name)

    def _count(self, what: str) -> None:
        with self._lock:
            self.calls[what] += 1

    @property
    def bytes_written(self) -> int:
        return sum(self.written.values())

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.written.clear()

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    def exists(self, rel):
        self._count("exists")
        return self.inner.exists(rel)

    def read_bytes(self, rel):
        self._count("read")
        return self.inner.read_bytes(rel)

    def open_read(self, rel):
        self._count("read")
        return self.inner.open_read(rel)

    def size(self, rel):
        self._count("size")
        return self.inner.size(rel)

    def create_bytes(self, rel, data, **kw):
        self._count("create")
        created = self.inner.create_bytes(rel, data, **kw)
        if created:
            with self._lock:
                self.written[rel] = len(data)
        return created

    def create_from_file(self, rel, local_path, *, move=False, **kw):
        import os

        self._count("create")
        size = os.path.getsize(local_path)
        created = self.inner.create_from_file(rel, local_path, move=move, **kw)
        if created:
            with self._lock:
                self.written[rel] = size
        return created

    def replace_bytes(self, rel, data):
        self._count("replace")
        self.inner.replace_bytes(rel, data)
        with self._lock:
            self.written[rel] = len(data)

    def list(self, prefix):
        self._count("list")
        return self.inner.list(prefix)

    def remove(self, rel):
        self._count("remove")
        return self.inner.remove(rel)

    def local_tempfile(self):
        return self.inner.local_tempfile()

    def batch(self):
        return self.inner.batch()

    def close(self):
        self.inner.close()


def counting_store(url: str, index: str | None = None, **options) -> tuple[Store, CountingBackend]:
    backend = CountingBackend(open_backend(url, **options))
    return Store(backend, index=index), backend


def store_state(store: cas.Store) -> dict:
    """Everything a user can see of a store: versions (with deletions), aliases, records."""
    store.refresh()
    state: dict[str, Any] = {"versions": {}, "aliases": {}}
    for name in _all_names(store):
        rows = store.index.list_versions(name, include_deleted=True)
        state["versions"][name] = [(r.version, r.digest, r.kind, r.size, r.deleted_at is not None) for r in rows]
        state["aliases"][name] = store.aliases(name)
    state["records"] = sorted(store.index.iter_records())
    return state


def _all_names(store: cas.Store) -> list[str]:
    return [r[0] for r in store.index.conn.execute("SELECT DISTINCT name FROM versions ORDER BY name")]

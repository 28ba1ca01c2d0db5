"""Shared fixtures: a fresh store on every backend the conformance suite covers.

``store_url`` is parametrized over backends; cloud backends (S3 on moto,
GCS on the emulator, Azure on Azurite) are added by ``tests/servers.py``,
whose fixtures start each server as a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import os
import uuid

import pytest

import cas

LOCAL_BACKENDS = ["memory", "local"]
# Cloud backends run against real servers started by tests/servers.py.
CLOUD_BACKENDS = ["s3", "gcs", "azure"]
ALL_BACKENDS = LOCAL_BACKENDS + [pytest.param(b, marks=getattr(pytest.mark, b)) for b in CLOUD_BACKENDS]

pytest_plugins = ["servers"]


@pytest.fixture
def format1_stores(monkeypatch):
    """Every store the test creates without saying its format is format 1: for tests that
    still count format 1's objects (one loose blob per file, one journal slot per ref).
    Each wants a format-2 counterpart; until then it runs as it did before the flip."""
    monkeypatch.setenv("CAS_NEW_STORE_FORMAT", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Remote-store indexes go to a per-test cache, never the user's ~/.cache."""
    monkeypatch.setenv("CAS_INDEX_DIR", str(tmp_path_factory.mktemp("index-cache")))
    monkeypatch.delenv("CAS_STORE", raising=False)


def _url_for(backend: str, tmp_path, request) -> str:
    if backend == "memory":
        return f"memory://cas-test-{uuid.uuid4().hex}"
    if backend == "local":
        return str(tmp_path / "store")
    # cloud backends: a fixture named "<backend>_root" gives a fresh root URL
    return request.getfixturevalue(f"{backend}_root")


@pytest.fixture(params=ALL_BACKENDS)
def backend_name(request) -> str:
    return request.param


@pytest.fixture
def store_url(backend_name, tmp_path, request) -> str:
    return _url_for(backend_name, tmp_path, request)


@pytest.fixture
def storage_options(backend_name, request) -> dict:
    if backend_name in ("memory", "local"):
        return {}
    return request.getfixturevalue(f"{backend_name}_options")


@pytest.fixture
def open_test_store(store_url, storage_options, tmp_path):
    """Open the test's store; several calls give several handles on one backend."""
    opened: list[cas.Store] = []

    def _open(index: str | None = None, **kw) -> cas.Store:
        s = cas.open_store(store_url, index=index, **storage_options, **kw)
        opened.append(s)
        return s

    yield _open
    for s in opened:
        try:
            s.close()
        except Exception:
            pass


@pytest.fixture
def store(open_test_store) -> cas.Store:
    return open_test_store()


@pytest.fixture(params=LOCAL_BACKENDS)
def lstore(request, tmp_path) -> cas.Store:
    """A store on the embedded backends only: for tests of logic above the backend
    (the ``store`` fixture also runs the storage-facing tests on S3, GCS and Azure)."""
    url = f"memory://cas-test-{uuid.uuid4().hex}" if request.param == "memory" else str(tmp_path / "store")
    s = cas.open_store(url)
    yield s
    s.close()


@pytest.fixture
def local_store(tmp_path) -> cas.Store:
    s = cas.open_store(str(tmp_path / "store"))
    yield s
    s.close()


def pytest_configure(config):
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

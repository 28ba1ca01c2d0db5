"""fsspec's own abstract test suite (copy, get, put, pipe, open), run against cas://.

Nobody here wrote these tests; they are imported from ``fsspec.tests.abstract``
and run unmodified through its fixtures, on the memory and local backends.

How the suite's paths map onto the namespace: ``fs_path`` is the version
directory ``pipe/step/art/1``, a draft, so the suite's ``source/...`` and
``target/...`` trees are paths inside one tree version being written — where
files may be created, overwritten and removed, because nothing there is a
version yet.  The ``...FromCommitted`` classes run the copy and get tests
again with every source tree first committed as the immutable version
``pipe/step/src/1``, so reads, globs and copies come from the index and
blobs of a real version (the fixture then removes that version, a recorded
deletion, instead of removing files inside it, which immutability forbids).
"""

from __future__ import annotations

import uuid

import pytest
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

from cas.fs import CasFileSystem

VERSION_DIR = "pipe/step/art/1"
COMMITTED_DIR = "pipe/step/src/1"


class CasFixtures(AbstractFixtures):
    @pytest.fixture(params=["memory", "local"])
    def fs(self, request, tmp_path):
        url = f"memory://cas-abstract-{uuid.uuid4().hex}" if request.param == "memory" else str(tmp_path / "store")
        fs = CasFileSystem(store=url, skip_instance_cache=True)
        yield fs
        fs.store.close()

    @pytest.fixture
    def fs_join(self):
        return lambda *parts: "/".join(parts)

    @pytest.fixture
    def fs_path(self):
        return VERSION_DIR


class CommittedSourceFixtures(CasFixtures):
    """Source trees are committed versions; targets are drafts of another artifact."""

    @staticmethod
    def _committed(fs, fs_join, build):
        source = build(fs, fs_join, COMMITTED_DIR)
        (version,) = fs.commit(COMMITTED_DIR)
        assert version.kind == "tree" and fs.info(COMMITTED_DIR)["committed"]
        return source

    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, fs, fs_join):
        yield self._committed(fs, fs_join, self._bulk_operations_scenario_0)
        fs.rm(COMMITTED_DIR, recursive=True)

    @pytest.fixture
    def fs_glob_edge_cases_files(self, fs, fs_join):
        yield self._committed(fs, fs_join, self._glob_edge_cases_files)
        fs.rm(COMMITTED_DIR, recursive=True)

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, fs, fs_join):
        yield self._committed(fs, fs_join, self._dir_and_file_with_same_name_prefix)
        fs.rm(COMMITTED_DIR, recursive=True)

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, fs, fs_join):
        yield self._committed(fs, fs_join, self._10_files_with_hashed_names)
        fs.rm(COMMITTED_DIR, recursive=True)


class TestCasCopy(AbstractCopyTests, CasFixtures):
    pass


class TestCasCopyFromCommitted(AbstractCopyTests, CommittedSourceFixtures):
    pass


class TestCasGet(AbstractGetTests, CasFixtures):
    pass


class TestCasGetFromCommitted(AbstractGetTests, CommittedSourceFixtures):
    pass


class TestCasPut(AbstractPutTests, CasFixtures):
    pass


class TestCasOpen(AbstractOpenTests, CasFixtures):
    pass


class TestCasPipe(AbstractPipeTests, CasFixtures):
    pass

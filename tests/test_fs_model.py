"""Drafts behave like an ordinary filesystem until commit: a Hypothesis state
machine drives the cas:// view and fsspec's MemoryFileSystem (the model, a real
implementation nobody here wrote) with the same operations and compares them;
each commit must freeze exactly the model's files into an immutable version.
"""

from __future__ import annotations

import uuid

import fsspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cas.errors import ReadOnlyError
from cas.fs import CasFileSystem

# Directories are named d*, files f*: a name is never both, as in a real tree.
DIRS = st.lists(st.sampled_from(["d0", "d1"]), max_size=2).map("/".join)
FILES = st.tuples(DIRS, st.sampled_from(["f0", "f1", "f2"])).map(lambda t: f"{t[0]}/{t[1]}" if t[0] else t[1])
DATA = st.binary(max_size=64)


class DraftMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = CasFileSystem(store=f"memory://cas-model-{uuid.uuid4().hex}", skip_instance_cache=True)
        self.model = fsspec.filesystem("memory")
        self.root = f"/model-{uuid.uuid4().hex}"
        self.version = 1
        self.committed: dict[int, dict[str, bytes]] = {}
        self._fresh_draft()

    def _fresh_draft(self) -> None:
        self.fs.makedirs(self.draft, exist_ok=True)
        self.model.makedirs(self.mroot, exist_ok=True)

    @property
    def draft(self) -> str:
        return f"p/s/a/{self.version}"

    @property
    def mroot(self) -> str:
        return f"{self.root}/{self.version}"

    def c(self, rel: str) -> str:
        return f"{self.draft}/{rel}" if rel else self.draft

    def m(self, rel: str) -> str:
        return f"{self.mroot}/{rel}" if rel else self.mroot

    def _model_files(self) -> dict[str, bytes]:
        prefix = self.mroot + "/"
        return {p[len(prefix) :]: self.model.cat_file(p) for p in self.model.find(self.mroot)}

    @rule(path=FILES, data=DATA)
    def write(self, path, data):
        self.fs.pipe(self.c(path), data)
        self.model.pipe(self.m(path), data)

    @rule(path=DIRS)
    def mkdir(self, path):
        self.fs.makedirs(self.c(path), exist_ok=True)
        self.model.makedirs(self.m(path), exist_ok=True)

    @rule(path=FILES)
    def remove_file(self, path):
        if self.model.isfile(self.m(path)):
            self.fs.rm(self.c(path))
            self.model.rm(self.m(path))

    @rule(path=DIRS.filter(bool))
    def remove_dir(self, path):
        if self.model.isdir(self.m(path)):
            self.fs.rm(self.c(path), recursive=True)
            self.model.rm(self.m(path), recursive=True)

    @rule(src=FILES, dst=FILES)
    def copy(self, src, dst):
        if self.model.isfile(self.m(src)) and src != dst:
            self.fs.cp_file(self.c(src), self.c(dst))
            self.model.cp_file(self.m(src), self.m(dst))

    @precondition(lambda self: self.model.find(self.mroot))
    @rule()
    def commit(self):
        expected = self._model_files()
        (version,) = self.fs.commit()
        assert (version.version, version.kind) == (self.version, "tree")
        assert {p: version.read_bytes(p) for p, _, _ in version.files()} == expected
        self.committed[self.version] = expected
        with pytest.raises(ReadOnlyError):
            self.fs.pipe(f"{self.draft}/{next(iter(expected))}", b"changed")
        self.version += 1
        self._fresh_draft()

    @invariant()
    def same_listing_and_content(self):
        files = self._model_files()
        prefix = self.draft + "/"
        assert {p[len(prefix) :] for p in self.fs.find(self.draft)} == set(files)
        mdirs = {p[len(self.mroot) + 1 :] for p in self.model.find(self.mroot, withdirs=True)} - {""}
        cdirs = {p[len(prefix) :] for p in self.fs.find(self.draft, withdirs=True)} - {""}
        assert cdirs == mdirs
        for rel, data in files.items():
            assert self.fs.cat_file(self.c(rel)) == data

    @invariant()
    def committed_versions_never_change(self):
        for number, files in self.committed.items():
            for rel, data in files.items():
                assert self.fs.cat_file(f"p/s/a/{number}/{rel}") == data

    def teardown(self):
        self.model.rm(self.root, recursive=True)
        self.fs.store.close()


DraftMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_drafts_match_a_real_filesystem_and_commits_freeze_them = DraftMachine.TestCase

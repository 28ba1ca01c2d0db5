"""Property tests: the Store against a plain dict model, driven by hypothesis.

``StoreMachine`` saves (new and duplicate content, bytes and trees), moves
aliases, deletes, collects garbage, reindexes and reopens, on the memory and
the local backend, and after every step checks that the store answers
exactly what the model says.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

import cas
from cas.core.digest import hash_bytes

NAMES = ["p/s/a", "p/s/b", "q/t/c"]
ALIASES = ["production", "staging"]
contents = st.binary(max_size=300) | st.sampled_from([b"", b"shared", b"x" * 2000])
trees = st.dictionaries(
    st.sampled_from(["a", "b.txt", "d/e", "d/f/g.bin"]), st.binary(max_size=50) | st.just(b"shared"), max_size=4
)


class StoreMachine(RuleBasedStateMachine):
    """The model: name -> {version: content}, deleted versions, aliases, and a counter per name."""

    backend = "memory"
    saved = Bundle("saved")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="cas-stateful-"))
        self.url = f"memory://cas-stateful-{uuid.uuid4().hex}" if self.backend == "memory" else str(self.tmp / "store")
        self.index_path = str(self.tmp / "index.sqlite")
        self.store = cas.open_store(self.url, index=self.index_path)
        self.versions: dict[str, dict[int, bytes | dict[str, bytes]]] = {}
        self.deleted: set[tuple[str, int]] = set()
        self.aliases: dict[tuple[str, str], int] = {}
        self.last: dict[str, int] = {}

    def teardown(self) -> None:
        self.store.close()
        if self.backend == "memory":
            import fsspec

            fs = fsspec.filesystem("memory")
            root = self.url[len("memory://") :]
            if fs.exists(root):
                fs.rm(root, recursive=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------

    def _record_save(self, name: str, v: cas.ArtifactVersion, content) -> tuple[str, int]:
        expected = self.last.get(name, 0) + 1
        assert v.version == expected, "numbers are 1, 2, 3... per name, never reused"
        self.last[name] = v.version
        self.versions.setdefault(name, {})[v.version] = content
        return (name, v.version)

    def _live(self, name: str) -> list[int]:
        return sorted(n for n in self.versions.get(name, {}) if (name, n) not in self.deleted)

    # -- rules ----------------------------------------------------------------------

    @rule(target=saved, name=st.sampled_from(NAMES), content=contents)
    def save_bytes(self, name, content):
        v = self.store.save(content, name)
        assert v.digest.hex == hash_bytes(content) and v.size == len(content)
        return self._record_save(name, v, content)

    @rule(target=saved, name=st.sampled_from(NAMES), files=trees)
    def save_tree(self, name, files):
        root = self.tmp / f"tree-{uuid.uuid4().hex}"
        root.mkdir()
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        v = self.store.save(root, name)
        shutil.rmtree(root)
        assert v.kind == "tree" and v.size == sum(map(len, files.values()))
        return self._record_save(name, v, dict(files))

    @rule(target=saved, source=saved, name=st.sampled_from(NAMES))
    def save_duplicate(self, source, name):
        """Saving content the store already has: a new version, no new content blob."""
        content = self.versions[source[0]][source[1]]
        assume(isinstance(content, bytes))
        assume(source not in self.deleted)  # after gc a deleted version's blob may be gone: then it is not a duplicate
        blobs_before = {e.path for e in self.store.backend.list("blobs")}
        v = self.store.save(content, name)
        new = {e.path for e in self.store.backend.list("blobs")} - blobs_before
        assert len(new) == 1, "only the version record is new"
        return self._record_save(name, v, content)

    @rule(ref=saved, alias=st.sampled_from(ALIASES))
    def set_alias(self, ref, alias):
        name, version = ref
        if (name, version) in self.deleted:
            with pytest.raises(cas.VersionDeletedError):
                self.store.set_alias(name, version, alias)
            return
        self.store.set_alias(name, version, alias)
        self.aliases[(name, alias)] = version

    @rule(ref=saved)
    def delete(self, ref):
        name, version = ref
        if (name, version) in self.deleted:
            with pytest.raises(cas.VersionDeletedError):
                self.store.delete_version(name, version)
            return
        self.store.delete_version(name, version)
        self.deleted.add((name, version))

    @rule(dry_run=st.booleans())
    def gc(self, dry_run):
        self.store.gc(grace=0, dry_run=dry_run)

    @rule()
    def reindex(self):
        self.store.reindex()

    @rule(fresh_index=st.booleans())
    def reopen(self, fresh_index):
        self.store.close()
        if fresh_index:  # a new machine: everything comes from the backend
            self.index_path = str(self.tmp / f"index-{uuid.uuid4().hex}.sqlite")
        self.store = cas.open_store(self.url, index=self.index_path)

    @precondition(lambda self: self.versions)
    @rule(data=st.data())
    def read_any_live_version(self, data):
        name = data.draw(st.sampled_from(sorted(self.versions)))
        live = self._live(name)
        assume(live)
        version = data.draw(st.sampled_from(live))
        content = self.versions[name][version]
        v = self.store.get_artifact_version(f"{name}@{version}")
        if isinstance(content, bytes):
            assert v.read_bytes() == content
        else:
            assert {p: v.read_bytes(p) for p, _, _ in v.files()} == content

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def answers_match_the_model(self):
        expected_names = sorted(n for n in self.versions if self._live(n))
        assert self.store.list_artifacts() == expected_names
        for name in self.versions:
            live = self._live(name)
            assert [v.version for v in self.store.list_versions(name)] == live
            if live:
                assert self.store.get_artifact_version(name).version == live[-1]
            else:
                with pytest.raises(cas.VersionNotFoundError):
                    self.store.get_artifact_version(name)
            expected_aliases = {a: n for (nm, a), n in self.aliases.items() if nm == name}
            assert self.store.aliases(name) == expected_aliases

    @invariant()
    def store_verifies(self):
        assert self.store.verify().ok


class LocalStoreMachine(StoreMachine):
    backend = "local"


MACHINE_SETTINGS = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestMemoryStore = StoreMachine.TestCase
TestMemoryStore.settings = MACHINE_SETTINGS
TestLocalStore = LocalStoreMachine.TestCase
TestLocalStore.settings = MACHINE_SETTINGS


# -- round trips ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    s = cas.open_store(str(tmp_path_factory.mktemp("roundtrip") / "store"))
    yield s
    s.close()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=5000), metadata=st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)))
def test_bytes_round_trip(shared_store, data, metadata):
    v = shared_store.save(data, "rt/s/bytes", metadata=metadata)
    got = shared_store.get_artifact_version("rt/s/bytes", v.version)
    assert got.read_bytes() == data
    assert got.metadata == metadata
    assert got.digest.hex == hash_bytes(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=500))
def test_text_round_trip(shared_store, text):
    v = shared_store.save(text, "rt/s/text")
    assert v.read_text() == text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.dictionaries(
        st.lists(st.text("abcXYZ019._-é", min_size=1, max_size=6).filter(lambda s: s not in (".", "..")), min_size=1, max_size=3)
        .map("/".join),
        st.binary(max_size=200),
        max_size=6,
    )
)
def test_tree_round_trip(shared_store, tmp_path_factory, files):
    # a path cannot be both a file and a directory
    assume(not any(a != b and b.startswith(a + "/") for a in files for b in files))
    src = tmp_path_factory.mktemp("src")
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    v = shared_store.save(src, "rt/s/tree")
    assert {p: v.read_bytes(p) for p, _, _ in v.files()} == files
    out = v.download(tmp_path_factory.mktemp("out") / "t")
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files

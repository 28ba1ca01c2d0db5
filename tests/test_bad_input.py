"""Bad input (DESIGN invariant 8): one typed error, and the store is left exactly as it was.

Each case runs on every backend of the conformance parametrization.  "Left as
it was" means the backend's files are byte-identical before and after (the
local index file is a derived view and left out of the comparison) and every
query gives the same answer.

``TestCraftedStore`` plants what a hostile writer would (invariant 12):
manifests, records, journal entries and ref keys that break the format.
Each is refused with a typed error naming it, reported by ``verify``, never
becomes a path, and does not stop the rest of the store from working.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
from click.testing import CliRunner
from store_helpers import all_names, answers, backend_snapshot, make_tree, replace_blob

import cas
from cas import errors
from cas.cli import EXIT_VERIFY_FAILED, cli
from cas.core.format import FORMAT_FILE
from cas.core.records import encode, now_iso
from cas.core.refs import journal_path, version_ref
from cas.storage.blobs import blob_path

BAD_NAMES = [
    "",
    "p/s",
    "p/s/a/b",
    "../s/a",
    "p/../a",
    "p/s/..",
    "./s/a",
    "/p/s/a",
    "/etc/passwd",
    "p/s/a/",
    "p//a",
    "p\\s\\a",
    "p/s/a\\..\\..",
    "C:\\p/s/a",
    "p/s/a\x00",
    "p/s/a\x00/../../x",
    "p/s/a\n",
    "p/s/\x1b[2J",
    "p/s/a\x7f",
    "p/s/" + "x" * 129,
    "p" * 129 + "/s/a",
    "p/s/" + "x" * 10_000,
    "p/s/a b",
    "p/s/é",
    "p/s/a@1",
]
BAD_VERSIONS = [0, -1, "0", "-3", "1.5", "", " ", "1 ", "a/b", "..", "x\x00", "\n", True, 2**60, 1.0, "٣", "v" * 129]
BAD_ALIASES = ["", "latest", "1", "9lives", "_x", "-x", ".x", "a/b", "../x", "a b", "a\x00", "a\n", "é", "x" * 129]


@pytest.fixture
def seeded(store, tmp_path):
    """A store with something in it, and a check that bad input changed nothing."""
    store.save(b"one", "p/s/a", metadata={"k": "v"})
    store.save(b"two", "p/s/a", aliases=["production"])
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_bytes(b"in a tree")
    store.save(tree, "p/s/tree")
    snap = backend_snapshot(store)
    before = answers(store)
    yield store
    assert backend_snapshot(store) == snap, "bad input changed the backend"
    assert answers(store) == before, "bad input changed what the store answers"


# Validation happens before any backend call, so the exhaustive lists run on the
# in-process backends; ``TestEveryBackend`` and ``TestCorruption`` run a
# representative set on every backend of the conformance parametrization.
class ValidationOnly:
    @pytest.fixture(params=["memory", "local"])
    def backend_name(self, request) -> str:
        return request.param


def refused(error: type[BaseException], fn, *args, **kwargs) -> BaseException:
    with pytest.raises(error) as info:
        fn(*args, **kwargs)
    err = info.value
    assert isinstance(err, errors.CasError), f"{type(err).__name__} is not a cas error"
    text = str(err)
    assert text and "\n" not in text and "\x00" not in text, f"not one printable line: {text!r}"
    return err


class TestNames(ValidationOnly):
    @pytest.mark.parametrize("name", BAD_NAMES)
    def test_save(self, seeded, name):
        refused(errors.InvalidNameError, seeded.save, b"new content", name)

    @pytest.mark.parametrize("name", BAD_NAMES)
    def test_save_directory(self, seeded, tmp_path, name):
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "x").write_bytes(b"new")
        refused(errors.InvalidNameError, seeded.save, tmp_path / "d", name)

    @pytest.mark.parametrize("name", BAD_NAMES)
    def test_lookups(self, seeded, name):
        refused(errors.InvalidNameError, seeded.get_artifact_version, name, 1)
        refused(errors.InvalidNameError, seeded.list_versions, name)
        refused(errors.InvalidNameError, seeded.aliases, name)
        refused(errors.InvalidNameError, seeded.set_alias, name, 1, "production")
        refused(errors.InvalidNameError, seeded.delete_version, name, 1)

    @pytest.mark.parametrize("prefix", ["p/\x00", "p\\s", "\n", "p/s/\x1b"])
    def test_list_prefix(self, seeded, prefix):
        refused(errors.InvalidNameError, seeded.list_artifacts, prefix)

    @pytest.mark.parametrize("name", [None, 3, b"p/s/a", ("p", "s", "a")])
    def test_non_string_names(self, seeded, name):
        refused(errors.InvalidNameError, seeded.save, b"x", name)
        refused(errors.InvalidNameError, seeded.get_artifact_version, name)


class TestVersions(ValidationOnly):
    @pytest.mark.parametrize("version", BAD_VERSIONS)
    def test_malformed(self, seeded, version):
        refused(errors.InvalidNameError, seeded.get_artifact_version, "p/s/a", version)
        refused(errors.InvalidNameError, seeded.set_alias, "p/s/a", version, "staging")
        refused(errors.InvalidNameError, seeded.delete_version, "p/s/a", version)

    @pytest.mark.parametrize("ref", ["p/s/a@", "p/s/a@0", "p/s/a@1@2", "p/s/a@../../x", "p/s/a@-1", "p/s/a@\x00"])
    def test_malformed_refs(self, seeded, ref):
        refused(errors.InvalidNameError, seeded.get_artifact_version, ref)

    def test_version_given_twice(self, seeded):
        refused(errors.InvalidNameError, seeded.get_artifact_version, "p/s/a@1", 2)

    @pytest.mark.parametrize("version", [3, "3", 2**53, "staging"])
    def test_unknown(self, seeded, version):
        err = refused(errors.VersionNotFoundError, seeded.get_artifact_version, "p/s/a", version)
        assert isinstance(err, KeyError)
        refused(errors.VersionNotFoundError, seeded.set_alias, "p/s/a", version, "staging")
        refused(errors.VersionNotFoundError, seeded.delete_version, "p/s/a", version)

    def test_unknown_name(self, seeded):
        refused(errors.ArtifactNotFoundError, seeded.get_artifact_version, "p/s/nope")
        refused(errors.ArtifactNotFoundError, seeded.list_versions, "p/s/nope")
        refused(errors.ArtifactNotFoundError, seeded.set_alias, "p/s/nope", 1, "production")
        refused(errors.ArtifactNotFoundError, seeded.delete_version, "p/s/nope", 1)


class TestAliases(ValidationOnly):
    @pytest.mark.parametrize("alias", BAD_ALIASES)
    def test_set_alias(self, seeded, alias):
        refused(errors.InvalidNameError, seeded.set_alias, "p/s/a", 1, alias)

    @pytest.mark.parametrize("alias", BAD_ALIASES)
    def test_alias_at_save_is_checked_before_anything_is_written(self, seeded, alias):
        refused(errors.InvalidNameError, seeded.save, b"brand new content", "p/s/a", aliases=["fine", alias])


class TestContent(ValidationOnly):
    @pytest.mark.parametrize(
        "metadata",
        [[("k", "v")], "k=v", {"k": object()}, {"k": float("nan")}, {"k": float("inf")}, {"k": b"bytes"}, {"k": {1, 2}},
         {"k": 2**64}, {"k": -(2**63) - 1}, {"k": [1, {"deep": 10**30}]}],
    )
    def test_metadata(self, seeded, metadata):
        refused(errors.InvalidNameError, seeded.save, b"brand new content", "p/s/a", metadata=metadata)

    # (plain JSON data is saved by a materializer: these are what nothing handles)
    @pytest.mark.parametrize("data", [object(), {1, 2}, 1 + 2j, lambda: 1, type])
    def test_unsupported_data(self, seeded, data):
        err = refused(errors.UnsupportedDataError, seeded.save, data, "p/s/a")
        assert isinstance(err, TypeError)

    def test_missing_path(self, seeded, tmp_path):
        with pytest.raises(FileNotFoundError):
            seeded.save(tmp_path / "does-not-exist", "p/s/a")

    @pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
    def test_directory_with_a_symlink(self, seeded, tmp_path):
        d = tmp_path / "with-link"
        d.mkdir()
        for i in range(30):  # blobs that would be written before the walk reaches the link
            (d / f"f{i:02d}").write_bytes(f"new file {i}".encode())
        (d / "zz-link").symlink_to("/etc/hostname")
        refused(errors.InvalidNameError, seeded.save, d, "p/s/new")

    @pytest.mark.parametrize("filename", ["back\\slash", "new\nline", "tab\there", "del\x7f", b"not-utf8-\xff"])
    def test_directory_with_an_unstorable_file_name(self, seeded, tmp_path, filename):
        d = tmp_path / "odd"
        d.mkdir()
        for i in range(10):
            (d / f"f{i}").write_bytes(f"fresh {i}".encode())
        name = os.fsdecode(filename) if isinstance(filename, bytes) else filename
        (d / name).write_bytes(b"odd")
        refused(errors.InvalidNameError, seeded.save, d, "p/s/new")

    @pytest.mark.parametrize("path", ["../f.txt", "/etc/passwd", "sub/../../f.txt", "sub\\f.txt", "sub/f.txt\x00", "", "."])
    def test_paths_inside_a_tree(self, seeded, path):
        tree = seeded.get_artifact_version("p/s/tree")
        with pytest.raises((errors.InvalidNameError, IsADirectoryError)):
            tree.read_bytes(path)
        with pytest.raises((errors.InvalidNameError, IsADirectoryError)):
            tree.open(path)

    def test_failing_stream_leaves_nothing(self, seeded):
        class Exploding(io.RawIOBase):
            def __init__(self):
                self.calls = 0

            def readable(self):
                return True

            def read(self, n=-1):
                self.calls += 1
                if self.calls > 3:
                    raise OSError("network went away")
                return b"x" * 1000

        with pytest.raises(OSError, match="network went away"):
            seeded.save(Exploding(), "p/s/a")

    def test_negative_gc_grace(self, seeded):
        refused(errors.InvalidNameError, seeded.gc, grace=-5)


class TestEveryBackend:
    """A representative case of each kind, on every backend."""

    def test_names_versions_aliases_metadata_data(self, seeded, tmp_path):
        for name in ("../s/a", "p/s/a\x00", "/p/s/a", "p\\s\\a", "p/s/" + "x" * 129):
            refused(errors.InvalidNameError, seeded.save, b"new content", name)
        for version in (0, "1.5", "a/b", "x\x00"):
            refused(errors.InvalidNameError, seeded.get_artifact_version, "p/s/a", version)
        refused(errors.VersionNotFoundError, seeded.get_artifact_version, "p/s/a", 3)
        refused(errors.ArtifactNotFoundError, seeded.get_artifact_version, "p/s/nope")
        refused(errors.InvalidNameError, seeded.set_alias, "p/s/a", 1, "latest")
        refused(errors.InvalidNameError, seeded.save, b"new content", "p/s/a", aliases=["ok", "../x"])
        refused(errors.InvalidNameError, seeded.save, b"new content", "p/s/a", metadata={"k": 2**64})
        refused(errors.UnsupportedDataError, seeded.save, object(), "p/s/a")
        d = tmp_path / "with-link"
        d.mkdir()
        for i in range(10):
            (d / f"f{i}").write_bytes(f"new file {i}".encode())
        (d / "zz-link").symlink_to("/etc/hostname")
        refused(errors.InvalidNameError, seeded.save, d, "p/s/new")


class TestCorruption:
    def test_corrupted_blob_is_refused_on_read(self, store):
        v = store.save(b"precious bytes", "p/s/a")
        replace_blob(store, v.digest.hex, b"rotten bytes!!")
        snap = backend_snapshot(store)
        err = refused(errors.IntegrityError, v.read_bytes)
        assert err.expected == v.digest.hex
        refused(errors.IntegrityError, store.get_artifact_version("p/s/a").read_bytes)
        with pytest.raises(errors.IntegrityError), v.open() as f:
            f.read()
        # finding it changes nothing either: it is reported, not "repaired"
        assert store.verify(deep=True).corrupt == [v.digest.hex]
        assert backend_snapshot(store) == snap

    def test_newer_format_is_refused_untouched(self, store, store_url, storage_options, tmp_path):
        store.save(b"x", "p/s/a")
        store.backend.remove(FORMAT_FILE)
        store.backend.create_bytes(FORMAT_FILE, b'{"format": 99, "hash": "blake3", "store_id": "future"}\n')
        snap = backend_snapshot(store)
        err = refused(
            errors.UnsupportedFormatError, cas.open_store, store_url, index=str(tmp_path / "i.sqlite"), **storage_options
        )
        assert "format 99" in str(err) and "upgrade cas" in str(err)
        assert backend_snapshot(store) == snap

    @pytest.mark.parametrize("fmt", [b'{"format": 1, "hash": "blake3"}', b'{"format": 1, "hash": "blake3", "store_id": 5}',
                                     b'{"format": 1, "hash": "blake3", "store_id": "../../x"}'])
    def test_format_file_without_a_valid_store_id_is_refused_untouched(self, store, store_url, storage_options, tmp_path, fmt):
        store.backend.remove(FORMAT_FILE)
        store.backend.create_bytes(FORMAT_FILE, fmt)
        snap = backend_snapshot(store)
        err = refused(
            errors.UnsupportedFormatError, cas.open_store, store_url, index=str(tmp_path / "i.sqlite"), **storage_options
        )
        assert "store_id" in str(err)
        assert backend_snapshot(store) == snap

    def test_garbage_ref_is_skipped_reported_and_named(self, store, tmp_path):
        store.save(b"x", "p/s/a")
        store.backend.remove("refs/versions/p/s/a/1")
        store.backend.create_bytes("refs/versions/p/s/a/1", b"../../../etc/passwd")
        err = refused(errors.CorruptRecordError, store.records.read_ref, "refs/versions/p/s/a/1")
        assert err.key == "refs/versions/p/s/a/1" and "not a ref" in str(err)
        store.reindex()  # one bad ref does not stop the rebuild
        assert all_names(store) == []
        assert [line for line in store.verify().invalid if line.startswith("refs/versions/p/s/a/1: not a ref")]
        assert store.save(b"y", "p/s/a").version == 2  # the bad claim is skipped, never reused

    def test_missing_blob_is_a_typed_error(self, store):
        v = store.save(b"soon gone", "p/s/a")
        store.backend.remove(blob_path(v.digest.hex))
        err = refused(errors.BlobNotFoundError, v.read_bytes)
        assert isinstance(err, FileNotFoundError)
        assert v.digest.hex in str(err)


def test_store_location_that_is_a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_bytes(b"not a store")
    err = refused(errors.BackendError, cas.open_store, str(path))
    assert "not a directory" in str(err)
    assert path.read_bytes() == b"not a store"


def test_digest_strings(tmp_path):
    for bad in ["", "blake3:", "blake3:xyz", "sha1:" + "0" * 40, "0" * 63, "../" + "0" * 61]:
        refused(errors.InvalidNameError, cas.Digest.parse, bad)


@pytest.mark.parametrize("name", BAD_NAMES[:6])
def test_nothing_is_created_for_a_bad_name_in_a_new_store(tmp_path, name):
    store = cas.open_store(str(tmp_path / "s"))
    before = sorted(p.relative_to(tmp_path) for p in Path(tmp_path).rglob("*") if "index.sqlite" not in p.name)
    with pytest.raises(errors.InvalidNameError):
        store.save(b"x", name)
    after = sorted(p.relative_to(tmp_path) for p in Path(tmp_path).rglob("*") if "index.sqlite" not in p.name)
    assert after == before
    store.close()


# -- crafted stores: everything read from a backend is untrusted (invariant 12) ---------


def plant(store: cas.Store, key: str, data: bytes) -> str:
    """Write ``key`` behind cas's back, as anyone holding the bucket's credentials can."""
    store.backend.remove(key)
    assert store.backend.create_bytes(key, data)
    return key


def plant_journal(store: cas.Store, data: bytes) -> str:
    """Plant ``data`` as the next journal entry; returns its key."""
    return plant(store, journal_path(store.records.journal_end()), data)


def plant_claim(store: cas.Store, ref: str, record: dict | bytes) -> tuple[str, str]:
    """Publish a crafted record the way a writer does: blob, ref, journal entry."""
    raw = record if isinstance(record, bytes) else encode(record)
    digest = store.blobs.put_bytes(raw).digest
    plant(store, ref, digest.encode())
    plant_journal(store, encode({"ref": ref, "record": digest}))
    return ref, digest


def escaped(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if "escaped" in p.name]


def invalid_lines(store: cas.Store, *needles: str) -> list[str]:
    report = store.verify()
    assert not report.ok
    lines = [line for line in report.invalid if all(n in line for n in needles)]
    for line in report.invalid:
        assert line and "\n" not in line and "\x00" not in line, f"not one printable line: {line!r}"
    return lines


def version_record(name: str, version: int, digest: str, changes: dict | None = None) -> dict:
    record = {
        "type": "version",
        "name": name,
        "version": version,
        "digest": digest,
        "kind": "blob",
        "size": 3,
        "created_at": now_iso(),
        "metadata": {},
    }
    record.update(changes or {})
    return record


def seed(store: cas.Store, tmp_path: Path) -> cas.Store:
    store.save(b"one", "p/s/a")
    store.save(b"two", "p/s/a", aliases=["production"])
    store.save(make_tree(tmp_path / "tree", {"sub/f.txt": b"in a tree"}), "p/s/tree")
    return store


ESCAPING_PATHS = ["../../escaped/file", "sub/../../../escaped", "/tmp/escaped-abs", "..\\..\\escaped", "ok/\x00/escaped"]


class TestCraftedStore:
    """Planted on local disk and on S3 (moto): the two code paths that list and read keys."""

    @pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
    def backend_name(self, request) -> str:
        return request.param

    @pytest.fixture
    def victim(self, store, tmp_path):
        return seed(store, tmp_path)

    @pytest.fixture
    def victim1(self, open_test_store, tmp_path):
        """A format-1 store, whatever $CAS_NEW_STORE_FORMAT says: for attacks on its sequenced journal."""
        return seed(open_test_store(format=1), tmp_path)

    def _one(self, store: cas.Store) -> str:
        return store.get_artifact_version("p/s/a", 1).digest.hex

    @pytest.mark.parametrize("evil", ESCAPING_PATHS)
    def test_link_refuses_a_manifest_that_leaves_the_tree(self, victim, evil):
        manifest = victim.blobs.put_bytes(msgpack.packb([[evil, self._one(victim), 3]], use_bin_type=True)).digest
        snap = backend_snapshot(victim)
        err = refused(errors.CorruptRecordError, victim.link, "p/s/evil", manifest, "tree")
        assert err.key == f"blake3:{manifest}" and "not a tree manifest" in str(err)
        assert backend_snapshot(victim) == snap

    @pytest.mark.parametrize("evil", ESCAPING_PATHS)
    def test_a_planted_tree_version_never_writes_outside(self, victim, open_test_store, tmp_path, evil):
        manifest = victim.blobs.put_bytes(msgpack.packb([[evil, self._one(victim), 3]], use_bin_type=True)).digest
        ref, record = plant_claim(victim, version_ref("p/s/evil", 1), version_record("p/s/evil", 1, manifest, {"kind": "tree"}))
        fresh = open_test_store(index=str(tmp_path / "fresh.sqlite"))  # another machine: reindex
        victim.refresh()  # this machine: the journal
        out = tmp_path / "out"
        out.mkdir()
        for s in (victim, fresh):
            with pytest.raises(errors.ArtifactNotFoundError):
                s.get_artifact_version("p/s/evil").download(out / "dest")
            assert invalid_lines(s, ref, f"blake3:{manifest}", "not a tree manifest")
            # the rest of the store works, and the bad claim's number is never reused
            assert s.get_artifact_version("p/s/tree").read_bytes("sub/f.txt") == b"in a tree"
            assert s.get_artifact_version("p/s/a").download(out / "a").read_bytes() == b"two"
        assert victim.save(b"fine", "p/s/evil").version == 2
        assert sorted(p.name for p in out.iterdir()) == ["a"]
        assert escaped(tmp_path) == []

    @pytest.mark.parametrize("ref", ["../escaped/x", "refs/versions/../../../escaped/7", "refs/../../escaped/x",
                                     "refs/versions/p/s/a/../../../../../escaped/9", "/tmp/escaped-abs/x"])
    def test_a_journal_ref_that_leaves_the_store_is_refused_and_sync_writes_nothing_outside(self, victim, tmp_path, ref):
        record = victim.records.read_ref(version_ref("p/s/a", 1))  # a genuine record under a forged ref
        key = plant_journal(victim, encode({"ref": ref, "record": record}))
        victim.refresh()
        mirror = tmp_path / "mirror"
        dst = cas.open_store(str(mirror / "dst"))
        victim.sync_to(dst)
        assert [p.name for p in mirror.iterdir()] == ["dst"] and escaped(tmp_path) == []
        assert dst.get_artifact_version("p/s/a").read_bytes() == b"two"  # the rest was synced
        assert dst.verify().ok
        assert invalid_lines(victim, key, "not a journal entry", "not a ref path")
        dst.close()

    @pytest.mark.parametrize(
        "data,what,claimed",
        [
            (b"", "not msgpack", False),
            (b"garbage\n", "not msgpack", False),
            (msgpack.packb([1, 2, 3]), "expected a map with 'ref' and 'record'", False),
            (msgpack.packb({"ref": "refs/versions/p/s/a/9"}), "expected a map with 'ref' and 'record'", False),
            (msgpack.packb({"ref": 5, "record": "0" * 64}), "not a ref path", False),
            (msgpack.packb({"ref": "refs/versions/p/s/a/9", "record": "../../x"}), "'record' is not a digest", False),
            # An entry announces a claim, it is not one: naming a ref nobody claimed, it is
            # refused before its record is looked for (tests/test_journal_claims.py) ...
            (msgpack.packb({"ref": "refs/versions/p/s/a/9", "record": "ab" * 32}), "announced, but never claimed", False),
            # ... so for its record to be read, the ref holds that record (claimed first, as a
            # writer does), whose blob is missing: lost, or never uploaded.
            (msgpack.packb({"ref": "refs/versions/p/s/a/9", "record": "ab" * 32}), "its record cannot be read", True),
            (encode({"ref": "refs/versions/p/s/a/9", "record": "ab" * 32}) + b"\x00", "not msgpack", False),
        ],
    )
    def test_a_garbage_journal_entry_blocks_nothing(self, victim, open_test_store, data, what, claimed):
        if claimed:
            plant(victim, version_ref("p/s/a", 9), b"ab" * 32)
        key = plant_journal(victim, data)
        other = open_test_store()  # same index: it refreshes past the garbage instead of failing
        assert other.save(b"after the garbage", "p/s/b").version == 1
        assert other.get_artifact_version("p/s/a").read_bytes() == b"two"
        victim.save(b"three", "p/s/a")  # journalled after the bad entry: still seen by others
        other.refresh()
        assert other.get_artifact_version("p/s/a").version == 3
        lines = invalid_lines(other, key, what)
        assert lines and lines[0].startswith(f"{key}: ")

    def test_a_journal_entry_planted_far_ahead_does_not_hide_later_ones(self, victim1, open_test_store, tmp_path):
        victim = victim1  # format 1: the far-ahead sequence number is format 1's journal
        far = plant(victim, journal_path(10**15), victim.backend.read_bytes(journal_path(0)))  # a genuine entry
        fresh = open_test_store(index=str(tmp_path / "fresh.sqlite"))  # reindex: where does the journal end?
        fresh.save(b"from fresh", "p/s/fresh")
        victim.save(b"from victim", "p/s/victim")
        victim.refresh()
        fresh.refresh()
        for s in (victim, fresh):  # each sees what the other wrote after the plant
            assert s.get_artifact_version("p/s/fresh").read_bytes() == b"from fresh"
            assert s.get_artifact_version("p/s/victim").read_bytes() == b"from victim"
        assert invalid_lines(fresh, far, "beyond the end of the journal")

    @pytest.mark.parametrize(
        "change",
        [
            {"name": "x/y/z"},
            {"name": "../../escaped"},
            {"version": 4},
            {"created_at": "yesterday"},
            {"kind": "symlink"},
            {"size": -1},
            {"size": "3"},
            {"digest": "../../../etc/passwd"},
            {"metadata": {"k": b"bytes"}},
            {"metadata": "not a map"},
            {"metadata": {1: "int key"}},
            {"type": "delete", "version": 1, "deleted_at": "2024-01-01T00:00:00+00:00"},
            {"type": "alias", "alias": "production", "seq": 9},
        ],
        ids=repr,
    )
    def test_a_crafted_version_record_is_refused_named_and_reported(self, victim, open_test_store, tmp_path, change):
        before = answers(victim)
        ref, digest = plant_claim(victim, version_ref("p/s/a", 3), version_record("p/s/a", 3, self._one(victim), change))
        victim.refresh()
        fresh = open_test_store(index=str(tmp_path / "fresh.sqlite"))
        for s in (victim, fresh):
            assert answers(s) == before
            assert invalid_lines(s, ref, f"blake3:{digest}", "not a valid record")
        assert victim.save(b"three", "p/s/a").version == 4
        assert fresh.get_artifact_version("p/s/a", 1).read_bytes() == b"one"

    @pytest.mark.parametrize(
        "ref,record",
        [
            ("refs/aliases/p/s/a/production/5",
             {"type": "alias", "name": "p/s/a", "alias": "production", "version": "1; DROP", "seq": 5, "created_at": now_iso()}),
            ("refs/aliases/p/s/a/production/5",
             {"type": "alias", "name": "p/s/a", "alias": "staging", "version": 1, "seq": 5, "created_at": now_iso()}),
            ("refs/runs/evil/0",
             {"type": "run_start", "run_id": "evil", "pipeline": "../x", "started_at": now_iso(), "seq": 0}),
            ("refs/runs/evil/0",
             {"type": "run_start", "run_id": "other", "pipeline": "p", "started_at": now_iso(), "seq": 0}),
            ("refs/runs/evil/0", msgpack.packb({"type": "run_start", "run_id": "evil", "pipeline": "p",
                                               "started_at": msgpack.Timestamp(0), "seq": 0})),
        ],
    )
    def test_crafted_alias_and_run_records(self, victim, open_test_store, tmp_path, ref, record):
        before = answers(victim)
        runs = victim.list_runs()
        ref, digest = plant_claim(victim, ref, record)
        fresh = open_test_store(index=str(tmp_path / "fresh.sqlite"))
        victim.refresh()
        for s in (victim, fresh):
            assert answers(s) == before and s.list_runs() == runs
            assert s.aliases("p/s/a") == {"production": 2}
            assert invalid_lines(s, ref, f"blake3:{digest}")
        victim.set_alias("p/s/a", 1, "production")  # the next alias move is not blocked
        fresh.refresh()
        assert fresh.get_artifact_version("p/s/a", "production").version == 1

    @pytest.mark.parametrize("key", ["refs/versions/p/s/a/01", "refs/versions/p/s/a/x", "refs/nope/p/s/a/1",
                                     "refs/versions/p/s/-a/1", "refs/aliases/p/s/a/latest/3", "journal/17",
                                     "refs/versions/p/s/a\x1b[2J/1"])
    def test_a_listed_key_outside_the_layout_is_reported_not_used(self, victim, open_test_store, tmp_path, key):
        before = answers(victim)
        plant(victim, key, victim.records.read_ref(version_ref("p/s/a", 1)).encode())
        fresh = open_test_store(index=str(tmp_path / "fresh.sqlite"))
        assert answers(fresh) == before
        assert invalid_lines(fresh, key if key.isprintable() else repr(key))
        assert fresh.save(b"three", "p/s/a").version == 3
        victim.refresh()
        assert victim.get_artifact_version("p/s/a").read_bytes() == b"three"


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
@pytest.mark.parametrize("name", ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "index.sqlite-journal"])
def test_a_symlink_planted_as_the_index_is_not_followed(tmp_path, name):
    root = tmp_path / "store"
    with cas.open_store(str(root)) as s:
        s.save(b"x", "p/s/a")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / name).unlink(missing_ok=True)
    (root / name).symlink_to(outside / "planted")
    err = refused(errors.BackendError, cas.open_store, str(root))
    assert name in str(err)
    assert list(outside.iterdir()) == []


def test_cas_get_of_a_planted_tree_writes_nothing_outside(local_store, tmp_path):
    victim = seed(local_store, tmp_path)
    one = victim.get_artifact_version("p/s/a", 1).digest.hex
    manifest = victim.blobs.put_bytes(msgpack.packb([["../../escaped/file", one, 3]], use_bin_type=True)).digest
    plant_claim(victim, version_ref("p/s/evil", 1), version_record("p/s/evil", 1, manifest, {"kind": "tree"}))
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(cli, ["--store", victim.backend.root, "get", "p/s/evil", str(out / "dest")])
    assert result.exit_code != 0 and "p/s/evil" in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == [] and escaped(tmp_path) == []


def test_a_bad_journal_entry_at_the_end_does_not_stop_cas_put(local_store, tmp_path):
    """The real console script: the put succeeds and says, on one line, what it skipped."""
    victim = seed(local_store, tmp_path)
    key = plant_journal(victim, b"\x93garbage")
    victim.close()
    f = tmp_path / "f.bin"
    f.write_bytes(b"new bytes")
    script = shutil.which("cas", path=os.path.dirname(sys.executable))
    cas_cmd = [script] if script else [sys.executable, "-m", "cas.cli"]
    env = dict(os.environ, CAS_STORE=victim.backend.root)
    put = subprocess.run([*cas_cmd, "put", str(f), "p/s/new"], capture_output=True, text=True, env=env, timeout=120)
    assert put.returncode == 0, put.stderr
    assert put.stderr.count("\n") == 1 and f"{key}: not a journal entry: not msgpack" in put.stderr
    verify = subprocess.run([*cas_cmd, "verify"], capture_output=True, text=True, env=env, timeout=120)
    assert verify.returncode == EXIT_VERIFY_FAILED and "Traceback" not in verify.stderr
    assert f"invalid  {key}: not a journal entry: not msgpack" in verify.stdout


@pytest.fixture
def local_store1(tmp_path):
    """A local format-1 store, whatever $CAS_NEW_STORE_FORMAT says: these plants name format 1's journal slots."""
    with cas.open_store(str(tmp_path / "store"), format=1) as s:
        yield s


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlinks_planted_as_a_journal_entry_or_a_ref_are_skipped_and_reported(local_store1, tmp_path):
    victim = seed(local_store1, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "entry").write_bytes(encode({"ref": version_ref("p/s/a", 1), "record": "ab" * 32}))
    key = journal_path(victim.records.journal_end())
    journal = Path(victim.backend.abspath(key))
    journal.symlink_to(outside / "entry")
    ref = Path(victim.backend.abspath(version_ref("p/s/a", 2)))
    ref.unlink()
    ref.symlink_to(outside / "entry")
    with cas.open_store(victim.backend.root) as other:  # refresh: the journal symlink
        assert other.save(b"three", "p/s/a").version == 3
        assert invalid_lines(other, key, "a symlink")
    with cas.open_store(victim.backend.root, index=str(tmp_path / "fresh.sqlite")) as fresh:  # reindex: the ref
        assert fresh.get_artifact_version("p/s/a", 1).read_bytes() == b"one"
        assert invalid_lines(fresh, version_ref("p/s/a", 2), "a symlink")


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlinks_planted_at_the_next_ref_and_journal_slot_do_not_block_saves(local_store1, tmp_path):
    victim = seed(local_store1, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    for rel in (version_ref("p/s/a", 3), journal_path(victim.records.journal_end())):
        Path(victim.backend.abspath(rel)).symlink_to(outside / "planted")
    assert victim.save(b"three", "p/s/a").version == 4  # both planted names are stepped over, not followed
    assert list(outside.iterdir()) == []
    with cas.open_store(victim.backend.root, index=str(tmp_path / "fresh.sqlite")) as fresh:
        assert fresh.get_artifact_version("p/s/a").read_bytes() == b"three"
        assert invalid_lines(fresh, version_ref("p/s/a", 3), "a symlink")

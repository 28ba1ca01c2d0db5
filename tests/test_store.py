"""The backend conformance suite: the whole Store contract, on every backend.

Every test here takes the ``store`` / ``open_test_store`` / ``store_url``
fixtures from ``tests/conftest.py``, so each runs on every backend in the
``backend_name`` parametrization (memory, local, and the cloud backends).
Tests that are inherently about local disk use ``local_store`` and live in
``TestLocalDisk`` at the end.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest
from store_helpers import answers, backend_snapshot, blob_files, make_tree, remove_blob, replace_blob

import cas
from cas.core.digest import Digest, hash_bytes
from cas.core.format import FORMAT_FILE, FORMAT_VERSION, new_store_format
from cas.core.records import decode
from cas.core.refs import version_ref
from cas.errors import (
    ArtifactNotFoundError,
    BackendError,
    BlobNotFoundError,
    IntegrityError,
    InvalidNameError,
    StoreNotFoundError,
    UnsupportedDataError,
    UnsupportedFormatError,
    VersionDeletedError,
    VersionNotFoundError,
)
from cas.storage.blobs import blob_path
from cas.storage.packs import pack_path

MiB = 1 << 20


TREE = {
    "README.md": b"# model\n",
    "weights/layer0.bin": bytes(range(256)) * 40,
    "weights/layer1.bin": b"\x00" * 5000,
    "weights/copy-of-layer0.bin": bytes(range(256)) * 40,  # same content: one blob
    "empty": b"",
    "deep/a/b/c/d.txt": b"deep",
}


# -- saving ------------------------------------------------------------------------


class TestSave:
    def test_bytes_round_trip_and_fields(self, store):
        before = datetime.now(timezone.utc)
        v = store.save(b"hello", "p/s/a", metadata={"epoch": 3, "tags": ["x"]})
        assert v.name == "p/s/a"
        assert v.version == 1
        assert v.ref == "p/s/a@1"
        assert v.digest == Digest(hash_bytes(b"hello"))
        assert v.kind == "blob"
        assert v.size == 5
        assert v.metadata == {"epoch": 3, "tags": ["x"]}
        assert v.created_at.tzinfo is not None
        assert v.created_at >= before.replace(microsecond=0)
        assert not v.deleted
        assert v.read_bytes() == b"hello"
        assert v.read_text() == "hello"
        got = store.get_artifact_version("p/s/a")
        assert got == v
        assert got.metadata == v.metadata

    def test_empty_content(self, store):
        v = store.save(b"", "p/s/empty")
        assert v.size == 0
        assert store.get_artifact_version("p/s/empty").read_bytes() == b""

    def test_str_is_text_content_not_a_path(self, store, tmp_path, monkeypatch):
        # A file with that very name exists; a str is still saved as its UTF-8 text.
        monkeypatch.chdir(tmp_path)
        Path("README.md").write_bytes(b"file content")
        v = store.save("README.md", "p/s/text")
        assert v.read_bytes() == b"README.md"
        v = store.save("héllo ✓\n", "p/s/text")
        assert v.read_bytes() == "héllo ✓\n".encode()

    def test_path_is_a_file(self, store, tmp_path):
        path = tmp_path / "small.bin"
        path.write_bytes(b"from a file")
        v = store.save(path, "p/s/file")
        assert v.kind == "blob"
        assert v.read_bytes() == b"from a file"

    def test_large_file_is_hashed_then_copied(self, store, tmp_path):
        data = os.urandom(2 * MiB + 17)  # above the read-whole-file threshold
        path = tmp_path / "large.bin"
        path.write_bytes(data)
        v = store.save(path, "p/s/large")
        assert v.digest.hex == hash_bytes(data)
        assert v.size == len(data)
        assert v.read_bytes() == data

    def test_binary_stream(self, store, tmp_path):
        data = os.urandom(MiB + 5)
        v = store.save(io.BytesIO(data), "p/s/stream")
        assert v.read_bytes() == data
        path = tmp_path / "f"
        path.write_bytes(data)
        with open(path, "rb") as f:
            w = store.save(f, "p/s/stream")
        assert w.digest == v.digest and w.version == 2

    def test_bytearray_and_memoryview(self, store):
        assert store.save(bytearray(b"ba"), "p/s/a").read_bytes() == b"ba"
        assert store.save(memoryview(b"mv"), "p/s/a").read_bytes() == b"mv"

    def test_directory_is_saved_as_a_tree(self, store, tmp_path):
        root = make_tree(tmp_path / "model", TREE)
        v = store.save(root, "p/s/model")
        assert v.kind == "tree"
        assert v.size == sum(len(d) for d in TREE.values())
        files = v.files()
        assert [p for p, _, _ in files] == sorted(TREE)
        for path, digest, size in files:
            assert digest.hex == hash_bytes(TREE[path])
            assert size == len(TREE[path])
            assert v.read_bytes(path) == TREE[path]
            with v.open(path) as f:
                assert f.read() == TREE[path]
        assert [p for p, _, _ in v.files("weights/")] == sorted(p for p in TREE if p.startswith("weights/"))

    def test_tree_digest_names_the_content(self, store, tmp_path):
        a = store.save(make_tree(tmp_path / "a", TREE), "p/s/t")
        b = store.save(make_tree(tmp_path / "b", TREE), "p/s/t")
        assert a.digest == b.digest
        changed = dict(TREE, **{"weights/layer1.bin": b"\x01" * 5000})
        c = store.save(make_tree(tmp_path / "c", changed), "p/s/t")
        assert c.digest != a.digest
        renamed = {("x-" + k): v for k, v in TREE.items()}
        d = store.save(make_tree(tmp_path / "d", renamed), "p/s/t")
        assert d.digest != a.digest

    def test_empty_directory(self, store, tmp_path):
        (tmp_path / "empty").mkdir()
        v = store.save(tmp_path / "empty", "p/s/empty-dir")
        assert v.kind == "tree" and v.size == 0 and v.files() == []
        out = v.download(tmp_path / "out")
        assert out.is_dir() and list(out.iterdir()) == []

    def test_versions_count_per_name(self, store):
        assert [store.save(f"{i}", "p/s/a").version for i in range(3)] == [1, 2, 3]
        assert store.save(b"x", "p/s/b").version == 1
        assert store.save(b"0", "p/s/a").version == 4  # same content as v1: still a new version

    def test_aliases_at_save(self, store):
        v = store.save(b"x", "p/s/a", aliases=["production", "best"])
        assert store.aliases("p/s/a") == {"best": 1, "production": 1}
        assert store.get_artifact_version("p/s/a", "production") == v

    def test_unsupported_type(self, store):
        with pytest.raises(UnsupportedDataError) as info:
            store.save(object(), "p/s/a")  # no materializer handles a bare object
        assert isinstance(info.value, TypeError)

    def test_missing_path(self, store, tmp_path):
        snap = backend_snapshot(store)
        with pytest.raises(FileNotFoundError):
            store.save(tmp_path / "nope", "p/s/a")
        assert backend_snapshot(store) == snap


class TestDedupe:
    def test_same_content_under_another_name_writes_no_content_blob(self, store):
        store.save(b"payload" * 1000, "p/s/a")
        blobs_before = blob_files(store)
        stored_before = store.stats().stored_bytes
        v = store.save(b"payload" * 1000, "q/t/b")
        new = blob_files(store) - blobs_before
        # Only the new version's record is a new blob; the content was not written again.
        assert len(new) == 1
        (only,) = new
        assert decode(store.backend.read_bytes(only))["type"] == "version"
        assert blob_path(v.digest.hex) in blobs_before
        assert store.stats().stored_bytes == stored_before
        stats = store.stats()
        assert stats.logical_bytes == 2 * 7000 and stats.stored_bytes == 7000
        assert stats.dedupe_ratio == 2.0

    def test_trees_share_blobs_with_files(self, store, tmp_path):
        store.save(make_tree(tmp_path / "t", TREE), "p/s/tree")
        blobs_before = blob_files(store)
        store.save(TREE["weights/layer0.bin"], "p/s/file")
        assert len(blob_files(store) - blobs_before) == 1  # the record only

    def test_two_stores_sharing_one_backend_dedupe(self, open_test_store, tmp_path):
        a = open_test_store(index=str(tmp_path / "a.sqlite"))
        b = open_test_store(index=str(tmp_path / "b.sqlite"))
        a.save(b"shared" * 100, "p/s/a")
        before = blob_files(a)
        b.save(b"shared" * 100, "p/s/b")
        assert len(blob_files(a) - before) == 1  # b's record, no content


# -- finding ---------------------------------------------------------------------------


class TestGet:
    @pytest.fixture
    def three(self, store):
        for i in range(1, 4):
            store.save(f"v{i}".encode(), "p/s/a")
        store.set_alias("p/s/a", 2, "production")
        return store

    @pytest.mark.parametrize(
        "args,expected",
        [
            (("p/s/a",), 3),
            (("p/s/a", None), 3),
            (("p/s/a", "latest"), 3),
            (("p/s/a", 1), 1),
            (("p/s/a", "2"), 2),
            (("p/s/a@1",), 1),
            (("p/s/a@latest",), 3),
            (("p/s/a", "production"), 2),
            (("p/s/a@production",), 2),
        ],
    )
    def test_version_specs(self, three, args, expected):
        v = three.get_artifact_version(*args)
        assert v.version == expected
        assert v.read_bytes() == f"v{expected}".encode()

    def test_unknown_name(self, three):
        with pytest.raises(ArtifactNotFoundError) as info:
            three.get_artifact_version("p/s/nope")
        assert isinstance(info.value, KeyError)
        assert str(info.value) == "no artifact named p/s/nope"

    @pytest.mark.parametrize("spec", [4, "99", "staging"])
    def test_unknown_version(self, three, spec):
        with pytest.raises(VersionNotFoundError) as info:
            three.get_artifact_version("p/s/a", spec)
        assert isinstance(info.value, ArtifactNotFoundError)

    def test_open_is_seekable_and_verified(self, store):
        data = os.urandom(3 * MiB)
        v = store.save(data, "p/s/a")
        with v.open() as f:
            assert f.read(10) == data[:10]
            f.seek(MiB)
            assert f.read(5) == data[MiB : MiB + 5]
            f.seek(0)
            assert f.read() == data

    def test_download_file(self, store, tmp_path):
        v = store.save(b"content", "p/s/model.bin")
        out = v.download(tmp_path / "x.bin")
        assert out == tmp_path / "x.bin" and out.read_bytes() == b"content"
        (tmp_path / "dir").mkdir()
        out = v.download(tmp_path / "dir")
        assert out == tmp_path / "dir" / "model.bin" and out.read_bytes() == b"content"

    def test_download_tree(self, store, tmp_path):
        v = store.save(make_tree(tmp_path / "src", TREE), "p/s/model")
        out = v.download(tmp_path / "dst")
        got = {str(p.relative_to(out)).replace(os.sep, "/"): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert got == TREE
        leftovers = [p.name for p in out.rglob(".*cas-*")]
        assert leftovers == []

    def test_paths_inside_versions(self, store, tmp_path):
        tree = store.save(make_tree(tmp_path / "src", TREE), "p/s/tree")
        blob = store.save(b"x", "p/s/blob")
        with pytest.raises(IsADirectoryError):
            tree.read_bytes()
        with pytest.raises(FileNotFoundError):
            tree.read_bytes("weights/nope.bin")
        for bad in ("../README.md", "/README.md", "weights/../README.md", "weights\\layer0.bin", "a\x00"):
            with pytest.raises(InvalidNameError):
                tree.read_bytes(bad)
        with pytest.raises(InvalidNameError):
            blob.read_bytes("inside")


class TestListing:
    def test_list_versions_and_artifacts(self, store):
        for name in ("b/s/x", "a/s/y", "a/t/z", "ab/s/w"):
            store.save(name.encode(), name)
        store.save(b"again", "a/s/y")
        assert store.list_artifacts() == ["a/s/y", "a/t/z", "ab/s/w", "b/s/x"]
        assert store.list_artifacts("a/") == ["a/s/y", "a/t/z"]
        assert store.list_artifacts("a") == ["a/s/y", "a/t/z", "ab/s/w"]
        assert store.list_artifacts("a/s/") == ["a/s/y"]
        assert store.list_artifacts("zzz") == []
        assert [v.version for v in store.list_versions("a/s/y")] == [1, 2]
        with pytest.raises(ArtifactNotFoundError):
            store.list_versions("c/s/x")

    def test_stats(self, store, tmp_path):
        assert store.stats() == cas.StoreStats(artifacts=0, versions=0, blobs=0, logical_bytes=0, stored_bytes=0)
        store.save(b"a" * 10, "p/s/a")
        store.save(b"a" * 10, "p/s/b")
        store.save(make_tree(tmp_path / "t", {"x": b"a" * 10, "y": b"b" * 5}), "p/s/t")
        s = store.stats()
        assert (s.artifacts, s.versions, s.blobs) == (3, 3, 2)
        assert s.logical_bytes == 35 and s.stored_bytes == 15


class TestAliases:
    def test_set_and_move(self, store):
        for i in range(3):
            store.save(str(i), "p/s/a")
        assert store.set_alias("p/s/a", 1, "production").version == 1
        assert store.get_artifact_version("p/s/a@production").version == 1
        store.set_alias("p/s/a", "latest", "production")
        assert store.get_artifact_version("p/s/a@production").version == 3
        store.set_alias("p/s/a@production", None, "staging")
        assert store.aliases("p/s/a") == {"production": 3, "staging": 3}

    def test_alias_to_unknown_version(self, store):
        store.save(b"x", "p/s/a")
        snap = backend_snapshot(store)
        with pytest.raises(VersionNotFoundError):
            store.set_alias("p/s/a", 9, "production")
        with pytest.raises(ArtifactNotFoundError):
            store.set_alias("p/s/none", 1, "production")
        assert backend_snapshot(store) == snap

    def test_latest_cannot_be_set(self, store):
        store.save(b"x", "p/s/a")
        with pytest.raises(InvalidNameError):
            store.set_alias("p/s/a", 1, "latest")

    def test_aliases_are_per_name(self, store):
        store.save(b"x", "p/s/a")
        store.save(b"y", "p/s/b")
        store.set_alias("p/s/a", 1, "production")
        with pytest.raises(VersionNotFoundError):
            store.get_artifact_version("p/s/b@production")


class TestDelete:
    def test_delete_is_recorded_and_bytes_stay_until_gc(self, store):
        v1 = store.save(b"one", "p/s/a")
        store.save(b"two", "p/s/a")
        store.delete_version("p/s/a", 2)
        with pytest.raises(VersionDeletedError) as info:
            store.get_artifact_version("p/s/a", 2)
        assert isinstance(info.value, FileNotFoundError)
        assert str(info.value) == "p/s/a@2 was deleted"
        assert store.get_artifact_version("p/s/a").version == 1
        assert [v.version for v in store.list_versions("p/s/a")] == [1]
        deleted = store.list_versions("p/s/a", include_deleted=True)[1]
        assert deleted.deleted and deleted.read_bytes() == b"two"  # until gc
        assert v1.read_bytes() == b"one"
        assert store.verify().ok

    def test_numbers_are_never_reused(self, store):
        store.save(b"1", "p/s/a")
        store.save(b"2", "p/s/a")
        store.delete_version("p/s/a@latest", None)
        assert store.save(b"3", "p/s/a").version == 3

    def test_delete_twice(self, store):
        store.save(b"1", "p/s/a")
        store.delete_version("p/s/a", 1)
        snap = backend_snapshot(store)
        with pytest.raises(VersionDeletedError):
            store.delete_version("p/s/a", 1)
        assert backend_snapshot(store) == snap

    def test_all_versions_deleted(self, store):
        store.save(b"1", "p/s/a")
        store.delete_version("p/s/a", 1)
        with pytest.raises(VersionNotFoundError, match="no live versions"):
            store.get_artifact_version("p/s/a")
        assert store.list_artifacts() == []
        assert store.list_versions("p/s/a") == []
        assert store.save(b"again", "p/s/a").version == 2

    def test_alias_to_deleted_version(self, store):
        store.save(b"1", "p/s/a", aliases=["production"])
        store.save(b"2", "p/s/a")
        store.delete_version("p/s/a", 1)
        with pytest.raises(VersionDeletedError):
            store.get_artifact_version("p/s/a@production")


# -- maintenance --------------------------------------------------------------------


class TestGc:
    def test_removes_only_unneeded_blobs(self, store):
        keep = store.save(b"kept", "p/s/a")
        shared = store.save(b"shared", "p/s/b")
        store.save(b"shared", "p/s/c")
        gone = store.save(b"deleted content", "p/s/d")
        store.delete_version("p/s/d", 1)
        store.delete_version("p/s/c", 1)  # its content is still needed by p/s/b
        orphan = store.blobs.put_bytes(b"orphan: blobs from a save that never claimed a version").digest

        dry = store.gc(grace=0, dry_run=True)
        assert dry.dry_run and dry.removed == 2
        assert store.blobs.exists(orphan) and store.blobs.exists(gone.digest.hex)

        report = store.gc(grace=0)
        assert report.removed == 2
        assert report.removed_bytes == len(b"deleted content") + len(b"orphan: blobs from a save that never claimed a version")
        assert not store.blobs.exists(orphan)
        assert not store.blobs.exists(gone.digest.hex)
        assert keep.read_bytes() == b"kept" and shared.read_bytes() == b"shared"
        assert store.verify(deep=True).ok
        # the deleted version's record is kept, its bytes are not
        deleted = store.list_versions("p/s/d", include_deleted=True)[0]
        with pytest.raises(BlobNotFoundError):
            deleted.read_bytes()
        assert store.gc(grace=0).removed == 0

    def test_dry_run_changes_nothing(self, store):
        store.save(b"x", "p/s/a")
        store.delete_version("p/s/a", 1)
        store.blobs.put_bytes(b"orphan")
        snap = backend_snapshot(store)
        assert store.gc(grace=0, dry_run=True).removed == 2
        assert backend_snapshot(store) == snap

    def test_grace_protects_young_blobs(self, store):
        store.blobs.put_bytes(b"a save in flight elsewhere")
        snap = backend_snapshot(store)
        assert store.gc(grace=3600).removed == 0
        assert backend_snapshot(store) == snap

    def test_tree_contents_of_a_live_tree_are_kept(self, store, tmp_path):
        v = store.save(make_tree(tmp_path / "t", TREE), "p/s/t")
        store.save(b"other", "p/s/u")
        store.delete_version("p/s/u", 1)
        store.gc(grace=0)
        assert {p: v.read_bytes(p) for p, _, _ in v.files()} == TREE

    def test_deleted_tree_survives_reindex(self, store, tmp_path):
        store.save(make_tree(tmp_path / "t", {"a": b"only in the deleted tree"}), "p/s/t")
        store.delete_version("p/s/t", 1)
        store.gc(grace=0)
        before = answers(store)
        store.reindex()
        assert answers(store) == before
        assert store.verify(deep=True).ok

    def test_sweep_marks_bracket_each_sweep_and_are_pruned(self, lstore, monkeypatch):
        from cas.storage import sweeps

        lstore.save(b"x", "p/s/a")
        lstore.delete_version("p/s/a", 1)
        assert lstore.gc(grace=0).removed == 1
        marks = sorted(e.path.rsplit(".", 1)[1] for e in lstore.backend.list("gc"))
        assert marks == ["done", "start"]
        assert lstore.gc(grace=0).removed == 0 and len(list(lstore.backend.list("gc"))) == 2  # nothing to sweep: no mark
        monkeypatch.setattr(sweeps, "MARK_KEEP", -sweeps.CLOCK_SKEW)  # every ended sweep is old now
        lstore.blobs.put_bytes(b"orphan")
        assert lstore.gc(grace=0).removed == 1
        assert list(lstore.backend.list("gc")) == []

    def test_a_sweep_past_its_deadline_removes_nothing(self, lstore, monkeypatch):
        from cas.storage import sweeps

        orphan = lstore.blobs.put_bytes(b"orphan").digest
        monkeypatch.setattr(sweeps, "SWEEP_LIMIT", -1.0)
        monkeypatch.setattr(sweeps, "SWEEP_PER_BLOB", 0.0)
        assert lstore.gc(grace=0).removed == 0
        assert lstore.blobs.exists(orphan)
        monkeypatch.undo()
        assert lstore.gc(grace=0).removed == 1

    def test_negative_grace(self, store):
        with pytest.raises(InvalidNameError):
            store.gc(grace=-1)


class TestVerify:
    def test_dangling_ref_is_reported_and_blocks_nothing(self, lstore, tmp_path):
        """A ref whose record is gone (a damaged or hand-edited store): verify says so;
        reindex, gc and later saves of that name carry on past it."""
        lstore.save(b"one", "p/s/a")
        ref = version_ref("p/s/a", 2)
        assert lstore.records.claim(ref, hash_bytes(b"a record nobody stored"))
        report = lstore.verify()
        assert report.dangling == [ref] and not report.ok
        lstore.reindex()
        lstore.gc(grace=0)
        assert lstore.save(b"three", "p/s/a").version == 3
        assert [v.version for v in lstore.list_versions("p/s/a")] == [1, 3]
        assert lstore.verify().dangling == [ref]

    def test_clean_store(self, store, tmp_path):
        store.save(b"x", "p/s/a")
        store.save(make_tree(tmp_path / "t", TREE), "p/s/t")
        for deep in (False, True):
            report = store.verify(deep=deep)
            assert report.ok and report.checked > 0
            assert (report.missing, report.corrupt, report.foreign) == ([], [], [])

    def test_missing_blob(self, store):
        v = store.save(b"x", "p/s/a")
        remove_blob(store, v.digest.hex)
        report = store.verify()
        assert report.missing == [v.digest.hex] and not report.ok
        with pytest.raises(BlobNotFoundError) as info:
            v.read_bytes()
        assert isinstance(info.value, FileNotFoundError)

    def test_truncated_blob_is_found_without_deep(self, store):
        v = store.save(b"0123456789" * 100, "p/s/a")
        replace_blob(store, v.digest.hex, b"0123456789" * 50)
        report = store.verify()
        assert report.corrupt == [v.digest.hex]
        with pytest.raises(IntegrityError) as info:
            v.read_bytes()
        assert info.value.expected == v.digest.hex
        assert info.value.actual == hash_bytes(b"0123456789" * 50)

    def test_same_size_corruption_needs_deep(self, store):
        v = store.save(b"good content", "p/s/a")
        replace_blob(store, v.digest.hex, b"evil content")
        assert store.verify().ok  # sizes match: only rehashing can tell
        assert store.verify(deep=True).corrupt == [v.digest.hex]

    def test_corrupt_blob_never_returns_wrong_bytes(self, store, tmp_path):
        data = os.urandom(2 * MiB)
        v = store.save(data, "p/s/a")
        bad = bytearray(data)
        bad[-1] ^= 1
        replace_blob(store, v.digest.hex, bytes(bad))
        with pytest.raises(IntegrityError):
            v.read_bytes()
        with pytest.raises(IntegrityError), v.open() as f:
            while f.read(MiB):
                pass
        out = tmp_path / "downloads"
        out.mkdir()
        with pytest.raises(IntegrityError):
            v.download(out / "out.bin")
        assert list(out.iterdir()) == []  # neither the file nor a partial temp file

    def test_corrupt_file_inside_a_tree(self, store, tmp_path):
        v = store.save(make_tree(tmp_path / "t", TREE), "p/s/t")
        digest = dict((p, d) for p, d, _ in v.files())["weights/layer1.bin"]
        packed = store.blobs.packs.where(digest.hex) if store.blobs.packs is not None else None
        replace_blob(store, digest.hex, b"\x00" * 4999)
        # Format 2 packs a tree's small files: rot inside a pack keeps the blob's length
        # (its range), so, as for same-size rot of a loose blob, only rehashing can tell;
        # the pack then no longer hashes to its name either.
        rotten = [digest.hex] if packed is None else [digest.hex, pack_path(packed.pack)]
        assert store.verify(deep=packed is not None).corrupt == sorted(rotten)
        with pytest.raises(IntegrityError):
            v.read_bytes("weights/layer1.bin")

    def test_foreign_file_under_blobs(self, store):
        store.save(b"x", "p/s/a")
        store.backend.create_bytes("blobs/zz/not-a-digest", b"junk")
        store.backend.create_bytes("blobs/README", b"junk")
        report = store.verify()
        assert report.foreign == ["blobs/README", "blobs/zz/not-a-digest"]
        assert not report.ok
        store.gc(grace=0)  # gc leaves what it does not understand alone
        assert store.verify().foreign == ["blobs/README", "blobs/zz/not-a-digest"]

    def test_missing_record_blob(self, store):
        v = store.save(b"x", "p/s/a")
        record = store.records.read_ref(version_ref("p/s/a", 1))
        remove_blob(store, record)
        assert store.verify().missing == [record]
        assert v.read_bytes() == b"x"


# -- the backend is the truth ---------------------------------------------------------


def populate(store: cas.Store, tmp_path: Path) -> None:
    for i in range(3):
        store.save(f"a{i}".encode(), "p/s/a", metadata={"i": i})
    store.save(b"b", "p/s/b", aliases=["production"])
    store.save(make_tree(tmp_path / "tree-src", TREE), "p/t/tree")
    store.set_alias("p/s/a", 2, "production")
    store.set_alias("p/s/a", 3, "production")  # moved: the last move wins
    store.set_alias("p/s/a", 1, "old")
    store.delete_version("p/s/a", 2)
    store.save(b"c", "q/s/c")
    store.delete_version("q/s/c", 1)


class TestReindex:
    def test_reindex_gives_the_same_answers(self, store, tmp_path):
        populate(store, tmp_path)
        before = answers(store)
        assert store.reindex() > 0
        assert answers(store) == before

    def test_deleted_index_is_rebuilt_on_open(self, open_test_store, tmp_path):
        index = tmp_path / "index" / "i.sqlite"
        store = open_test_store(index=str(index))
        populate(store, tmp_path)
        before = answers(store)
        store.close()
        for p in index.parent.iterdir():
            p.unlink()
        again = open_test_store(index=str(index))
        assert answers(again) == before
        assert again.verify(deep=True).ok

    def test_a_fresh_index_elsewhere_learns_everything(self, open_test_store, tmp_path):
        store = open_test_store(index=str(tmp_path / "a.sqlite"))
        populate(store, tmp_path)
        other = open_test_store(index=str(tmp_path / "b.sqlite"))
        assert answers(other) == answers(store)

    def test_reindex_then_save_continues_the_numbering(self, store, tmp_path):
        populate(store, tmp_path)
        store.reindex()
        assert store.save(b"next", "p/s/a").version == 4
        assert store.save(b"next", "q/s/c").version == 2


class TestSharedBackend:
    """Two handles with their own indexes on one backend (two machines, one bucket)."""

    def test_writes_are_seen_and_numbers_are_claimed(self, open_test_store, tmp_path):
        a = open_test_store(index=str(tmp_path / "a.sqlite"))
        b = open_test_store(index=str(tmp_path / "b.sqlite"))
        a.save(b"from a", "p/s/a")
        # b's index has not seen it, but a lookup catches up
        assert b.get_artifact_version("p/s/a").read_bytes() == b"from a"
        a.save(b"a again", "p/s/a")
        # b's index is behind: its claim of v2 loses, it learns v2 and takes v3
        assert b.save(b"from b", "p/s/a").version == 3
        assert a.refresh() >= 1
        assert [v.read_bytes() for v in a.list_versions("p/s/a")] == [b"from a", b"a again", b"from b"]
        assert answers(a) == answers(b)

    def test_refresh_reports_new_records(self, open_test_store, tmp_path):
        a = open_test_store(index=str(tmp_path / "a.sqlite"))
        b = open_test_store(index=str(tmp_path / "b.sqlite"))
        assert b.refresh() == 0
        a.save(b"1", "p/s/a", aliases=["production"])
        a.delete_version("p/s/a", 1)
        assert b.refresh() == 3  # version, alias, deletion
        assert b.refresh() == 0
        assert answers(a) == answers(b)


class TestFormat:
    def test_format_file(self, store):
        fmt = json.loads(store.backend.read_bytes(FORMAT_FILE))
        assert fmt["format"] == store.format == new_store_format()
        assert fmt["hash"] == "blake3"
        assert fmt["store_id"] == store.store_id

    def test_reopen_keeps_the_store_id(self, open_test_store, tmp_path):
        a = open_test_store(index=str(tmp_path / "a.sqlite"))
        b = open_test_store(index=str(tmp_path / "b.sqlite"))
        assert a.store_id == b.store_id

    def test_create_false_on_an_empty_location(self, store_url, storage_options):
        with pytest.raises(StoreNotFoundError) as info:
            cas.open_store(store_url, create=False, **storage_options)
        assert isinstance(info.value, FileNotFoundError)
        assert "cas init" in str(info.value)

    @pytest.mark.parametrize(
        "content,match",
        [
            (b'{"format": 99, "hash": "blake3", "store_id": "x"}', "format 99"),
            (b'{"format": 1, "hash": "sha256", "store_id": "x"}', "sha256"),
            (b"not json", "not a cas format file"),
            (b'{"hash": "blake3"}', "not a cas format file"),
        ],
    )
    def test_unreadable_format_is_refused(self, store, open_test_store, tmp_path, content, match):
        store.save(b"x", "p/s/a")
        store.backend.remove(FORMAT_FILE)
        store.backend.create_bytes(FORMAT_FILE, content)
        snap = backend_snapshot(store)
        with pytest.raises(UnsupportedFormatError, match=match):
            open_test_store(index=str(tmp_path / "new.sqlite"))
        assert backend_snapshot(store) == snap

    def test_a_format_newer_than_this_cas_is_refused_by_name(self, store, open_test_store, tmp_path):
        store.backend.remove(FORMAT_FILE)
        newer = FORMAT_VERSION + 1
        store.backend.create_bytes(FORMAT_FILE, f'{{"format": {newer}, "hash": "blake3", "store_id": "{"0" * 32}"}}'.encode())
        with pytest.raises(UnsupportedFormatError, match=f"format {newer}; this cas reads up to {FORMAT_VERSION}"):
            open_test_store(index=str(tmp_path / "new.sqlite"))

    @pytest.mark.parametrize("chosen", [1, 2])
    def test_a_new_store_gets_the_format_asked_for_and_keeps_it(self, tmp_path, chosen, monkeypatch):
        monkeypatch.delenv("CAS_NEW_STORE_FORMAT", raising=False)
        with cas.open_store(tmp_path / "s", format=chosen) as s:
            assert s.format == chosen == json.loads(s.backend.read_bytes(FORMAT_FILE))["format"]
        with cas.open_store(tmp_path / "s", format=3 - chosen) as s:  # an existing store keeps its own
            assert s.format == chosen
        monkeypatch.setenv("CAS_NEW_STORE_FORMAT", str(chosen))
        with cas.open_store(tmp_path / "t") as s:
            assert s.format == chosen

    def test_a_new_store_is_format_2_unless_asked(self, tmp_path, monkeypatch):
        monkeypatch.delenv("CAS_NEW_STORE_FORMAT", raising=False)
        with cas.open_store(tmp_path / "s") as s:
            assert s.format == 2 == json.loads(s.backend.read_bytes(FORMAT_FILE))["format"]

    @pytest.mark.parametrize("bad", ["0", "3", "two"])
    def test_a_format_that_does_not_exist_is_refused_and_nothing_is_created(self, tmp_path, monkeypatch, bad):
        monkeypatch.setenv("CAS_NEW_STORE_FORMAT", bad)
        with pytest.raises(UnsupportedFormatError, match="cas writes formats 1 to"):
            cas.open_store(tmp_path / "s")
        assert not (tmp_path / "s" / FORMAT_FILE).exists()


class TestLayout:
    """docs/format.md: what a reader of the bucket finds."""

    def test_blob_and_ref_layout(self, store):
        v = store.save(b"layout", "p/s/a")
        hexd = v.digest.hex
        assert store.backend.read_bytes(f"blobs/{hexd[:2]}/{hexd[2:]}") == b"layout"
        record_digest = store.backend.read_bytes("refs/versions/p/s/a/1").decode()
        record = decode(store.backend.read_bytes(blob_path(record_digest)))
        assert record["type"] == "version"
        assert (record["name"], record["version"], record["digest"], record["size"]) == ("p/s/a", 1, hexd, 6)
        assert hash_bytes(store.backend.read_bytes(blob_path(record_digest))) == record_digest

    def test_stale_tmp_leftovers_break_nothing(self, store):
        store.backend.create_bytes("tmp/0123456789abcdef", b"half a blob from a killed process")
        store.backend.create_bytes("tmp/spool-leftover", b"")
        v = store.save(b"x" * (2 * MiB), "p/s/a")
        assert store.verify(deep=True).ok
        store.reindex()
        assert store.get_artifact_version("p/s/a") == v
        assert store.gc(grace=3600).removed == 0
        assert store.backend.exists("tmp/0123456789abcdef")
        store.gc(grace=0)
        assert not store.backend.exists("tmp/0123456789abcdef")
        assert v.read_bytes() == b"x" * (2 * MiB)


# -- local disk only ----------------------------------------------------------------


class TestLocalDisk:
    def test_blobs_are_read_only_files(self, local_store):
        v = local_store.save(b"x", "p/s/a")
        path = Path(local_store.backend.abspath(blob_path(v.digest.hex)))
        assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0

    def test_dedupe_hit_does_not_touch_the_blob(self, local_store, tmp_path):
        data = os.urandom(2 * MiB)
        src = tmp_path / "big"
        src.write_bytes(data)
        v = local_store.save(src, "p/s/a")
        path = Path(local_store.backend.abspath(blob_path(v.digest.hex)))
        before = path.stat()
        local_store.save(src, "p/s/b")
        local_store.save(data, "p/s/c")
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_nlink) == (before.st_ino, before.st_mtime_ns, before.st_nlink)

    def test_planted_symlink_is_refused_and_reported(self, local_store, tmp_path):
        v = local_store.save(b"real content", "p/s/a")
        target = tmp_path / "outside"
        target.write_bytes(b"real content")  # even the right bytes: a symlink is not a blob
        path = Path(local_store.backend.abspath(blob_path(v.digest.hex)))
        path.unlink()
        path.symlink_to(target)
        with pytest.raises(BackendError, match="symlink"):
            v.read_bytes()
        with pytest.raises(BackendError, match="symlink"):
            v.open()
        with pytest.raises(BackendError, match="symlink"):
            v.download(tmp_path / "out")
        for deep in (False, True):
            report = local_store.verify(deep=deep)
            assert report.foreign == [blob_path(v.digest.hex)]
            assert report.missing == [v.digest.hex]
        local_store.gc(grace=0)
        assert target.read_bytes() == b"real content"  # never followed, never deleted

    @pytest.mark.parametrize("size", [10, 2 * MiB])  # bytes, and a file copied inside a batch
    def test_planted_directory_symlink_is_never_written_through(self, tmp_path, size):
        root = tmp_path / "store"
        cas.open_store(str(root)).close()
        data = bytes(size)
        hexd = hash_bytes(data)
        outside = tmp_path / "outside"
        outside.mkdir()
        (root / "blobs").mkdir(exist_ok=True)
        (root / "blobs" / hexd[:2]).symlink_to(outside)
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        with cas.open_store(str(root)) as store:  # a fresh process would see the same
            with pytest.raises(BackendError, match="symlink"):
                store.save(src, "p/s/a")
            assert list(outside.iterdir()) == []
            assert store.verify().foreign == [f"blobs/{hexd[:2]}"]
            assert store.list_artifacts() == []

    def test_planted_symlink_ref_is_refused(self, local_store, tmp_path):
        local_store.save(b"x", "p/s/a")
        ref = Path(local_store.backend.abspath("refs/versions/p/s/a/1"))
        (tmp_path / "fake").write_bytes(ref.read_bytes())
        ref.unlink()
        ref.symlink_to(tmp_path / "fake")
        local_store.reindex()  # refused, not followed, and the rest of the store still rebuilds (invariant 12)
        assert local_store.list_artifacts() == []
        assert local_store.verify().invalid == ["refs/versions/p/s/a/1: a symlink, refused (not followed)"]

    def test_file_changed_while_saving(self, local_store, tmp_path, monkeypatch):
        import cas.storage.blobs

        src = tmp_path / "big"
        src.write_bytes(os.urandom(2 * MiB))
        real = cas.storage.blobs.hash_file

        def hash_then_change(path, progress=None):
            result = real(path, progress)
            with open(path, "ab") as f:  # another program appends right after we hashed
                f.write(b"more")
            return result

        monkeypatch.setattr(cas.storage.blobs, "hash_file", hash_then_change)
        snap = backend_snapshot(local_store)
        with pytest.raises(IntegrityError, match="changed while"):
            local_store.save(src, "p/s/a")
        assert backend_snapshot(local_store) == {k: v for k, v in snap.items()}
        assert blob_files(local_store) == set()

    def test_index_is_sqlite_in_wal_mode_with_migrations(self, local_store):
        idx = local_store.index
        assert idx.path == os.path.join(local_store.backend.root, "index.sqlite")
        assert idx.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert idx.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        assert "0001_initial" in idx.migrations()
        # reopening applies nothing twice
        again = cas.open_store(local_store.backend.root)
        assert again.index.migrations() == idx.migrations()
        again.close()

    def test_an_old_index_is_migrated_and_refilled(self, local_store, tmp_path):
        import sqlite3

        from cas.index.schema import MIGRATIONS

        local_store.save(b"x", "p/s/a")
        old = tmp_path / "old.sqlite"
        conn = sqlite3.connect(old)
        conn.executescript(MIGRATIONS[0][1])
        conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        conn.execute("INSERT INTO migrations VALUES (?, datetime('now'))", (MIGRATIONS[0][0],))
        conn.commit()
        conn.close()
        with cas.open_store(local_store.backend.root, index=str(old)) as s:
            assert s.index.migrations() == sorted(name for name, _ in MIGRATIONS)
            assert s.get_artifact_version("p/s/a").read_bytes() == b"x"


MEMORY_CHILD = textwrap.dedent(
    """
    import os, resource, sys
    from pathlib import Path
    import cas

    def peak_mib():
        # VmHWM is this process's own peak; ru_maxrss also carries the peak of the
        # forked parent image (pytest) across exec, which could hide growth here.
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    src, store_dir, out = sys.argv[1:4]
    store = cas.open_store(store_dir)
    baseline = peak_mib()
    v = store.save(Path(src), "p/s/big")
    with v.open() as f:
        while f.read(1 << 20):
            pass
    v.download(out)
    w = store.save(open(src, "rb"), "p/s/streamed")
    assert w.digest == v.digest
    assert store.verify(deep=True).ok
    print(baseline, peak_mib())
    """
)


def test_memory_stays_bounded_for_a_large_file(tmp_path):
    """Invariant 9: saving, streaming, downloading and verifying 200 MiB keeps peak RSS flat.

    The child's own peak (VmHWM); the baseline is the same interpreter after
    importing cas and opening the store.
    """
    size = 200 * MiB
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        block = os.urandom(MiB)
        for i in range(size // MiB):
            f.write(block[i:] + block[:i])  # distinct blocks, cheap to make
    out = tmp_path / "out.bin"
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(src), str(tmp_path / "store"), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    baseline, peak = map(float, proc.stdout.split())
    assert peak - baseline < 100, f"peak RSS grew by {peak - baseline:.0f} MiB for a {size // MiB} MiB file"
    assert out.stat().st_size == size


def test_a_batch_in_another_thread_never_takes_in_refs(local_store, tmp_path):
    """A batch belongs to its thread: a save running meanwhile publishes its ref
    and journal entry at once, and they survive the other batch failing."""
    import threading

    opened, finish = threading.Event(), threading.Event()

    def other_thread() -> None:
        try:
            with local_store.backend.batch():
                opened.set()
                finish.wait(30)
                raise RuntimeError("the other batch fails")
        except RuntimeError:
            pass

    t = threading.Thread(target=other_thread)
    t.start()
    assert opened.wait(30)
    v = local_store.save(b"hello world", "p/s/a")
    assert local_store.backend.exists(f"refs/versions/p/s/a/{v.version}")
    finish.set()
    t.join()
    root = local_store.backend.root
    local_store.close()
    os.remove(os.path.join(root, "index.sqlite"))
    with cas.open_store(root) as fresh:
        assert fresh.get_artifact_version("p/s/a").read_bytes() == b"hello world"


def test_a_writer_behind_the_backend_catches_up_instead_of_probing(tmp_path):
    """Another machine saved 40 versions this index has not seen: the next save
    claims version 41 after one failed claim and one journal catch-up, not 40 claims."""
    root = str(tmp_path / "shared")
    with cas.open_store(root, index=str(tmp_path / "a.sqlite")) as a, cas.open_store(
        root, index=str(tmp_path / "b.sqlite")
    ) as b:
        for i in range(40):
            a.save(f"v{i}".encode(), "p/s/a")
        claims = []
        real_claim = b.records.claim

        def counting_claim(ref, digest):
            claims.append(ref)
            return real_claim(ref, digest)

        b.records.claim = counting_claim
        v = b.save(b"from b", "p/s/a")
        assert v.version == 41
        assert len([r for r in claims if r.startswith("refs/versions/")]) == 2
        assert [x.version for x in b.list_versions("p/s/a")] == list(range(1, 42))

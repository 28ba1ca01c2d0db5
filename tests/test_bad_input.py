"""Bad input (DESIGN invariant 8): one typed error, and the store is left exactly as it was.

Each case runs on every backend of the conformance parametrization.  "Left as
it was" means the backend's files are byte-identical before and after (the
local index file is a derived view and left out of the comparison) and every
query gives the same answer.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from store_helpers import answers, backend_snapshot, replace_blob

import cas
from cas import errors
from cas.blobs import blob_path
from cas.records import FORMAT_FILE

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

    def test_garbage_ref_is_an_integrity_error(self, store, tmp_path):
        store.save(b"x", "p/s/a")
        store.backend.remove("refs/versions/p/s/a/1")
        store.backend.create_bytes("refs/versions/p/s/a/1", b"../../../etc/passwd")
        refused(errors.IntegrityError, store.reindex)

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

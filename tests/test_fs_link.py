"""Store.link / Store.link_tree: versions of content already stored (the view's metadata-only copies)."""

from __future__ import annotations

import os

import pytest

from cas.core.digest import hash_bytes
from cas.errors import BlobNotFoundError, IntegrityError, InvalidNameError, VersionExistsError
from cas.storage import sweeps


def state(store):
    return sorted((e.path, e.size) for e in store.backend.list("") if e.path.split("/", 1)[0] in ("blobs", "refs"))


def test_link_makes_a_version_without_writing_content(store, monkeypatch):
    data = os.urandom(200_000)
    first = store.save(data, "p/s/a")
    sizes = []
    original = store.backend.create_bytes
    monkeypatch.setattr(store.backend, "create_bytes", lambda rel, d, **kw: sizes.append(len(d)) or original(rel, d, **kw))
    linked = store.link("p/s/b", first.digest)
    assert (linked.name, linked.version, linked.kind, linked.size) == ("p/s/b", 1, "blob", len(data))
    assert linked.read_bytes() == data
    assert max(sizes) < 4096  # a record and a journal entry, never the content


def test_link_claims_exactly_the_version_asked_for(store):
    v = store.save(b"x", "p/s/a")
    store.link("p/s/b", v.digest, version=1)
    with pytest.raises(VersionExistsError):
        store.link("p/s/b", v.digest, version=1)
    with pytest.raises(InvalidNameError, match="the next is 2"):
        store.link("p/s/b", v.digest, version=3)
    with pytest.raises(InvalidNameError):
        store.link("p/s/b", v.digest, version="production")
    assert store.next_version("p/s/b") == 2


def test_link_refuses_missing_content_and_changes_nothing(store):
    before = state(store)
    with pytest.raises(BlobNotFoundError):
        store.link("p/s/a", "0" * 64)
    with pytest.raises(BlobNotFoundError):
        store.link("p/s/a", "0" * 64, "tree")
    with pytest.raises(InvalidNameError):
        store.link("p/s/a", "not-a-digest")
    with pytest.raises(InvalidNameError):
        store.link("p/s/a", "0" * 64, "folder")
    assert state(store) == before


def test_link_tree_builds_a_tree_from_stored_blobs(store):
    a, b = store.save(b"aaa", "p/s/a"), store.save(b"bb", "p/s/b")
    tree = store.link_tree("p/s/t", [("x/a.txt", a.digest.hex, 3), ("b.txt", str(b.digest), 2)])
    assert tree.kind == "tree" and tree.size == 5
    assert tree.read_bytes("x/a.txt") == b"aaa"
    again = store.link_tree("p/s/u", [("b.txt", b.digest.hex, 2), ("x/a.txt", a.digest.hex, 3)])
    assert again.digest == tree.digest  # canonical manifest: same entries, same tree
    assert store.link("p/s/w", tree.digest, "tree").read_bytes("b.txt") == b"bb"


@pytest.mark.parametrize(
    "entries, error",
    [
        ([("x", "A", 3), ("x/y", "A", 3)], InvalidNameError),  # a file and a directory at once
        ([("x", "A", 3), ("x", "A", 3)], InvalidNameError),
        ([("../x", "A", 3)], InvalidNameError),
        ([("/abs", "A", 3)], InvalidNameError),
        ([("x", "A", -1)], InvalidNameError),
        ([("x", "A", 4)], IntegrityError),  # the blob is 3 bytes
        ([("x", "0" * 64, 3)], BlobNotFoundError),
        ([("x",)], InvalidNameError),
    ],
)
def test_link_tree_refuses_bad_entries_and_changes_nothing(store, entries, error):
    a = store.save(b"aaa", "p/s/a")
    entries = [tuple(a.digest.hex if part == "A" else part for part in e) for e in entries]
    before = state(store)
    with pytest.raises(error):
        store.link_tree("p/s/t", entries)
    assert state(store) == before


def test_linking_a_deleted_tree_checks_its_blobs_are_still_there(store, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"gone soon")
    tree = store.save(tmp_path / "d", "p/s/t")
    store.delete_version("p/s/t", 1)
    store.gc(grace=0)  # the file's blob goes; the manifest stays (reindex needs it)
    assert not store.blobs.exists(hash_bytes(b"gone soon"))
    with pytest.raises(BlobNotFoundError):
        store.link("p/s/u", tree.digest, "tree")


def test_relinking_a_tree_asks_the_backend_only_about_new_blobs(local_store):
    """link_tree checks blobs a live version already uses in the index, not the
    backend: growing a tree one file at a time stays linear in requests."""
    entries = []
    for i in range(20):
        put = local_store.blobs.put_bytes(f"file {i}".encode())
        entries.append((f"f{i:02d}.txt", put.digest, put.size))
        asked: list[str] = []
        real_size = local_store.blobs.size

        def counting_size(digest, _real=real_size, _asked=asked):
            _asked.append(digest)
            return _real(digest)

        local_store.blobs.size = counting_size
        try:
            local_store.link_tree("p/s/grow", entries)
        finally:
            local_store.blobs.size = real_size
        assert asked == [put.digest]
    assert len(local_store.get_artifact_version("p/s/grow").files()) == 20


@pytest.mark.parametrize("how", ["link", "link_tree"])
def test_a_stale_index_does_not_vouch_for_blobs_collected_elsewhere(store, open_test_store, tmp_path, monkeypatch, how):
    """Machine b still thinks a tree is live; machine a deleted it and collected its
    files.  A sweep long over warns nobody, so b must not take its own index's word."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"collected elsewhere")
    tree = store.save(tmp_path / "d", "p/s/t")
    other = open_test_store(index=str(tmp_path / "b.sqlite"))
    assert other.get_artifact_version("p/s/t").digest == tree.digest
    store.delete_version("p/s/t", 1)
    store.gc(grace=0)
    monkeypatch.setattr(sweeps, "CLOCK_SKEW", 0.0)  # the sweep ended before b's link began
    with pytest.raises(BlobNotFoundError):
        if how == "link":
            other.link("p/s/u", tree.digest, "tree")
        else:
            other.link_tree("p/s/u", [("f", hash_bytes(b"collected elsewhere"), 19)])
    assert not other.records.ref_exists("refs/versions/p/s/u/1")

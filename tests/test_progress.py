"""Progress is fsspec's Callback (cas.core.progress): a plain one, as any fsspec user
would write it, sees every byte and every finished item of save, download, sync,
verify and reindex."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from fsspec.callbacks import Callback

import cas


class Counting(Callback):
    """fsspec's base Callback with an ``item`` hook: bytes land in ``value``."""

    def __init__(self) -> None:
        self.items = 0
        self.lock = threading.RLock()  # fsspec calls the item hook from relative_update; sync and downloads report from worker threads
        super().__init__(hooks={"item": self.item})

    def relative_update(self, inc: int = 1) -> None:
        with self.lock:
            super().relative_update(inc)

    def item(self, size, value, n=0, **kwargs) -> None:
        with self.lock:
            self.items += n


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    for rel, size in {"a.bin": 3 << 20, "b.txt": 100, "sub/c.bin": 5000}.items():
        (root / rel).write_bytes(os.urandom(size))
    return root


TREE_BYTES = (3 << 20) + 100 + 5000


def test_save_reports_bytes_read_and_files_done(lstore, tree, tmp_path):
    cb = Counting()
    lstore.save(tree, "p/s/tree", progress=cb)
    assert (cb.value, cb.items) == (TREE_BYTES, 3)

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 << 20))  # above the small-file path: hashed in blocks
    cb = Counting()
    lstore.save(big, "p/s/file", progress=cb)
    assert (cb.value, cb.items) == (5 << 20, 0)

    cb = Counting()
    lstore.save(io.BytesIO(b"x" * 70000), "p/s/stream", progress=cb)
    assert (cb.value, cb.items) == (70000, 0)


def test_download_reports_bytes_written_and_files_done(lstore, tree, tmp_path):
    v = lstore.save(tree, "p/s/tree")
    cb = Counting()
    v.download(tmp_path / "out", progress=cb)
    assert (cb.value, cb.items) == (TREE_BYTES, 3)

    cb = Counting()
    lstore.save(b"y" * 1234, "p/s/file").download(tmp_path / "one", progress=cb)
    assert (cb.value, cb.items) == (1234, 1)


@pytest.mark.usefixtures("format1_stores")  # counts format 1's objects; format 2: the test below it
def test_sync_reports_bytes_sent_and_blobs_done(local_store, tree, tmp_path):
    local_store.save(tree, "p/s/tree")
    with cas.open_store(str(tmp_path / "copy")) as dst:
        cb = Counting()
        result = local_store.sync_to(dst, progress=cb)
        assert cb.value == result.bytes_sent >= TREE_BYTES
        assert cb.items == result.blobs_sent == 5  # three files, the manifest and the version record


def test_sync_reports_bytes_sent_and_blobs_done_format2(tree, tmp_path):
    """Format 2: b.txt and sub/c.bin (under PACK_THRESHOLD) are one pack, copied whole with its
    index ref; every blob it carries is still a blob done and its bytes are bytes sent."""
    with cas.open_store(str(tmp_path / "src"), format=2) as src, cas.open_store(str(tmp_path / "copy"), format=2) as dst:
        src.save(tree, "p/s/tree")
        cb = Counting()
        result = src.sync_to(dst, progress=cb)
        assert cb.value == result.bytes_sent >= TREE_BYTES
        # three files (two of them in the pack), the manifest, the version record and the pack's index record
        assert cb.items == result.blobs_sent == 6
        assert result.refs_sent == 2  # refs/packs/<pack> and refs/versions/p/s/tree/1
        assert len(list((tmp_path / "copy" / "packs").rglob("*/*"))) == 1  # the pack went whole, not unpacked
        for rel in ("a.bin", "b.txt", "sub/c.bin"):
            assert dst.get_artifact_version("p/s/tree").read_bytes(rel) == (tree / rel).read_bytes()


@pytest.mark.usefixtures("format1_stores")  # counts format 1's objects; format 2: the test below it
def test_verify_and_reindex_report_items(local_store, tree):
    local_store.save(tree, "p/s/tree")
    cb = Counting()
    report = local_store.verify(deep=True, progress=cb)
    assert report.ok and cb.items == report.checked and cb.value >= TREE_BYTES
    cb = Counting()
    assert local_store.reindex(progress=cb) == cb.items == 1


def test_verify_and_reindex_report_items_format2(tree, tmp_path):
    """Format 2: verify checks six blobs (a.bin, the two packed files, the manifest, the version
    record, the pack's index record) and reindex applies two refs (the pack's, then the version's)."""
    with cas.open_store(str(tmp_path / "store"), format=2) as store:
        store.save(tree, "p/s/tree")
        (pack,) = (tmp_path / "store" / "packs").rglob("*/*")
        cb = Counting()
        report = store.verify(deep=True, progress=cb)
        assert report.ok and cb.items == report.checked == 6
        assert cb.value >= (3 << 20) + pack.stat().st_size  # a.bin (loose) and the whole pack were rehashed
        cb = Counting()
        assert store.reindex(progress=cb) == cb.items == 2


def test_a_plain_function_still_works_one_release_with_a_warning(lstore, tree):
    """cas 0.1 took ``progress(nbytes, items=0)``: such a function is wrapped, and warned about."""
    seen = {"bytes": 0, "items": 0}

    def progress(nbytes, items=0):
        seen["bytes"] += nbytes
        seen["items"] += items

    with pytest.warns(DeprecationWarning, match="fsspec.callbacks.Callback"):
        lstore.save(tree, "p/s/legacy", progress=progress)
    assert seen == {"bytes": TREE_BYTES, "items": 3}


def test_anything_else_is_refused(lstore):
    with pytest.raises(TypeError, match="fsspec.callbacks.Callback"):
        lstore.save(io.BytesIO(b"z"), "p/s/z", progress=42)

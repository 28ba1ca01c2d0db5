"""Progress is fsspec's Callback (cas.core.progress): a plain one, as any fsspec user
would write it, sees every byte and every finished item of save, download, sync,
verify and reindex."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fsspec.callbacks import DEFAULT_CALLBACK, Callback

import cas
from cas.core.packs import MIN_PACK_BLOBS
from cas.core.progress import NO_PROGRESS, NoProgress, as_callback, item_done


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


@pytest.fixture
def packed_tree(tree) -> Path:
    """``tree`` with two more small files: its four small files (MIN_PACK_BLOBS) are one
    format-2 pack, where ``tree``'s two alone would be stored loose (docs/format.md, Packs)."""
    for rel, size in {"sub/d.txt": 300, "sub/e.bin": 7000}.items():
        (tree / rel).write_bytes(os.urandom(size))
    return tree


PACKED_TREE_BYTES = TREE_BYTES + 300 + 7000


def test_sync_reports_bytes_sent_and_blobs_done_format2(packed_tree, tmp_path):
    """Format 2: the four files under PACK_THRESHOLD are one pack, copied whole with its
    index ref; every blob it carries is still a blob done and its bytes are bytes sent."""
    assert MIN_PACK_BLOBS <= 4  # packed_tree's four small files must be packed
    with cas.open_store(str(tmp_path / "src"), format=2) as src, cas.open_store(str(tmp_path / "copy"), format=2) as dst:
        src.save(packed_tree, "p/s/tree")
        cb = Counting()
        result = src.sync_to(dst, progress=cb)
        assert cb.value == result.bytes_sent >= PACKED_TREE_BYTES
        # five files (four of them in the pack), the manifest, the version record and the pack's index record
        assert cb.items == result.blobs_sent == 8
        assert result.refs_sent == 2  # refs/packs/<pack> and refs/versions/p/s/tree/1
        assert len(list((tmp_path / "copy" / "packs").rglob("*/*"))) == 1  # the pack went whole, not unpacked
        for rel in ("a.bin", "b.txt", "sub/c.bin", "sub/d.txt", "sub/e.bin"):
            assert dst.get_artifact_version("p/s/tree").read_bytes(rel) == (packed_tree / rel).read_bytes()


def test_sync_reports_bytes_sent_and_blobs_done_format2_small_tree(tree, tmp_path):
    """Format 2, a tree of fewer small files than MIN_PACK_BLOBS: they are stored loose, so
    sync sends what format 1 would - three files, the manifest, the version record."""
    assert MIN_PACK_BLOBS > 2  # tree's two small files must go loose
    with cas.open_store(str(tmp_path / "src"), format=2) as src, cas.open_store(str(tmp_path / "copy"), format=2) as dst:
        src.save(tree, "p/s/tree")
        cb = Counting()
        result = src.sync_to(dst, progress=cb)
        assert cb.value == result.bytes_sent >= TREE_BYTES
        assert cb.items == result.blobs_sent == 5
        assert result.refs_sent == 1  # refs/versions/p/s/tree/1 only: no pack
        assert not list((tmp_path / "copy" / "packs").rglob("*/*")) and not list((tmp_path / "src" / "packs").rglob("*/*"))
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


def test_verify_and_reindex_report_items_format2(packed_tree, tmp_path):
    """Format 2: verify checks eight blobs (a.bin, the four packed files, the manifest, the
    version record, the pack's index record) and reindex applies two refs (the pack's, then
    the version's)."""
    assert MIN_PACK_BLOBS <= 4  # packed_tree's four small files must be packed
    with cas.open_store(str(tmp_path / "store"), format=2) as store:
        store.save(packed_tree, "p/s/tree")
        (pack,) = (tmp_path / "store" / "packs").rglob("*/*")
        cb = Counting()
        report = store.verify(deep=True, progress=cb)
        assert report.ok and cb.items == report.checked == 8
        assert cb.value >= (3 << 20) + pack.stat().st_size  # a.bin (loose) and the whole pack were rehashed
        cb = Counting()
        assert store.reindex(progress=cb) == cb.items == 2


def test_verify_and_reindex_report_items_format2_small_tree(tree, tmp_path):
    """Format 2, a tree of fewer small files than MIN_PACK_BLOBS: no pack, so verify checks
    five loose blobs (three files, the manifest, the version record) and reindex applies
    the version's ref alone."""
    assert MIN_PACK_BLOBS > 2  # tree's two small files must go loose
    with cas.open_store(str(tmp_path / "store"), format=2) as store:
        store.save(tree, "p/s/tree")
        assert not list((tmp_path / "store" / "packs").rglob("*/*"))
        cb = Counting()
        report = store.verify(deep=True, progress=cb)
        assert report.ok and cb.items == report.checked == 5 and cb.value >= TREE_BYTES
        cb = Counting()
        assert store.reindex(progress=cb) == cb.items == 1


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


# -- no progress costs no fsspec (cas.core.progress.NoProgress) --------------------------------

FRESH = """
import io, os, sys, warnings
from pathlib import Path
import cas
from cas.core.progress import NO_PROGRESS, as_callback

tmp = Path(sys.argv[1])
tree = tmp / "tree"
(tree / "sub").mkdir(parents=True)
for rel, size in {"a.bin": 3 << 20, "b.txt": 100, "sub/c.bin": 5000}.items():
    (tree / rel).write_bytes(os.urandom(size))
with cas.open_store(str(tmp / "store")) as store:
    store.save(tree, "p/s/quiet")
    store.save(io.BytesIO(b"q" * 70000), "p/s/stream")
    store.get_artifact_version("p/s/quiet").download(tmp / "quiet-out")
    assert as_callback(None) is NO_PROGRESS and "fsspec" not in sys.modules, sorted(m for m in sys.modules if "fsspec" in m)

    from fsspec.callbacks import DEFAULT_CALLBACK, Callback  # the user's own callback loads fsspec

    class Counting(Callback):
        def __init__(self):
            self.items = 0
            super().__init__(hooks={"item": self.item})

        def item(self, size, value, n=0, **kwargs):
            self.items += n

    assert as_callback(None) is DEFAULT_CALLBACK  # fsspec loaded: what reaches it is its own
    cb = Counting()
    store.save(tree, "p/s/counted", progress=cb)
    assert (cb.value, cb.items) == (TREE_BYTES, 3), (cb.value, cb.items)
    cb = Counting()
    store.get_artifact_version("p/s/counted").download(tmp / "out", progress=cb)
    assert (cb.value, cb.items) == (TREE_BYTES, 3), (cb.value, cb.items)
    with cas.open_store(str(tmp / "copy")) as dst:
        cb = Counting()
        result = store.sync_to(dst, progress=cb)
        assert cb.value == result.bytes_sent >= TREE_BYTES and cb.items == result.blobs_sent > 0, (cb.value, cb.items, result)
print("ok")
"""


def test_a_fresh_process_reports_to_the_users_callback_and_loads_fsspec_only_for_it(tmp_path):
    """No progress imports no fsspec; the Callback a user imports fsspec for still sees every
    byte and item of save, download and sync."""
    code = FRESH.replace("TREE_BYTES", str(TREE_BYTES))
    done = subprocess.run([sys.executable, "-I", "-W", "error", "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_deprecated_function_still_works_in_a_process_without_fsspec(tmp_path):
    code = (
        "import sys, warnings\n"
        "from pathlib import Path\n"
        "import cas\n"
        "seen = []\n"
        "(Path(sys.argv[1]) / 'f').write_bytes(b'x' * 5000)\n"
        "with cas.open_store(sys.argv[1] + '/store') as store, warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    store.save(Path(sys.argv[1]) / 'f', 'p/s/f', progress=lambda n, items=0: seen.append(n))\n"
        "assert sum(seen) == 5000 and [x.category for x in w] == [DeprecationWarning], (seen, w)\n"
    )
    subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path)], check=True, timeout=300)


def test_no_progress_does_what_fsspecs_no_op_callback_does():
    """Every method cas (or fsspec) calls on a progress, with fsspec's NoOpCallback's outcome."""
    from fsspec.callbacks import NoOpCallback

    ours, theirs = NoProgress(), NoOpCallback()
    for cb in (ours, theirs):
        with cb as entered:
            assert entered is cb
        cb.set_size(10)
        cb.relative_update(3)
        cb.relative_update()
        assert (cb.size, cb.value) == (10, 4)
        cb.absolute_update(7)
        assert cb.value == 7
        assert cb.call() is None and cb.call("item", n=1) is None
        item_done(cb)
        assert list(cb.wrap("abc")) == ["a", "b", "c"] and cb.value == 10
        assert cb.branched("a", "b", callback=ours) is ours
        assert cb.branched("a", "b").relative_update(1) is None  # a no-op child
        assert cb.no_op(1, x=2) is None and cb.anything_else(1) is None
        cb.close()
    assert as_callback(ours) is as_callback(None) is as_callback(NO_PROGRESS)
    assert as_callback(None) is DEFAULT_CALLBACK  # fsspec is loaded here: its own no-op

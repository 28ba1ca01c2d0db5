"""The tree path (cas.store.trees): bulk stat-cache verdicts and bulk presence checks miss no change.

A tree's files are looked up in the stat cache in one loop, the blobs it vouches for
are asked for in bulk (per pack, format 2) and small files are read in batches whose
digests are looked up together.  Each test fails if a batched step trusted too much
(a racy file, a new inode, a file changed during the save, a pack gone) or lost a file.
Both formats are pinned explicitly (never the default).
"""

from __future__ import annotations

import os
import types

import pytest
from test_statcache import Reads, forge_stat, make_tree, rows, settle

import cas
from cas.index import statcache
from cas.storage.packs import pack_path
from cas.store import trees

FORMATS = [1, 2]


@pytest.fixture(params=FORMATS, ids=lambda f: f"format{f}")
def store(request, tmp_path):
    s = cas.open_store(str(tmp_path / "store"), format=request.param)
    yield s
    s.close()


def contents(version) -> dict[str, bytes]:
    return {path: version.open(path).read() for path, _, _ in version.files()}


def on_disk(tree) -> dict[str, bytes]:
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()}


def test_unchanged_tree_reads_nothing_and_one_changed_file_only_it(store, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data", 30)
    settle(tree)
    first = store.save(tree, "p/s/t")
    reads = Reads(monkeypatch, tree)
    assert store.save(tree, "p/s/t").digest == first.digest
    assert reads.opened == []
    changed = tree / "d1" / "f4.txt"
    changed.write_bytes(b"new bytes")
    third = store.save(tree, "p/s/t")
    assert set(reads.opened) == {str(changed)}
    assert contents(third) == on_disk(tree)


def test_racy_same_mtime_file_among_hits_is_read(store, tmp_path, monkeypatch):
    """One file recorded in the tick it was written, the rest settled: the one is read again
    even though its stat is exactly as recorded; the others are not."""
    tree = make_tree(tmp_path / "data", 20)
    settle(tree)
    f = tree / "d2" / "f5.txt"
    f.write_bytes(b"a" * 40)
    _, stat = statcache.observe(str(f))
    tick = max(stat.mtime_ns, stat.ctime_ns) + 1_000  # the save's clock reads the same tick
    monkeypatch.setattr(statcache, "time", types.SimpleNamespace(time_ns=lambda: tick))
    store.save(tree, "p/s/t")
    monkeypatch.undo()
    f.write_bytes(b"b" * 40)  # a second write in that tick: the stat does not change
    forge_stat(monkeypatch, f, stat)
    reads = Reads(monkeypatch, tree)
    again = store.save(tree, "p/s/t")
    assert set(reads.opened) == {str(f)}
    assert again.open("d2/f5.txt").read() == b"b" * 40
    assert contents(again) == on_disk(tree)


def test_same_size_and_mtime_but_a_new_inode_is_read(store, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data", 20)
    settle(tree)
    store.save(tree, "p/s/t")
    f = tree / "d0" / "f3.txt"
    _, recorded = statcache.observe(str(f))
    replacement = tree / "d0" / "new.tmp"
    replacement.write_bytes(b"Z" * recorded.size)
    os.utime(replacement, ns=(recorded.mtime_ns, recorded.mtime_ns))
    os.replace(replacement, f)  # same size and mtime, another inode (ctime too, except if forged)
    forge_stat(monkeypatch, f, recorded._replace(inode=os.stat(f).st_ino))
    reads = Reads(monkeypatch, tree)
    again = store.save(tree, "p/s/t")
    assert set(reads.opened) == {str(f)}
    assert again.open("d0/f3.txt").read() == b"Z" * recorded.size


def test_a_file_changed_during_the_save_is_read_again_next_time(store, tmp_path, monkeypatch):
    """Changed after the walk stat'ed it and before it was read: the save stores what it read,
    and the entry it records (the walk's stat) no longer matches, so the next save reads it."""
    tree = make_tree(tmp_path / "data", 10)
    settle(tree)
    f = tree / "d1" / "f1.txt"
    real_walk = trees.walk_file_stats

    def walk_then_change(root, exclude=()):
        found = list(real_walk(root, exclude))
        f.write_bytes(b"changed while saving, same size?"[: f.stat().st_size].ljust(f.stat().st_size, b"."))
        return found

    monkeypatch.setattr(trees, "walk_file_stats", walk_then_change)
    first = store.save(tree, "p/s/t")
    monkeypatch.undo()
    assert first.open("d1/f1.txt").read() == f.read_bytes()  # what was read is what is stored
    f.write_bytes(b"and once more" + b"!" * (f.stat().st_size - 13))  # same size again
    reads = Reads(monkeypatch, tree)
    again = store.save(tree, "p/s/t")
    assert str(f) in reads.opened
    assert contents(again) == on_disk(tree)


def test_rehash_reads_every_file(store, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data", 15)
    settle(tree)
    first = store.save(tree, "p/s/t")
    reads = Reads(monkeypatch, tree)
    assert store.save(tree, "p/s/t", rehash=True).digest == first.digest
    assert len(set(reads.opened)) == 15


def test_a_removed_pack_is_written_again(tmp_path, monkeypatch):
    """Format 2: every hit's pack is asked for once; a pack gone from the backend makes its
    files be read and packed again, and the new version reads back whole."""
    store = cas.open_store(str(tmp_path / "store"), format=2)
    tree = make_tree(tmp_path / "data", 20)
    settle(tree)
    store.save(tree, "p/s/t")
    packs = list((tmp_path / "store" / "packs").rglob("*"))
    packs = [p for p in packs if p.is_file()]
    assert packs
    for p in packs:
        os.remove(p)
    reads = Reads(monkeypatch, tree)
    again = store.save(tree, "p/s/t")
    assert len(set(reads.opened)) == 20
    monkeypatch.undo()
    assert contents(again) == on_disk(tree)
    assert store.verify().ok
    store.close()


def test_small_batches_and_queries_lose_no_file(tmp_path, monkeypatch):
    """Batches and index queries far smaller than the tree (and duplicate contents across
    batches): every file is stored once, in a pack, and read back."""
    monkeypatch.setattr(trees, "BATCH_FILES", 3)
    monkeypatch.setattr(trees, "_QUERY", 2)
    store = cas.open_store(str(tmp_path / "store"), format=2)
    tree = make_tree(tmp_path / "data", 25)
    for i in range(6):
        (tree / f"same{i}.bin").write_bytes(b"the same bytes")
    settle(tree)
    first = store.save(tree, "p/s/t")
    assert contents(first) == on_disk(tree)
    assert len({d for _, d, _ in first.files()}) == 26
    (tree / "d0" / "f0.txt").write_bytes(b"changed")
    second = store.save(tree, "p/s/t")
    assert contents(second) == on_disk(tree)
    assert store.verify().ok
    assert len(rows(store)) == 31
    store.close()


def test_holdings_asks_each_pack_once(tmp_path, monkeypatch):
    store = cas.open_store(str(tmp_path / "store"), format=2)
    tree = make_tree(tmp_path / "data", 30)
    version = store.save(tree, "p/s/t")
    sizes = {d.hex: size for _, d, size in version.files()}
    digests = list(sizes)
    asked: list[str] = []
    real_exists = store.backend.exists
    monkeypatch.setattr(store.backend, "exists", lambda rel: asked.append(rel) or real_exists(rel))
    held = trees.Holdings(store.publisher).stored(sizes.items())
    assert held == set(digests)
    assert all(rel.startswith("packs/") for rel in asked) and len(asked) == len(set(asked))
    assert {pack_path(p) for p in store.index.known_packs()} >= set(asked)
    store.close()


def test_a_small_file_above_the_chunk_threshold_is_chunked_not_packed(tmp_path):
    """Chunking decides before packing: with a chunk threshold below the pack threshold, a file
    between the two is cut into chunks (its entry names a chunk list), not read into a pack."""
    from chunk_helpers import small_chunks

    store = cas.open_store(str(tmp_path / "store"), format=2)
    tree = make_tree(tmp_path / "data", 5)
    (tree / "mid.bin").write_bytes(os.urandom(300 << 10))
    with small_chunks():
        version = store.save(tree, "p/s/t")
        assert store.index.chunk_list(dict((p, d) for p, d, _ in version.files())["mid.bin"].hex)
        assert contents(version) == on_disk(tree)
    store.close()

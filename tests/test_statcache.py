"""The stat cache (cas.index.statcache): an unchanged file is stat'ed, not read.

Each test fails if the cache were off (files read again), trusted too much (a
racy entry, a missing blob, a changed stat taken at its word) or broken by
concurrent savers.  Proof of "not read" is the absence of any open() of the
saved files, not a timing.
"""

from __future__ import annotations

import builtins
import functools
import io
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import cas
from cas.cli import cli
from cas.core.digest import hash_bytes
from cas.index import statcache
from cas.index.statcache import FileStat, resolution_ns, trusted
from cas.storage.blobs import BlobStore, blob_path
from cas.storage.packs import PackBuilder

ROOT = Path(__file__).resolve().parents[1]


def make_tree(root: Path, n: int = 12) -> Path:
    for i in range(n):
        sub = root / f"d{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_bytes(f"file {i} content\n".encode() * (i + 1))
    return root


def settle(*paths: Path) -> None:
    """Wait until every file's mtime and ctime are past the racy margin: an entry recorded
    from now on is trusted.  (Sleeps at most MIN_MARGIN_NS plus a little.)"""
    newest = 0
    for p in paths:
        for f in [p, *p.rglob("*")] if p.is_dir() else [p]:
            st = f.stat()
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    margin = 2 * max(statcache.MIN_MARGIN_NS, 2 * resolution_ns(newest))
    while time.time_ns() < newest + margin:
        time.sleep(0.02)


class Reads:
    """Every file below the ``roots`` opened (by any of the ways Python opens one) and every
    ``BlobStore.put_file`` call, while active."""

    def __init__(self, monkeypatch, *roots: Path) -> None:
        self.roots = [os.path.abspath(root) for root in roots]
        self.opened: list[str] = []
        self.put_files = 0
        real_os_open, real_open = os.open, builtins.open

        def os_open(path, *a, **kw):
            self._note(path)
            return real_os_open(path, *a, **kw)

        def py_open(file, *a, **kw):
            self._note(file)
            return real_open(file, *a, **kw)

        real_put_file = BlobStore.put_file

        def put_file(blobs, path, progress=None):
            self.put_files += 1
            return real_put_file(blobs, path, progress)

        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(builtins, "open", py_open)
        monkeypatch.setattr(io, "open", py_open)
        monkeypatch.setattr(BlobStore, "put_file", put_file)

    def _note(self, path) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            full = os.path.abspath(os.fsdecode(path))
            if any(full == root or full.startswith(root + os.sep) for root in self.roots):
                self.opened.append(full)


def rows(store: cas.Store) -> dict[str, tuple]:
    return {
        os.fsdecode(r[0]): r[1:]
        for r in store.index.conn.execute(
            "SELECT path, size, mtime_ns, ctime_ns, inode, dev, digest, recorded_ns FROM stat_cache"
        )
    }


def forge_stat(monkeypatch, path: Path, stat: FileStat, recorded_ns: int | None = None) -> None:
    """From now on ``path`` stats as ``stat`` to the cache, whether a walk or a lookup took the
    stat (as if a change left size, times and inode as they were); ``recorded_ns``: the clock
    reading a lookup of it takes before its stat."""
    real_of = statcache.FileStat.of.__func__
    real_observe = statcache.observe
    target = os.stat(path).st_ino

    def of(cls, st):
        return stat if st.st_ino == target else real_of(cls, st)

    def observe(p):
        now, seen = real_observe(p)
        return (now if recorded_ns is None or os.stat(p).st_ino != target else recorded_ns), seen

    monkeypatch.setattr(statcache.FileStat, "of", classmethod(of))
    monkeypatch.setattr(statcache, "observe", observe)


@pytest.fixture
def store(tmp_path):
    s = cas.open_store(str(tmp_path / "store"))
    yield s
    s.close()


class Packed:
    """Format 2's counterpart of ``Reads.put_files``: a tree's small files are not put one
    object each but added to a pack (``PackBuilder.add``); ``added`` counts the blobs a save
    wrote into packs (the packs stored are counted from ``packs/``: :func:`packs_of`)."""

    def __init__(self, monkeypatch) -> None:
        self.added = 0
        real_add = PackBuilder.add

        def add(builder, digest, data):
            self.added += 0 if builder.holds(digest) else 1
            return real_add(builder, digest, data)

        monkeypatch.setattr(PackBuilder, "add", add)


def packs_of(store_root: Path) -> set[Path]:
    return {p for p in (store_root / "packs").rglob("*/*")}


@pytest.fixture
def store2(tmp_path):
    s = cas.open_store(str(tmp_path / "store"), format=2)
    yield s
    s.close()


# -- the racy rule ------------------------------------------------------------------------------


def test_racy_rule_margins():
    now = 1_700_000_000_123_456_789
    fine = now - 57_891  # a nanosecond-precise stamp
    assert resolution_ns(fine) == 1
    assert resolution_ns(1_700_000_000_000_000_000) == 1_000_000_000
    assert resolution_ns(1_700_000_000_120_000_000) == 10_000_000
    assert resolution_ns(fine, 1_700_000_000_000_000_000) == 1_000_000_000  # the coarser one wins

    def stat(stamp: int, ctime: int | None = None) -> FileStat:
        return FileStat(10, stamp, stamp if ctime is None else ctime, 1, 1)

    ms = 1_000_000
    assert not trusted(stat(now - 1), now)  # the same tick
    assert not trusted(stat(now - 50 * ms), now)  # inside the 100 ms margin
    assert trusted(stat(now - 150 * ms - 7), now)
    assert not trusted(stat(now - 150 * ms - 7, ctime=now - 3), now)  # ctime counts too (a write sets both)
    assert not trusted(stat(now + 5 * ms), now)  # stamped after it was recorded: a clock is off
    whole = 1_700_000_000 * 1_000_000_000  # a 1-2 s filesystem (FAT, HFS+, ext4 with 128-byte inodes)
    assert not trusted(stat(whole), whole + 1_500 * ms)
    assert trusted(stat(whole), whole + 2_500 * ms)


# -- unchanged files are not read ---------------------------------------------------------------


@pytest.mark.usefixtures("format1_stores")  # counts format 1's objects; format 2: the _format2 test below it
def test_unchanged_tree_resave_reads_no_file(store, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    first = store.save(tree, "p/s/tree")
    assert len(rows(store)) == 12
    reads = Reads(monkeypatch, tree)
    second = store.save(tree, "p/s/tree")
    assert reads.opened == [] and reads.put_files == 0
    assert second.digest == first.digest and second.version == 2
    assert second.files() == first.files()
    # rehash reads every file again, and finds the same content
    third = store.save(tree, "p/s/tree", rehash=True)
    assert reads.put_files == 12 and len(set(reads.opened)) == 12
    assert third.digest == first.digest


def test_unchanged_tree_resave_reads_no_file_format2(store2, tmp_path, monkeypatch):
    """Format 2: the 12 small files are one pack.  A re-save opens none of them and packs
    nothing; rehash opens all 12 again and still packs nothing (each is in the known pack)."""
    tree = make_tree(tmp_path / "data")
    settle(tree)
    first = store2.save(tree, "p/s/tree")
    assert len(rows(store2)) == 12 and len(packs_of(tmp_path / "store")) == 1
    reads, packed = Reads(monkeypatch, tree), Packed(monkeypatch)
    second = store2.save(tree, "p/s/tree")
    assert reads.opened == [] and reads.put_files == 0 and packed.added == 0
    assert second.digest == first.digest and second.version == 2
    assert second.files() == first.files()
    third = store2.save(tree, "p/s/tree", rehash=True)
    assert len(set(reads.opened)) == 12 and packed.added == 0
    assert third.digest == first.digest and len(packs_of(tmp_path / "store")) == 1


def test_unchanged_single_file_resave_reads_nothing(store, tmp_path, monkeypatch):
    f = tmp_path / "model.bin"
    f.write_bytes(b"weights" * 1000)
    settle(f)
    first = store.save(f, "p/s/model")
    reads = Reads(monkeypatch, f)
    again = store.save(f, "p/s/model", if_changed=True)
    assert reads.opened == [] and reads.put_files == 0
    assert again.version == first.version  # if_changed: same content, no new version


def cli_put(store: Path, tree: Path, *extra: str) -> str:
    """``cas put TREE p/s/t`` into ``store`` through the CLI; its stdout (it must succeed)."""
    result = CliRunner().invoke(cli, ["--store", str(store), "put", str(tree), "p/s/t", *extra])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.usefixtures("format1_stores")  # counts format 1's objects; format 2: the _format2 test below it
def test_cli_put_uses_the_cache_and_rehash_reads(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data", 6)
    settle(tree)
    put = functools.partial(cli_put, tmp_path / "store", tree)
    put()
    reads = Reads(monkeypatch, tree)
    put()
    assert reads.opened == [] and reads.put_files == 0
    put("--rehash")
    assert reads.put_files == 6


def test_cli_put_uses_the_cache_and_rehash_reads_format2(tmp_path, monkeypatch):
    """Format 2 (the store is created so before `cas put`): the second put opens none of the
    six files, --rehash opens all six; neither packs a blob again."""
    tree = make_tree(tmp_path / "data", 6)
    settle(tree)
    cas.open_store(str(tmp_path / "store"), format=2).close()
    put = functools.partial(cli_put, tmp_path / "store", tree)
    put()
    assert len(packs_of(tmp_path / "store")) == 1
    reads, packed = Reads(monkeypatch, tree), Packed(monkeypatch)
    put()
    assert reads.opened == [] and packed.added == 0
    put("--rehash")
    assert len(set(reads.opened)) == 6 and packed.added == 0


def test_cache_survives_reopening(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    with cas.open_store(str(tmp_path / "store")) as s:
        first = s.save(tree, "p/s/tree")
    reads = Reads(monkeypatch, tree)
    with cas.open_store(str(tmp_path / "store")) as s:
        assert s.save(tree, "p/s/tree").digest == first.digest
    assert reads.opened == []


def test_relative_and_absolute_paths_share_entries(store, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    monkeypatch.chdir(tmp_path)
    store.save(Path("data"), "p/s/tree")
    assert all(os.path.isabs(p) for p in rows(store))
    reads = Reads(monkeypatch, tree)
    store.save(tree, "p/s/tree")
    assert reads.opened == []


# -- changed files are read ---------------------------------------------------------------------


@pytest.mark.usefixtures("format1_stores")  # counts format 1's objects; format 2: the _format2 test below it
def test_changed_file_is_read_and_only_it(store, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    store.save(tree, "p/s/tree")
    changed = tree / "d1" / "f4.txt"
    size = changed.stat().st_size
    changed.write_bytes(b"X" * size)  # same size, a new mtime and ctime
    reads = Reads(monkeypatch, tree)
    v = store.save(tree, "p/s/tree")
    assert reads.put_files == 1 and set(reads.opened) == {str(changed)}
    assert dict((p, d) for p, d, _ in v.files())["d1/f4.txt"].hex == hash_bytes(b"X" * size)
    assert v.open("d1/f4.txt").read() == b"X" * size


def test_changed_file_is_read_and_only_it_format2(store2, tmp_path, monkeypatch):
    """Format 2: only the changed file is opened; being the save's only new small blob it is
    stored loose (a pack of one blob would cost three more objects), the old pack untouched."""
    tree = make_tree(tmp_path / "data")
    settle(tree)
    store2.save(tree, "p/s/tree")
    before = packs_of(tmp_path / "store")
    changed = tree / "d1" / "f4.txt"
    size = changed.stat().st_size
    changed.write_bytes(b"X" * size)
    reads, packed = Reads(monkeypatch, tree), Packed(monkeypatch)
    v = store2.save(tree, "p/s/tree")
    assert set(reads.opened) == {str(changed)} and packed.added == 1
    assert packs_of(tmp_path / "store") == before
    assert (tmp_path / "store" / blob_path(hash_bytes(b"X" * size))).exists()
    assert dict((p, d) for p, d, _ in v.files())["d1/f4.txt"].hex == hash_bytes(b"X" * size)
    assert v.open("d1/f4.txt").read() == b"X" * size


def test_content_replaced_with_mtime_restored_is_still_found(store, tmp_path):
    """The trick that fools an mtime-only cache: same size, mtime put back with utime.  The
    ctime (which no utime can set) and the racy rule still catch it, without --rehash."""
    f = tmp_path / "f.bin"
    f.write_bytes(b"a" * 64)
    settle(f)
    store.save(f, "p/s/f")
    st = f.stat()
    f.write_bytes(b"b" * 64)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_mtime_ns == st.st_mtime_ns and f.stat().st_size == st.st_size
    assert store.save(f, "p/s/f").read_bytes() == b"b" * 64


def test_an_identical_stat_is_trusted_and_rehash_finds_the_change(store, tmp_path, monkeypatch):
    """What the cache cannot see (docs/format.md): content changed with every stat field as
    recorded.  Only then does it answer the old digest - and --rehash / rehash=True read it."""
    f = tmp_path / "f.bin"
    f.write_bytes(b"a" * 64)
    settle(f)
    old = store.save(f, "p/s/f")
    _, recorded = statcache.observe(str(f))
    f.write_bytes(b"b" * 64)
    forge_stat(monkeypatch, f, recorded)
    assert store.save(f, "p/s/f").digest == old.digest  # trusted: the file was not read
    fresh = store.save(f, "p/s/f", rehash=True)
    assert fresh.read_bytes() == b"b" * 64
    # the rehash recorded what it read: the cache now vouches for the new content
    assert store.save(f, "p/s/f").digest == fresh.digest


def test_cli_rehash_finds_a_change_the_stat_hides(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data", 3)
    settle(tree)
    runner = CliRunner()
    store_dir = str(tmp_path / "store")
    argv = ["--store", store_dir, "put", str(tree), "p/s/t", "--json"]
    assert runner.invoke(cli, argv).exit_code == 0
    f = tree / "d0" / "f0.txt"
    _, recorded = statcache.observe(str(f))
    f.write_bytes(b"Z" * recorded.size)
    forge_stat(monkeypatch, f, recorded)
    with cas.open_store(store_dir) as s:
        assert s.get_artifact_version("p/s/t").open("d0/f0.txt").read() != b"Z" * recorded.size
    assert runner.invoke(cli, argv).exit_code == 0  # trusted: the old digest
    with cas.open_store(store_dir) as s:
        assert s.get_artifact_version("p/s/t", 2).open("d0/f0.txt").read() != b"Z" * recorded.size
    assert runner.invoke(cli, [*argv, "--rehash"]).exit_code == 0
    with cas.open_store(store_dir) as s:
        assert s.get_artifact_version("p/s/t", 3).open("d0/f0.txt").read() == b"Z" * recorded.size


def test_racy_entry_is_read_again(store, tmp_path, monkeypatch):
    """A file written in the same tick as it was hashed: its entry is never trusted, even
    when the stat is exactly as recorded."""
    f = tmp_path / "f.bin"
    f.write_bytes(b"a" * 64)
    _, stat = statcache.observe(str(f))
    # recorded one microsecond after the file's last change: the same timestamp tick
    forge_stat(monkeypatch, f, stat, recorded_ns=max(stat.mtime_ns, stat.ctime_ns) + 1_000)
    store.save(f, "p/s/f")
    assert rows(store)[str(f)][6] == max(stat.mtime_ns, stat.ctime_ns) + 1_000
    f.write_bytes(b"b" * 64)  # a second write in that tick: the stat does not change
    forge_stat(monkeypatch, f, stat)
    assert store.save(f, "p/s/f").read_bytes() == b"b" * 64


def test_racy_entry_in_a_tree_is_read_again(store, tmp_path, monkeypatch):
    """The same for a directory: its files' stats come from the walk, which starts after the
    cache's clock reading - a file changed in that tick is racy."""
    tree = make_tree(tmp_path / "data", 3)
    f = tree / "d1" / "f1.txt"
    _, stat = statcache.observe(str(f))
    tick = max(stat.mtime_ns, stat.ctime_ns) + 1_000
    monkeypatch.setattr(statcache, "time", types.SimpleNamespace(time_ns=lambda: tick))
    store.save(tree, "p/s/t")
    monkeypatch.undo()
    assert rows(store)[str(f)][6] == tick
    f.write_bytes(b"b" * stat.size)
    forge_stat(monkeypatch, f, stat)
    assert store.save(tree, "p/s/t").open("d1/f1.txt").read() == b"b" * stat.size


def test_a_file_replaced_by_another_inode_is_read(store, tmp_path, monkeypatch):
    f = tmp_path / "f.bin"
    f.write_bytes(b"a" * 64)
    settle(f)
    store.save(f, "p/s/f")
    _, recorded = statcache.observe(str(f))
    f.write_bytes(b"b" * 64)
    forge_stat(monkeypatch, f, recorded._replace(inode=recorded.inode + 1))  # same size and times
    assert store.save(f, "p/s/f").read_bytes() == b"b" * 64


# -- a hit never commits a missing blob ---------------------------------------------------------


@pytest.mark.usefixtures("format1_stores")  # counts format 1's objects; format 2: the _format2 test below it
def test_hit_whose_blob_was_removed_stores_it_again(store, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    first = store.save(tree, "p/s/tree")
    victim = dict((p, d) for p, d, _ in first.files())["d2/f5.txt"].hex
    os.remove(tmp_path / "store" / blob_path(victim))
    reads = Reads(monkeypatch, tree)
    second = store.save(tree, "p/s/tree")
    assert reads.put_files == 1 and set(reads.opened) == {str(tree / "d2" / "f5.txt")}
    assert (tmp_path / "store" / blob_path(victim)).exists()
    assert second.open("d2/f5.txt").read() == (tree / "d2" / "f5.txt").read_bytes()
    assert store.verify().ok


def test_hit_whose_pack_was_removed_stores_it_again_format2(store2, tmp_path, monkeypatch):
    """Format 2: the files live in one pack; with the pack gone every cache hit names a blob
    the store lacks, so all 12 files are read and packed again (the same bytes: the same pack)."""
    tree = make_tree(tmp_path / "data")
    settle(tree)
    first = store2.save(tree, "p/s/tree")
    (pack,) = packs_of(tmp_path / "store")
    os.remove(pack)
    reads, packed = Reads(monkeypatch, tree), Packed(monkeypatch)
    second = store2.save(tree, "p/s/tree")
    assert len(set(reads.opened)) == 12 and packed.added == 12
    assert packs_of(tmp_path / "store") == {pack}
    assert second.files() == first.files()
    for path, _, _ in second.files():
        assert second.open(path).read() == (tree / path).read_bytes()
    assert store2.verify(deep=True).ok


@pytest.mark.usefixtures("format1_stores")  # counts format 1's objects; format 2: the _format2 test below it
def test_hit_after_gc_collected_the_blobs_stores_them_again(store, tmp_path):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    store.save(tree, "p/s/tree")
    store.delete_version("p/s/tree", 1)
    report = store.gc(grace=0)
    assert report.removed >= 12
    v = store.save(tree, "p/s/tree")
    assert store.verify().ok
    for path, digest, _ in v.files():
        assert v.open(path).read() == (tree / path).read_bytes()
        assert (tmp_path / "store" / blob_path(digest.hex)).exists()


def test_hit_after_gc_collected_the_pack_stores_it_again_format2(store2, tmp_path):
    """Format 2: gc removes the pack no live version needs; the cached stats must not vouch
    for it, so the next save packs the content again and verifies."""
    tree = make_tree(tmp_path / "data")
    settle(tree)
    store2.save(tree, "p/s/tree")
    (pack,) = packs_of(tmp_path / "store")
    store2.delete_version("p/s/tree", 1)
    assert store2.gc(grace=0).removed >= 1 and not pack.exists()
    v = store2.save(tree, "p/s/tree")
    assert store2.verify(deep=True).ok and pack.exists()
    for path, _, _ in v.files():
        assert v.open(path).read() == (tree / path).read_bytes()


def test_gc_during_a_cached_save_puts_the_blob_back(store, tmp_path, monkeypatch):
    """A gc that sweeps between the cache hit's existence check and the claim: the claim sees
    the sweep and the content is stored again from the file, never a dangling version."""
    f = tmp_path / "f.bin"
    f.write_bytes(b"precious" * 100)
    settle(f)
    store.save(f, "p/s/f")
    store.delete_version("p/s/f", 1)
    real_size = BlobStore.stored_size  # what a hit asks: is the blob there, of the file's size?
    swept = []

    def size_then_gc(blobs, hexdigest):
        there = real_size(blobs, hexdigest)
        if not swept:
            swept.append(True)
            with cas.open_store(str(tmp_path / "store")) as other:
                assert other.gc(grace=0).removed >= 1
        return there

    monkeypatch.setattr(BlobStore, "stored_size", size_then_gc)
    v = store.save(f, "p/s/f")
    monkeypatch.setattr(BlobStore, "stored_size", real_size)
    assert swept and v.read_bytes() == b"precious" * 100
    assert store.verify().ok


def test_killed_after_recording_before_publishing_leaves_no_false_hit(tmp_path):
    """SIGKILL between the cache's commit and the batch publishing the blobs: the cache names
    digests the store does not hold.  The next save finds them missing and stores them."""
    tree = make_tree(tmp_path / "data")
    settle(tree)
    store_dir = str(tmp_path / "store")
    script = textwrap.dedent(
        """
        import os, signal, sys
        from pathlib import Path
        import cas
        from cas.index.statcache import StatCacheQueries
        real = StatCacheQueries.record_stats

        def record_then_die(self, *args):
            real(self, *args)
            os.kill(os.getpid(), signal.SIGKILL)

        StatCacheQueries.record_stats = record_then_die
        cas.open_store(sys.argv[1]).save(Path(sys.argv[2]), "p/s/tree")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script, store_dir, str(tree)], cwd=ROOT)
    assert proc.returncode == -9
    with cas.open_store(store_dir) as s:
        assert len(rows(s)) == 12  # the cache committed ...
        assert s.list_artifacts() == []  # ... the save did not
        assert not any(s.blobs.exists(r[5].hex()) for r in rows(s).values())  # nor published a blob
        v = s.save(tree, "p/s/tree")
        assert s.verify().ok
        for path, _, _ in v.files():
            assert v.open(path).read() == (tree / path).read_bytes()


# -- what is kept, and for how long -------------------------------------------------------------


def test_one_entry_per_path_and_gone_files_are_forgotten(store, tmp_path):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    store.save(tree, "p/s/tree")
    (tree / "d0" / "f0.txt").write_bytes(b"new content")
    (tree / "d1" / "f1.txt").unlink()
    settle(tree)
    store.save(tree, "p/s/tree")
    entries = rows(store)
    assert len(entries) == 11
    assert str(tree / "d1" / "f1.txt") not in entries
    assert entries[str(tree / "d0" / "f0.txt")][5].hex() == hash_bytes(b"new content")


def test_past_the_bound_the_oldest_entries_go(store, tmp_path, monkeypatch):
    monkeypatch.setattr(statcache, "MAX_ENTRIES", 10)
    old, new = make_tree(tmp_path / "old", 12), make_tree(tmp_path / "new", 3)
    settle(old, new)
    store.save(old, "p/s/old")
    assert len(rows(store)) == 9  # over the bound: evicted to 90 %, so the sort runs once per many saves
    store.save(new, "p/s/new")
    kept = rows(store)
    assert len(kept) == 9
    assert {str(p) for p in new.rglob("*.txt")} <= set(kept)


def test_materializer_scratch_files_are_not_cached(store, tmp_path):
    pytest.importorskip("numpy")
    import numpy as np

    store.save(np.arange(10), "p/s/array")
    store.save({"a": 1}, "p/s/json")
    assert rows(store) == {}


def test_reindex_needs_no_cache_and_keeps_it(store, tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    store.save(tree, "p/s/tree")
    store.index.conn.execute("DELETE FROM stat_cache")
    before = [(v.version, v.digest) for v in store.list_versions("p/s/tree")]
    store.reindex()
    assert [(v.version, v.digest) for v in store.list_versions("p/s/tree")] == before
    store.save(tree, "p/s/tree")  # read again: the cache was emptied
    assert len(rows(store)) == 12
    store.reindex()  # the cache is about this machine's files, not the backend: kept
    assert len(rows(store)) == 12
    reads = Reads(monkeypatch, tree)
    store.save(tree, "p/s/tree")
    assert reads.opened == []


def test_deleting_the_index_loses_nothing(tmp_path):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    with cas.open_store(str(tmp_path / "store")) as s:
        first = s.save(tree, "p/s/tree")
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp_path / "store" / "index.sqlite") + suffix).unlink(missing_ok=True)
    with cas.open_store(str(tmp_path / "store")) as s:
        assert s.get_artifact_version("p/s/tree", 1).digest == first.digest
        assert s.save(tree, "p/s/tree").digest == first.digest
        assert len(rows(s)) == 12


# -- concurrent savers --------------------------------------------------------------------------


def _check_cache_matches_files(store: cas.Store) -> None:
    assert store.index.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for path, row in rows(store).items():
        st = os.stat(path)
        assert row[:5] == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        assert row[5].hex() == hash_bytes(Path(path).read_bytes()), path


def test_threads_saving_at_once_keep_the_cache_sound(store, tmp_path, monkeypatch):
    trees = [make_tree(tmp_path / f"data{i}", 8) for i in range(3)]
    settle(*trees)
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def saver(i: int) -> None:
        try:
            start.wait()
            for _ in range(3):
                store.save(trees[i % 3], f"p/s/t{i % 3}")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=saver, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(rows(store)) == 24
    _check_cache_matches_files(store)
    reads = Reads(monkeypatch, *trees)
    for i, tree in enumerate(trees):
        store.save(tree, f"p/s/t{i}")
    assert reads.opened == []


def test_processes_saving_at_once_keep_the_cache_sound(tmp_path, monkeypatch):
    trees = [make_tree(tmp_path / f"data{i}", 30) for i in range(2)]
    settle(*trees)
    store_dir = str(tmp_path / "store")
    cas.open_store(store_dir).close()
    script = textwrap.dedent(
        """
        import sys, cas
        with cas.open_store(sys.argv[1]) as s:
            for _ in range(4):
                for tree in sys.argv[2:]:
                    s.save(__import__("pathlib").Path(tree), "p/s/" + tree.rsplit("/", 1)[-1])
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, store_dir, *map(str, trees[:: 1 if i % 2 else -1])], cwd=ROOT)
        for i in range(3)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    with cas.open_store(store_dir) as s:
        assert len(rows(s)) == 60
        _check_cache_matches_files(s)
        assert [v.version for v in s.list_versions("p/s/data0")] == list(range(1, 13))
        reads = Reads(monkeypatch, *trees)
        s.save(trees[0], "p/s/data0")
        assert reads.opened == []


def test_the_cache_lives_in_the_index_not_the_backend(store, tmp_path):
    tree = make_tree(tmp_path / "data")
    settle(tree)
    store.save(tree, "p/s/tree")
    listed = {e.path for e in store.backend.list("")}
    assert not any("stat" in p for p in listed)
    conn = sqlite3.connect(str(tmp_path / "store" / "index.sqlite"))
    assert "0006_stat_cache" in {r[0] for r in conn.execute("SELECT name FROM migrations")}
    conn.close()

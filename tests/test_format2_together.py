"""Format 2's pieces together: packs, chunk lists, the stat cache, journal2 and upgrade on one store.

Each piece has its own attacker's tests; these attack where they meet: a stat-cache
hit on a blob whose pack gc retired, a tree of packed and chunked files read by a
second machine and synced to both formats, an upgraded store collected with grace 0,
writers in several processes, flipped bytes and crafted objects seen through every
read path and by verify.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import fsspec
import pytest
from chunk_helpers import chunk_list_of, small_chunks
from click.testing import CliRunner
from store_helpers import make_tree

import cas
from cas.cli import cli
from cas.core.digest import hash_bytes
from cas.errors import IntegrityError, UnsupportedFormatError
from cas.storage.blobs import blob_path
from cas.storage.chunked import read_chunk_list
from cas.storage.packs import iter_packs, pack_path

FIXTURE = Path(__file__).parent / "fixtures" / "format1-store"
BIG = bytes(range(256)) * 160 + b"tail of the large file\n"  # 40 KiB: chunked with small_chunks()


def mixed(root: Path, salt: str = "", n: int = 12) -> dict[str, bytes]:
    """Small (packed) files and one large (chunked) file."""
    files = {f"d{i % 3}/f{i}.txt": f"{salt} small {i} ".encode() * (i + 1) for i in range(n)}
    files["big/large.bin"] = salt.encode() + BIG
    make_tree(root, files)
    return files


def aged(root: Path) -> None:
    """Let the files' ctimes fall behind the stat cache's racy margin, so a second save trusts them."""
    time.sleep(0.25)


def trusted_by_cache(store: cas.Store, path: Path) -> bool:
    return store.index.stat_cache(str(path)).look(str(path)).digest is not None


def packs_of(store: cas.Store) -> set[str]:
    return {p for p, _, _, _ in iter_packs(store.backend) if p is not None}


def read_all(v: cas.ArtifactVersion, files: dict[str, bytes]) -> dict[str, bytes]:
    return {rel: v.read_bytes(rel) for rel in files}


def content(v: cas.ArtifactVersion):
    return v.read_bytes() if v.kind == "blob" else {p: v.read_bytes(p) for p, _, _ in v.files()}


def flip(store: cas.Store, rel: str, offset: int) -> None:
    data = bytearray(store.backend.read_bytes(rel))
    data[offset] ^= 0x01
    store.backend.remove(rel)
    assert store.backend.create_bytes(rel, bytes(data))


@pytest.fixture
def s2(tmp_path):
    with small_chunks(), cas.open_store(str(tmp_path / "store"), format=2, index=str(tmp_path / "a.sqlite")) as store:
        yield store


def other(store: cas.Store, tmp_path: Path, name: str) -> cas.Store:
    """The same bucket seen by another machine (its own index)."""
    return cas.open_store(store.url, index=str(tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.sqlite"))


# -- (a) the stat cache meets gc of packs ----------------------------------------------------


def test_a_stat_cache_hit_on_a_blob_whose_pack_gc_dropped_stores_it_again(s2, tmp_path):
    files = mixed(tmp_path / "t")
    aged(tmp_path / "t")
    s2.save(tmp_path / "t", "p/s/a")
    assert trusted_by_cache(s2, tmp_path / "t" / "d1" / "f4.txt")  # the next save reads no file
    s2.delete_version("p/s/a", 1)
    assert s2.gc(grace=0).removed >= 1 and not packs_of(s2)  # the pack was all garbage
    v = s2.save(tmp_path / "t", "p/s/b")
    assert read_all(v, files) == files
    assert s2.verify(deep=True).ok
    with other(s2, tmp_path, "fresh") as fresh:
        assert read_all(fresh.get_artifact_version("p/s/b", 1), files) == files


@pytest.mark.parametrize("refreshed", [False, True])
def test_a_stat_cache_hit_after_another_machine_repacked_reads_back(s2, tmp_path, refreshed):
    """Another machine's gc repacks the live blobs into a pack this index may never have heard of."""
    keep = {f"k/{i}.txt": f"kept {i} ".encode() * 30 for i in range(3)}
    junk = {f"j/{i}.txt": f"junk {i} ".encode() * 300 for i in range(40)}
    make_tree(tmp_path / "both", {**keep, **junk})
    make_tree(tmp_path / "keep", keep)
    aged(tmp_path / "keep")
    s2.save(tmp_path / "both", "p/s/both")  # one pack: mostly what becomes garbage
    (old_pack,) = packs_of(s2)
    s2.save(tmp_path / "keep", "p/s/keep")  # all deduped into that pack
    assert packs_of(s2) == {old_pack}
    assert trusted_by_cache(s2, tmp_path / "keep" / "k" / "1.txt")
    s2.delete_version("p/s/both", 1)
    with other(s2, tmp_path, "gc") as gc_store:
        gc_store.gc(grace=0)
    assert old_pack not in packs_of(s2) and packs_of(s2)  # repacked elsewhere
    if refreshed:
        s2.refresh()
    v = s2.save(tmp_path / "keep", "p/s/again")  # stat-cache hits on blobs whose pack is gone
    assert read_all(v, keep) == keep
    assert read_all(s2.get_artifact_version("p/s/keep", 1), keep) == keep
    with other(s2, tmp_path, "fresh") as fresh:
        assert read_all(fresh.get_artifact_version("p/s/again", 1), keep) == keep
        fresh.gc(grace=0)
        assert fresh.verify(deep=True).ok
        assert read_all(fresh.get_artifact_version("p/s/keep", 1), keep) == keep


def test_gc_between_a_stat_cache_hit_and_the_claim_never_commits_a_gone_blob(s2, tmp_path, monkeypatch):
    from cas.store import ingest as ingest_mod

    files = mixed(tmp_path / "t")
    aged(tmp_path / "t")
    s2.save(tmp_path / "t", "p/s/old")
    s2.delete_version("p/s/old", 1)
    real = ingest_mod.Ingest.claim_version
    ran = []
    with other(s2, tmp_path, "gc") as gc_store:

        def claim_after_gc(self, *a, **k):
            if not ran:
                ran.append(gc_store.gc(grace=0))  # another machine's gc, after the stat-cache hits
            return real(self, *a, **k)

        monkeypatch.setattr(ingest_mod.Ingest, "claim_version", claim_after_gc)
        v = s2.save(tmp_path / "t", "p/s/new")
        assert ran and ran[0].removed >= 1
        assert read_all(v, files) == files
        gc_store.gc(grace=0)
        assert gc_store.verify(deep=True).ok
    with other(s2, tmp_path, "fresh") as fresh:
        assert read_all(fresh.get_artifact_version("p/s/new", 1), files) == files


# -- (b) a mixed tree across machines, formats and reindex ------------------------------------


def test_a_mixed_tree_on_a_second_machine_by_ranges_and_after_reindex(s2, tmp_path):
    files = mixed(tmp_path / "t")
    s2.save(tmp_path / "t", "p/s/mixed")
    assert packs_of(s2)
    assert chunk_list_of(s2, s2.save(tmp_path / "t" / "big" / "large.bin", "p/s/big"))
    with other(s2, tmp_path, "b") as b:
        v = b.get_artifact_version("p/s/mixed", 1)
        assert read_all(v, files) == files
        fs = fsspec.filesystem("cas", store=b)
        for rel, data in files.items():
            n = len(data)
            for start, end in ((0, 1), (n // 3, 2 * n // 3), (n - 7, n)):
                assert fs.cat_file(f"p/s/mixed/1/{rel}", start=start, end=end) == data[start:end]
            with v.open(rel) as f:
                f.seek(n // 2)
                assert f.read(100) == data[n // 2 : n // 2 + 100]
        answers = [(r.name, r.version, r.digest, r.size) for r in b.list_versions("p/s/mixed")]
        b.reindex()
        assert [(r.name, r.version, r.digest, r.size) for r in b.list_versions("p/s/mixed")] == answers
        assert read_all(b.get_artifact_version("p/s/mixed", 1), files) == files


def test_sync_of_a_mixed_tree_to_format_2_is_whole_and_verified(s2, tmp_path):
    files = mixed(tmp_path / "t")
    s2.save(tmp_path / "t", "p/s/mixed")
    s2.save(tmp_path / "t" / "big" / "large.bin", "p/s/big")
    with cas.open_store(str(tmp_path / "dst"), format=2) as dst:
        s2.sync_to(dst)
        assert read_all(dst.get_artifact_version("p/s/mixed", 1), files) == files
        assert dst.get_artifact_version("p/s/big", 1).read_bytes() == files["big/large.bin"]
        assert dst.verify(deep=True).ok
        assert s2.sync_to(dst).blobs_sent == 0
        with cas.open_store(dst.url, index=str(tmp_path / "dst-fresh.sqlite")) as fresh:
            assert read_all(fresh.get_artifact_version("p/s/mixed", 1), files) == files
            assert fresh.get_artifact_version("p/s/big", 1).read_bytes() == files["big/large.bin"]
            assert fresh.verify(deep=True).ok


def test_sync_of_a_mixed_tree_to_format_1_is_refused_and_changes_nothing(s2, tmp_path):
    """A format-1 store cannot hold a chunk list: one typed error before anything is sent;
    the packed-only tree of the same store goes as loose blobs."""
    files = mixed(tmp_path / "t")
    small = {rel: data for rel, data in files.items() if not rel.startswith("big/")}
    make_tree(tmp_path / "small", small)
    s2.save(tmp_path / "t", "p/s/mixed")
    s2.save(tmp_path / "small", "p/s/small")
    with cas.open_store(str(tmp_path / "dst"), format=1) as dst:
        before = sorted(e.path for e in dst.backend.list(""))
        with pytest.raises(UnsupportedFormatError):
            s2.sync_to(dst)
        assert sorted(e.path for e in dst.backend.list("")) == before
        s2.sync_to(dst, ["p/s/small"])
        assert not packs_of(dst) and not list(dst.backend.list("journal2"))
        assert read_all(dst.get_artifact_version("p/s/small", 1), small) == small
        assert dst.verify(deep=True).ok
        with cas.open_store(dst.url, index=str(tmp_path / "dst-fresh.sqlite")) as fresh:
            assert fresh.format == 1
            assert read_all(fresh.get_artifact_version("p/s/small", 1), small) == small


# -- (c) upgrade, new content, gc with grace 0 ---------------------------------------------------


def test_an_upgraded_store_takes_packed_and_chunked_content_and_gc_keeps_everything_live(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "store")
    with small_chunks(), cas.open_store(tmp_path / "store", index=str(tmp_path / "a.sqlite"), create=False) as store:
        old = {(v.name, v.version): content(v) for name in store.list_artifacts() for v in store.list_versions(name)}
        assert old
        store.upgrade()
        assert store.format == 2
        files = mixed(tmp_path / "t")
        v = store.save(tmp_path / "t", "p/s/new")
        store.save(tmp_path / "t" / "big" / "large.bin", "p/s/big")
        assert packs_of(store) and chunk_list_of(store, store.get_artifact_version("p/s/big", 1))
        assert read_all(v, files) == files  # by the Store that ran the upgrade, too
        time.sleep(0.05)
        store.gc(grace=0)
        assert store.verify(deep=True).ok
        with cas.open_store(store.url, index=str(tmp_path / "fresh.sqlite")) as fresh:
            for (name, number), want in old.items():
                v = fresh.get_artifact_version(name, number)
                assert content(v) == want, (name, number)
            assert read_all(fresh.get_artifact_version("p/s/new", 1), files) == files
            assert fresh.get_artifact_version("p/s/big", 1).read_bytes() == files["big/large.bin"]


# -- (d) writers in several processes ------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, pathlib, cas
    url, index, me, root = sys.argv[1], sys.argv[2], sys.argv[3], pathlib.Path(sys.argv[4])
    with cas.open_store(url, index=index) as store:
        for i in range(3):
            d = root / f"{me}-{i}"
            for j in range(5):
                (d / f"f{j}").parent.mkdir(parents=True, exist_ok=True)
                (d / f"f{j}").write_bytes(f"{me} {i} {j} ".encode() * (j + 1))
            store.save(d, f"p/w/{me}")
            store.save(d, "p/w/shared")
""")

REFRESHER = textwrap.dedent("""
    import sys, time, cas
    with cas.open_store(sys.argv[1], index=sys.argv[2]) as store:
        end = time.time() + float(sys.argv[3])
        while time.time() < end:
            store.refresh()
""")


def test_writer_processes_and_a_refresher_lose_and_duplicate_no_version(tmp_path):
    url = str(tmp_path / "store")
    cas.open_store(url, format=2, index=str(tmp_path / "init.sqlite")).close()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
    script = tmp_path / "w.py"
    script.write_text(WRITER)
    refresher = tmp_path / "r.py"
    refresher.write_text(REFRESHER)
    reader = subprocess.Popen([sys.executable, str(refresher), url, str(tmp_path / "r.sqlite"), "8"], env=env)
    writers = [
        subprocess.Popen([sys.executable, str(script), url, str(tmp_path / f"w{k}.sqlite"), f"w{k}", str(tmp_path / "src")], env=env)
        for k in range(3)
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0, 0]
    assert reader.wait(timeout=300) == 0
    for index in ("r.sqlite", "w0.sqlite", "fresh.sqlite"):
        with cas.open_store(url, index=str(tmp_path / index)) as store:
            store.refresh()
            shared = [r.version for r in store.list_versions("p/w/shared")]
            assert sorted(shared) == list(range(1, 10)), (index, shared)
            for k in range(3):
                rows = store.list_versions(f"p/w/w{k}")
                assert sorted(r.version for r in rows) == [1, 2, 3]
                for r in rows:
                    v = store.get_artifact_version(f"p/w/w{k}", r.version)
                    i = r.version - 1
                    assert v.read_bytes("f4") == f"w{k} {i} 4 ".encode() * 5
            assert store.verify().ok


# -- (e) flipped bytes through every read path ---------------------------------------------------


@pytest.mark.parametrize("where", ["pack", "chunk"])
def test_a_flipped_byte_in_a_mixed_tree_fails_every_read_path(s2, tmp_path, where):
    files = mixed(tmp_path / "t")
    v = s2.save(tmp_path / "t", "p/s/mixed")
    if where == "pack":
        rel_file = "d1/f4.txt"
        entry = s2.index.pack_locations(hash_bytes(files[rel_file]))[0]
        flip(s2, pack_path(entry.pack), entry.offset + 3)
        start, end = 2, 6
    else:
        rel_file = "big/large.bin"
        listed = read_chunk_list(s2.blobs, s2.index.chunk_list(hash_bytes(files[rel_file])))
        chunk = listed.chunks[1]
        flip(s2, blob_path(chunk.digest), 5)
        start = listed.chunks[0].size + 2
        end = start + 10
    fs = fsspec.filesystem("cas", store=s2)
    path = f"p/s/mixed/1/{rel_file}"
    with pytest.raises(IntegrityError):
        fs.cat_file(path, start=start, end=end)
    with pytest.raises(IntegrityError):
        fs.cat_file(path)
    with pytest.raises(IntegrityError), v.open(rel_file) as f:
        f.seek(start)
        f.read(end - start)
    with pytest.raises(IntegrityError):
        v.read_bytes(rel_file)
    runner = CliRunner()
    got = runner.invoke(cli, ["--store", s2.url, "cat", "p/s/mixed@1", rel_file])
    assert got.exit_code != 0 and got.stdout_bytes == b""  # verified whole before a byte is written
    dest = tmp_path / "out"
    got = runner.invoke(cli, ["--store", s2.url, "get", "p/s/mixed@1", str(dest)])
    assert got.exit_code != 0 and not dest.exists()
    with pytest.raises(IntegrityError):
        v.download(tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    # every other file is whole
    assert all(v.read_bytes(rel) == data for rel, data in files.items() if rel != rel_file)


# -- (f) verify on crafted format-2 objects ------------------------------------------------------


def test_verify_reports_a_corrupt_chunk_list_and_still_checks_the_rest(s2, tmp_path):
    files = mixed(tmp_path / "t")
    s2.save(tmp_path / "t", "p/s/mixed")
    list_digest = s2.index.chunk_list(hash_bytes(files["big/large.bin"]))
    located = s2.index.pack_locations(list_digest)
    if located:  # the list is small: packed
        flip(s2, pack_path(located[0].pack), located[0].offset + 1)
    else:
        flip(s2, blob_path(list_digest), 1)
    for deep in (False, True):
        report = s2.verify(deep=deep)
        assert not report.ok and list_digest in report.corrupt, deep
        got = CliRunner().invoke(cli, ["--store", s2.url, "verify", *(["--deep"] if deep else [])])
        assert got.exit_code != 0 and list_digest in got.output
    v = s2.get_artifact_version("p/s/mixed", 1)
    assert all(v.read_bytes(rel) == data for rel, data in files.items() if rel != "big/large.bin")


def test_verify_reports_a_crafted_journal2_entry_and_other_machines_learn_the_rest(s2, tmp_path):
    files = mixed(tmp_path / "t")
    s2.save(tmp_path / "t", "p/s/one")
    entries = sorted(e.path for e in s2.backend.list("journal2"))
    # a crafted entry under a well-formed name (another writer) and a garbage one
    good = entries[-1]
    crafted = good.rsplit("-", 2)[0] + "-" + "ab" * 8 + "-0"
    assert s2.backend.create_bytes(crafted, b"\x93not an entry")
    s2.save(b"after the crafted entry", "p/s/two")
    report = s2.verify()
    assert any("journal2" in str(x) for x in (*report.corrupt, *report.foreign, *getattr(report, "invalid", [])))
    with other(s2, tmp_path, "fresh") as fresh:
        assert read_all(fresh.get_artifact_version("p/s/one", 1), files) == files
        assert fresh.get_artifact_version("p/s/two", 1).read_bytes() == b"after the crafted entry"


def test_verify_reports_a_corrupt_pack_index_record_and_still_checks_the_rest(s2, tmp_path):
    files = mixed(tmp_path / "t")
    s2.save(tmp_path / "t", "p/s/mixed")
    ((ref, record_digest),) = list(s2.index.iter_records("packs/")) or list(s2.index.iter_records("refs/packs/"))
    flip(s2, blob_path(record_digest), 2)
    report = s2.verify(deep=True)
    assert not report.ok and record_digest in report.corrupt
    with other(s2, tmp_path, "fresh") as fresh:  # learns the store without that pack's index
        report = fresh.verify()
        assert not report.ok and any(record_digest in why or "packs" in why for why in report.invalid)
        v = fresh.get_artifact_version("p/s/mixed", 1)
        assert v.read_bytes("big/large.bin") == files["big/large.bin"]  # chunked: not behind that index
        with pytest.raises(cas.errors.CasError):
            v.read_bytes("d1/f4.txt")  # its pack is known to no index: missing, never wrong bytes


# -- upgrade by another process, then this open store ------------------------------------------


def test_a_store_upgraded_by_another_process_reads_what_it_packs_after_its_own_upgrade_call(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "store")
    with cas.open_store(tmp_path / "store", index=str(tmp_path / "a.sqlite"), create=False) as a:
        with cas.open_store(a.url, index=str(tmp_path / "b.sqlite"), create=False) as b:
            b.upgrade()
        assert a.upgrade().nothing_to_do and a.format == 2
        files = mixed(tmp_path / "t")
        v = a.save(tmp_path / "t", "p/s/late")
        assert packs_of(a)
        assert read_all(v, files) == files


@pytest.mark.parametrize("deleted", [1, 2])
def test_a_file_stored_whole_in_format_1_then_chunked_after_the_upgrade_survives_gc(tmp_path, deleted):
    """The same content D as a loose blob (format-1 version) and as chunks (format-2 version):
    whichever version is deleted, gc with grace 0 leaves the other one readable everywhere."""
    url = str(tmp_path / "store")
    data = BIG * 3
    with small_chunks():
        with cas.open_store(url, format=1, index=str(tmp_path / "a.sqlite")) as store:
            (tmp_path / "f.bin").write_bytes(data)
            store.save(tmp_path / "f.bin", "p/s/file")
            store.upgrade()
            v2 = store.save(tmp_path / "f.bin", "p/s/file")
            assert chunk_list_of(store, v2)
            store.delete_version("p/s/file", deleted)
            time.sleep(0.05)
            store.gc(grace=0)
            live = 3 - deleted
            assert store.get_artifact_version("p/s/file", live).read_bytes() == data
            assert store.verify(deep=True).ok
        with cas.open_store(url, index=str(tmp_path / "fresh.sqlite")) as fresh:
            v = fresh.get_artifact_version("p/s/file", live)
            assert v.read_bytes() == data
            with v.open() as f:
                f.seek(len(data) // 2)
                assert f.read(64) == data[len(data) // 2 : len(data) // 2 + 64]
            fresh.gc(grace=0)
            assert fresh.verify(deep=True).ok
            assert fresh.get_artifact_version("p/s/file", live).read_bytes() == data


# -- every backend -------------------------------------------------------------------------------


def test_a_mixed_tree_across_machines_and_a_repack_on_every_backend(open_test_store, tmp_path):
    with small_chunks():
        a = open_test_store(index=str(tmp_path / "a.sqlite"), format=2)
        files = mixed(tmp_path / "t")
        junk = {f"j/{i}.txt": f"junk {i} ".encode() * 200 for i in range(30)}
        make_tree(tmp_path / "both", {**files, **junk})
        a.save(tmp_path / "both", "p/s/both")
        a.save(tmp_path / "t", "p/s/mixed")  # its small files deduped into the pack of "both"
        b = open_test_store(index=str(tmp_path / "b.sqlite"))
        v = b.get_artifact_version("p/s/mixed", 1)
        assert read_all(v, files) == files  # b knows the first pack
        a.delete_version("p/s/both", 1)
        time.sleep(0.05)
        a.gc(grace=0)  # repacks the live small files: b's index is behind
        fs = fsspec.filesystem("cas", store=b)
        for rel, data in files.items():
            n = len(data)
            assert fs.cat_file(f"p/s/mixed/1/{rel}", start=n // 3, end=n // 3 + 9) == data[n // 3 : n // 3 + 9]
        assert read_all(v, files) == files
        assert b.verify(deep=True).ok
        c = open_test_store(index=str(tmp_path / "c.sqlite"))
        assert read_all(c.get_artifact_version("p/s/mixed", 1), files) == files


def test_threads_sharing_one_format_2_store_save_mixed_trees(s2, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    trees = {k: mixed(tmp_path / f"t{k}", f"thread {k}") for k in range(4)}

    def save(k: int) -> tuple[int, int]:
        a = s2.save(tmp_path / f"t{k}", f"p/t/t{k}")
        b = s2.save(tmp_path / f"t{k}", "p/t/shared")
        return a.version, b.version

    with ThreadPoolExecutor(4) as pool:
        numbers = list(pool.map(save, trees))
    assert sorted(b for _, b in numbers) == [1, 2, 3, 4]
    for k, (_, shared) in zip(trees, numbers, strict=True):
        assert read_all(s2.get_artifact_version("p/t/shared", shared), trees[k]) == trees[k]
    with other(s2, tmp_path, "fresh") as fresh:
        for k, files in trees.items():
            assert read_all(fresh.get_artifact_version(f"p/t/t{k}", 1), files) == files
        assert fresh.verify(deep=True).ok


@pytest.mark.parametrize("dst_format", [2, 1])
def test_sync_after_a_repack_at_the_source_is_whole(s2, tmp_path, dst_format):
    small = {f"k/{i}.txt": f"kept {i} ".encode() * 30 for i in range(5)}
    junk = {f"j/{i}.txt": f"junk {i} ".encode() * 300 for i in range(40)}
    make_tree(tmp_path / "both", {**small, **junk})
    make_tree(tmp_path / "keep", small)
    s2.save(tmp_path / "both", "p/s/both")
    s2.save(tmp_path / "keep", "p/s/keep")
    s2.delete_version("p/s/both", 1)
    s2.gc(grace=0)  # the old pack is gone; its index ref stays, a new pack holds what is live
    with cas.open_store(str(tmp_path / "dst"), format=dst_format) as dst:
        s2.sync_to(dst)
        assert read_all(dst.get_artifact_version("p/s/keep", 1), small) == small
        assert dst.verify(deep=True).ok
        with cas.open_store(dst.url, index=str(tmp_path / "dst-fresh.sqlite")) as fresh:
            assert read_all(fresh.get_artifact_version("p/s/keep", 1), small) == small
            assert fresh.verify(deep=True).ok
            assert s2.sync_to(fresh).blobs_sent == 0


def test_a_late_format_1_writer_after_the_flip_is_learned_and_kept_by_gc(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "store")
    with small_chunks(), cas.open_store(tmp_path / "store", index=str(tmp_path / "a.sqlite"), create=False) as late:
        with cas.open_store(late.url, index=str(tmp_path / "b.sqlite"), create=False) as b:
            b.upgrade()
            packed = mixed(tmp_path / "p", "new")
            b.save(tmp_path / "p", "p/s/packed")
            assert late.format == 1
            files = mixed(tmp_path / "t", "late")
            late.save(tmp_path / "t", "p/s/late")  # format-1 objects, after the flip
            b.refresh()
            assert read_all(b.get_artifact_version("p/s/late", 1), files) == files
            time.sleep(0.05)
            b.gc(grace=0)
            assert b.verify(deep=True).ok
        with cas.open_store(late.url, index=str(tmp_path / "c.sqlite")) as c:
            assert read_all(c.get_artifact_version("p/s/late", 1), files) == files
            assert read_all(c.get_artifact_version("p/s/packed", 1), packed) == packed


def test_a_store_opened_before_another_process_upgraded_learns_later_versions(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "store")
    with cas.open_store(tmp_path / "store", index=str(tmp_path / "a.sqlite"), create=False) as late:
        with cas.open_store(late.url, index=str(tmp_path / "b.sqlite"), create=False) as b:
            b.upgrade()
            b.save(b"after the flip", "p/s/after")
            files = mixed(tmp_path / "t")
            b.save(tmp_path / "t", "p/s/tree")
        late.refresh()
        assert late.get_artifact_version("p/s/after", 1).read_bytes() == b"after the flip"
        assert read_all(late.get_artifact_version("p/s/tree", 1), files) == files


def test_gc_by_a_store_opened_before_another_process_upgraded_loses_nothing(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "store")
    with small_chunks(), cas.open_store(tmp_path / "store", index=str(tmp_path / "a.sqlite"), create=False) as late:
        with cas.open_store(late.url, index=str(tmp_path / "b.sqlite"), create=False) as b:
            b.upgrade()
            files = mixed(tmp_path / "t")
            b.save(tmp_path / "t", "p/s/tree")
            b.save(tmp_path / "t" / "big" / "large.bin", "p/s/big")
        time.sleep(0.05)
        late.gc(grace=0)  # this Store still thinks the store is format 1
        late.verify()
    with small_chunks(), cas.open_store(tmp_path / "store", index=str(tmp_path / "c.sqlite")) as c:
        assert read_all(c.get_artifact_version("p/s/tree", 1), files) == files
        assert c.get_artifact_version("p/s/big", 1).read_bytes() == files["big/large.bin"]
        assert c.verify(deep=True).ok


def test_a_journal2_entry_whose_record_is_missing_does_not_stop_a_new_machine(s2, tmp_path):
    """Reindex replays journal2 inside its write transaction: a missing record there must be a
    reported dangling ref, not a refresh-on-miss of the pack reader nested in that transaction."""
    files = mixed(tmp_path / "t")
    s2.save(tmp_path / "t", "p/s/tree")
    v = s2.save(b"its record goes missing", "p/s/gone")
    ((_, record_digest),) = list(s2.index.iter_records("versions/p/s/gone/")) or list(
        s2.index.iter_records("refs/versions/p/s/gone/")
    )
    s2.backend.remove(blob_path(record_digest))
    assert v.version == 1
    with other(s2, tmp_path, "fresh") as fresh:
        assert read_all(fresh.get_artifact_version("p/s/tree", 1), files) == files
        assert not fresh.verify().ok

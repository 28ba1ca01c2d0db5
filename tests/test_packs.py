"""Packs and pack indexes (format 2): small files of a save packed, read back verified, found by
other machines, collected and repacked by gc, checked by verify, sent by sync.

The attacker's tests are here too: a flipped byte in a pack through every read path, crafted
pack indexes, a SIGKILL between a pack and its index, gc racing a save that reuses a packed blob.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import uuid

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import make_tree

import cas
from cas.backends.factory import open_backend
from cas.core.digest import hash_bytes
from cas.core.packs import MAX_PACK_BLOBS, PACK_MAGIC, PACK_THRESHOLD, decode_pack_index, pack_index_record
from cas.core.records import encode
from cas.core.refs import pack_ref
from cas.errors import CorruptRecordError, IntegrityError
from cas.storage.packs import PackBuilder, PackReader, iter_packs, pack_path
from cas.store import INDEX_FILE


def new_store(tmp_path, kind: str = "local", **kw) -> cas.Store:
    url = str(tmp_path / f"store-{uuid.uuid4().hex[:6]}") if kind == "local" else f"memory://packs-{uuid.uuid4().hex}"
    return cas.open_store(url, format=2, **kw)


def small_tree(root, n: int = 20, salt: str = "") -> dict[str, bytes]:
    files = {f"d{i % 3}/f{i}.txt": f"{salt} file {i} ".encode() * (i + 1) for i in range(n)}
    make_tree(root, files)
    return files


def packs_of(store: cas.Store) -> dict[str, int]:
    return {p: size for p, _, size, _ in iter_packs(store.backend) if p is not None}


def loose_of(store: cas.Store) -> set[str]:
    return {e.path for e in store.backend.list("blobs")}


def flip_byte_in_pack(store: cas.Store, pack: str, offset: int) -> None:
    rel = pack_path(pack)
    data = bytearray(store.backend.read_bytes(rel))
    data[offset] ^= 0x01
    store.backend.remove(rel)
    assert store.backend.create_bytes(rel, bytes(data))


# -- packing a save --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_a_tree_of_small_files_is_one_pack_and_reads_back(tmp_path, kind):
    with new_store(tmp_path, kind) as store:
        files = small_tree(tmp_path / "t", 50)
        v = store.save(tmp_path / "t", "p/s/tree")
        assert len(packs_of(store)) == 1
        before = len(loose_of(store))  # the manifest and the records stay loose
        assert before <= 5, loose_of(store)
        for rel, data in files.items():
            assert v.read_bytes(rel) == data
            with v.open(rel) as f:
                assert f.read() == data
        assert store.verify(deep=True).ok
        # Saving it again writes nothing new: every blob is in a pack the store holds.
        store.save(tmp_path / "t", "p/s/again")
        assert len(packs_of(store)) == 1


def test_format_1_writes_no_pack(tmp_path):
    with cas.open_store(str(tmp_path / "s1"), format=1) as store:
        small_tree(tmp_path / "t", 10)
        store.save(tmp_path / "t", "p/s/tree")
        assert not packs_of(store) and not list(store.backend.list("refs/packs"))


def test_large_files_stay_loose_and_a_single_small_file_is_not_a_pack(tmp_path):
    with new_store(tmp_path) as store:
        make_tree(tmp_path / "t", {"big.bin": os.urandom(PACK_THRESHOLD), "small.txt": b"alone"})
        v = store.save(tmp_path / "t", "p/s/tree")
        assert not packs_of(store)  # one small blob: a pack would cost three more objects
        assert v.read_bytes("small.txt") == b"alone"


def test_packs_are_bounded(tmp_path, monkeypatch):
    from cas.storage import packs

    monkeypatch.setattr(packs, "MAX_PACK_BLOBS", 7)
    with new_store(tmp_path) as store:
        files = small_tree(tmp_path / "t", 30)
        v = store.save(tmp_path / "t", "p/s/tree")
        # 7 + 7 + 7 + 7 packed; the last 2 are fewer than MIN_PACK_BLOBS, so they go loose
        assert len(packs_of(store)) == 4
        from cas.core.digest import hash_bytes
        from cas.storage.blobs import blob_path

        assert sum(blob_path(hash_bytes(data)) in loose_of(store) for data in files.values()) == 2
        assert all(v.read_bytes(rel) == data for rel, data in files.items())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=2000), max_size=40))
def test_any_set_of_small_blobs_round_trips_through_a_pack(blobs):
    backend = open_backend(f"memory://roundtrip-{uuid.uuid4().hex}")
    builder = PackBuilder(backend)
    for data in blobs:
        assert builder.add(hash_bytes(data), data) is None
    stored = builder.store()
    unique = {hash_bytes(d): d for d in blobs}
    if not blobs:
        assert stored is None
        return
    raw = backend.read_bytes(pack_path(stored.pack))
    assert raw.startswith(PACK_MAGIC) and hash_bytes(raw) == stored.pack and len(raw) == stored.size
    index = decode_pack_index(pack_index_record(stored.pack, stored.size, stored.blobs), "0" * 64, stored.pack)
    assert {e.digest for e in index.entries} == set(unique)
    by_digest = {e.digest: [e] for e in index.entries}
    reader = PackReader(backend, lambda d: by_digest.get(d, []))
    for digest, data in unique.items():
        assert reader.read(digest) == data
    assert reader.read(hash_bytes(b"not in the pack" + os.urandom(8))) is None


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})?", fullmatch=True), st.binary(max_size=3000), min_size=1, max_size=15))
def test_any_tree_of_small_files_round_trips(tmp_path_factory, files):
    # a path can't be both a file and a directory
    files = {p: d for p, d in files.items() if not any(o.startswith(p + "/") for o in files)}
    root = tmp_path_factory.mktemp("tree")
    make_tree(root, files)
    with cas.open_store(f"memory://tree-{uuid.uuid4().hex}", format=2) as store:
        v = store.save(root, "p/s/tree")
        assert {rel: v.read_bytes(rel) for rel in files} == files


# -- every read is verified ------------------------------------------------------------------


def test_a_flipped_byte_in_a_pack_fails_every_read_path(tmp_path):
    with new_store(tmp_path) as store:
        files = small_tree(tmp_path / "t", 10)
        v = store.save(tmp_path / "t", "p/s/tree")
        (pack,) = packs_of(store)
        entry = store.index.pack_locations(hash_bytes(files["d1/f4.txt"]))[0]
        flip_byte_in_pack(store, pack, entry.offset + 3)
        with pytest.raises(IntegrityError):
            v.read_bytes("d1/f4.txt")
        with pytest.raises(IntegrityError):
            store.blobs.read_bytes(entry.digest)
        with pytest.raises(IntegrityError), v.open("d1/f4.txt") as f:
            f.read()
        fs = fsspec.filesystem("cas", store=store)
        with pytest.raises(IntegrityError):
            fs.cat_file("p/s/tree/1/d1/f4.txt")
        with pytest.raises(IntegrityError):
            fs.cat_file("p/s/tree/1/d1/f4.txt", start=2, end=5)
        with pytest.raises(IntegrityError), fs.open("p/s/tree/1/d1/f4.txt", "rb") as f:
            f.read()
        with pytest.raises(IntegrityError):
            v.download(tmp_path / "out")
        assert not (tmp_path / "out").exists()
        # The other files of the pack are whole: each is checked on its own.
        assert v.read_bytes("d0/f3.txt") == files["d0/f3.txt"]
        report = store.verify(deep=True)
        assert not report.ok and entry.digest in report.corrupt and pack_path(pack) in report.corrupt


def test_a_wrong_index_entry_is_a_miss_or_an_integrity_error_never_wrong_bytes(tmp_path):
    backend = open_backend(str(tmp_path / "b"))
    builder = PackBuilder(backend)
    a, b = b"alpha" * 10, b"bravo" * 10
    builder.add(hash_bytes(a), a)
    builder.add(hash_bytes(b), b)
    stored = builder.store()
    from cas.core.packs import PackEntry

    # an entry that points at b's bytes for a
    lying = PackReader(backend, lambda d: [PackEntry(d, stored.pack, stored.blobs[1][1], stored.blobs[1][2])])
    with pytest.raises(IntegrityError):
        lying.read(hash_bytes(a))
    gone = PackReader(backend, lambda d: [PackEntry(d, "ab" * 32, 8, 5)])
    assert gone.read(hash_bytes(a)) is None


CRAFTED = [
    ("non-hex digest", lambda r: r["blobs"][0].__setitem__(0, "XY" * 32)),
    ("short digest", lambda r: r["blobs"][0].__setitem__(0, "ab")),
    ("overlapping", lambda r: r["blobs"][1].__setitem__(1, r["blobs"][0][1] + 1)),
    ("inside the magic", lambda r: r["blobs"][0].__setitem__(1, 2)),
    ("past the end", lambda r: r["blobs"][1].__setitem__(2, r["size"])),
    ("negative length", lambda r: r["blobs"][0].__setitem__(2, -1)),
    ("listed twice", lambda r: r["blobs"][1].__setitem__(0, r["blobs"][0][0])),
    ("size too big", lambda r: r.__setitem__("size", 1 << 40)),
    ("not a list", lambda r: r.__setitem__("blobs", {"a": 1})),
    ("too many", lambda r: r.__setitem__("blobs", [r["blobs"][0]] * (MAX_PACK_BLOBS + 1))),
    ("bool offset", lambda r: r["blobs"][0].__setitem__(1, True)),
    ("other pack", lambda r: r.__setitem__("pack", "cd" * 32)),
]


@pytest.mark.parametrize("what, craft", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_a_crafted_pack_index_is_refused_with_a_typed_error(what, craft):
    record = pack_index_record("ab" * 32, 100, [("11" * 32, 8, 10), ("22" * 32, 18, 30)])
    decode_pack_index(record, "0" * 64, "ab" * 32)  # the uncrafted one is fine
    craft(record)
    with pytest.raises(CorruptRecordError):
        decode_pack_index(record, "0" * 64, "ab" * 32)


def test_a_crafted_pack_index_in_the_journal_is_skipped_and_reported(tmp_path):
    with new_store(tmp_path) as store:
        small_tree(tmp_path / "t", 5)
        store.save(tmp_path / "t", "p/s/tree")
        bad = pack_index_record("ef" * 32, 100, [("11" * 32, 8, 200)])  # past the end
        digest = store.blobs.put_bytes(encode(bad)).digest
        assert store.records.claim(pack_ref("ef" * 32), digest)
        store.records.append_journal(pack_ref("ef" * 32), digest, 0)
        other = cas.open_store(store.url, index=str(tmp_path / "other.sqlite"))
        assert other.get_artifact_version("p/s/tree", 1).files()  # the rest of the store is there
        other.refresh()
        assert not other.index.pack_locations("11" * 32)
        assert any(digest in line for line in other.verify().invalid)
        other.close()


# -- other machines ----------------------------------------------------------------------------


def test_a_second_machine_reads_a_packed_tree(tmp_path):
    url = str(tmp_path / "shared")
    with cas.open_store(url, format=2, index=str(tmp_path / "a.sqlite")) as a:
        files = small_tree(tmp_path / "t", 30)
        b = cas.open_store(url, index=str(tmp_path / "b.sqlite"))  # opened before: learns by refresh
        a.save(tmp_path / "t", "p/s/tree")
        with cas.open_store(url, index=str(tmp_path / "fresh.sqlite")) as fresh:  # reindex from the backend
            v = fresh.get_artifact_version("p/s/tree", 1)
            assert {rel: v.read_bytes(rel) for rel in files} == files
        b.refresh()
        v = b.get_artifact_version("p/s/tree", 1)
        assert {rel: v.read_bytes(rel) for rel in files} == files
        b.close()


def test_a_reader_whose_index_is_behind_refreshes_on_a_miss(tmp_path):
    url = str(tmp_path / "shared")
    with cas.open_store(url, format=2, index=str(tmp_path / "a.sqlite")) as a:
        files = small_tree(tmp_path / "t", 8)
        b = cas.open_store(url, index=str(tmp_path / "b.sqlite"))
        v = a.save(tmp_path / "t", "p/s/tree")
        digest = v.files()[0][1].hex
        assert b.blobs.read_bytes(digest) in files.values()  # not in b's index yet: refresh, then found
        b.close()


# -- crashes and gc ----------------------------------------------------------------------------

KILL_AFTER_PACK = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import cas
    from cas.store import packing
    def die(pub, stored):
        os.kill(os.getpid(), signal.SIGKILL)
    packing.publish_pack = die
    store = cas.open_store(sys.argv[1], format=2)
    store.save(Path(sys.argv[2]), "p/s/tree")
    """
)


def test_sigkill_between_pack_and_index_leaves_bytes_gc_collects_after_grace(tmp_path):
    url = str(tmp_path / "store")
    small_tree(tmp_path / "t", 12)
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_PACK, url, str(tmp_path / "t")], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with cas.open_store(url) as store:
        assert len(packs_of(store)) == 1 and not store.list_artifacts()
        assert store.verify(deep=True).ok  # unreferenced bytes are not an error
        assert store.gc().removed == 0  # younger than the grace period: kept
        assert len(packs_of(store)) == 1
        assert store.gc(grace=0).removed >= 1
        assert not packs_of(store)
        v = store.save(tmp_path / "t", "p/s/tree")  # the save, run again, writes its pack again
        assert v.read_bytes("d0/f0.txt") and store.verify(deep=True).ok


@pytest.mark.parametrize("listed", ["listed", "any"])
def test_gc_drops_a_pack_of_garbage_and_repacks_a_mostly_garbage_one(tmp_path, monkeypatch, listed):
    from cas.storage import sweeps

    if listed == "any":  # a mark naming no candidates ("any"): the repack must not wait for its own sweep
        monkeypatch.setattr(sweeps, "MAX_LISTED", 0)
        monkeypatch.setattr(sweeps, "SWEEP_LIMIT", 3600.0)
    with new_store(tmp_path) as store:
        files = small_tree(tmp_path / "t", 20)
        store.save(tmp_path / "t", "p/s/tree")
        (old,) = packs_of(store)
        keep = sorted(files)[:2]
        make_tree(tmp_path / "few", {rel: files[rel] for rel in keep})
        store.save(tmp_path / "few", "p/s/few")  # dedupe: no new pack (2 of 20 blobs)
        assert list(packs_of(store)) == [old]
        store.delete_version("p/s/tree", 1)
        assert store.gc().removed == 0  # grace
        store.gc(grace=0)
        packs = packs_of(store)
        assert old not in packs and len(packs) == 1  # repacked: the 2 live blobs in a new pack
        v = store.get_artifact_version("p/s/few", 1)
        assert all(v.read_bytes(rel) == files[rel] for rel in keep)
        assert store.verify(deep=True).ok
        with cas.open_store(store.url, index=str(tmp_path / "fresh.sqlite")) as fresh:
            v = fresh.get_artifact_version("p/s/few", 1)
            assert all(v.read_bytes(rel) == files[rel] for rel in keep)
            assert fresh.verify(deep=True).ok
        store.delete_version("p/s/few", 1)
        store.gc(grace=0)
        assert not packs_of(store)  # all garbage: dropped whole


def test_gc_racing_a_save_that_reuses_a_packed_blob(tmp_path, monkeypatch):
    """A save dedupes against a pack whose blobs are all garbage; gc drops that pack between
    the dedupe and the claim.  The claim sees the sweep and the save packs its content again."""
    from cas.store import ingest as ingest_mod

    with new_store(tmp_path) as store:
        files = small_tree(tmp_path / "t", 10)
        store.save(tmp_path / "t", "p/s/old")
        store.delete_version("p/s/old", 1)
        gc_store = cas.open_store(store.url, index=str(tmp_path / "gc.sqlite"))
        real = ingest_mod.Ingest.claim_version
        ran = []

        def claim_after_gc(self, *a, **k):
            if not ran:
                ran.append(gc_store.gc(grace=0))  # another machine's gc, mid-save
            return real(self, *a, **k)

        monkeypatch.setattr(ingest_mod.Ingest, "claim_version", claim_after_gc)
        v = store.save(tmp_path / "t", "p/s/new")
        assert ran and ran[0].removed >= 1
        assert {rel: v.read_bytes(rel) for rel in files} == files
        assert store.verify(deep=True).ok and gc_store.verify(deep=True).ok
        gc_store.gc(grace=0)
        with cas.open_store(store.url, index=str(tmp_path / "fresh.sqlite")) as fresh:
            v = fresh.get_artifact_version("p/s/new", 1)
            assert {rel: v.read_bytes(rel) for rel in files} == files
        gc_store.close()


def test_verify_reports_foreign_and_missing_packs(tmp_path):
    with new_store(tmp_path) as store:
        small_tree(tmp_path / "t", 6)
        store.save(tmp_path / "t", "p/s/tree")
        (pack,) = packs_of(store)
        assert store.backend.create_bytes("packs/zz/not-a-pack", b"junk")
        store.backend.remove(pack_path(pack))
        report = store.verify()
        assert "packs/zz/not-a-pack" in report.foreign
        assert len(report.missing) == 6


# -- sync --------------------------------------------------------------------------------------


def objects(store: cas.Store) -> int:
    return sum(1 for e in store.backend.list("") if not e.path.startswith(INDEX_FILE))


@pytest.mark.parametrize("dst_format", [2, 1])
def test_sync_packs_for_format_2_and_writes_loose_blobs_for_format_1(tmp_path, dst_format):
    with new_store(tmp_path) as src:
        files = small_tree(tmp_path / "t", 500)
        src.save(tmp_path / "t", "p/s/tree")
        with cas.open_store(str(tmp_path / "dst"), format=dst_format) as dst:
            before = objects(dst)
            result = src.sync_to(dst)
            assert result.blobs_sent >= 500
            written = objects(dst) - before
            if dst_format == 2:
                assert written <= 0.02 * len(files), written
                assert len(packs_of(dst)) == 1
            else:
                assert not packs_of(dst) and len(loose_of(dst)) >= 500
            v = dst.get_artifact_version("p/s/tree", 1)
            assert {rel: v.read_bytes(rel) for rel in files} == files
            assert dst.verify(deep=True).ok
            assert src.sync_to(dst).blobs_sent == 0  # nothing new: nothing sent


def test_sync_from_format_1_into_format_2_packs(tmp_path):
    with cas.open_store(str(tmp_path / "src"), format=1) as src, new_store(tmp_path) as dst:
        files = small_tree(tmp_path / "t", 40)
        src.save(tmp_path / "t", "p/s/tree")
        src.sync_to(dst)
        assert len(packs_of(dst)) == 1
        v = dst.get_artifact_version("p/s/tree", 1)
        assert {rel: v.read_bytes(rel) for rel in files} == files


# -- S3: a small file is one ranged GET ------------------------------------------------------


@pytest.mark.s3
def test_s3_reads_a_small_packed_file_with_a_ranged_read(s3_root, s3_options, tmp_path):
    files = small_tree(tmp_path / "t", 20)
    with cas.open_store(s3_root, format=2, **s3_options) as store:
        v = store.save(tmp_path / "t", "p/s/tree")
        (pack,) = packs_of(store)
        fs = store.backend.fs
        calls = []
        real = fs.cat_file

        def spy(path, start=None, end=None, **kw):
            calls.append((path, start, end))
            return real(path, start=start, end=end, **kw)

        fs.cat_file = spy
        try:
            assert v.read_bytes("d2/f5.txt") == files["d2/f5.txt"]
        finally:
            del fs.cat_file
        entry = store.index.pack_locations(hash_bytes(files["d2/f5.txt"]))[0]
        assert calls == [(f"{store.backend.root}/{pack_path(pack)}", entry.offset, entry.offset + entry.length)]


def test_a_file_saved_alone_dedupes_against_a_pack(tmp_path):
    with new_store(tmp_path) as store:
        files = small_tree(tmp_path / "t", 5)
        store.save(tmp_path / "t", "p/s/tree")
        before = loose_of(store)
        store.save(files["d1/f1.txt"], "p/s/bytes")
        store.save(io.BytesIO(files["d2/f2.txt"]), "p/s/stream")
        assert len(loose_of(store) - before) == 2  # the two records only
        assert store.load("p/s/bytes") == files["d1/f1.txt"]

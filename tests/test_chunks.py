"""Chunk lists (format 2): large files stored as content-defined chunks, read back verified by range.

Round trips (any bytes, any range), dedupe of a mutated re-save (a state machine
checks that stored bytes grow only by the new chunks), the whole-file digest kept as
in format 1, format-1 stores untouched, gc and verify following chunk lists, and sync.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import blake3
import pytest
from chunk_helpers import chunk_list_of, open_format2, small_chunks, stored
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import cas
from cas.core.chunks import wants_chunks
from cas.errors import UnsupportedFormatError
from cas.fs import CasFileSystem
from cas.storage.chunked import ChunkedReader

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def contents(draw, min_size: int = 0) -> bytes:
    """Bytes of any size up to ~50 KB: a drawn head, then random (high entropy) or
    repetitive (FastCDC cuts at the maximum) filler, so most examples are chunked."""
    head = draw(st.binary(max_size=200))
    n = draw(st.integers(max(min_size - len(head), 0), 50_000))
    filler = random.Random(draw(st.integers(0, 2**32))).randbytes(n) if draw(st.booleans()) else b"ab" * (n // 2)
    return head + filler


@pytest.fixture
def s2(tmp_path):
    with small_chunks(), open_format2(str(tmp_path / "s2")) as store:
        yield store


def _data(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def test_a_large_file_is_chunked_and_keeps_the_format_1_digest(s2, tmp_path):
    data = _data(1, 100_000)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    v = s2.save(path, "c/s/file")
    assert v.digest.hex == blake3.blake3(data).hexdigest()
    list_digest, listed = chunk_list_of(s2, v)
    assert len(listed) > 20 and listed.size == len(data)
    held = stored(s2)
    assert v.digest.hex not in held, "a chunked file has no whole blob"
    assert list_digest in held and all(c.digest in held for c in listed.chunks)
    assert v.read_bytes() == data and v.open().read() == data
    # bytes are chunked the same way as a path
    assert s2.save(data, "c/s/bytes").digest == v.digest
    with small_chunks(), cas.open_store(str(tmp_path / "s1"), format=1) as s1:
        w = s1.save(path, "c/s/file")
        assert w.digest == v.digest, "the whole-file digest does not depend on the format"
        assert w.digest.hex in stored(s1) and s1.index.chunk_list(w.digest.hex) is None, "format 1: one whole blob"


def test_small_files_stay_whole_blobs(s2):
    v = s2.save(b"x" * 8192, "c/s/small")  # exactly the threshold: not above it
    assert s2.index.chunk_list(v.digest.hex) is None and v.digest.hex in stored(s2)
    assert not wants_chunks(1, 1 << 40)


@FAST
@given(data=contents())
def test_any_bytes_round_trip(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("rt")
    with small_chunks(), open_format2(str(root / "s")) as store:
        v = store.save(data, "c/s/any")
        assert v.read_bytes() == data
        assert v.open().read() == data
        assert v.digest.hex == blake3.blake3(data).hexdigest()
        out = v.download(root / "out.bin")
        assert out.read_bytes() == data


@FAST
@given(
    data=contents(min_size=8193),
    ranges=st.lists(st.tuples(st.integers(-100, 52_000), st.integers(-100, 52_000)), min_size=1, max_size=6),
)
def test_any_range_read_equals_the_slice(tmp_path_factory, data, ranges):
    root = tmp_path_factory.mktemp("rr")
    with small_chunks(), open_format2(str(root / "s")) as store:
        v = store.save(data, "c/s/any")
        fs = CasFileSystem(store=store, skip_instance_cache=True)
        with v.open() as f:
            for start, end in ranges:
                begin = min(max(start, 0), len(data))
                f.seek(begin)
                want = data[begin : max(end, begin)]
                assert f.read(max(end, begin) - begin) == want
                assert fs.cat_file(f"{v.name}/{v.version}", start=begin, end=max(end, begin)) == want


def test_a_range_read_reads_only_the_chunks_it_overlaps(s2):
    data = _data(2, 200_000)
    v = s2.save(data, "c/s/range")
    _, listed = chunk_list_of(s2, v)
    reader = ChunkedReader(s2.blobs, v.digest.hex, s2.index.chunk_list(v.digest.hex))
    reader.seek(100_000)
    assert reader.read(64) == data[100_000:100_064]
    assert reader.chunks_read == 1
    span = listed.overlapping(100_000, 103_000)
    reader.seek(100_000)
    got = b"".join(iter(lambda: reader.read(3000 - 0), b""))[:3000]
    assert got == data[100_000:103_000]
    assert reader.chunks_read <= len(span) + len(listed) - span.stop + 1  # later chunks only as far as asked


def test_resaving_a_file_changed_in_the_middle_stores_only_new_chunks(s2, tmp_path):
    data = bytearray(_data(3, 300_000))
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    s2.save(path, "c/s/grow")
    before = stored(s2)
    data[150_000:151_000] = _data(4, 1000)
    path.write_bytes(data)
    v = s2.save(path, "c/s/grow")
    new = {d: n for d, n in stored(s2).items() if d not in before}
    _, listed = chunk_list_of(s2, v)
    new_chunks = {c.digest for c in listed.chunks} - before.keys()
    assert new_chunks and len(new_chunks) <= 3
    # new blobs: the new chunks, the new list, the version record; nothing else
    assert set(new) - new_chunks - {s2.index.chunk_list(v.digest.hex)} - {r for _, r in s2.index.iter_records()} == set()
    assert v.read_bytes() == bytes(data)


class ChunkedSaves(RuleBasedStateMachine):
    """Save mutated versions of one large file; stored bytes grow only by the chunks that are new."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="cas-chunks-"))
        self.patch = small_chunks()
        self.patch.__enter__()
        self.store = open_format2(str(self.tmp / "store"))
        self.data = bytearray(random.Random(0).randbytes(40_000))
        self.saved: list[bytes] = []

    @rule(at=st.integers(0, 40_000), new=st.binary(min_size=1, max_size=3000))
    def overwrite(self, at, new):
        at = min(at, len(self.data))
        self.data[at : at + len(new)] = new

    @rule(at=st.integers(0, 40_000), new=st.binary(min_size=1, max_size=500))
    def insert(self, at, new):
        self.data[at:at] = new

    @rule(at=st.integers(0, 40_000), n=st.integers(1, 2000))
    def cut(self, at, n):
        if len(self.data) - n > 9000:
            del self.data[at : at + n]

    @rule()
    def save(self):
        before = stored(self.store)
        records = {r for _, r in self.store.index.iter_records()}
        v = self.store.save(bytes(self.data), "c/s/machine")
        list_digest, listed = chunk_list_of(self.store, v)
        added = {d: n for d, n in stored(self.store).items() if d not in before}
        new_chunks = {c.digest: c.size for c in listed.chunks if c.digest not in before}
        extra = set(added) - set(new_chunks) - {list_digest} - ({r for _, r in self.store.index.iter_records()} - records)
        assert not extra, "a save stored more than its new chunks, list and record"
        assert all(added[d] == n for d, n in new_chunks.items())
        self.saved.append(bytes(self.data))

    @invariant()
    def every_version_reads_back(self):
        for i, want in enumerate(self.saved[-2:], start=max(len(self.saved) - 1, 1)):
            assert self.store.get_artifact_version("c/s/machine", i).read_bytes() == want

    def teardown(self):
        self.store.close()
        self.patch.__exit__(None, None, None)
        shutil.rmtree(self.tmp, ignore_errors=True)


TestChunkedSaves = ChunkedSaves.TestCase
TestChunkedSaves.settings = settings(max_examples=8, stateful_step_count=12, deadline=None)


def test_gc_keeps_live_chunks_and_removes_unused_ones(s2):
    shared = _data(5, 60_000)
    a = s2.save(shared + _data(6, 30_000), "c/s/a")
    b = s2.save(shared + _data(7, 30_000), "c/s/b")
    _, la = chunk_list_of(s2, a)
    lb_digest, lb = chunk_list_of(s2, b)
    assert s2.gc(grace=0).removed == 0
    assert s2.verify(deep=True).ok
    s2.delete_version("c/s/a", 1)
    s2.gc(grace=0)
    held = stored(s2)
    assert lb_digest in held and all(c.digest in held for c in lb.chunks), "chunks of a live version were removed"
    only_a = {c.digest for c in la.chunks} - {c.digest for c in lb.chunks}
    assert only_a and not only_a & held.keys(), "chunks no live version uses stay"
    assert b.read_bytes() == shared + _data(7, 30_000)
    assert s2.verify(deep=True).ok


def test_verify_follows_chunk_lists(s2):
    v = s2.save(_data(8, 50_000), "c/s/v")
    list_digest, listed = chunk_list_of(s2, v)
    assert s2.verify().ok and s2.verify(deep=True).ok
    victim = listed.chunks[3].digest
    s2.blobs.remove(victim)
    report = s2.verify()
    assert victim in report.missing and not report.ok
    s2.blobs.remove(list_digest)
    assert list_digest in s2.verify().missing


def test_sync_sends_the_list_and_only_missing_chunks(s2, tmp_path):
    data = bytearray(_data(9, 120_000))
    s2.save(bytes(data), "c/s/sync")
    with small_chunks(), open_format2(str(tmp_path / "dst")) as dst:
        first = s2.sync_to(dst)
        assert first.blobs_sent > 20
        assert dst.get_artifact_version("c/s/sync").read_bytes() == bytes(data)
        data[60_000:60_100] = b"z" * 100
        s2.save(bytes(data), "c/s/sync")
        second = s2.sync_to(dst)
        # the new chunks (at most 3), the new list, the new record
        assert 2 <= second.blobs_sent <= 5 and second.bytes_sent < 20_000
        assert dst.get_artifact_version("c/s/sync", 2).read_bytes() == bytes(data)
        assert dst.verify(deep=True).ok


def test_sync_of_a_chunked_version_to_a_format_1_store_is_refused(s2, tmp_path):
    s2.save(_data(10, 50_000), "c/s/refused")
    with cas.open_store(str(tmp_path / "f1"), format=1) as dst:
        before = stored(dst)
        with pytest.raises(UnsupportedFormatError, match="chunked file"):
            s2.sync_to(dst)
        assert stored(dst) == before and not list(dst.index.iter_records())


def test_a_tree_names_the_chunk_lists_of_its_large_files(s2, tmp_path):
    from store_helpers import make_tree

    from cas.core.tree import ChunkedEntry, decode_manifest

    big, small = _data(12, 70_000), b"tiny\n"
    root = make_tree(tmp_path / "model", {"weights.bin": big, "README": small})
    v = s2.save(root, "c/s/tree")
    entries = decode_manifest(s2.blobs.read_bytes(v.digest.hex), v.digest.hex)
    chunked = [e for e in entries if isinstance(e, ChunkedEntry)]
    assert [e[0] for e in chunked] == ["weights.bin"] and chunked[0][1] == blake3.blake3(big).hexdigest()
    assert v.read_bytes("weights.bin") == big and v.read_bytes("README") == small
    fs = CasFileSystem(store=s2, skip_instance_cache=True)
    assert fs.cat_file(f"{v.name}/{v.version}/weights.bin", start=50_000, end=50_100) == big[50_000:50_100]
    out = v.download(tmp_path / "out")
    assert (out / "weights.bin").read_bytes() == big
    assert s2.gc(grace=0).removed == 0 and s2.verify(deep=True).ok
    # a link of the same files (cas:// copies do this) names the same chunk lists
    w = s2.link_tree("c/s/linked", [(p, d.hex, n) for p, d, n in v.files()])
    assert w.digest == v.digest
    with small_chunks(), open_format2(str(tmp_path / "dst")) as dst:
        s2.sync_to(dst)
        assert dst.get_artifact_version("c/s/tree").read_bytes("weights.bin") == big
        assert dst.verify(deep=True).ok
    with cas.open_store(str(tmp_path / "f1"), format=1) as f1, pytest.raises(UnsupportedFormatError):
        s2.sync_to(f1, ["c/s/tree"])


def test_a_rebuilt_index_reads_chunked_files(s2, tmp_path):
    from store_helpers import make_tree

    data = _data(13, 40_000)
    s2.save(data, "c/s/blob")
    s2.save(make_tree(tmp_path / "t", {"a/big.bin": data[::-1]}), "c/s/tree")
    s2.delete_version("c/s/blob", 1)
    s2.save(data, "c/s/blob")
    with cas.open_store(str(s2.backend.root), index=str(tmp_path / "fresh.sqlite")) as fresh:
        assert fresh.get_artifact_version("c/s/blob").read_bytes() == data
        assert fresh.get_artifact_version("c/s/tree").read_bytes("a/big.bin") == data[::-1]
        assert fresh.index.chunk_lists() == s2.index.chunk_lists()
        assert fresh.gc(grace=0).removed == 0 and fresh.verify(deep=True).ok


def test_chunked_files_on_every_backend(open_test_store, tmp_path):
    """Chunks are written in parallel on object stores; every read path verifies them."""
    data = _data(14, 60_000)
    with small_chunks():
        store = open_test_store(format=2)
        v = store.save(data, "c/s/everywhere")
        assert store.index.chunk_list(v.digest.hex) is not None
        with v.open() as f:
            f.seek(30_000)
            assert f.read(5000) == data[30_000:35_000]
        assert v.read_bytes() == data and v.download(tmp_path / "o.bin").read_bytes() == data
        again = store.save(data[:50_000] + b"!" + data[50_001:], "c/s/everywhere")
        assert again.read_bytes()[50_000:50_001] == b"!"
        report = store.verify(deep=True)
        assert report.ok, report
        assert store.gc(grace=0).removed == 0


def test_a_cas_url_range_read_reads_at_most_two_chunks(s2):
    data = _data(15, 200_000)
    v = s2.save(data, "c/s/url")
    _, listed = chunk_list_of(s2, v)
    fs = CasFileSystem(store=s2, skip_instance_cache=True)
    for at in (0, 99_000, listed.starts[5] - 10, 199_990):
        with fs.open(f"{v.name}/{v.version}", "rb") as f:
            f.seek(at)
            assert f.read(64) == data[at : at + 64]
            assert f.raw.chunks_read <= 2

"""Packs and chunks under attack, end to end: crafted pack indexes published the way a writer
publishes them (ref + journal entry), a forged index for a blob that is sound elsewhere, and
flipped bytes followed through the paths not covered elsewhere (a real ``cas cat`` process,
sync to another store, S3 ranged reads).

What must hold (DESIGN invariants 7, 12, 14): a bad index is refused with a typed error and
reported by verify, the rest of the store reads back; an index entry is a hint, so a lie in
one never makes sound bytes unreadable; no read path returns a wrong byte, and a sync never
makes a destination hold a version whose bytes are not its digest.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from store_helpers import make_tree, replace_blob

import cas
from cas.core.digest import hash_bytes
from cas.core.entries import encode_entry
from cas.core.packs import PACK_MAGIC, pack_index_record
from cas.core.refs import journal2_key, pack_ref
from cas.errors import IntegrityError
from cas.fs import CasFileSystem
from cas.storage import journal as journal_mod
from cas.storage.packs import iter_packs, pack_path


def _files(n: int = 12, salt: str = "") -> dict[str, bytes]:
    return {f"d{i % 3}/f{i}.txt": f"{salt} file {i} ".encode() * (i + 2) for i in range(n)}


def _store(tmp_path, fmt: int = 2, **kw) -> cas.Store:
    return cas.open_store(str(tmp_path / f"s-{uuid.uuid4().hex[:6]}"), format=fmt, **kw)


def _packs(store: cas.Store) -> list[str]:
    return sorted(p for p, *_ in iter_packs(store.backend) if p is not None)


def _publish_index(store: cas.Store, record: dict) -> str:
    """Publish a (crafted) pack index as a writer does: record blob, create-only ref, journal2 entry."""
    digest = store.records.put_record(record)
    ref = pack_ref(record["pack"])
    assert store.records.claim(ref, digest)
    key = journal2_key(journal_mod.now_us(), uuid.uuid4().hex[:16], 0)
    assert store.backend.create_bytes(key, encode_entry([(ref, digest)]))
    return digest


def _planted_pack(store: cas.Store, body: bytes) -> tuple[str, int]:
    """A pack object that nothing announces yet: (its hex, its size)."""
    data = PACK_MAGIC + body
    pack = hash_bytes(data)
    assert store.backend.create_bytes(pack_path(pack), data)
    return pack, len(data)


CRAFTED = {
    "offset past the end": lambda size: [["11" * 32, size + 5, 3]],
    "length past the end": lambda size: [["11" * 32, 8, size]],
    "negative offset": lambda size: [["11" * 32, -4, 3]],
    "negative length": lambda size: [["11" * 32, 8, -1]],
    "huge offset": lambda size: [["11" * 32, 1 << 62, 1]],
    "huge length": lambda size: [["11" * 32, 8, 1 << 62]],
    "overlapping": lambda size: [["11" * 32, 8, 6], ["22" * 32, 10, 4]],
    "not sorted": lambda size: [["11" * 32, 12, 2], ["22" * 32, 8, 2]],
    "float offset": lambda size: [["11" * 32, 8.0, 2]],
    "four fields": lambda size: [["11" * 32, 8, 2, 0]],
}


@pytest.mark.parametrize("what", sorted(CRAFTED))
def test_a_crafted_index_published_like_a_real_one_is_refused_and_blocks_nothing(tmp_path, what):
    with _store(tmp_path, index=str(tmp_path / "w.sqlite")) as writer:
        files = _files()
        make_tree(tmp_path / "t", files)
        writer.save(tmp_path / "t", "pk/s/tree")
        pack, size = _planted_pack(writer, b"x" * 16)
        record = pack_index_record(pack, size, [])
        record["blobs"] = CRAFTED[what](size)
        digest = _publish_index(writer, record)
        with cas.open_store(writer.url, index=str(tmp_path / "r.sqlite")) as reader:  # another machine
            v = reader.get_artifact_version("pk/s/tree", 1)
            assert {rel: v.read_bytes(rel) for rel in files} == files
            assert not reader.index.pack_entries(pack)
            assert pack not in reader.index.known_packs()
            assert any(digest in line for line in reader.verify().invalid)
            assert reader.save(b"after it", "pk/s/after").read_bytes() == b"after it"


def test_a_forged_index_never_makes_a_sound_loose_blob_unreadable(tmp_path):
    """A valid-looking index says a live loose blob lies in a pack where other bytes lie:
    a hint that lies costs a miss, and the sound copy is read."""
    with _store(tmp_path) as store:
        v = store.save(b"a sound, loose, live blob", "pk/s/loose")
        digest = v.digest.hex
        pack, size = _planted_pack(store, b"something else entirely!")
        _publish_index(store, pack_index_record(pack, size, [(digest, 8, size - 8)]))
        store.refresh()
        assert store.index.pack_locations(digest)  # the lie was learned (it is well formed)
        assert v.read_bytes() == b"a sound, loose, live blob"
        with v.open() as f:
            f.seek(2)
            assert f.read(5) == b"sound"
        fs = CasFileSystem(store=store, skip_instance_cache=True)
        assert fs.cat_file("pk/s/loose/1", start=2, end=7) == b"sound"
        assert v.download(tmp_path / "out").read_bytes() == b"a sound, loose, live blob"


def test_a_forged_index_for_content_not_yet_stored_is_found_by_verify(tmp_path):
    """The limit of "an entry is a hint": a save that finds its content announced in a pack the
    backend holds does not write it again (invariant 1), as format 1 trusts a blob file by its
    name.  A planted lie is then what ``verify --deep`` reports; a read never returns its bytes."""
    with _store(tmp_path) as store:
        content = b"content announced before it was stored"
        pack, size = _planted_pack(store, b"z" * len(content))
        _publish_index(store, pack_index_record(pack, size, [(hash_bytes(content), 8, len(content))]))
        store.refresh()
        make_tree(tmp_path / "t", {"a.txt": content, "b.txt": b"another file"})
        v = store.save(tmp_path / "t", "pk/s/t")
        with pytest.raises(IntegrityError):
            v.read_bytes("a.txt")
        report = store.verify(deep=True)
        assert not report.ok and hash_bytes(content) in report.corrupt


def _flip(store: cas.Store, where: str, files: dict[str, bytes]) -> str:
    rel = "d1/f4.txt" if where == "pack" else "big.bin"
    data = bytearray(files[rel])
    data[len(data) // 2] ^= 0x01
    replace_blob(store, hash_bytes(files[rel]), bytes(data))
    return rel


@pytest.fixture
def flipped(tmp_path, monkeypatch):
    """A format-2 version with one small file (packed) and one large file (chunked), and a
    function that flips a byte in one of them."""
    import cas.core.chunks as chunks

    monkeypatch.setattr(chunks, "CHUNK_THRESHOLD", 8 << 10)
    monkeypatch.setattr(chunks, "CHUNK_MIN", 256)
    monkeypatch.setattr(chunks, "CHUNK_AVG", 1024)
    monkeypatch.setattr(chunks, "CHUNK_MAX", 4096)
    files = {**_files(), "big.bin": bytes(range(256)) * 160}
    make_tree(tmp_path / "t", files)
    store = _store(tmp_path)
    v = store.save(tmp_path / "t", "fl/s/tree")
    assert _packs(store) and store.index.chunk_list(hash_bytes(files["big.bin"]))
    yield store, v, files
    store.close()


@pytest.mark.parametrize("where", ["pack", "chunk"])
def test_cas_cat_in_a_real_process_writes_no_byte_of_a_flipped_file(flipped, where):
    store, v, files = flipped
    rel = _flip(store, where, files)
    cat = subprocess.run([sys.executable, "-m", "cas.cli", "--store", store.url, "cat", "fl/s/tree@1", rel],
                         capture_output=True, timeout=120)
    assert cat.returncode != 0 and cat.stdout == b""
    assert len(cat.stderr.decode().strip().splitlines()) == 1, cat.stderr
    good = subprocess.run([sys.executable, "-m", "cas.cli", "--store", store.url, "cat", "fl/s/tree@1", "d0/f0.txt"],
                          capture_output=True, timeout=120)
    assert good.returncode == 0 and good.stdout == files["d0/f0.txt"]


@pytest.mark.parametrize("dst_format", [1, 2])
@pytest.mark.parametrize("where", ["pack", "chunk"])
def test_sync_never_copies_a_flipped_byte(flipped, tmp_path, where, dst_format):
    store, v, files = flipped
    rel = _flip(store, where, files)
    if dst_format == 1 and where == "chunk":
        pytest.skip("a chunked version is refused by a format-1 store before anything is sent (test_format2_together)")
    with _store(tmp_path, dst_format) as dst:
        with pytest.raises(IntegrityError):
            store.sync_to(dst)
        try:
            got = dst.get_artifact_version("fl/s/tree", 1)
        except cas.errors.ArtifactNotFoundError:
            got = None
        if got is not None:  # if the version got there at all, its bytes are sound or absent, never wrong
            with pytest.raises((IntegrityError, cas.errors.BlobNotFoundError)):
                got.read_bytes(rel)
        report = dst.verify(deep=True)
        assert not report.corrupt, report


def test_gc_keeps_a_pack_whose_index_record_rotted_so_a_repaired_record_loses_nothing(tmp_path):
    """The pack's ref is claimed (the truth says the pack is announced) but its index record no
    longer reads: gc must not take the pack for one a writer never announced and remove it."""
    url = str(tmp_path / "s")
    with cas.open_store(url, format=2, index=str(tmp_path / "w.sqlite")) as writer:
        files = _files(20, "rot")
        make_tree(tmp_path / "t", files)
        writer.save(tmp_path / "t", "pk/s/rot")
        (pack,) = _packs(writer)
        record = writer.records.read_ref(pack_ref(pack))
        sound = writer.blobs.read_bytes(record)
        replace_blob(writer, record, sound[:-1] + bytes([sound[-1] ^ 1]))
    with cas.open_store(url, index=str(tmp_path / "gc.sqlite")) as other:  # a machine that never read it
        other.gc(grace=0)
        assert _packs(other) == [pack], "gc removed a claimed pack"
        assert any(pack in line or record in line for line in other.verify().invalid)
        replace_blob(other, record, sound)  # the record is repaired (from a mirror, a backup)
    with cas.open_store(url, index=str(tmp_path / "fresh.sqlite")) as fresh:
        v = fresh.get_artifact_version("pk/s/rot", 1)
        assert {rel: v.read_bytes(rel) for rel in files} == files
        assert fresh.verify(deep=True).ok

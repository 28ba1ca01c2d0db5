"""Golden bytes of format 2's chunk lists: the chunker's cut points, the list codec, the
``chunks`` field of a version record and the 4th field of a tree manifest entry.

The input is fixed (BLAKE3's XOF of a fixed key), the chunker parameters are the ones
``cas.core.chunks`` ships, so the cut points, the list's bytes and digest are fixed too.
If one of these fails, what a format-2 writer stores changed: dedupe against stores
written before would break (a changed chunker), or readers would misread (a changed
codec).  That needs a format change (docs/format.md), not a new literal.
"""

from __future__ import annotations

import blake3
import pytest
from chunk_helpers import SMALL, small_chunks

import cas
from cas.core import chunks
from cas.core.chunks import ChunkRef, decode_chunk_list, encode_chunk_list
from cas.core.digest import hash_bytes
from cas.core.records import decode_record, encode
from cas.core.tree import ChunkedEntry, decode_manifest, encode_manifest

DATA = blake3.blake3(b"cas format 2 chunk lists").digest(length=12 << 20)
DATA_DIGEST = "d18b88c2725fc564d2736520c12e38ee3e31f9c40b08d8cdde5488d8047005ae"
CUTS = [0, 1427035, 2537164, 4510672, 5449370, 6633310, 8794011, 9655874, 11197447, 12000486]
LIST_DIGEST = "04ffef3fef9dbb60aa494ca6bb81951212d267a6e1e78dba8f3f5f1565fce3aa"
LIST_SIZE = 721
SMALL_CUTS = [0, 745, 1847, 2274, 3429, 3990, 5030, 5894, 6979, 7682, 8606, 9761, 11229, 11494, 12673, 13905,
              14600, 15118, 16367, 17456]
SMALL_LIST_DIGEST = "6083d2bf86ba63447cdeec62a91440265961c456121cfd201efb53553cf02ac1"

FIXED_LIST = [("ab" * 32, 1 << 20), ("cd" * 32, 5)]
FIXED_LIST_BYTES = bytes.fromhex(
    "9292d940" + "6162" * 32 + "ce00100000" + "92d940" + "6364" * 32 + "05"
)
FIXED_LIST_DIGEST = "fefcede61bb90fb0ead6deb25dff1630944a9d4df696c0199b54a474750040f3"

MANIFEST = [("README", "11" * 32, 4), ChunkedEntry("w.bin", "22" * 32, 5 << 20, "33" * 32)]
MANIFEST_BYTES = bytes.fromhex(
    "9293a6524541444d45d940" + "31" * 64 + "04"
    + "94a5772e62696ed940" + "32" * 64 + "ce00500000d940" + "33" * 64
)
MANIFEST_DIGEST = "5f8933163ae8fe6422a5d6c4d6be32136f29d1736ab9682f792c9eae8e9913d7"

RECORD = {
    "type": "version", "name": "demo/train/weights", "version": 1, "digest": DATA_DIGEST, "kind": "blob",
    "size": 12 << 20, "created_at": "2026-01-01T00:00:00.000000+00:00", "metadata": {}, "materializer": "bytes",
    "chunks": LIST_DIGEST,
}
RECORD_DIGEST = "c94779056efce40067d42abae780a9e0f89f3c6a5428cca685d4846301c5f749"


def test_the_shipped_chunker_parameters():
    assert (chunks.CHUNK_THRESHOLD, chunks.CHUNK_MIN, chunks.CHUNK_AVG, chunks.CHUNK_MAX) == (
        4 << 20, 768 << 10, 768 << 10, 4 << 20
    )
    assert SMALL == {"CHUNK_THRESHOLD": 8 << 10, "CHUNK_MIN": 256, "CHUNK_AVG": 1024, "CHUNK_MAX": 4096}


def test_fixed_input_is_cut_at_fixed_points():
    assert hash_bytes(DATA) == DATA_DIGEST
    cuts = list(chunks.chunker().cut_buf(DATA))
    assert [c.offset for c in cuts] == CUTS
    listed = encode_chunk_list(ChunkRef(hash_bytes(c.data), c.length) for c in cuts)
    assert (len(listed), hash_bytes(listed)) == (LIST_SIZE, LIST_DIGEST)
    with small_chunks():
        small = list(chunks.chunker().cut_buf(DATA[:20_000]))
        assert [c.offset for c in small] == SMALL_CUTS
        assert hash_bytes(encode_chunk_list((hash_bytes(c.data), c.length) for c in small)) == SMALL_LIST_DIGEST


def test_the_chunk_list_codec():
    data = encode_chunk_list(FIXED_LIST)
    assert data == FIXED_LIST_BYTES and hash_bytes(data) == FIXED_LIST_DIGEST
    decoded = decode_chunk_list(data, FIXED_LIST_DIGEST, (1 << 20) + 5)
    assert decoded.chunks == [ChunkRef(*c) for c in FIXED_LIST] and decoded.starts == [0, 1 << 20]


def test_a_manifest_entry_names_a_chunk_list_in_a_fourth_field():
    data = encode_manifest(MANIFEST)
    assert data == MANIFEST_BYTES and hash_bytes(data) == MANIFEST_DIGEST
    entries = decode_manifest(data, MANIFEST_DIGEST)
    assert entries == [tuple(e) for e in MANIFEST] and entries[1].chunks == "33" * 32
    assert not isinstance(entries[0], ChunkedEntry)


def test_a_version_record_names_its_chunk_list():
    data = encode(RECORD)
    assert hash_bytes(data) == RECORD_DIGEST
    assert decode_record(data, RECORD_DIGEST, "refs/versions/demo/train/weights/1")["chunks"] == LIST_DIGEST


@pytest.mark.parametrize("fmt", [1, 2])
def test_a_store_writes_the_pinned_list_and_keeps_the_whole_file_digest(tmp_path, fmt):
    with cas.open_store(str(tmp_path / "s"), format=fmt) as store:
        v = store.save(DATA, "demo/train/weights")
        assert v.digest.hex == DATA_DIGEST
        record = store.records.get_record(store.records.read_ref("refs/versions/demo/train/weights/1"),
                                          "refs/versions/demo/train/weights/1")
        if fmt == 1:
            assert "chunks" not in record and store.blobs.exists(DATA_DIGEST)
        else:
            assert record["chunks"] == LIST_DIGEST and store.index.chunk_list(DATA_DIGEST) == LIST_DIGEST
            assert not store.blobs.exists(DATA_DIGEST) and store.blobs.size(LIST_DIGEST) == LIST_SIZE
        assert v.read_bytes() == DATA

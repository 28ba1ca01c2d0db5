"""Chunk lists under attack, the cases test_chunks_attacks.py leaves out: a list that names one
chunk many times (valid: repeated content), and lists that try to nest or name themselves.

A list naming itself cannot be built: its digest is the BLAKE3 of bytes that would have to
contain that digest.  A list naming another list (or itself through the whole-file digest)
is only bytes to a reader: chunks are never interpreted, so there is nothing to recurse into.
"""

from __future__ import annotations

import random

import msgpack
import pytest
from chunk_helpers import chunk_list_of, open_format2, small_chunks

from cas.core.chunks import encode_chunk_list
from cas.core.digest import hash_bytes
from cas.errors import IntegrityError
from cas.fs import CasFileSystem
from cas.storage.chunked import chunk_blobs

BLOCK = random.Random(3).randbytes(3000)


@pytest.fixture
def s2(tmp_path):
    with small_chunks(), open_format2(str(tmp_path / "s2")) as store:
        yield store


def test_a_chunk_named_many_times_reads_back_and_survives_gc(s2):
    data = BLOCK * 12 + b"tail"
    v = s2.save(data, "c/s/rep")
    _, listed = chunk_list_of(s2, v)
    digests = [c.digest for c in listed.chunks]
    assert len(set(digests)) < len(digests), "the repeated content should repeat a chunk"
    fs = CasFileSystem(store=s2, skip_instance_cache=True)
    for start in (0, 2999, 3000, 17_999, len(data) - 5):
        assert fs.cat_file("c/s/rep/1", start=start, end=start + 700) == data[start : start + 700]
    other = s2.save(BLOCK * 5, "c/s/other")  # shares the repeated chunk
    s2.delete_version("c/s/rep", 1)
    s2.gc(grace=0)
    assert other.read_bytes() == BLOCK * 5
    assert s2.verify(deep=True).ok


def test_a_list_naming_another_list_as_a_chunk_is_bytes_and_fails_the_whole_digest(s2):
    real = s2.save(BLOCK * 4, "c/s/real")
    inner, listed = chunk_list_of(s2, real)
    inner_bytes = s2.blobs.read_bytes(inner)
    outer = encode_chunk_list([(inner, len(inner_bytes)), (inner, len(inner_bytes))])
    outer_digest = s2.blobs.put_bytes(outer).digest
    assert msgpack.unpackb(outer)[0][0] == inner
    v = s2.save(b"q" * 100, "c/s/nest", _extra={"chunks": outer_digest, "size": 2 * len(inner_bytes)})
    with pytest.raises(IntegrityError):  # the chunks verify (they are the list's bytes), the whole does not
        v.read_bytes()
    with v.open() as f:
        f.seek(len(inner_bytes) - 3)
        assert f.read(6) == (inner_bytes * 2)[len(inner_bytes) - 3 : len(inner_bytes) + 3]  # raw, never followed
    assert v.digest.hex in s2.verify(deep=True).corrupt
    # gc follows every list, even one another list names as a chunk (in whatever order it meets them)
    lists = s2.index.chunk_lists()
    for order in ([v.digest.hex, real.digest.hex], [real.digest.hex, v.digest.hex]):
        kept = chunk_blobs(s2.blobs, lists, order)
        assert {c.digest for c in listed.chunks} <= set(kept), order
    s2.gc(grace=0)  # terminates, and keeps the real file
    assert real.read_bytes() == BLOCK * 4
    assert hash_bytes(inner_bytes) == inner

"""Whole reads (``read_bytes``, ``open().read()``, ``cat_file``, ``blocks()``, ``cas cat``,
downloads) of a format-1 blob and of a format-2 chunked file: the bytes, verified.

A flipped byte raises IntegrityError on every whole-read path, and nothing unverified
reaches the caller, by the rule ``cas cat`` documents (docs/cli.md): a result returned
whole is checked before it is returned; a chunked file streams chunk by chunk, each
chunk checked before any byte of it is written; only a whole blob above
``_VERIFY_FIRST`` (format 1) streams before its end is checked.
"""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from chunk_helpers import chunk_list_of, small_chunks
from click.testing import CliRunner
from store_helpers import replace_blob

import cas
import cas.cli.content as cli_content
from cas.cli import cli
from cas.errors import BlobNotFoundError, IntegrityError
from cas.fs import CasFileSystem
from cas.storage.blobs import blob_path
from cas.storage.chunked import ChunkedReader

DATA = random.Random(14).randbytes(200_000)  # ~150 chunks with the small test chunker


@pytest.fixture(params=[1, 2], ids=["format1-blob", "format2-chunked"])
def saved(request, tmp_path):
    """(store, version) of DATA: a whole blob (format 1) or a chunked file (format 2)."""
    with small_chunks(), cas.open_store(str(tmp_path / "store"), format=request.param) as store:
        v = store.save(DATA, "r/w/big")
        assert (store.index.chunk_list(v.digest.hex) is not None) == (request.param == 2)
        yield store, v


def _flip(store: cas.Store, v: cas.ArtifactVersion) -> int:
    """Flip one byte in the middle of the content; returns where the bad block starts
    (the bad chunk's first byte, or 0 for a whole blob)."""
    listed = store.index.chunk_list(v.digest.hex)
    if listed is None:
        at, start = len(DATA) // 2, 0
    else:
        _, chunks = chunk_list_of(store, v)
        i = len(chunks) // 2
        start = chunks.starts[i]
        at = start + chunks.chunks[i].size // 2
    bad = bytearray(DATA)
    bad[at] ^= 0x40
    replace_blob(store, v.digest.hex, bytes(bad))
    return start


def _cat(store: cas.Store, v: cas.ArtifactVersion):
    return CliRunner().invoke(cli, ["--store", store.backend.root, "cat", v.ref])


def test_every_whole_read_returns_the_bytes(saved, tmp_path):
    store, v = saved
    fs = CasFileSystem(store=store, skip_instance_cache=True)
    path = f"{v.name}/{v.version}"
    assert type(v.read_bytes()) is bytes and v.read_bytes() == DATA
    with v.open() as f:
        assert f.read() == DATA
    assert fs.cat_file(path) == DATA
    with fs.open(path, "rb") as f:
        assert f.read(10) == DATA[:10] and f.read() == DATA[10:]
    assert b"".join(bytes(b) for b in v.blocks()) == DATA
    result = _cat(store, v)
    assert result.exit_code == 0 and result.stdout_bytes == DATA
    assert v.download(tmp_path / "out").read_bytes() == DATA


def test_a_whole_read_of_a_chunked_file_reads_each_chunk_once(tmp_path):
    with small_chunks(), cas.open_store(str(tmp_path / "s2"), format=2) as store:
        v = store.save(DATA, "r/w/big")
        list_digest, chunks = chunk_list_of(store, v)
        for read in (lambda r: r.readall(), lambda r: b"".join(bytes(b) for b in r.verified_chunks())):
            with ChunkedReader(store.blobs, v.digest.hex, list_digest) as reader:
                assert read(reader) == DATA
                assert reader.chunks_read == len(chunks)
        with ChunkedReader(store.blobs, v.digest.hex, list_digest) as reader:  # after a seek: chunk by chunk
            reader.seek(5)
            assert reader.readall() == DATA[5:]


def test_a_flipped_byte_fails_every_whole_read_and_nothing_is_returned(saved, tmp_path):
    store, v = saved
    _flip(store, v)
    fs = CasFileSystem(store=store, skip_instance_cache=True)
    path = f"{v.name}/{v.version}"
    with pytest.raises(IntegrityError):
        v.read_bytes()
    with pytest.raises(IntegrityError), v.open() as f:
        f.read()
    with pytest.raises(IntegrityError):
        fs.cat_file(path)
    with pytest.raises(IntegrityError), fs.open(path, "rb") as f:
        f.read()
    with pytest.raises(IntegrityError):
        v.download(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(IntegrityError):
        fs.get_file(path, str(tmp_path / "got"))
    assert not (tmp_path / "got").exists()


def test_blocks_yield_only_verified_chunks_of_a_chunked_file(saved):
    store, v = saved
    bad_start = _flip(store, v)
    got = bytearray()
    with pytest.raises(IntegrityError):
        for block in v.blocks():
            got += block
    if store.format >= 2:
        assert bytes(got) == DATA[:bad_start]  # every chunk before the bad one, none of it
    else:
        assert len(got) == len(DATA)  # a whole blob: checked when its last block has passed


def test_cas_cat_of_a_file_up_to_the_limit_writes_nothing_when_it_is_bad(saved):
    store, v = saved
    assert v.size <= cli_content._VERIFY_FIRST
    _flip(store, v)
    result = _cat(store, v)
    assert result.exit_code != 0 and "integrity" in result.output.lower()
    assert result.stdout_bytes == b""  # verified whole before the first byte is written


def test_cas_cat_streams_a_large_file_by_the_rule(saved, monkeypatch):
    """Above the limit: a chunked file streams its good chunks and none of the bad one;
    a whole blob (format 1, the documented exception) streams and fails at its end."""
    monkeypatch.setattr(cli_content, "_VERIFY_FIRST", 1000)
    store, v = saved
    good = _cat(store, v)
    assert good.exit_code == 0 and good.stdout_bytes == DATA
    bad_start = _flip(store, v)
    result = _cat(store, v)
    assert result.exit_code != 0 and "integrity" in result.output.lower()
    if store.format >= 2:
        assert result.stdout_bytes == DATA[:bad_start]
    else:
        assert len(result.stdout_bytes) <= len(DATA)


# ``cas cat`` in its own process, streaming whatever the size
_CAT_STREAMING = "import sys, cas.cli.content as c; c._VERIFY_FIRST = 1000; from cas.cli.main import main; sys.argv[0] = 'cas'; main()"


def test_cas_cat_process_stops_before_the_bad_chunk(tmp_path):
    """A real process streaming to a real file: the file holds the chunks before the bad one."""
    with small_chunks(), cas.open_store(str(tmp_path / "s2"), format=2) as store:
        v = store.save(DATA, "r/w/big")
        bad_start = _flip(store, v)
        root = store.backend.root
    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        proc = subprocess.run(
            [sys.executable, "-c", _CAT_STREAMING, "--store", root, "cat", v.ref], stdout=f, stderr=subprocess.PIPE, check=False
        )
    assert proc.returncode != 0 and b"integrity" in proc.stderr.lower(), proc.stderr
    assert 0 < bad_start and out.read_bytes() == DATA[:bad_start]


def test_chunks_that_match_but_not_the_whole_digest_fail_at_the_end(tmp_path):
    """A list whose chunks verify but do not make up the version's digest (a wrong
    pairing): a whole read returns nothing, a stream fails after its last chunk."""
    with small_chunks(), cas.open_store(str(tmp_path / "s2"), format=2) as store:
        v = store.save(DATA, "r/w/big")
        other = store.save(DATA[::-1], "r/w/other")
        list_digest, _ = chunk_list_of(store, other)
        with ChunkedReader(store.blobs, v.digest.hex, list_digest) as reader, pytest.raises(IntegrityError) as e:
            reader.readall()
        assert blob_path(list_digest) in str(e.value)
        with ChunkedReader(store.blobs, v.digest.hex, list_digest) as reader:
            got = bytearray()
            with pytest.raises(IntegrityError):
                for block in reader.verified_chunks():
                    got += block
            assert bytes(got) == DATA[::-1]
            with pytest.raises(IntegrityError):  # the failure sticks
                reader.read(1)


def test_a_resized_or_missing_chunk_fails_a_whole_read(tmp_path):
    with small_chunks(), cas.open_store(str(tmp_path / "s2"), format=2) as store:
        v = store.save(DATA, "r/w/big")
        list_digest, chunks = chunk_list_of(store, v)
        ref = chunks.chunks[3]
        rel = blob_path(ref.digest)
        for data in (b"x" * (ref.size - 1), b"x" * (ref.size + 1)):
            store.backend.remove(rel)
            store.backend.create_bytes(rel, data)
            for read in (lambda r: r.readall(), lambda r: list(r.verified_chunks())):
                with ChunkedReader(store.blobs, v.digest.hex, list_digest) as reader, pytest.raises(IntegrityError):
                    read(reader)
        store.backend.remove(rel)
        with pytest.raises(BlobNotFoundError):
            v.read_bytes()
        with ChunkedReader(store.blobs, v.digest.hex, list_digest) as reader:  # a failed read can be retried
            with pytest.raises(BlobNotFoundError):
                reader.readall()
            store.backend.create_bytes(rel, DATA[chunks.starts[3] : chunks.starts[3] + ref.size])
            assert reader.readall() == DATA


def test_whole_reads_of_a_chunked_file_on_every_backend(open_test_store):
    """Object stores too: the whole read and the verified stream return the bytes, and a
    flipped chunk fails both, the stream before any byte of the bad chunk."""
    with small_chunks():
        store = open_test_store(format=2)
        v = store.save(DATA, "r/w/everywhere")
        fs = CasFileSystem(store=store, skip_instance_cache=True)
        assert v.read_bytes() == DATA and fs.cat_file(f"{v.name}/{v.version}") == DATA
        assert b"".join(bytes(b) for b in v.blocks()) == DATA
        bad_start = _flip(store, v)
        with pytest.raises(IntegrityError):
            v.read_bytes()
        got = bytearray()
        with pytest.raises(IntegrityError):
            for block in v.blocks():
                got += block
        assert bytes(got) == DATA[:bad_start]

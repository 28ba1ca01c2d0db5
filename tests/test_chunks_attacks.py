"""Chunk lists under attack: flipped bytes, crafted lists, gc racing a save that reuses chunks, SIGKILL mid-save.

Every read path (``open``/seek/read, ``read_bytes``, ``cat_file`` ranges, ``cas://``
open, downloads) raises IntegrityError on a flipped chunk byte and returns no wrong
byte; a crafted list is refused with a typed error; a save whose reused chunks a gc
removed puts them back before it commits; a killed save never commits a version
whose chunks are missing.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import kill_points
import msgpack
import pytest
from chunk_helpers import SMALL, chunk_list_of, open_format2, small_chunks, stored
from store_helpers import replace_blob
from test_crash import check_consistent

from cas.core.chunks import MAX_LISTED_CHUNK, decode_chunk_list, encode_chunk_list
from cas.core.digest import hash_bytes
from cas.errors import CorruptRecordError, IntegrityError
from cas.fs import CasFileSystem

DATA = random.Random(11).randbytes(120_000)


@pytest.fixture
def s2(tmp_path):
    with small_chunks(), open_format2(str(tmp_path / "s2")) as store:
        yield store


@pytest.fixture
def flipped(s2):
    """A chunked version with one byte flipped in its middle chunk: (store, version, chunk start, chunk end)."""
    v = s2.save(DATA, "a/s/flip")
    _, listed = chunk_list_of(s2, v)
    i = len(listed) // 2
    start, ref = listed.starts[i], listed.chunks[i]
    bad = bytearray(DATA[start : start + ref.size])
    bad[ref.size // 2] ^= 0x01
    replace_blob(s2, ref.digest, bytes(bad))
    return s2, v, start, start + ref.size


def _prefix_or_error(read) -> bytes:
    """What ``read()`` returned before it raised IntegrityError (it must raise)."""
    got = bytearray()
    with pytest.raises(IntegrityError):
        while block := read():
            got += block
    return bytes(got)


def test_a_flipped_byte_fails_every_read_path_and_no_wrong_byte_is_returned(flipped, tmp_path):
    store, v, start, end = flipped
    fs = CasFileSystem(store=store, skip_instance_cache=True)
    path = f"{v.name}/{v.version}"
    # open / seek / read, into the bad chunk and across it
    with v.open() as f:
        f.seek(start + 10)
        with pytest.raises(IntegrityError):
            f.read(5)
    with v.open() as f:  # sequential from the start: the good prefix only, then the error
        got = _prefix_or_error(lambda: f.read(3000))
        assert DATA.startswith(got) and len(got) <= start
    with pytest.raises(IntegrityError):
        v.read_bytes()
    with pytest.raises(IntegrityError):
        fs.cat_file(path, start=start - 5, end=start + 5)
    with fs.open(path, "rb") as f:
        f.seek(end - 3)
        with pytest.raises(IntegrityError):
            f.read(10)
    with pytest.raises(IntegrityError):
        fs.cat_file(path)
    dest = tmp_path / "out.bin"
    with pytest.raises(IntegrityError):
        v.download(dest)
    assert not dest.exists() and not list(tmp_path.glob(".out.bin*")), "a failed download leaves nothing"
    with pytest.raises(IntegrityError):
        fs.get_file(path, str(tmp_path / "got.bin"))
    assert not (tmp_path / "got.bin").exists()
    # ranges that do not touch the bad chunk are still served, verified
    assert fs.cat_file(path, start=0, end=100) == DATA[:100]
    with v.open() as f:
        f.seek(end + 1)
        assert f.read(50) == DATA[end + 1 : end + 51]
    report = store.verify(deep=True)
    assert not report.ok and report.corrupt


def test_a_chunked_file_whose_chunks_are_not_its_digest_is_refused_at_the_end(s2):
    """A list that names sound chunks of other content: each chunk verifies, the whole does not."""
    other = s2.save(DATA[::-1], "a/s/other")
    other_list, _ = chunk_list_of(s2, other)
    v = s2.save(b"x" * 100, "a/s/lies", _extra={"chunks": other_list, "size": len(DATA)})
    with pytest.raises(IntegrityError):
        v.read_bytes()
    with v.open() as f:
        got = _prefix_or_error(lambda: f.read(4096))
    assert DATA[::-1].startswith(got)  # the chunks' own (verified) bytes, never others
    assert v.digest.hex in s2.verify(deep=True).corrupt


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ([], "non-empty"),
        ([["ab" * 32, 0]], "not in"),
        ([["ab" * 32, MAX_LISTED_CHUNK + 1]], "not in"),
        ([["AB" * 32, 10]], "bad chunk digest"),
        ([["zz" * 32, 10]], "bad chunk digest"),
        ([["ab" * 31, 10]], "bad chunk digest"),
        ([["ab" * 32, -1]], "not in"),
        ([["ab" * 32, True]], "not in"),
        ([["ab" * 32]], "an entry is"),
        ([["ab" * 32, 10, 3]], "an entry is"),
        ({"ab": 1}, "non-empty list"),
    ],
)
def test_a_crafted_chunk_list_is_refused(entries, why):
    data = msgpack.packb(entries, use_bin_type=True)
    with pytest.raises(CorruptRecordError, match=why) as e:
        decode_chunk_list(data, hash_bytes(data))
    assert e.value.key == f"blake3:{hash_bytes(data)}"


def test_a_chunk_list_whose_sizes_disagree_is_refused():
    good = encode_chunk_list([("ab" * 32, 10), ("cd" * 32, 20)])
    assert decode_chunk_list(good, hash_bytes(good), 30).size == 30
    with pytest.raises(CorruptRecordError, match="add up to 30 bytes"):
        decode_chunk_list(good, hash_bytes(good), 31)
    with pytest.raises(CorruptRecordError, match="not msgpack"):
        decode_chunk_list(b"\xc1", "00" * 32)
    loose = msgpack.packb([["ab" * 32, 10]], use_bin_type=False)  # same values, another encoding
    if loose != encode_chunk_list([("ab" * 32, 10)]):
        with pytest.raises(CorruptRecordError, match="canonical"):
            decode_chunk_list(loose, hash_bytes(loose))


def test_a_version_naming_a_crafted_list_is_refused_on_every_read(s2, tmp_path):
    crafted = msgpack.packb([["ab" * 32, 5], ["cd" * 32, 0]], use_bin_type=True)
    listed = s2.blobs.put_bytes(crafted).digest
    v = s2.save(b"y" * 100, "a/s/crafted", _extra={"chunks": listed})
    for read in (v.read_bytes, lambda: v.open().read(), lambda: v.download(tmp_path / "o")):
        with pytest.raises(CorruptRecordError):
            read()
    assert not (tmp_path / "o").exists()
    report = s2.verify()
    assert any(listed in why for why in report.invalid) and not report.ok
    with pytest.raises(CorruptRecordError):
        s2.gc(grace=0)  # gc cannot tell this list's chunks from garbage: it removes nothing


# -- gc racing a save that reuses chunks (real processes) --------------------------------

WRITER = textwrap.dedent(
    """
    import os, random, signal, sys
    from unittest import mock
    import cas, cas.core.chunks
    from cas.storage.records import RecordStore
    params = {k: int(v) for k, v in (kv.split("=") for kv in sys.argv[2].split(","))}
    with mock.patch.multiple(cas.core.chunks, **params):
        store = cas.open_store(sys.argv[1])
        real_claim = RecordStore.claim
        def claim(self, ref, digest):
            if ref.startswith("refs/versions/"):
                os.kill(os.getpid(), signal.SIGSTOP)  # every chunk is hashed and found stored: paused before the claim
            return real_claim(self, ref, digest)
        RecordStore.claim = claim
        print(store.save(random.Random(int(sys.argv[3])).randbytes(90_000), "race/s/new").version, flush=True)
    """
)


def _params() -> str:
    return ",".join(f"{k}={v}" for k, v in SMALL.items())


def test_gc_racing_a_save_that_reuses_chunks_never_commits_missing_chunks(s2):
    data = random.Random(5).randbytes(90_000)
    s2.save(data, "race/s/old")
    s2.delete_version("race/s/old", 1)  # its chunks are garbage now, and the writer reuses them
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(s2.backend.root), _params(), "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), proc.communicate()
    removed = s2.gc(grace=0).removed
    assert removed > 10, "gc removed the reused chunks"
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    s2.refresh()
    v = s2.get_artifact_version("race/s/new", int(out))
    assert v.read_bytes() == data, "the writer put its chunks back before it committed"
    assert s2.verify(deep=True).ok


# -- SIGKILL mid-save ------------------------------------------------------------------

KILLED = textwrap.dedent(
    """
    import random, sys
    from unittest import mock
    import cas, cas.core.chunks
    import kill_points
    store_dir, params, crash_at, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    params = {k: int(v) for k, v in (kv.split("=") for kv in params.split(","))}
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(60_000))  # fresh chunks every run, so they are really written
    with mock.patch.multiple(cas.core.chunks, **params):
        store = cas.open_store(store_dir, format=2)
        kill_points.arm(crash_at, index_writes=False)  # before and after each os call of the saves
        store.save(bytes(data), "kill/s/big")
        data[30_000:30_500] = rng.randbytes(500)  # and a re-save sharing most of them
        store.save(bytes(data), "kill/s/big")
    print("calls", kill_points.calls(), flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_mid_save_leaves_no_version_with_missing_chunks(tmp_path):
    store_dir = tmp_path / "store"

    def run(crash_at: int, seed: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", KILLED, str(store_dir), _params(), str(crash_at), str(seed)],
                              capture_output=True, text=True, timeout=120, env=kill_points.child_env())

    done = run(0, 0)
    assert done.returncode == 0, done.stderr
    total = int(done.stdout.split("calls")[1])
    assert total > 40
    for i, crash_at in enumerate(sorted({1, 2, 3} | {1 + k * total // 12 for k in range(12)}), start=1):
        proc = run(crash_at, i)
        assert proc.returncode == -signal.SIGKILL, (crash_at, proc.stderr)
        with small_chunks():
            check_consistent(store_dir, tmp_path, f"at-{crash_at}")
    with small_chunks(), open_format2(str(store_dir)) as store:
        for v in store.list_versions("kill/s/big"):
            assert store.index.chunk_list(v.digest.hex) is not None and len(v.read_bytes()) == v.size
        assert stored(store)

"""Format 2 on S3 (moto) under attack: flipped bytes read through ranged GETs, and crafted pack
indexes whose ranges an object store answers differently from a local pread.

Local reads use ``pread``, which stops at the end of the file; S3 answers a range past the
end of an object with the bytes it has (or the whole object for some ranges), so these are
the paths where a wrong entry could turn into wrong bytes if the length were not checked.
"""

from __future__ import annotations

import pytest
from store_helpers import make_tree, replace_blob

import cas
from cas.core.digest import hash_bytes
from cas.core.packs import PackEntry
from cas.errors import IntegrityError
from cas.fs import CasFileSystem
from cas.storage.packs import PackReader, iter_packs

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_store(s3_root, s3_options, tmp_path, monkeypatch):
    """A format-2 store on moto with a small-chunk setting: (store, version, files)."""
    import cas.core.chunks as chunks

    for name, value in {"CHUNK_THRESHOLD": 8 << 10, "CHUNK_MIN": 256, "CHUNK_AVG": 1024, "CHUNK_MAX": 4096}.items():
        monkeypatch.setattr(chunks, name, value)
    files = {f"d{i % 3}/f{i}.txt": f"s3 file {i} ".encode() * (i + 2) for i in range(12)}
    files["big.bin"] = bytes(range(256)) * 160
    make_tree(tmp_path / "t", files)
    with cas.open_store(s3_root, format=2, index=str(tmp_path / "i.sqlite"), **s3_options) as store:
        v = store.save(tmp_path / "t", "s3/s/tree")
        yield store, v, files


@pytest.mark.parametrize("rel", ["d1/f4.txt", "big.bin"], ids=["pack", "chunk"])
def test_a_flipped_byte_on_s3_fails_every_ranged_read(s3_store, rel):
    store, v, files = s3_store
    data = bytearray(files[rel])
    mid = len(data) // 2
    data[mid] ^= 0x01
    replace_blob(store, hash_bytes(files[rel]), bytes(data))
    fs = CasFileSystem(store=store, skip_instance_cache=True)
    path = f"s3/s/tree/1/{rel}"
    with pytest.raises(IntegrityError):
        v.read_bytes(rel)
    with pytest.raises(IntegrityError), v.open(rel) as f:
        f.seek(mid - 1)
        f.read(3)
    with pytest.raises(IntegrityError):
        fs.cat_file(path, start=mid - 1, end=mid + 2)
    with pytest.raises(IntegrityError):
        fs.cat_file(path)
    # the rest of the tree is whole, on the same pack or the same chunk list
    assert all(v.read_bytes(r) == d for r, d in files.items() if r != rel)
    assert not store.verify(deep=True).ok


@pytest.mark.parametrize("offset_from_end, length", [(0, 10), (-3, 10), (5, 1), (-1, 1 << 20)])
def test_a_range_past_the_end_of_a_pack_on_s3_is_never_bytes(s3_store, offset_from_end, length):
    """An entry that reaches past the pack's object (an index whose declared size is larger than
    the object: decoding checks ranges against the declared size only): S3 answers such a range
    with 416 or with fewer bytes; either is an IntegrityError, never bytes and never a
    BackendError that would stop the reader before it tries the blob's other copies."""
    store, v, files = s3_store
    ((pack, _, size, _),) = [p for p in iter_packs(store.backend) if p[0] is not None]
    target = files["d0/f0.txt"]
    entry = PackEntry(hash_bytes(target), pack, size + offset_from_end, length)
    reader = PackReader(store.backend, lambda d: [entry])
    try:
        got = reader.read(entry.digest)
    except IntegrityError:
        got = None
    assert got is None

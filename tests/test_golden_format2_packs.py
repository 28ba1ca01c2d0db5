"""Golden bytes of format 2 packs: a pack, its pack index record, its ref (docs/format.md, Packs).

FIXED values go through the public codecs (``cas.core.packs``, ``cas.core.records``,
``cas.storage.packs``) and the bytes and BLAKE3 digests are compared with literals;
then a real format-2 store saves a fixed tree and the pack it writes is read
straight from the backend.  If one of these fails, the on-disk format changed:
that needs a new format version, not a new literal.
"""

from __future__ import annotations

import blake3

import cas
from cas.backends.factory import open_backend
from cas.core.packs import PACK_MAGIC, decode_pack_index, pack_index_record
from cas.core.records import decode_record, encode
from cas.core.refs import pack_ref, parse_ref_path
from cas.storage.packs import PackBuilder, pack_path

BLOBS = [b"first small blob\n", b"", b"second \x00\x01 blob"]
PACK_BYTES = PACK_MAGIC + b"".join(BLOBS)
PACK_DIGEST = "e368afc0b9abf14520e27ef98fdd1f1b3dc227c622d892bc023c99e1657f3a1d"
INDEX_HEX = (
    "85a5626c6f62739393d94034613231363131653333363666383136653837346139336232653333336563323365636330"
    "363066323735393334383063626231323863633237663530376566081193d94061663133343962396635663961316136"
    "613034303464656133366463633934393962636232356339616463313132623763633961393363616534316633323632"
    "190093d94034653462643330313637333066363561376134636566616464656165646339316337363163393234663136"
    "313263613332353065626265346431646538383138190ea47061636bd940653336386166633062396162663134353230"
    "65323765663938666464316631623364633232376336323264383932626330323363393965313635376633613164a373"
    "657100a473697a6527a474797065a47061636b"
)
INDEX_DIGEST = "a64ede72f9616cccc28f822908f271df77905cb72581409dfd172a99eb8db113"
# MIN_PACK_BLOBS (4) files: the fewest a save packs (fewer go loose, see the test after this one)
# one file per directory, so the walk order (a directory's files, then its subdirectory) is fixed
TREE = {"a.txt": b"alpha\n", "b/c.txt": b"charlie\n", "b/d/e.txt": b"delta\n", "b/d/f/g.txt": b"echo\n"}
TREE_PACK = "da4980172ee64f6b20c4fa3e142622ba2dee45c8ae01e29b9dc958977a6353b1"
SMALL_TREE = {"a.txt": b"alpha\n", "b/c.txt": b"charlie\n", "d.txt": b"delta\n"}


def _digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def _build(tmp_path):
    backend = open_backend(str(tmp_path / "b"))
    builder = PackBuilder(backend)
    for data in BLOBS:
        builder.add(_digest(data), data)
    return backend, builder.store()


def test_pack_bytes_and_digest(tmp_path):
    backend, stored = _build(tmp_path)
    assert stored.pack == PACK_DIGEST == _digest(PACK_BYTES)
    assert backend.read_bytes(pack_path(PACK_DIGEST)) == PACK_BYTES
    assert pack_path(PACK_DIGEST) == f"packs/{PACK_DIGEST[:2]}/{PACK_DIGEST[2:]}"
    assert stored.blobs == [(_digest(BLOBS[0]), 8, 17), (_digest(BLOBS[1]), 25, 0), (_digest(BLOBS[2]), 25, 14)]


def test_pack_index_record_bytes_and_digest(tmp_path):
    _, stored = _build(tmp_path)
    record = pack_index_record(stored.pack, stored.size, stored.blobs)
    data = encode(record)
    assert data.hex() == INDEX_HEX
    assert _digest(data) == INDEX_DIGEST
    assert pack_ref(PACK_DIGEST) == f"refs/packs/{PACK_DIGEST}"
    key = parse_ref_path(pack_ref(PACK_DIGEST))
    assert (key.kind, key.owner, key.number) == ("packs", PACK_DIGEST, 0)
    decoded = decode_record(data, INDEX_DIGEST, pack_ref(PACK_DIGEST))
    index = decode_pack_index(decoded, INDEX_DIGEST, PACK_DIGEST)
    assert [(e.digest, e.offset, e.length) for e in index.entries] == stored.blobs and index.size == 39


def _write_tree(root, files):
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_a_store_writes_this_pack_for_this_tree(tmp_path):
    root = tmp_path / "tree"
    _write_tree(root, TREE)
    with cas.open_store(str(tmp_path / "store"), format=2) as store:
        store.save(root, "golden/packs/tree")
        (entry,) = list(store.backend.list("packs"))
        # walk order: a.txt, b/c.txt, b/d/e.txt, b/d/f/g.txt
        assert store.backend.read_bytes(entry.path) == PACK_MAGIC + b"alpha\ncharlie\ndelta\necho\n"
        assert entry.path == pack_path(TREE_PACK)
        record_digest = store.records.read_ref(pack_ref(TREE_PACK))
        assert store.blobs.read_bytes(record_digest) == encode(
            pack_index_record(TREE_PACK, 8 + 6 + 8 + 6 + 5, [
                (_digest(b"alpha\n"), 8, 6), (_digest(b"charlie\n"), 14, 8),
                (_digest(b"delta\n"), 22, 6), (_digest(b"echo\n"), 28, 5),
            ])
        )


def test_a_tree_of_fewer_small_files_than_min_pack_blobs_is_stored_loose(tmp_path):
    root = tmp_path / "tree"
    _write_tree(root, SMALL_TREE)
    with cas.open_store(str(tmp_path / "store"), format=2) as store:
        v = store.save(root, "golden/packs/small")
        assert list(store.backend.list("packs")) == [] and list(store.backend.list("refs/packs")) == []
        for rel, data in SMALL_TREE.items():
            d = _digest(data)
            assert store.backend.read_bytes(f"blobs/{d[:2]}/{d[2:]}") == data
            assert v.read_bytes(rel) == data

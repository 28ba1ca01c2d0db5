"""The format-2 journal under attack: planted entries that are huge, truncated or not msgpack,
and entries announcing refs the backend does not hold (DESIGN invariant 12).

Each bad entry is refused whole, reported by ``verify`` and never blocks the entries after it;
a huge one is refused from its listed size, without being read (invariant 9: memory stays
bounded whatever a bucket holds).
"""

from __future__ import annotations

import os

import pytest

import cas
from cas.core.entries import encode_entry
from cas.core.refs import journal2_key, version_ref
from cas.storage import journal as journal_mod


def _plant(store: cas.Store, key: str, data: bytes) -> str:
    """Write ``key`` behind cas's back, as anyone holding the bucket's credentials can."""
    assert store.backend.create_bytes(key, data)
    return key


def _plant_sparse(store: cas.Store, key: str, size: int) -> str:
    """A local object of ``size`` bytes that costs no disk (a sparse file)."""
    path = os.path.join(store.backend.root, key)  # type: ignore[attr-defined]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    return key


@pytest.fixture
def pair(tmp_path):
    """A format-2 writer and a reader (another machine's index) of one local store."""
    url = str(tmp_path / "s")
    writer = cas.open_store(url, format=2, index=str(tmp_path / "w.sqlite"))
    reader = cas.open_store(url, index=str(tmp_path / "r.sqlite"))
    yield writer, reader
    writer.close()
    reader.close()


def _key(tag: int) -> str:
    return journal2_key(journal_mod.now_us(), f"{tag:016x}", 0)


@pytest.mark.parametrize("what", ["truncated", "not msgpack", "empty", "a list", "huge"])
def test_a_bad_entry_is_refused_reported_and_blocks_nothing(pair, what, monkeypatch):
    writer, reader = pair
    first = writer.save(b"before", "j/s/a")
    record = writer.records.read_ref(version_ref("j/s/a", 1))
    good = encode_entry([(version_ref("j/s/a", 1), record)])
    data = {"truncated": good[:-7], "not msgpack": b"\xc1" + good, "empty": b"", "a list": b"\x91\x01"}.get(what)
    key = _key(0xBAD) if what != "huge" else None
    if what == "huge":  # 64 MiB: far more than 50,000 refs take; never read into memory
        key = _plant_sparse(writer, _key(0xBAD), 64 << 20)
        reads: list[str] = []
        real = type(reader.backend).read_bytes
        monkeypatch.setattr(type(reader.backend), "read_bytes", lambda self, rel, *a, **kw: (reads.append(rel), real(self, rel, *a, **kw))[1])
    else:
        _plant(writer, key, data)
    later = writer.save(b"after", "j/s/b")
    reader.refresh()  # nothing raised
    assert reader.get_artifact_version("j/s/a", 1).digest == first.digest
    assert reader.get_artifact_version("j/s/b", 1).read_bytes() == b"after" and later.version == 1
    assert any(key in r for r in reader.index.rejected()), reader.index.rejected()
    assert any(key in line for line in reader.verify().invalid)
    if what == "huge":
        assert key not in reads, "a huge entry was read whole"
    assert reader.refresh() == 0  # refused once, not read again


def test_an_entry_whose_record_belongs_to_another_ref_is_refused(pair):
    writer, reader = pair
    writer.save(b"one", "j/s/a")
    record = writer.records.read_ref(version_ref("j/s/a", 1))
    # A genuine record, announced under a ref it does not belong to: it would make j/s/b@1 read j/s/a's bytes.
    key = _plant(writer, _key(0xF0), encode_entry([(version_ref("j/s/b", 1), record)]))
    reader.refresh()
    with pytest.raises(cas.errors.ArtifactNotFoundError):
        reader.get_artifact_version("j/s/b", 1)
    assert any(key in r for r in reader.index.rejected())
    assert writer.save(b"two", "j/s/b").version == 1  # the number was never taken
    reader.refresh()
    assert reader.get_artifact_version("j/s/b", 1).read_bytes() == b"two"


def test_an_entry_for_a_ref_that_was_never_claimed_shows_no_version(pair, tmp_path):
    """A journal entry is an announcement, not a claim: the ref in refs/ is the truth
    (invariant 3).  An entry naming a ref nobody claimed, with a valid record for it,
    must not show a version that a reindex (or a later claimer) would contradict."""
    writer, reader = pair
    writer.save(b"one", "j/s/a")
    ghost = dict(writer.records.get_record(writer.records.read_ref(version_ref("j/s/a", 1)), version_ref("j/s/a", 1)))
    ghost.update(name="j/s/ghost", version=1)
    ghost_digest = writer.records.put_record(ghost)
    key = _plant(writer, _key(0x6057), encode_entry([(version_ref("j/s/ghost", 1), ghost_digest)]))
    reader.refresh()
    with pytest.raises(cas.errors.ArtifactNotFoundError):
        reader.get_artifact_version("j/s/ghost", 1)
    assert any(key in r for r in reader.index.rejected())
    # The real first version of that name is claimed later, by a writer that never read the lie.
    with cas.open_store(writer.url, index=str(tmp_path / "w2.sqlite")) as other:
        real = other.save(b"the real one", "j/s/ghost")
    reader.refresh()
    assert reader.get_artifact_version("j/s/ghost", real.version).read_bytes() == b"the real one"
    assert [v.version for v in reader.list_versions("j/s/ghost")] == [real.version]

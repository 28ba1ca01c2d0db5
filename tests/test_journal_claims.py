"""Format 1's journal: an entry announces a claim, it is not one (DESIGN invariants 3 and 12).

The refs are the truth: a ``journal/<seq>`` entry naming a ref that was never claimed,
or a ref that holds another record, is refused (reported by ``verify``) and never shows
a version that a reindex or the next claimer would contradict.  The format-2 journal
has the same rule (tests/test_attack_format2_journal.py); only reading changes here,
format 1's bytes stay what tests/test_golden.py pins.
"""

from __future__ import annotations

import pytest

import cas
from cas.core.records import encode_journal_entry
from cas.core.refs import journal_path, parse_journal_key, version_ref
from cas.storage.records import RecordStore


@pytest.fixture
def pair(tmp_path):
    """A format-1 writer and a reader (another machine's index) of one local store."""
    url = str(tmp_path / "s")
    writer = cas.open_store(url, format=1, index=str(tmp_path / "w.sqlite"))
    reader = cas.open_store(url, index=str(tmp_path / "r.sqlite"))
    assert reader.format == 1
    yield writer, reader
    writer.close()
    reader.close()


def _plant(store: cas.Store, ref: str, record_digest: str) -> str:
    """A journal entry in the next free slot, written behind cas's back."""
    key = journal_path(store.records.journal_end())
    assert store.backend.create_bytes(key, encode_journal_entry(ref, record_digest))
    return key


def _ghost(store: cas.Store, name: str) -> str:
    """A valid record of ``name``@1 (a copy of j/s/a@1's), stored, never claimed."""
    ref = version_ref("j/s/a", 1)
    ghost = dict(store.records.get_record(store.records.read_ref(ref), ref))
    ghost.update(name=name, version=1)
    return store.records.put_record(ghost)


@pytest.mark.parametrize("lie", ["never claimed", "holds another record"])
def test_an_entry_announcing_a_ref_that_does_not_hold_its_record_shows_nothing(pair, tmp_path, monkeypatch, lie):
    writer, reader = pair
    writer.save(b"one", "j/s/a")
    if lie == "never claimed":
        key = _plant(writer, version_ref("j/s/ghost", 1), _ghost(writer, "j/s/ghost"))
    else:  # j/s/a@1's genuine record, announced for j/s/b@1: it would read j/s/a's bytes
        key = _plant(writer, version_ref("j/s/b", 1), writer.records.read_ref(version_ref("j/s/a", 1)))
    name = "j/s/ghost" if lie == "never claimed" else "j/s/b"
    later = writer.save(b"after", "j/s/c")  # an entry after the lie is applied all the same
    reader.refresh()
    with pytest.raises(cas.errors.ArtifactNotFoundError):
        reader.get_artifact_version(name, 1)
    assert reader.get_artifact_version("j/s/c", later.version).read_bytes() == b"after"
    assert any(key in r for r in reader.index.rejected()), reader.index.rejected()
    assert any(key in line for line in reader.verify().invalid)
    # A reindex lists the refs (the lie names none), then replays the entries written since
    # its listing began: one that began just before the lie landed refuses it on the same terms.
    with monkeypatch.context() as m:
        m.setattr(RecordStore, "journal_end", lambda self: parse_journal_key(key))
        rebuilt = cas.open_store(writer.backend.root, index=str(tmp_path / "rebuilt.sqlite"))
    with rebuilt:
        with pytest.raises(cas.errors.ArtifactNotFoundError):
            rebuilt.get_artifact_version(name, 1)
        assert rebuilt.get_artifact_version("j/s/c", later.version).read_bytes() == b"after"
        assert any(key in r for r in rebuilt.index.rejected()), rebuilt.index.rejected()
    assert reader.save(b"real", name).version == 1  # the number was never taken
    with cas.open_store(writer.backend.root, index=str(tmp_path / "fresh.sqlite")) as fresh:
        assert fresh.get_artifact_version(name, 1).read_bytes() == b"real"
    writer.refresh()
    assert writer.get_artifact_version(name, 1).read_bytes() == b"real"

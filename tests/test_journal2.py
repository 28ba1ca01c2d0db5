"""The format-2 journal (docs/format.md, Journal (format 2)): no shared counter, nothing missed.

Real writer processes on a local and an S3 (moto) format-2 store: no version
lost or duplicated, and every machine's refresh learns every one.  Writers
whose clocks are skewed, or who were slow between naming and writing their
entry, are not missed; a reader with a stale cursor catches up; a writer
killed between its claim and its entry is completed; crafted keys and entries
are refused without blocking the rest; a refresh reads only what is new.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

import cas
import cas.storage.journal as journal_mod
from cas.core.entries import decode_entry, encode_entry
from cas.core.refs import JOURNAL, JOURNAL2, journal2_key, parse_journal2_key, version_ref
from cas.errors import CorruptRecordError
from cas.storage.journal import LATE, SKEW, WINDOW

WRITERS = 4
SAVES_EACH = 5

WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    import cas

    url, options, worker, saves, go, index = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
    store = cas.open_store(url, index=index, **options)
    open(f"{go}.ready-{worker}", "w").close()
    while not os.path.exists(go):  # a start line, so the saves really overlap
        time.sleep(0.001)
    done = []
    for i in range(saves):
        own = store.save(f"w{worker} {i}".encode(), f"own/w{worker}/model", aliases=["prod"])
        shared = store.save(f"shared w{worker} {i}".encode(), "all/train/model")
        done.append([own.version, shared.version])
    print(json.dumps(done))
    """
)


def _open(url: str, options: dict, index, **kw) -> cas.Store:
    return cas.open_store(url, index=str(index), format=2, **options, **kw)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def where(request, tmp_path) -> tuple[str, dict]:
    if request.param == "local":
        return str(tmp_path / "store"), {}
    return request.getfixturevalue("s3_root"), request.getfixturevalue("s3_options")


def _keys(store: cas.Store) -> list[str]:
    return sorted(e.path for e in store.backend.list(JOURNAL2))


def _announced(store: cas.Store) -> Counter:
    counts: Counter = Counter()
    for key in _keys(store):
        counts.update(e.ref.path for e in store.records.journal2.read(parse_journal2_key(key)))
    return counts


def test_writer_processes_lose_and_duplicate_nothing(where, tmp_path):
    url, options = where
    _open(url, options, tmp_path / "init.sqlite").close()  # the store is format 2 from here on
    go = str(tmp_path / "go")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, json.dumps(options), str(w), str(SAVES_EACH), go, str(tmp_path / f"index-{w}.sqlite")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for w in range(WRITERS)
    ]  # fmt: skip
    deadline = time.monotonic() + 120
    while sum(os.path.exists(f"{go}.ready-{w}") for w in range(WRITERS)) < WRITERS:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    open(go, "w").close()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    for done in results:
        assert [own for own, _ in done] == list(range(1, SAVES_EACH + 1))
    shared = sorted(s for done in results for _, s in done)
    assert shared == list(range(1, WRITERS * SAVES_EACH + 1))  # no duplicate, no gap
    # Every machine (each writer's own index, and a new one) learns every version by refresh.
    for index in [tmp_path / f"index-{w}.sqlite" for w in range(WRITERS)] + [tmp_path / "init.sqlite"]:
        with _open(url, options, index) as machine:
            machine.refresh()
            for w in range(WRITERS):
                assert [v.version for v in machine.list_versions(f"own/w{w}/model")] == list(range(1, SAVES_EACH + 1))
                assert machine.get_artifact_version(f"own/w{w}/model", "prod").version == SAVES_EACH
            got = {machine.get_artifact_version("all/train/model", n).load() for n in shared}
            assert got == {f"shared w{w} {i}".encode() for w in range(WRITERS) for i in range(SAVES_EACH)}
    with _open(url, options, tmp_path / "check.sqlite") as store:
        assert not list(store.backend.list(JOURNAL))  # format 2 writes no format-1 journal
        announced = _announced(store)
        # One entry per save (its version and its alias move together), every ref announced.
        assert len(_keys(store)) == 2 * WRITERS * SAVES_EACH
        assert set(announced) == {ref for ref, _ in store.index.iter_records()}
        # Twice only where a writer lost a claim to one that had not journalled yet, and
        # completed it (as format 1 does): never for a name that had one writer.
        assert not [ref for ref, n in announced.items() if n > 1 and not ref.startswith("refs/versions/all/")]
        assert store.verify().ok


def test_a_save_with_aliases_and_a_sync_are_one_entry_each(tmp_path):
    src = cas.open_store(tmp_path / "src", format=2)
    src.save(b"x", "p/s/a", aliases=["prod", "staging"])
    [key] = _keys(src)
    refs = [e.ref.path for e in src.records.journal2.read(parse_journal2_key(key))]
    assert refs == ["refs/versions/p/s/a/1", "refs/aliases/p/s/a/prod/0", "refs/aliases/p/s/a/staging/0"]
    for i in range(5):
        src.save(f"{i}".encode(), f"p/s/n{i}")
    dst = cas.open_store(tmp_path / "dst", format=2)
    assert src.sync_to(dst).refs_sent == 8
    [entry] = _keys(dst)
    assert len(dst.records.journal2.read(parse_journal2_key(entry))) == 8
    with cas.open_store(tmp_path / "dst", index=str(tmp_path / "other.sqlite")) as other:
        assert other.get_artifact_version("p/s/a", "staging").load() == b"x"


def test_format1_stores_write_no_format2_journal(tmp_path):
    store = cas.open_store(tmp_path / "s", format=1)
    store.save(b"x", "p/s/a", aliases=["prod"])
    assert not list(store.backend.list(JOURNAL2)) and len(list(store.backend.list(JOURNAL))) == 2


# -- clocks, slow writers and stale readers -----------------------------------------------


def test_skewed_and_slow_writers_are_not_missed(tmp_path, monkeypatch):
    url = tmp_path / "s"
    reader = cas.open_store(url, format=2, index=str(tmp_path / "reader.sqlite"))
    writer = cas.open_store(url, index=str(tmp_path / "writer.sqlite"))
    real = journal_mod.now_us
    us = 1_000_000
    # A writer whose clock is behind by almost SKEW names entries the reader's horizon
    # (WINDOW before its own now) has not passed: the next refresh still lists them.
    reader.refresh()
    monkeypatch.setattr(journal_mod, "now_us", lambda: real() - int((SKEW - 5) * us))
    writer.save(b"behind", "p/s/behind")
    # One whose clock is ahead by almost SKEW writes into a future slot: listed too.
    monkeypatch.setattr(journal_mod, "now_us", lambda: real() + int((SKEW - 5) * us))
    writer.save(b"ahead", "p/s/ahead")
    # A writer paused longer than LATE between naming its entry and its write landing
    # writes it again under a fresh name: a reader that passed the first one's slot reads the second.
    calls = iter(range(1_000_000))

    def paused_after_naming() -> int:  # the first name is taken 2 * WINDOW before the write returns
        return real() - (int(2 * WINDOW * us) if next(calls) == 0 else 0)

    monkeypatch.setattr(journal_mod, "now_us", paused_after_naming)
    writer.save(b"slow", "p/s/slow")
    monkeypatch.setattr(journal_mod, "now_us", real)
    slow = [k for k in _keys(writer) if version_ref("p/s/slow", 1) in _announced_by(writer, k)]
    assert len(slow) == 2 and parse_journal2_key(slow[1]).stamp - parse_journal2_key(slow[0]).stamp > LATE * us
    assert reader.refresh() == 3
    for name in ("behind", "ahead", "slow"):
        assert reader.get_artifact_version(f"p/s/{name}", 1).load() == name.encode()
    assert reader.refresh() == 0


def _announced_by(store: cas.Store, key: str) -> set[str]:
    return {e.ref.path for e in store.records.journal2.read(parse_journal2_key(key))}


class Counting:
    """Counts a backend's list and read calls, by the prefix they touch."""

    def __init__(self, store: cas.Store, monkeypatch) -> None:
        self.lists: list[str] = []
        self.reads: list[str] = []
        backend = store.backend
        real_list, real_read = backend.list, backend.read_bytes
        monkeypatch.setattr(backend, "list", lambda prefix: (self.lists.append(prefix), real_list(prefix))[1])
        monkeypatch.setattr(backend, "read_bytes", lambda rel: (self.reads.append(rel), real_read(rel))[1])

    def journal_reads(self) -> list[str]:
        return [r for r in self.reads if r.startswith(JOURNAL2 + "/")]

    def reset(self) -> None:
        self.lists.clear()
        self.reads.clear()


def test_refresh_costs_what_is_new(where, tmp_path, monkeypatch):
    url, options = where
    writer = _open(url, options, tmp_path / "w.sqlite")
    reader = _open(url, options, tmp_path / "r.sqlite")
    for i in range(12):
        writer.save(f"{i}".encode(), f"p/s/a{i % 3}")
    count = Counting(reader, monkeypatch)
    assert reader.refresh() == 12
    assert len(count.journal_reads()) == 12  # one read per new entry
    assert len(count.lists) <= 3 and all(p.startswith(JOURNAL2 + "/") for p in count.lists)  # a few slots, not the bucket
    count.reset()
    assert reader.refresh() == 0
    assert count.journal_reads() == [] and len(count.lists) <= 3  # the skew window is listed again, nothing re-read
    assert [r for r in count.reads if not r.startswith(JOURNAL + "/")] == []  # (format 1: one probe of journal/)
    writer.save(b"one more", "p/s/new")
    count.reset()
    assert reader.refresh() == 1 and len(count.journal_reads()) == 1


def test_a_reader_with_a_stale_cursor_catches_up(tmp_path, monkeypatch):
    url = tmp_path / "s"
    writer = cas.open_store(url, format=2, index=str(tmp_path / "w.sqlite"))
    reader = cas.open_store(url, index=str(tmp_path / "r.sqlite"))
    real = journal_mod.now_us
    day = 86_400 * 1_000_000
    # The reader last looked three days ago; entries were written every few hours since.
    with reader.index.write() as c:
        reader.index.journal2_rebuilt(c, real() - 3 * day, [])
    for i in range(12):
        monkeypatch.setattr(journal_mod, "now_us", lambda i=i: real() - 3 * day + i * day // 4 + 1_000_000)
        writer.save(f"{i}".encode(), "p/s/a")
    monkeypatch.setattr(journal_mod, "now_us", real)
    count = Counting(reader, monkeypatch)
    assert reader.refresh() == 12
    assert [v.version for v in reader.list_versions("p/s/a")] == list(range(1, 13))
    assert len(count.lists) <= 4 + 6  # about one listing per day away, then the slots of today
    assert len(count.journal_reads()) == 12


# -- a writer killed between its claim and its entry ------------------------------------------

KILLED = textwrap.dedent(
    """
    import os, signal, sys
    import cas
    from cas.storage.journal import Journal2
    def die(self, pairs):
        os.kill(os.getpid(), signal.SIGKILL)  # the refs are claimed; no entry announces them
    Journal2.append = die
    store = cas.open_store(sys.argv[1], index=sys.argv[2])
    store.save(b"orphaned", "p/s/a", aliases=["prod"])
    """
)


@pytest.mark.parametrize("completer", ["next-save", "gc", "reindex"])
def test_a_writer_killed_before_its_entry_is_completed(tmp_path, completer):
    url = tmp_path / "s"
    reader = cas.open_store(url, format=2, index=str(tmp_path / "reader.sqlite"))
    other = cas.open_store(url, index=str(tmp_path / "other.sqlite"))
    proc = subprocess.run([sys.executable, "-c", KILLED, str(url), str(tmp_path / "dead.sqlite")], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert reader.backend.exists(version_ref("p/s/a", 1)) and not _keys(reader)  # an orphan
    assert reader.refresh() == 0  # nothing announces it yet
    if completer == "next-save":
        assert other.save(b"next", "p/s/a").version == 2  # its lost claim completes version 1
    elif completer == "gc":
        other.gc()
    else:
        other.reindex()
    reader.refresh()
    assert reader.get_artifact_version("p/s/a", 1).load() == b"orphaned"
    if completer == "next-save":
        # The next claimer completes the ref it met; its alias move is another ref: verify completes it
        assert reader.verify().orphans == ["refs/aliases/p/s/a/prod/0"]
    assert reader.get_artifact_version("p/s/a", "prod").version == 1
    assert reader.verify().ok


# -- crafted keys and entries -----------------------------------------------------------------


def _plant(store: cas.Store, key: str, data: bytes) -> str:
    assert store.backend.create_bytes(key, data)
    return key


def test_crafted_keys_and_entries_are_refused_and_block_nothing(tmp_path):
    url = tmp_path / "s"
    writer = cas.open_store(url, format=2, index=str(tmp_path / "w.sqlite"))
    reader = cas.open_store(url, index=str(tmp_path / "r.sqlite"))
    good = writer.save(b"good", "p/s/a")
    record = writer.records.read_ref(version_ref("p/s/a", 1))
    now = journal_mod.now_us()
    key = journal2_key(now, "00000000000000aa", 0)
    wrong_slot = key.replace(key.split("/")[2], "0000" if key.split("/")[2] != "0000" else "0010")
    bad_keys = [
        _plant(writer, wrong_slot, encode_entry([(version_ref("p/s/a", 1), record)])),
        _plant(writer, key.replace("00000000000000aa", "00000000000000AA"), b"x"),
        _plant(writer, key + "-1", b"x"),
        _plant(writer, key.rsplit("/", 1)[0] + "/notakey", b"x"),
    ]
    bad_entries = [
        _plant(writer, journal2_key(now, "00000000000000b1", 0), b"\xc1 not msgpack"),
        _plant(writer, journal2_key(now, "00000000000000b2", 0), encode_entry([("refs/versions/../etc/passwd/1", record)])),
        _plant(writer, journal2_key(now, "00000000000000b3", 0),
               encode_entry([(version_ref("p/s/a", 1), record), (version_ref("p/s/a", 1), record)])),
        _plant(writer, journal2_key(now, "00000000000000b4", 0), encode_entry([(version_ref("p/s/a", 1), "0" * 63)])),
    ]  # fmt: skip
    missing = _plant(writer, journal2_key(now, "00000000000000b5", 0), encode_entry([(version_ref("p/s/zz", 1), "ab" * 32)]))
    later = writer.save(b"later", "p/s/b")
    reader.refresh()  # nothing raised
    assert reader.get_artifact_version("p/s/b", 1).load() == b"later"
    assert reader.get_artifact_version("p/s/a", 1).digest == good.digest
    rejected = reader.index.rejected()
    for bad in bad_entries + [missing]:
        assert any(bad in r for r in rejected), (bad, rejected)
    invalid = reader.verify().invalid
    for bad in bad_keys:
        assert any(bad in i for i in invalid), (bad, invalid)
    assert later.version == 1
    assert reader.refresh() == 0  # refused once, not re-read or re-reported each time


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80", b"\x81\xa4refs\x90", b"\x81\xa4refs\xa1x", b"\x91\x92\xa1a\xa1b", b"\x81\xa4refs\x91\x91\xa1a"],
)
def test_decode_entry_refuses_garbage(data):
    with pytest.raises(CorruptRecordError, match="journal2/k: not a journal entry"):
        decode_entry(data, "journal2/k")

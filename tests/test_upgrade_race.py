"""Writers of a format-1 store while another process upgrades it (docs/format.md, Upgrading).

Real processes: two writers open the store while it is format 1 and go on saving
(a blob and a small tree a round) while a third runs ``cas upgrade``.  One writer
refreshes after every save, so it sees the flip and switches to format 2 in
flight (journal2 entries, packs); the other never refreshes and writes format-1
objects to the end.  Whatever either committed, before, during or after the
upgrade, a fresh index finds, reads back byte for byte, and gc keeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cas
from cas.core.refs import JOURNAL

WRITER = textwrap.dedent(
    """
    import json, os, sys
    import cas

    store_dir, index, who, refresh, stop = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "refresh", sys.argv[5]
    store = cas.open_store(store_dir, index=index, create=False)
    work = os.path.join(os.path.dirname(index), who)
    log = open(os.path.join(os.path.dirname(index), who + ".log"), "w")  # one line per round, as it ends
    after_flip = 0
    for i in range(3000):
        tree = os.path.join(work, str(i))
        os.makedirs(tree)
        for k in range(3):
            with open(os.path.join(tree, f"f{k}.txt"), "wb") as f:
                f.write(f"{who} round {i} file {k} ".encode() * 20)
        blob = store.save(f"{who} round {i}".encode(), f"race/{who}/blob")
        saved = store.save(__import__("pathlib").Path(tree), f"race/{who}/tree")
        if refresh:
            store.refresh()
        print(json.dumps({"round": i, "blob": blob.version, "tree": saved.version, "format": store.format}), file=log, flush=True)
        after_flip += store.format == 2
        if (refresh and after_flip >= 5) or os.path.exists(stop):
            break
    """
)


def start_writer(store_dir: Path, tmp_path: Path, who: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store_dir), str(tmp_path / f"{who}.sqlite"), who, mode, str(tmp_path / "stop")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def rounds_of(tmp_path: Path, who: str) -> list[dict]:
    log = tmp_path / f"{who}.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_writers_racing_an_upgrade_in_another_process_lose_nothing(tmp_path):
    store_dir = tmp_path / "store"
    with cas.open_store(store_dir, format=1) as s:
        s.save(b"before everything", "race/base/blob")
    refreshing = start_writer(store_dir, tmp_path, "refreshing", "refresh")
    late = start_writer(store_dir, tmp_path, "late", "never")
    try:
        deadline = time.monotonic() + 120
        while min(len(rounds_of(tmp_path, "refreshing")), len(rounds_of(tmp_path, "late"))) < 3:
            assert refreshing.poll() is None and late.poll() is None, "a writer ended before the upgrade"
            assert time.monotonic() < deadline, "the writers did not start saving"
            time.sleep(0.02)  # both are saving before the upgrade starts
        env = {**os.environ, "CAS_STORE": str(store_dir)}
        upgraded = subprocess.run([sys.executable, "-m", "cas.cli", "upgrade", "--json"], env=env,
                                  capture_output=True, text=True, timeout=300)
        assert upgraded.returncode == 0, upgraded.stderr
        _, err = refreshing.communicate(timeout=120)  # it stops 5 rounds after it saw the flip
        assert refreshing.returncode == 0, err
        time.sleep(0.2)  # the late writer goes on in format 1 a little after the flip
        (tmp_path / "stop").touch()
        _, late_err = late.communicate(timeout=300)
        assert late.returncode == 0, late_err
    finally:
        for proc in (refreshing, late):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert json.loads(upgraded.stdout)["to_format"] == 2
    seen, late_rounds = rounds_of(tmp_path, "refreshing"), rounds_of(tmp_path, "late")
    formats = [r["format"] for r in seen]
    assert formats[-1] == 2 and formats == sorted(formats), "the refreshing writer switched to format 2, once"
    assert {r["format"] for r in late_rounds} == {1}, "an open Store that never refreshes stays format 1"
    assert list(store_dir.glob("journal2/*/*/*")), "the switched writer journalled in format 2"

    def check(store: cas.Store) -> None:
        assert store.format == 2
        for who, rounds in (("refreshing", seen), ("late", late_rounds)):
            assert [v.version for v in store.list_versions(f"race/{who}/blob")] == [r["blob"] for r in rounds]
            assert [v.version for v in store.list_versions(f"race/{who}/tree")] == [r["tree"] for r in rounds]
            for r in rounds:
                i = r["round"]
                assert store.get_artifact_version(f"race/{who}/blob", r["blob"]).read_bytes() == f"{who} round {i}".encode()
                tree = store.get_artifact_version(f"race/{who}/tree", r["tree"])
                for k in range(3):
                    assert tree.read_bytes(f"f{k}.txt") == f"{who} round {i} file {k} ".encode() * 20
        assert store.get_artifact_version("race/base/blob", 1).read_bytes() == b"before everything"

    with cas.open_store(store_dir, index=str(tmp_path / "fresh.sqlite"), create=False) as fresh:
        check(fresh)
        assert fresh.verify(deep=True).ok
        time.sleep(0.05)
        fresh.gc(grace=0)
        check(fresh)
        assert fresh.verify(deep=True).ok
    for who in ("refreshing", "late"):  # each writer's own index catches up too
        with cas.open_store(store_dir, index=str(tmp_path / f"{who}.sqlite"), create=False) as own:
            check(own)
    with cas.open_store(store_dir, index=str(tmp_path / "after-gc.sqlite"), create=False) as again:
        check(again)
        assert list((store_dir / JOURNAL).iterdir()), "the format-1 journal is kept: late entries live there"


def test_cas_format_is_read_once_at_open_and_once_per_refresh_only_below_the_newest_format(tmp_path, monkeypatch):
    from cas.storage.records import RecordStore

    reads = []
    real = RecordStore.read_format
    monkeypatch.setattr(RecordStore, "read_format", lambda self: reads.append(1) or real(self))
    for fmt, per_refresh in ((1, 1), (2, 0)):
        with cas.open_store(tmp_path / f"f{fmt}", format=fmt) as s:
            reads.clear()
        with cas.open_store(tmp_path / f"f{fmt}", create=False) as s:
            assert len(reads) == 1, "opening reads cas-format once, its first refresh does not again"
            reads.clear()
            s.refresh()
            s.refresh()
            assert len(reads) == 2 * per_refresh

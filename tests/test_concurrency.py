"""Versions are claimed, not counted (DESIGN invariant 6), with real processes.

Eight OS processes share one local store directory (and its SQLite index)
and save versions of the same name at the same moment: no errors, versions
1..N with no duplicate and no gap, every version holds what its writer
saved, and the store verifies clean and reindexes to the same answers.

A ``Store`` is also shared by threads (invariant 14): several threads of one
process save, read, alias, record runs and refresh through one handle while
other processes write the same store, with the same guarantees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from store_helpers import answers, make_tree, resume, resume_only, start_paused, wait_stopped, waits_for_paused

import cas
from cas.storage.blobs import blob_path

WRITERS = 8
SAVES_EACH = 6

WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import cas
    import cas.errors

    store_dir, worker, saves, go, index = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    store = cas.open_store(store_dir, index=index or None)
    Path(f"{go}.ready-{worker}").touch()
    while not os.path.exists(go):  # a start line, so the saves really overlap
        time.sleep(0.001)
    done = []
    for i in range(saves):
        content = f"worker {worker} save {i}".encode()
        aliases = [f"w{worker}"] if i == saves - 1 else []
        v = store.save(content, "race/train/model", metadata={"worker": worker, "i": i}, aliases=aliases)
        # a second name shared by everyone, saving identical bytes (dedupe under contention)
        store.save(b"same bytes from everyone", "race/train/shared")
        done.append([v.version, content.decode()])
    print(json.dumps(done))
    """
)


def run_writers(tmp_path, store_dir: str, *, own_index: bool) -> list[tuple[int, str]]:
    go = str(tmp_path / "go")
    procs = []
    for w in range(WRITERS):
        index = str(tmp_path / f"index-{w}.sqlite") if own_index else ""
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, store_dir, str(w), str(SAVES_EACH), go, index],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        # Every writer has imported cas and opened the store: start them together.
        deadline = time.monotonic() + 120
        while sum(os.path.exists(f"{go}.ready-{w}") for w in range(WRITERS)) < WRITERS:
            assert time.monotonic() < deadline, "writers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.01)
        open(go, "w").close()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            assert err == "", err  # no error, no warning
            results.extend((v, content) for v, content in json.loads(out))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def check_store(store: cas.Store, results: list[tuple[int, str]]) -> None:
    total = WRITERS * SAVES_EACH
    claimed = sorted(v for v, _ in results)
    assert claimed == list(range(1, total + 1)), "duplicate or missing version numbers"
    versions = store.list_versions("race/train/model")
    assert [v.version for v in versions] == list(range(1, total + 1))
    by_version = dict(results)
    for v in versions:
        assert v.read_text() == by_version[v.version]
        assert v.metadata["worker"] == int(by_version[v.version].split()[1])
    shared = store.list_versions("race/train/shared")
    assert [v.version for v in shared] == list(range(1, total + 1))
    assert len({v.digest for v in shared}) == 1
    aliases = store.aliases("race/train/model")
    assert sorted(aliases) == [f"w{w}" for w in range(WRITERS)]
    for w in range(WRITERS):
        assert store.get_artifact_version("race/train/model", f"w{w}").read_text() == f"worker {w} save {SAVES_EACH - 1}"
    report = store.verify(deep=True)
    assert report.ok, report
    before = answers(store)
    store.reindex()
    assert answers(store) == before


@pytest.mark.slow
def test_eight_processes_save_one_name_sharing_one_index(tmp_path):
    """One local store, one shared SQLite index: eight writers at once."""
    store_dir = str(tmp_path / "store")
    cas.open_store(store_dir).close()  # the format file exists; the writers race for everything else
    results = run_writers(tmp_path, store_dir, own_index=False)
    with cas.open_store(store_dir) as store:
        check_store(store, results)


@pytest.mark.slow
def test_eight_processes_with_their_own_indexes(tmp_path):
    """Eight "machines": one shared backend, eight private indexes that only learn
    from the backend (claims that lose, and the journal)."""
    store_dir = str(tmp_path / "store")
    results = run_writers(tmp_path, store_dir, own_index=True)
    with cas.open_store(store_dir, index=str(tmp_path / "fresh.sqlite")) as store:
        check_store(store, results)
    # every writer's private index, caught up from the backend, agrees
    with cas.open_store(store_dir) as reference:
        expected = answers(reference)
    for w in range(WRITERS):
        with cas.open_store(store_dir, index=str(tmp_path / f"index-{w}.sqlite")) as s:
            assert answers(s) == expected


@pytest.mark.slow
def test_writers_on_a_brand_new_store(tmp_path):
    """Eight processes create the store at once: one format file wins, nobody fails."""
    store_dir = str(tmp_path / "store")
    results = run_writers(tmp_path, store_dir, own_index=False)
    with cas.open_store(store_dir) as store:
        check_store(store, results)
    fmt = json.loads((tmp_path / "store" / "cas-format").read_text())
    assert fmt["store_id"] == cas.open_store(store_dir).store_id


@pytest.mark.slow
def test_reindex_while_others_write(tmp_path):
    """`cas reindex` during a burst of saves loses none of them."""
    store_dir = str(tmp_path / "store")
    cas.open_store(store_dir).close()
    reindexer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """
            import os, sys, cas
            s = cas.open_store(sys.argv[1])
            while not os.path.exists(sys.argv[2]):
                s.reindex()
            s.reindex()
            """
        ), store_dir, str(tmp_path / "stop")],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        results = run_writers(tmp_path, store_dir, own_index=False)
    finally:
        open(tmp_path / "stop", "w").close()
        _, err = reindexer.communicate(timeout=120)
    assert reindexer.returncode == 0, err
    with cas.open_store(store_dir) as store:
        check_store(store, results)


# -- one Store shared by threads -------------------------------------------------------

THREADS = 4
THREAD_SAVES = 10


def thread_work(store: cas.Store, worker: str, saves: int, tree_dir: str) -> list[list]:
    """One thread's share: saves read back at once, trees, aliases, a run, refreshes."""
    done = []
    with store.run("race", params={"worker": worker}) as run, run.step(f"step-{worker}"):
        for i in range(saves):
            content = f"worker {worker} save {i}".encode()
            v = store.save(content, "race/train/model", metadata={"worker": worker, "i": i})
            assert store.get_artifact_version("race/train/model", v.version).read_bytes() == content
            store.save(b"same bytes from everyone", "race/train/shared")
            if i % 3 == 0:
                root = make_tree(Path(tree_dir) / f"{worker}-{i}", {"a.txt": content, f"d/{i}.bin": bytes(64)})
                t = store.save(root, "race/train/tree")
                assert t.read_bytes("a.txt") == content and [f[0] for f in t.files()] == ["a.txt", f"d/{i}.bin"]
            store.set_alias("race/train/model", v.version, f"w{worker}")
            store.list_versions("race/train/model")
            store.refresh()
            done.append([v.version, content.decode()])
    return done


def run_threads(store: cas.Store, names: list[str], saves: int, tree_dir: str, timeout: float = 240) -> list:
    """Run thread_work for each name in its own thread; every error is kept, nothing hangs."""
    results: list = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(worker: str) -> None:
        try:
            done = thread_work(store, worker, saves, tree_dir)
        except BaseException as e:  # noqa: BLE001 - every failure of any thread is the finding
            with lock:
                errors.append(e)
        else:
            with lock:
                results.extend(done)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in names]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0))
    assert not any(t.is_alive() for t in threads), "a thread hung (a lock never released?)"
    assert errors == [], f"{len(errors)} thread errors, first: {errors[0]!r}"
    return results


def check_shared(store: cas.Store, results: list, workers: list[str]) -> None:
    """0 lost versions: every save is readable, numbered 1..N with no gap and no duplicate."""
    total = len(results)
    assert sorted(v for v, _ in results) == list(range(1, total + 1)), "duplicate or missing version numbers"
    by_version = dict(results)
    versions = store.list_versions("race/train/model")
    assert [v.version for v in versions] == list(range(1, total + 1))
    for v in versions:
        assert v.read_text() == by_version[v.version]
    assert [v.version for v in store.list_versions("race/train/shared")] == list(range(1, total + 1))
    assert sorted(store.aliases("race/train/model")) == sorted(f"w{w}" for w in workers)
    assert {r.status for r in store.list_runs("race")} == {"completed"}
    assert len(store.list_runs("race")) == len(workers)
    assert store.verify(deep=True).ok
    before = answers(store)
    store.reindex()
    assert answers(store) == before


def test_one_store_shared_by_threads(lstore, tmp_path):
    """Four threads through one Store: 0 errors, 0 lost versions (was: sqlite's
    "cannot start a transaction within a transaction" / "database is locked")."""
    workers = [str(w) for w in range(THREADS)]
    results = run_threads(lstore, workers, THREAD_SAVES, str(tmp_path / "trees"))
    check_shared(lstore, results, workers)


def test_threads_that_end_close_their_connections(local_store):
    """Each thread's index connection ends with the thread, and close() ends the rest."""
    import gc

    import psutil

    def fds() -> int:
        gc.collect()
        return psutil.Process().num_fds()

    def round_of_threads() -> None:
        threads = [threading.Thread(target=lambda: local_store.get_artifact_version("p/s/a")) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    local_store.save(b"x", "p/s/a")
    for _ in range(2):  # what first uses open once (the WAL's files; SQLite keeps a few closed fds for reuse)
        round_of_threads()
    before = fds()
    for _ in range(3):
        round_of_threads()
    assert fds() < before + 8  # a connection left open per thread would be 3 fds each: 72 more
    reader = threading.Event()
    finish = threading.Event()

    def hold() -> None:
        local_store.get_artifact_version("p/s/a")
        reader.set()
        finish.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    reader.wait(30)
    local_store.close()  # closes the live thread's connection too
    finish.set()
    t.join()
    with pytest.raises(Exception, match="closed"):
        local_store.index.conn.execute("SELECT 1")


THREADED_WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[5])
    import cas
    from test_concurrency import run_threads

    store_dir, proc, go, tree_dir = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    store = cas.open_store(store_dir)
    Path(f"{go}.ready-{proc}").touch()
    while not os.path.exists(go):
        time.sleep(0.001)
    workers = [f"{proc}t{t}" for t in range(3)]
    print(json.dumps(run_threads(store, workers, 6, tree_dir)))
    """
)


@pytest.mark.slow
def test_threads_and_processes_share_one_store(tmp_path):
    """Two processes with three threads each, and three threads here, on one local
    store and its one SQLite index: every version lands exactly once."""
    store_dir = str(tmp_path / "store")
    store = cas.open_store(store_dir)
    go = str(tmp_path / "go")
    here = os.path.dirname(os.path.abspath(__file__))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", THREADED_WRITER, store_dir, f"p{p}", go, str(tmp_path / f"trees-{p}"), here],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(2)
    ]
    try:
        deadline = time.monotonic() + 120
        while sum(os.path.exists(f"{go}.ready-p{p}") for p in range(2)) < 2:
            assert time.monotonic() < deadline, "writers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.01)
        open(go, "w").close()
        local = [f"m{t}" for t in range(3)]
        results = run_threads(store, local, 6, str(tmp_path / "trees-here"))
        workers = list(local)
        for i, p in enumerate(procs):
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            assert err == "", err
            results.extend(json.loads(out))
            workers.extend(f"p{i}t{t}" for t in range(3))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    store.refresh()
    check_shared(store, [tuple(r) for r in results], workers)
    store.close()


# -- a save that reuses a blob, racing gc (issue 9, case 2) -------------------------------------

REUSED = b"content whose only version was deleted, so gc may take it" * 100

CLOUD_PARAMS = [pytest.param(b, marks=getattr(pytest.mark, b)) for b in ("s3", "gcs", "azure")]


def deleted_blob(store: cas.Store) -> str:
    """Stored content no live version uses: what gc(grace=0) removes."""
    v = store.save(REUSED, "reuse/s/old")
    store.delete_version("reuse/s/old", 1)
    return v.digest.hex


@pytest.mark.parametrize("backend_name", ["local", *CLOUD_PARAMS])
def test_dedupe_hit_paused_before_its_claim_survives_gc(store_url, storage_options, tmp_path):
    """A save finds its content already stored (a dedupe hit: nothing written, no mtime
    touched), is paused before claiming its version, and gc removes that very blob
    (and the save's record) meanwhile: once resumed, the save puts back what it needs
    before it commits, so its version reads back whole."""
    with cas.open_store(store_url, index=str(tmp_path / "gc.sqlite"), **storage_options) as store:
        digest = deleted_blob(store)
        writer = start_paused(store_url, storage_options, str(tmp_path / "writer.sqlite"), "writer", REUSED)
        try:
            assert store.gc(grace=0).removed >= 2  # the reused blob and the paused save's record
            assert not store.blobs.exists(digest)
        finally:
            version = resume(writer)
        assert version == "1"
        v = store.get_artifact_version("reuse/s/new", 1)
        assert v.digest.hex == digest and v.read_bytes() == REUSED
        report = store.verify(deep=True)
        assert report.ok, report
        store.gc(grace=0)
        assert store.get_artifact_version("reuse/s/new").read_bytes() == REUSED


@pytest.mark.parametrize("backend_name", ["local", *CLOUD_PARAMS[:1]])
@pytest.mark.parametrize("role", ["writer", "writer-object"])
def test_fresh_save_paused_before_its_claim_survives_gc_with_no_grace(store_url, storage_options, tmp_path, role):
    """``gc --grace 0`` while a save of new content (bytes, or an object a materializer
    stores) is paused before its claim: gc removes the blobs the save wrote (content
    and record); the save puts them back."""
    with cas.open_store(store_url, index=str(tmp_path / "gc.sqlite"), **storage_options) as store:
        writer = start_paused(store_url, storage_options, str(tmp_path / "writer.sqlite"), role, REUSED)
        try:
            assert store.gc(grace=0).removed == 2
        finally:
            assert resume(writer) == "1"
        want = REUSED if role == "writer" else {"text": REUSED.decode(), "n": [1, 2, 3]}
        assert store.load("reuse/s/new", 1) == want
        assert store.verify(deep=True).ok


@pytest.mark.parametrize("backend_name", ["local", *CLOUD_PARAMS[:1]])
def test_dedupe_hit_claimed_while_gc_is_paused_mid_sweep(store_url, storage_options, tmp_path):
    """gc has listed the refs and is paused just before removing a blob; a save of that
    content claims its version meanwhile.  The save must not commit before the sweep
    is over, and then it puts the blob back."""
    with cas.open_store(store_url, index=str(tmp_path / "writer.sqlite"), **storage_options) as store:
        digest = deleted_blob(store)
        gc = start_paused(store_url, storage_options, str(tmp_path / "gc.sqlite"), "gc", REUSED)
        # A writer relying on none of the blobs this sweep may remove does not wait for it.
        began = time.monotonic()
        store.save(b"unrelated", "reuse/s/other")
        store.set_alias("reuse/s/other", 1, "production")
        assert time.monotonic() - began < 30
        saved = waits_for_paused(
            lambda: store.save(REUSED, "reuse/s/new"), gc,
            "the save committed while a sweep that may remove its blob was running",
        )
        assert saved.read_bytes() == REUSED and saved.digest.hex == digest
        assert store.verify(deep=True).ok


def test_one_pass_stream_whose_reused_blob_gc_took_is_refused(tmp_path):
    """The content of a one-pass stream cannot be put back: the save fails loudly and
    the number it claimed is recorded deleted, so no index ever shows a version
    without its content."""
    url = str(tmp_path / "store")
    with cas.open_store(url, index=str(tmp_path / "gc.sqlite")) as store:
        deleted_blob(store)
        writer = start_paused(url, {}, str(tmp_path / "writer.sqlite"), "one-pass", REUSED)
        try:
            store.gc(grace=0)
        finally:
            out = resume(writer)
        assert out.startswith("refused:"), out
        with pytest.raises(cas.VersionDeletedError):
            store.get_artifact_version("reuse/s/new", 1)
        assert store.verify(deep=True).ok


def test_claim_whose_reused_blob_was_collected_is_not_completed_by_others(tmp_path):
    """A sweep takes the reused blob before the claim; the writer is paused again just
    after claiming.  Another machine meeting that unjournalled ref must not publish a
    version without its bytes; once resumed, the writer puts the blob back and commits."""
    url = str(tmp_path / "store")
    with cas.open_store(url, index=str(tmp_path / "gc.sqlite")) as store:
        digest = deleted_blob(store)
        old = time.time() - 7200
        os.utime(store.backend.abspath(blob_path(digest)), (old, old))
        writer = start_paused(url, {}, str(tmp_path / "writer.sqlite"), "writer-twice", REUSED)
        try:
            assert store.gc(grace=3600).removed == 1  # the old reused blob; the save's fresh record stays
            resume_only(writer)
            wait_stopped(writer)  # claimed, not yet checked for sweeps
            with cas.open_store(url, index=str(tmp_path / "fresh.sqlite")) as fresh:  # a reindex
                assert "reuse/s/new" not in fresh.list_artifacts(), "a reindex shows a version without its bytes"
            with pytest.raises(cas.ArtifactNotFoundError):
                store.get_artifact_version("reuse/s/new", 1)
            report = store.verify()
            assert report.orphans == [] and report.dangling == ["refs/versions/reuse/s/new/1"], report
        finally:
            assert resume(writer) == "1"
        assert store.get_artifact_version("reuse/s/new", 1).read_bytes() == REUSED
        report = store.verify(deep=True)
        assert report.ok and report.dangling == [], report

"""Publish in order (DESIGN invariants 4 and 5): SIGKILL a saving process, many times over.

A child process saves bytes, a large file, a directory tree and a stream,
moves an alias and deletes a version, against one local store.  It is killed
with a real SIGKILL:

* at every kind of step of the publish order, deterministically: the child
  counts its own file-system calls (write, fsync - also those a batch runs
  in its pool -, link, rename, unlink) and index transactions, and kills itself at call N, for N spread
  over the whole scenario;
* and at random moments, from the parent.

After every kill: the store opens, ``verify(deep=True)`` is clean, every
version any name points at reads back whole and verified, and a reindex from
the backend alone gives the same answers.  The one difference allowed is the
one the design allows: an index may be *behind* the backend (a child killed
between claiming a version and journaling it), never ahead of it and never
different from it; such a version is learned, unchanged, from the backend.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import kill_points
import pytest
from store_helpers import all_names, answers

import cas
from cas.core.refs import JOURNAL

CHILD = textwrap.dedent(
    """
    import io, os, random, sys
    from pathlib import Path
    import cas
    import kill_points

    store_dir, crash_at, seed, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    rng = random.Random(seed)
    store = cas.open_store(store_dir)

    # inputs are made before the counter is armed: fresh content every run, so blobs are really written
    big = work / f"big-{seed}.bin"
    big.write_bytes(rng.randbytes(3 << 20))
    tree = work / f"tree-{seed}"
    (tree / "sub").mkdir(parents=True)
    (tree / "shared.txt").write_bytes(b"the same in every tree")
    for i in range(4):
        (tree / "sub" / f"f{i}.bin").write_bytes(rng.randbytes(rng.choice([10, 5000, 1200000])))

    kill_points.arm(crash_at)  # the os calls of a save, and every index transaction
    print("ready", flush=True)

    def scenario():
        store.save(rng.randbytes(64), "crash/s/bytes", metadata={"seed": seed})
        store.save(big, "crash/s/file")
        store.save(tree, "crash/s/tree", aliases=["candidate"])
        store.save(io.BytesIO(rng.randbytes(100000)), "crash/s/stream")
        store.set_alias("crash/s/bytes", "latest", "production")
        live = store.list_versions("crash/s/bytes")
        if len(live) > 2:
            store.delete_version("crash/s/bytes", live[0].version)

    scenario()
    while crash_at < 0:  # killed from outside, at a random moment
        scenario()
    print("calls", kill_points.calls(), flush=True)
    """
)


def start(store_dir, work, crash_at: int, seed: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store_dir), str(crash_at), str(seed), str(work)],
        env=kill_points.child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def journaled_refs(store: cas.Store) -> set[str]:
    refs, seq = set(), 0
    while (entry := store.records.read_journal(seq)) is not None:
        refs.add(entry.ref.path)
        seq += 1
    assert seq == store.records.journal_end(), "the journal has a hole"
    assert not [e for e in store.backend.list(JOURNAL) if not e.path.rsplit("/", 1)[-1].isdigit()]
    return refs


def check_consistent(store_dir, tmp_path, label: str) -> int:
    """Every invariant a crash must keep; returns how many versions the store holds."""
    with cas.open_store(store_dir) as store:
        report = store.verify(deep=True)
        assert report.ok, f"{label}: {report}"
        versions = 0
        for name in all_names(store):
            for v in store.list_versions(name):
                if v.kind == "tree":
                    for path, _, size in v.files():
                        assert len(v.read_bytes(path)) == size, (label, v.ref, path)
                else:
                    assert len(v.read_bytes()) == v.size, (label, v.ref)
                versions += 1
        old_refs = {ref for ref, _ in store.index.iter_records()}
        backend_refs = {ref for ref, _ in store.records.iter_refs()}
        # never ahead of the backend
        assert old_refs <= backend_refs, f"{label}: the index knows refs the backend lacks: {old_refs - backend_refs}"
        # behind only by refs whose writer died before journaling them
        unlearned = backend_refs - old_refs
        assert not unlearned & journaled_refs(store), f"{label}: journaled refs never applied"
        for ref in unlearned:
            store.publisher.learn(ref)  # what a claim collision or reindex does
        caught_up = answers(store)

    fresh_index = tmp_path / f"reindex-{label}.sqlite"
    with cas.open_store(store_dir, index=str(fresh_index)) as rebuilt:
        assert answers(rebuilt) == caught_up, f"{label}: reindex gives different answers"
    for p in tmp_path.glob(f"reindex-{label}.sqlite*"):
        p.unlink()
    return versions


def count_calls(store_dir, work) -> int:
    """Calls of one scenario on a store that already has its directories (as every
    killed run has): the first run also makes (and fsyncs) the blob fan-out."""
    for seed in (0, 10_000):
        proc = start(store_dir, work, crash_at=0, seed=seed)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    return int(out.split("calls")[1])


@pytest.mark.slow
def test_sigkill_at_every_step_and_at_random_moments(tmp_path):
    store_dir = tmp_path / "store"
    work = tmp_path / "work"
    work.mkdir()
    total_calls = count_calls(store_dir, work)
    assert total_calls > 40, "the counter did not see the save path"

    seed = int(os.environ.get("CAS_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    # Deterministic points spread over the whole scenario, plus the first few calls
    # (inside the first blob write) which are where partial files would appear.
    points = sorted({1, 2, 3, 5, 8} | {1 + i * total_calls // 22 for i in range(22)})
    kills = 0
    for i, crash_at in enumerate(points, start=1):
        proc = start(store_dir, work, crash_at=crash_at, seed=i)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, f"seed {seed}, crash_at {crash_at}: exit {proc.returncode}\n{err}"
        kills += 1
        check_consistent(store_dir, tmp_path, f"at-{crash_at}")

    for j in range(10):
        proc = start(store_dir, work, crash_at=-1, seed=1000 + j)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, f"seed {seed}: {err}"
        kills += 1
        check_consistent(store_dir, tmp_path, f"random-{j}")

    # Nothing left behind stops the store from working normally afterwards.
    with cas.open_store(store_dir) as store:
        before = store.get_artifact_version("crash/s/bytes").version if store.list_versions("crash/s/bytes") else 0
        v = store.save(b"after the storm", "crash/s/bytes")
        assert v.version > before
        store.gc(grace=0)
        assert store.verify(deep=True).ok
        assert not list(store.backend.list("tmp")), "gc(grace=0) clears every stale temp file"
    versions = check_consistent(store_dir, tmp_path, "final")
    assert kills == len(points) + 10
    assert versions > 10, "the children saved (and committed) something"


DOWNLOAD_CHILD = textwrap.dedent(
    """
    import sys
    import cas, cas.storage.blobs, cas.storage.chunked
    import kill_points

    store_dir, crash_at, dest = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = cas.open_store(store_dir)
    v = store.get_artifact_version(sys.argv[4])
    kill_points.arm(crash_at, os_calls=(), index_writes=False)
    # every block read of a blob: a loose blob's, and (format 2) a chunked file's (the 5 MiB file is chunked there)
    for reader in (cas.storage.blobs.VerifyingReader, cas.storage.chunked.ChunkedReader):
        kill_points.count_method(reader, "readinto", after=False)
    v.download(dest)
    print("calls", kill_points.calls(), flush=True)
    """
)


@pytest.mark.parametrize("kind", ["tree", "file"])
def test_sigkill_during_a_download_leaves_nothing_or_the_whole_result(tmp_path, kind):
    """Invariant 14 under SIGKILL: at every block read of a download, the destination is
    absent or whole - never a partial file or a tree missing files under the final name."""
    src = tmp_path / "src"
    files = {f"d{i % 3}/f{i}.bin": os.urandom(20_000 + i) for i in range(12)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    big = os.urandom(5 << 20)  # several blocks: a partial file is possible
    with cas.open_store(str(tmp_path / "store")) as store:
        store.save(src, "crash/dl/tree")
        store.save(big, "crash/dl/file")
    name, want = ("crash/dl/tree", files) if kind == "tree" else ("crash/dl/file", {"": big})

    def run(crash_at: int, dest) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-c", DOWNLOAD_CHILD, str(tmp_path / "store"), str(crash_at), str(dest), name]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=kill_points.child_env())

    done = run(0, tmp_path / "whole")
    assert done.returncode == 0, done.stderr
    total = int(done.stdout.split("calls")[1])
    assert total > 3
    for crash_at in sorted({1, 2, total // 2, total - 1, total}):
        out = tmp_path / f"out-{crash_at}"
        out.mkdir()
        proc = run(crash_at, out / "model")
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        dest = out / "model"
        if dest.exists():  # only whole, verified content under the final name
            got = {"": dest.read_bytes()} if dest.is_file() else {
                str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()
            }
            assert got == want, f"kill at read {crash_at}/{total}: partial result under the final name"
        leftovers = [p.name for p in out.iterdir() if p.name != "model"]
        assert all(".cas-" in n for n in leftovers), leftovers  # at most a temp, visibly named


# -- orphan refs: claimed, never journalled (issue 9, case 1) -----------------------------------

# A writer on its own "machine" (its own index) that SIGKILLs itself right after it
# claims a ref of the given kind, before the journal entry: an orphan ref.
ORPHAN_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    import cas
    from cas.storage.records import RecordStore

    url, options, index, action = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    store = cas.open_store(url, index=index, **options)
    real_claim = RecordStore.claim
    def claim(self, ref, digest):
        won = real_claim(self, ref, digest)
        if won and ref.startswith("refs/" + action.split(":")[0]):
            os.kill(os.getpid(), signal.SIGKILL)
        return won
    RecordStore.claim = claim
    if action == "versions":
        store.save(b"two: saved by a writer killed after its claim", "orphan/s/a")
    else:
        store.set_alias("orphan/s/a", 1, "production")
    print("not killed", flush=True)
    """
)


def kill_after_claim(url: str, options: dict, index: str, action: str) -> None:
    import json

    proc = subprocess.run(
        [sys.executable, "-c", ORPHAN_CHILD, url, json.dumps(options), index, action],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.parametrize("backend_name", ["local", pytest.param("s3", marks=pytest.mark.s3)])
@pytest.mark.parametrize(
    ("action", "meets"),
    [(a, m) for a in ("versions", "aliases") for m in ("gc", "verify", "claimer", "reindex")] + [("versions", "reader")],
)
def test_orphan_ref_is_completed_by_whoever_meets_it(store_url, storage_options, tmp_path, action, meets):
    """A writer killed between its ref and its journal entry: gc must not collect the
    version (nor leave the store unable to reindex or save); whoever meets the orphan
    journals it, and then every index, a fresh reindex and get_artifact_version agree."""

    def machine(tag: str) -> cas.Store:
        return cas.open_store(store_url, index=str(tmp_path / f"{tag}.sqlite"), **storage_options)

    with machine("a") as a:
        a.save(b"one", "orphan/s/a")
        a.save(b"one and a half", "orphan/s/a", aliases=["production"])  # production -> 2
    with machine("b"):
        pass  # machine b knows the store before the crash
    kill_after_claim(store_url, storage_options, str(tmp_path / "killed.sqlite"), action)
    orphan = "refs/versions/orphan/s/a/3" if action == "versions" else "refs/aliases/orphan/s/a/production/1"

    with machine("a") as a:
        a.save(b"junk", "orphan/s/junk")
        a.delete_version("orphan/s/junk", 1)  # something for gc to collect
        if meets == "gc":
            a.gc(grace=0)
        elif meets == "verify":
            report = a.verify()
            assert report.orphans == [orphan] and report.ok, report
        elif meets == "claimer":
            if action == "versions":
                assert a.save(b"four", "orphan/s/a").version == 4
            else:
                a.set_alias("orphan/s/a", 2, "production")
        elif meets == "reindex":
            a.reindex()
        else:  # a reader asking for that very number
            assert a.get_artifact_version("orphan/s/a", 3).version == 3
        a.gc(grace=0)  # whatever met it first, gc now collects only what nothing needs
        report = a.verify(deep=True)
        assert report.ok, report
        expected = answers(a)
    assert answers(machine("fresh")) == expected, "a fresh reindex disagrees"
    with machine("b") as b:  # learns from the journal alone
        assert answers(b) == expected, "another machine never learnt the orphan"
        if action == "versions":
            assert b.get_artifact_version("orphan/s/a", 3).read_bytes() == b"two: saved by a writer killed after its claim"
            assert b.save(b"later", "orphan/s/a").version == (5 if meets == "claimer" else 4)
        else:
            want = 2 if meets == "claimer" else 1
            assert b.get_artifact_version("orphan/s/a", "production").version == want
        assert b.verify().orphans == [], "the orphan was completed once and for all"

"""SIGKILL at every counted point of format 2's small saves on a local store.

A small save's writes were reordered for speed (docs/format.md, Packs): a tree
with fewer than MIN_PACK_BLOBS small files stores them loose in one fsync batch
instead of a pack, and a one-file fsync batch (a bytes save) fsyncs its file
at publish, in the saving thread, instead of in a pool thread.  Killed at any
write, fsync, link, rename or index transaction of those saves, the store must
be left as tests/test_crash.py requires: verify clean, every version readable,
the index never ahead of the backend, reindex giving the same answers.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import kill_points
import pytest
from test_crash import check_consistent

import cas
from cas.core.packs import MIN_PACK_BLOBS

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import cas
    import kill_points

    store_dir, crash_at, seed, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    store = cas.open_store(store_dir, format=2)
    tree = work / f"tree-{seed}"
    (tree / "sub").mkdir(parents=True)
    for i, rel in enumerate(["a.txt", "sub/b.txt", "sub/c.txt"]):  # fewer than MIN_PACK_BLOBS: loose
        (tree / rel).write_bytes(f"seed {seed} file {i}".encode())
    kill_points.arm(crash_at)
    store.save(f"seed {seed} bytes".encode(), "small/s/bytes")
    store.save(tree, "small/s/tree")
    print("calls", kill_points.calls(), flush=True)
    """
)


def run(store_dir, work, crash_at: int, seed: int) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", CHILD, str(store_dir), str(crash_at), str(seed), str(work)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=kill_points.child_env())


@pytest.mark.slow
def test_sigkill_at_every_point_of_small_saves_leaves_a_consistent_store(tmp_path):
    assert MIN_PACK_BLOBS > 3  # the tree above must take the loose path
    store_dir, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    for seed in (0, 1):  # the second run: the store's directories exist, as in every killed run
        done = run(store_dir, work, 0, seed)
        assert done.returncode == 0, done.stderr
    total = int(done.stdout.split("calls")[1])
    assert total > 20, "the counter did not see the save path"
    with cas.open_store(str(store_dir)) as store:
        assert not list(store.backend.list("packs"))  # the small tree really went loose
    kills = 0
    for crash_at in range(1, total + 1, 2):  # every other point: both of a call's sides are covered across runs
        proc = run(store_dir, work, crash_at, 100 + crash_at)
        if proc.returncode == 0:  # this run took fewer calls (a directory it needed existed already)
            assert int(proc.stdout.split("calls")[1]) < crash_at, proc.stdout
        else:
            assert proc.returncode == -signal.SIGKILL, f"crash_at {crash_at}: exit {proc.returncode}\n{proc.stderr}"
            kills += 1
        check_consistent(store_dir, tmp_path, f"small-at-{crash_at}")
    assert kills > total // 3

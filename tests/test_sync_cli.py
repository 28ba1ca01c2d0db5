"""`cas sync` as a user runs it: real subprocesses, --json, --dry-run, SIGKILL midway and rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sync_helpers import store_state

import cas

CAS = [sys.executable, "-m", "cas.cli"]


def run_cas(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CAS, *args], capture_output=True, text=True, env=env, timeout=300)


def _non_empty(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is not None
    except FileNotFoundError:
        return False


def _fill(url, tmp_path, versions: int, tree_files: int) -> None:
    with cas.open_store(url) as s:
        root = tmp_path / "tree"
        root.mkdir()
        for i in range(tree_files):
            (root / f"f{i:05d}").write_bytes(os.urandom(64) + str(i).encode())
        s.save(root, "big/prep/tree")
        for i in range(versions):
            s.save(f"small {i}".encode(), f"p/s/item{i % 7}", aliases=["latest-good"] if i % 50 == 0 else ())


def test_cli_sync_json_dry_run_and_idempotence(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    _fill(src, tmp_path, versions=20, tree_files=30)
    dry = run_cas("sync", src, dst, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] is True and planned["blobs_sent"] > 30
    assert not os.path.exists(dst)  # a dry run writes nothing, not even the store
    real = run_cas("sync", src, dst, "--json")
    assert real.returncode == 0, real.stderr
    done = json.loads(real.stdout)
    for key in ("blobs_sent", "bytes_sent", "refs_sent", "blobs_skipped"):
        assert done[key] == planned[key], key
    again = json.loads(run_cas("sync", src, dst, "--json").stdout)
    assert (again["blobs_sent"], again["bytes_sent"], again["refs_sent"]) == (0, 0, 0)
    text = run_cas("sync", src, dst)
    assert "sent 0 blobs" in text.stdout and text.returncode == 0


def test_cli_sync_errors_are_one_line(tmp_path):
    missing = run_cas("sync", str(tmp_path / "nope"), str(tmp_path / "dst"))
    assert missing.returncode != 0
    assert missing.stderr.startswith("cas: error:") and "Traceback" not in missing.stderr
    bad = run_cas("sync", str(tmp_path / "nope"), str(tmp_path / "dst"), "--src-option", "novalue")
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


def test_cli_sync_conflict_exits_nonzero_and_names_it(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    with cas.open_store(src) as s, cas.open_store(dst) as d:
        s.save(b"a", "p/s/x")
        d.save(b"b", "p/s/x")
    out = run_cas("sync", src, dst)
    assert out.returncode == 1
    assert "p/s/x" in out.stderr and out.stderr.count("\n") == 1


@pytest.mark.parametrize("phase", ["blobs", "refs"])
def test_sigkill_midway_then_rerun_reaches_the_same_state(tmp_path, phase):
    """Kill `cas sync` while it sends blobs (or claims refs), rerun it: same result as one clean run."""
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    _fill(src, tmp_path, versions=300, tree_files=3000)
    proc = subprocess.Popen([*CAS, "sync", src, dst, "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watch = os.path.join(dst, "tmp" if phase == "blobs" else "refs")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _non_empty(watch):
            break
        time.sleep(0.002)
    assert proc.poll() is None, "sync finished before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    with cas.open_store(dst) as d:
        partial = store_state(d)
        assert d.verify().ok  # consistent: every ref it shows has all its blobs
    with cas.open_store(src) as s:
        expected = store_state(s)
    assert partial != expected  # it really was interrupted
    rerun = run_cas("sync", src, dst, "--json")
    assert rerun.returncode == 0, rerun.stderr
    with cas.open_store(dst) as d:
        assert store_state(d) == expected
        assert d.verify(deep=True).ok
    # and a fresh index over dst (reindex from the backend alone) agrees
    with cas.open_store(dst, index=str(tmp_path / "fresh.sqlite")) as d:
        assert store_state(d) == expected
    final = json.loads(run_cas("sync", src, dst, "--json").stdout)
    assert (final["blobs_sent"], final["refs_sent"]) == (0, 0)

"""Core store benchmarks, each a ratio against a reference measured in this run.

    python benchmarks/bench_core.py [--quick] [--json] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import blake3

import cas
from cas.core.records import now_iso

MiB = 1 << 20


def timed(fn, repeat: int = 1) -> float:
    """Best of ``repeat`` wall-clock runs (least disturbed by the noisy neighbour)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def write_random_file(path: Path, size: int) -> None:
    block = os.urandom(16 * MiB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            # vary content so blocks do not repeat
            block = block[1:] + block[:1] if n == len(block) else block
            left -= n


def fresh(workdir: Path, name: str) -> Path:
    """A new empty directory; old ones are moved aside, not deleted (see README)."""
    d = workdir / f"{name}-{uuid.uuid4().hex[:8]}"
    d.mkdir(parents=True)
    return d


def bench_big_file(workdir: Path, size: int, repeat: int) -> dict:
    src = workdir / f"big-{size}.bin"
    if not src.exists() or src.stat().st_size != size:
        write_random_file(src, size)
    # warm the page cache for every contender alike
    subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)

    def cp_sync():
        dest = fresh(workdir, "cp")
        subprocess.run(["cp", str(src), str(dest / "x")], check=True)
        subprocess.run(["sync"], check=True)

    def cas_save():
        store = cas.open_store(str(fresh(workdir, "store")))
        store.save(src, "bench/big/file")
        store.close()

    t_cp = timed(cp_sync, repeat)
    t_cas = timed(cas_save, repeat)

    store = cas.open_store(str(fresh(workdir, "store")))
    store.save(src, "bench/big/file")

    def resave():
        store.save(src, "bench/big/file")

    def raw_blake3():
        h = blake3.blake3(max_threads=1)
        h.update_mmap(str(src))
        h.hexdigest()

    t_b3 = timed(raw_blake3, repeat)
    t_resave = timed(resave, repeat)
    store.close()
    return {
        "size_bytes": size,
        "save_seconds": t_cas,
        "cp_sync_seconds": t_cp,
        "save_vs_cp_sync": t_cp / t_cas,
        "resave_seconds": t_resave,
        "raw_blake3_seconds": t_b3,
        "resave_vs_raw_blake3": t_b3 / t_resave,
    }


def bench_small_files(workdir: Path, count: int, repeat: int) -> dict:
    src = workdir / f"small-{count}"
    if not src.exists():
        tmp = workdir / f"small-{count}.partial-{uuid.uuid4().hex[:6]}"
        for i in range(count):
            d = tmp / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                d.mkdir(parents=True)
            (d / f"f{i:06d}.bin").write_bytes(os.urandom(4096))
        tmp.rename(src)
    subprocess.run(["du", "-s", str(src)], stdout=subprocess.DEVNULL, check=True)

    def cp_r():
        dest = fresh(workdir, "cpr")
        subprocess.run(["cp", "-r", str(src), str(dest / "x")], check=True)
        subprocess.run(["sync"], check=True)

    def cas_tree():
        store = cas.open_store(str(fresh(workdir, "store")))
        store.save(src, "bench/small/tree")
        store.close()

    result = {"files": count, "cp_r_sync_seconds": timed(cp_r, repeat), "save_seconds": timed(cas_tree, repeat)}
    result["save_vs_cp_r_sync"] = result["cp_r_sync_seconds"] / result["save_seconds"]
    result["files_per_second"] = count / result["save_seconds"]
    if shutil.which("dvc"):

        def dvc_add():
            repo = fresh(workdir, "dvc")
            subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
            subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True)
            shutil.copytree(src, repo / "data")
            t = time.perf_counter()
            subprocess.run(["dvc", "add", "-q", "data"], cwd=repo, check=True)
            return time.perf_counter() - t

        t_dvc = dvc_add()
        result["dvc_add_seconds"] = t_dvc
        result["dvc_vs_cp_r_sync"] = result["cp_r_sync_seconds"] / t_dvc
    return result


def bench_lookup(workdir: Path, versions: int, samples: int) -> dict:
    """Median ``get_artifact_version`` with ``versions`` indexed.

    The index is filled with bulk SQL rather than a million saves: what is
    measured is the lookup path, and the index is a view of records anyway.
    """
    store = cas.open_store(str(fresh(workdir, "lookup")))
    store.save(b"seed", "bench/lookup/a0")
    names = max(1, versions // 100)
    when = now_iso()
    digest = "0" * 64
    rows = (
        (f"bench/lookup/a{i % names}", i // names + 1, digest, "blob", 4, when, "{}", "r")
        for i in range(versions)
    )
    with store.index.write() as c:
        c.executemany(
            "INSERT OR IGNORE INTO versions (name, version, digest, kind, size, created_at, metadata, record)"
            " VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )
    c = store.index.conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
    rng = random.Random(7)
    keys = [(f"bench/lookup/a{rng.randrange(names)}", rng.randrange(1, versions // names)) for _ in range(samples)]
    t_cas = []
    for name, v in keys:
        t = time.perf_counter()
        store.get_artifact_version(name, v)
        t_cas.append(time.perf_counter() - t)
    raw = sqlite3.connect(store.index.path)
    t_raw = []
    for name, v in keys:
        t = time.perf_counter()
        raw.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, v)).fetchone()
        t_raw.append(time.perf_counter() - t)
    store.close()
    med_cas, med_raw = statistics.median(t_cas), statistics.median(t_raw)
    return {
        "versions_indexed": c,
        "median_us": med_cas * 1e6,
        "sqlite_point_query_median_us": med_raw * 1e6,
        "lookup_vs_point_query": med_raw / med_cas,
    }


# VmHWM (kB) is the child's own peak RSS; ru_maxrss would carry the parent's
# peak across fork+exec.
_RSS_CHILD = r"""
import sys, cas
from pathlib import Path
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
store = cas.open_store(sys.argv[1])
base = peak()
v = store.save(Path(sys.argv[2]), "bench/rss/big")
after_save = peak()
v.download(sys.argv[3])
after_load = peak()
print(base, after_save, after_load)
"""


def bench_rss(workdir: Path, size: int) -> dict:
    src = workdir / f"rss-{size}.bin"
    if not src.exists() or src.stat().st_size != size:
        write_random_file(src, size)
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(fresh(workdir, "rss-store")), str(src), str(fresh(workdir, "rss-out") / "x")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    base, save, load = (int(x) * 1024 for x in out)
    return {"size_bytes": size, "baseline_rss_mib": base / MiB, "peak_rss_save_mib": save / MiB, "peak_rss_load_mib": load / MiB}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes (256 MiB, 5,000 files, 100,000 versions, 1 GiB RSS)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--workdir", default=str(Path(__file__).parent / "_work"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", choices=["big", "small", "lookup", "rss"], action="append")
    args = p.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    q = args.quick
    results: dict = {}
    todo = args.only or ["big", "small", "lookup", "rss"]
    if "big" in todo:
        results["big_file"] = bench_big_file(workdir, (256 if q else 1024) * MiB, args.repeat)
    if "small" in todo:
        results["small_files"] = bench_small_files(workdir, 5_000 if q else 20_000, args.repeat)
    if "lookup" in todo:
        results["lookup"] = bench_lookup(workdir, 100_000 if q else 1_000_000, 20_000)
    if "rss" in todo:
        results["rss"] = bench_rss(workdir, (1024 if q else 5120) * MiB)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for section, figures in results.items():
        print(f"[{section}]")
        for k, v in figures.items():
            print(f"  {k:32s} {v:,.3f}" if isinstance(v, float) else f"  {k:32s} {v:,}")


if __name__ == "__main__":
    main()

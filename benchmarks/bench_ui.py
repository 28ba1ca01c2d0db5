"""`cas ui` page latency on a store of 10,000 versions with a 100-step lineage chain.

    python benchmarks/bench_ui.py [--versions 10000] [--depth 100] [--repeat 30] [--json]

Builds the store through the public API (on /dev/shm when it is there: the
build pays an fsync per ref otherwise), starts the real ``cas ui --port 0``
in a subprocess, and times whole HTTP requests over one keep-alive
connection: median with min-max per page.  The reference, measured in the
same run, is the same server handing out its static stylesheet (the HTTP
floor); the target is a median under 200 ms for every page.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

import cas

TARGET_MS = 200.0
CHAIN_PIPELINE = "deep"
HUGE = "bulk/history/counter"  # one artifact with many versions: paging


def build(store: cas.Store, versions: int, depth: int, work: Path, per_artifact: int = 20) -> dict[str, str]:
    """``versions`` versions in all: a ``depth``-step chain (each step also reads a
    config), two 2,000-file trees, one artifact with 1,000 versions, and the rest
    spread ``per_artifact`` each over many artifacts with metadata."""
    with store.run(CHAIN_PIPELINE) as run:
        with run.step("s0") as s:
            first = prev = s.save(b"raw", "v0")
        for i in range(1, depth + 1):
            config = store.save({"step": i}, f"{CHAIN_PIPELINE}/config/c{i}")
            with run.step(f"s{i}", inputs=[prev, config]) as s:
                prev = s.save(f"v{i}".encode(), f"v{i}")
    tree = work / "tree"
    for i in range(2000):
        p = tree / f"d{i % 20:02d}" / f"f{i:04d}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"a,b\n{i},{i * 2}\n")
    t1 = store.save(tree, "bulk/files/table")
    (tree / "d00" / "f0000.csv").write_text("a,b\n0,changed\n")
    t2 = store.save(tree, "bulk/files/table")
    made = 2 * depth + 1 + 2
    huge = min(1000, max(0, versions - made))
    for i in range(huge):
        store.save(f"tick {i}".encode(), HUGE)
    made += huge
    i = 0
    while made < versions:
        a = i // per_artifact
        name = f"p{a % 11}/s{(a // 11) % 4}/a{a:04d}"
        store.save(f"{name} {i}".encode(), name, metadata={"owner": f"team{a % 7}", "batch": i})
        made += 1
        i += 1
    return {"first": first.ref, "last": prev.ref, "middle": f"{CHAIN_PIPELINE}/s{depth // 2}/v{depth // 2}@1",
            "tree_from": str(t1.version), "tree_to": str(t2.version), "run": run.id}


def pages(refs: dict[str, str], depth: int) -> dict[str, str]:
    def v(ref: str) -> str:
        name, number = ref.split("@")
        return f"/v/{name}/{number}"

    return {
        "artifacts": "/",
        "artifacts, page 3": "/?page=3",
        "search by name": "/?q=a0042",
        "search by metadata key=value": "/?q=owner=team3",
        "search, first after a change (cold)": "/?q=owner=team3",
        "versions (1,000, page 1)": f"/a/{HUGE}",
        "versions (1,000, page 10)": f"/a/{HUGE}?page=10",
        "version": v(refs["last"]),
        "tree file browser (2,000 files)": f"/v/bulk/files/table/{refs['tree_to']}/files",
        "tree file preview (csv)": f"/v/bulk/files/table/{refs['tree_to']}/files/d00/f0000.csv",
        "lineage depth 3": v(refs["last"]) + "/lineage",
        f"lineage up, all {depth} steps": v(refs["last"]) + "/lineage?direction=up&depth=all",
        "lineage both ways, all, from the middle": v(refs["middle"]) + "/lineage?depth=all",
        "runs": "/runs",
        f"run detail ({depth + 1} steps)": f"/runs/{refs['run']}",
        "diff of two trees (2,000 files)": f"/diff/bulk/files/table?from={refs['tree_from']}&to={refs['tree_to']}",
    }


def start(store_root: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cas.cli", "--store", str(store_root), "ui", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    m = re.search(r"http://\S+/", line)
    if not m:
        proc.kill()
        raise SystemExit(f"cas ui did not start: {line!r}")
    return proc, m.group(0)


def measure(client: httpx.Client, path: str, repeat: int, pause: float = 0.0) -> list[float]:
    """Times of ``repeat`` GETs; ``pause`` between them outlasts the server's
    refresh interval (1 s), so each one finds its caches dropped."""
    for _ in range(3):  # warm: imports, SQLite pages, template compilation
        r = client.get(path)
        if r.status_code != 200:
            raise SystemExit(f"{path}: HTTP {r.status_code}")
    samples = []
    for _ in range(repeat):
        time.sleep(pause)
        t = time.perf_counter()
        r = client.get(path)
        r.read()
        samples.append((time.perf_counter() - t) * 1e3)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, default=10_000)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--per-artifact", type=int, default=20, help="versions of each of the many small artifacts")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    base = args.workdir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    work = Path(tempfile.mkdtemp(prefix="cas-bench-ui-", dir=base))
    try:
        t = time.perf_counter()
        with cas.open_store(work / "store") as store:
            refs = build(store, args.versions, args.depth, work, args.per_artifact)
            total = store.stats().versions
        build_s = time.perf_counter() - t
        proc, url = start(work / "store")
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                ref = measure(client, "/static/style.css", args.repeat)
                results = {}
                for label, path in pages(refs, args.depth).items():
                    cold = "cold" in label
                    s = measure(client, path, min(args.repeat, 8) if cold else args.repeat, pause=1.1 if cold else 0.0)
                    results[label] = {"path": path, "median_ms": statistics.median(s), "min_ms": min(s), "max_ms": max(s)}
        finally:
            proc.terminate()
            proc.wait(15)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ref_ms = statistics.median(ref)
    report = {
        "versions": total,
        "depth": args.depth,
        "build_seconds": round(build_s, 1),
        "reference_static_file_ms": {"median": ref_ms, "min": min(ref), "max": max(ref)},
        "pages": results,
        "target_ms": TARGET_MS,
        "target_met": all(r["median_ms"] < TARGET_MS for r in results.values()),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"cas ui page latency: {total} versions ({args.per_artifact} per artifact), a {args.depth}-step chain, {args.repeat} requests per page "
          f"(store built in {build_s:.0f} s)")
    print(f"  {'reference: static stylesheet':44s} {ref_ms:8.1f} ms  ({min(ref):.1f}-{max(ref):.1f})")
    for label, r in results.items():
        ratio = ref_ms / r["median_ms"]
        print(f"  {label:44s} {r['median_ms']:8.1f} ms  ({r['min_ms']:.1f}-{r['max_ms']:.1f})  ratio {ratio:5.3f}")
    print(f"  target: every median < {TARGET_MS:.0f} ms: {'met' if report['target_met'] else 'NOT met'}")


if __name__ == "__main__":
    main()

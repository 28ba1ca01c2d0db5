"""Lineage benchmark: a trace 100 steps deep, as a ratio against a plain SQLite point query.

    python benchmarks/bench_lineage.py [--depth 100] [--noise 300] [--backend local|memory] [--json]

Builds, through the public API, one pipeline whose steps form a chain
``depth`` steps long (each step also consumes a small per-step config
version, so the graph is 2 x depth versions wide), plus ``noise`` unrelated
three-step runs so the index is not trivially small.  Then measures, on the
same index file and in the same process:

* reference: ``SELECT ... FROM versions WHERE name = ? AND version = ?`` on the
  index's own sqlite3 connection (what DESIGN.md calls a SQLite point query);
* ``trace``: the recursive CTE and follow-up lookups alone (Index.trace, cas.index.lineage);
* ``store.lineage(..., "up")`` from the last version: the whole graph object;
* ``store.lineage(..., "down")`` from the first version.

Each is the median of many repetitions; the target is <= 10 ms for the 100-deep trace.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid

import cas


def median_seconds(fn, repeat: int) -> float:
    for _ in range(min(5, repeat)):  # warm caches and statements
        fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def build(store: cas.Store, depth: int, noise: int) -> tuple[cas.ArtifactVersion, cas.ArtifactVersion]:
    for i in range(noise):
        with store.run("noise") as run:
            with run.step("a") as s:
                a = s.save(f"noise-{i}".encode(), "a")
            with run.step("b", inputs=[a]) as s:
                b = s.save(f"noise-b-{i}".encode(), "b")
            with run.step("c", inputs=[b]) as s:
                s.save(f"noise-c-{i}".encode(), "c")
    with store.run("deep") as run:
        with run.step("s0") as s:
            first = prev = s.save(b"raw", "v0")
        for i in range(1, depth + 1):
            config = store.save({"step": i}, f"deep/config/c{i}")
            with run.step(f"s{i}", inputs=[prev, config]) as s:
                prev = s.save(f"v{i}".encode(), f"v{i}")
    return first, prev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--noise", type=int, default=100, help="unrelated 3-step runs in the same index")
    ap.add_argument("--backend", choices=("local", "memory"), default="local")
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="cas-bench-lineage-")
    url = f"{workdir}/store" if args.backend == "local" else f"memory://bench-{uuid.uuid4().hex}"
    store = cas.open_store(url, index=f"{workdir}/index.sqlite")
    try:
        t = time.perf_counter()
        first, last = build(store, args.depth, args.noise)
        build_s = time.perf_counter() - t

        conn = store.index.conn
        sql = "SELECT id, name, version, digest, kind, size FROM versions WHERE name = ? AND version = ?"
        ref_s = median_seconds(lambda: conn.execute(sql, (last.name, last.version)).fetchone(), args.repeat * 10)
        trace_s = median_seconds(lambda: store.index.trace(last.name, last.version, "up", None), args.repeat)
        up_s = median_seconds(lambda: store.lineage(last, "up"), args.repeat)
        down_s = median_seconds(lambda: store.lineage(first, "down"), args.repeat)
        up = store.lineage(last, "up")
        assert len(up.steps) == args.depth + 1, "the trace must reach the first step"
        assert len(store.lineage(first, "down").steps) == args.depth

        results = {
            "depth": args.depth,
            "backend": args.backend,
            "index_versions": store.stats().versions,
            "index_runs": len(store.list_runs()),
            "graph_versions": len(up.versions),
            "graph_steps": len(up.steps),
            "build_seconds": round(build_s, 2),
            "point_query_us": round(ref_s * 1e6, 2),
            "trace_up_ms": round(trace_s * 1e3, 3),
            "lineage_up_ms": round(up_s * 1e3, 3),
            "lineage_down_ms": round(down_s * 1e3, 3),
            "trace_up_vs_point_query": round(trace_s / ref_s, 1),
            "lineage_up_vs_point_query": round(up_s / ref_s, 1),
            "lineage_down_vs_point_query": round(down_s / ref_s, 1),
            "target_ms": 10.0,
            "target_met": up_s * 1e3 <= 10.0 and down_s * 1e3 <= 10.0,
        }
    finally:
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    r = results
    print(f"lineage benchmark: {r['depth']} steps deep, {r['graph_versions']} versions and {r['graph_steps']} steps "
          f"in the graph; index holds {r['index_versions']} versions of {r['index_runs']} runs ({r['backend']} backend)")
    print(f"  reference  SQLite point query        {r['point_query_us']:>9.2f} us")
    print(f"  trace up   recursive CTE + lookups   {r['trace_up_ms']:>9.3f} ms   {r['trace_up_vs_point_query']:>7.1f}x the point query")
    print(f"  lineage up   (graph object)          {r['lineage_up_ms']:>9.3f} ms   {r['lineage_up_vs_point_query']:>7.1f}x")
    print(f"  lineage down (graph object)          {r['lineage_down_ms']:>9.3f} ms   {r['lineage_down_vs_point_query']:>7.1f}x")
    print(f"  target <= {r['target_ms']} ms: {'met' if r['target_met'] else 'NOT met'}")


if __name__ == "__main__":
    main()

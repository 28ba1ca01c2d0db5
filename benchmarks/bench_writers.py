"""1 -> 4 -> 8 writer processes on one S3 bucket (moto), different names: aggregate saves/s.

    python benchmarks/bench_writers.py [--writers 1,4,8] [--seconds 6] [--repeat 3] [--json]

Each trial is a fresh store (a new bucket prefix) of format 1 or format 2.
N writer processes (each its own index, as N machines would have) open it,
wait at a start line, then save small distinct contents under their own
artifact name for ``--seconds``; the aggregate is every writer's saves over
the trial's wall time.  The reference is 1 writer of the same format,
measured in the same repeat: the figure is aggregate(N) / aggregate(1),
median of the repeats with min-max.  Format 1 announces every save in one
dense journal every writer contends for; format 2 names entries by writer id
and time (docs/format.md, Journal (format 2)).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path

WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    import cas

    url, options, worker, go, seconds, index = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6]
    store = cas.open_store(url, index=index, **options)
    store.save(b"warm-up " + worker.encode(), f"bench/w{worker}/warm")  # connections and imports warm
    open(f"{go}.ready-{worker}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        store.save(f"writer {worker} save {n}".encode(), f"bench/w{worker}/model")
        n += 1
    print(json.dumps({"saves": n, "elapsed": time.perf_counter() - start}))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto did not start")


def trial(endpoint: str, workdir: Path, fmt: int, writers: int, seconds: float) -> float:
    """Aggregate saves/s of ``writers`` processes on a fresh store of format ``fmt``."""
    import cas

    options = {"endpoint_url": endpoint, "key": "bench", "secret": "bench-secret"}
    url = f"s3://bench/f{fmt}-n{writers}-{uuid.uuid4().hex[:8]}"
    run_dir = workdir / uuid.uuid4().hex[:8]
    run_dir.mkdir(parents=True)
    cas.open_store(url, index=str(run_dir / "init.sqlite"), format=fmt, **options).close()
    go = str(run_dir / "go")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, json.dumps(options), str(w), go, str(seconds), str(run_dir / f"index-{w}.sqlite")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for w in range(writers)
    ]  # fmt: skip
    while sum(os.path.exists(f"{go}.ready-{w}") for w in range(writers)) < writers:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"a writer failed: {[p.communicate()[1][-2000:] for p in procs if p.poll() is not None]}")
        time.sleep(0.01)
    open(go, "w").close()
    started = time.perf_counter()
    saves = 0
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a writer failed: {err[-2000:]}")
        saves += json.loads(out)["saves"]
    return saves / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", default="1,4,8")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--formats", default="1,2")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    counts = [int(n) for n in args.writers.split(",")]
    formats = [int(f) for f in args.formats.split(",")]
    workdir = Path(args.workdir or f"/tmp/cas-bench-writers-{uuid.uuid4().hex[:8]}")
    os.environ["CAS_INDEX_DIR"] = str(workdir / "indexes")
    import s3fs

    proc, endpoint = start_moto()
    try:
        s3fs.S3FileSystem(endpoint_url=endpoint, key="bench", secret="bench-secret", skip_instance_cache=True).call_s3(
            "create_bucket", Bucket="bench"
        )
        rates: dict[tuple[int, int], list[float]] = {(f, n): [] for f in formats for n in counts}
        for _ in range(args.repeat):  # interleaved, so a slow moment of the machine hits every row
            for f in formats:
                for n in counts:
                    rates[(f, n)].append(trial(endpoint, workdir, f, n, args.seconds))
    finally:
        proc.kill()
        proc.wait()
    result = {}
    for f in formats:
        base = rates[(f, counts[0])]
        for n in counts:
            ratios = [r / b for r, b in zip(rates[(f, n)], base, strict=True)]
            result[f"format {f}, {n} writers"] = {
                "saves_per_s": round(statistics.median(rates[(f, n)]), 2),
                "saves_per_s_range": [round(min(rates[(f, n)]), 2), round(max(rates[(f, n)]), 2)],
                "ratio_vs_1_writer": round(statistics.median(ratios), 2),
                "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
            }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'':24} {'saves/s (median, min-max)':>30} {'vs 1 writer (median, min-max)':>32}")
    for row, r in result.items():
        lo, hi = r["saves_per_s_range"]
        rlo, rhi = r["ratio_range"]
        print(f"{row:24} {r['saves_per_s']:>12.2f} ({lo:.2f}-{hi:.2f}) {r['ratio_vs_1_writer']:>18.2f}x ({rlo:.2f}-{rhi:.2f})")


if __name__ == "__main__":
    main()

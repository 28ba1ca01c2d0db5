"""1 -> 4 -> 8 writer processes on one S3 bucket (moto), different names: aggregate saves/s.

    python benchmarks/bench_writers.py [--writers 1,4,8] [--seconds 6] [--repeat 3] [--backend s3|local] [--json]

Each trial is a fresh store (its own bucket: moto answers a listing by
scanning every key of the bucket, which real S3 does not) of format 1 or 2.
N writer processes (each its own index, as N machines would have) open it,
wait at a start line, then save small distinct contents under their own
artifact name for ``--seconds``; the aggregate is every writer's saves over
the trial's wall time.  The reference is 1 writer of the same format,
measured in the same repeat: the figure is aggregate(N) / aggregate(1),
median of the repeats with min-max.  Format 1 announces every save in one
dense journal every writer contends for; format 2 names entries by writer id
and time (docs/format.md, Journal (format 2)).

Once writers no longer contend, CPU bounds the aggregate: on 2 cores, 8
writers can do at most 2 / (CPU per save) saves/s, and moto spends CPU on
the same cores.  So each row also says the CPU per save of the writers and
of the moto server (``cpu_ms_per_save``; moto's share of it), and
``--backend local`` measures the same on a local directory store, with no
server in the way.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    while time.perf_counter() - start < seconds:
        store.save(f"writer {worker} save {n}".encode(), f"bench/w{worker}/model")
        n += 1
    print(json.dumps({"saves": n, "elapsed": time.perf_counter() - start, "cpu": time.process_time() - cpu}))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# moto's own server (werkzeug) closes the connection after every response; real S3
# keeps it open.  ``--server keepalive`` serves the same moto app with uvicorn
# (HTTP/1.1 keep-alive), to show what the connection churn costs on both sides.
KEEPALIVE = (
    "import sys, uvicorn\n"
    "from moto.moto_server.threaded_moto_server import DomainDispatcherApplication, create_backend_app\n"
    "uvicorn.run(DomainDispatcherApplication(create_backend_app), host='127.0.0.1', port=int(sys.argv[1]),"
    " interface='wsgi', log_level='error')\n"
)


def start_moto(server: str = "moto") -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = ["-c", KEEPALIVE, str(port)] if server == "keepalive" else ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def trial(endpoint: str | None, moto_pid: int | None, workdir: Path, fmt: int, writers: int, seconds: float) -> dict:
    """Aggregate saves/s of ``writers`` processes on a fresh store of format ``fmt``,
    and the CPU seconds the writers and the server spent (from the start line on)."""
    import cas

    run_dir = workdir / uuid.uuid4().hex[:8]
    run_dir.mkdir(parents=True)
    if endpoint is None:
        options: dict = {}
        url = str(run_dir / "store")
    else:
        options = {"endpoint_url": endpoint, "key": "bench", "secret": "bench-secret"}
        bucket = f"bench-f{fmt}-n{writers}-{uuid.uuid4().hex[:8]}"
        import s3fs

        s3fs.S3FileSystem(skip_instance_cache=True, **options).call_s3("create_bucket", Bucket=bucket)
        url = f"s3://{bucket}/store"
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
    moto_before = cpu_seconds(moto_pid) if moto_pid else 0.0
    open(go, "w").close()
    started = time.perf_counter()
    saves = 0
    writers_cpu = 0.0
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a writer failed: {err[-2000:]}")
        done = json.loads(out)
        saves += done["saves"]
        writers_cpu += done["cpu"]
    rate = saves / (time.perf_counter() - started)
    moto_cpu = cpu_seconds(moto_pid) - moto_before if moto_pid else 0.0  # includes the writers' last exits: small
    return {"rate": rate, "writers_ms": 1000 * writers_cpu / saves, "server_ms": 1000 * moto_cpu / saves}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", default="1,4,8")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--formats", default="1,2")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--backend", choices=["s3", "local"], default="s3", help="moto S3 (default), or a local directory")
    ap.add_argument("--server", choices=["moto", "keepalive"], default="moto", help="moto's server, or moto's app under uvicorn")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    counts = [int(n) for n in args.writers.split(",")]
    formats = [int(f) for f in args.formats.split(",")]
    workdir = Path(args.workdir or f"/tmp/cas-bench-writers-{uuid.uuid4().hex[:8]}")
    os.environ["CAS_INDEX_DIR"] = str(workdir / "indexes")
    proc, endpoint = start_moto(args.server) if args.backend == "s3" else (None, None)
    try:
        trials: dict[tuple[int, int], list[dict]] = {(f, n): [] for f in formats for n in counts}
        for _ in range(args.repeat):  # interleaved, so a slow moment of the machine hits every row
            for f in formats:
                for n in counts:
                    trials[(f, n)].append(trial(endpoint, proc and proc.pid, workdir, f, n, args.seconds))
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
    result = {}
    for f in formats:
        base = [t["rate"] for t in trials[(f, counts[0])]]
        for n in counts:
            rates = [t["rate"] for t in trials[(f, n)]]
            ratios = [r / b for r, b in zip(rates, base, strict=True)]
            writers_ms = statistics.median(t["writers_ms"] for t in trials[(f, n)])
            server_ms = statistics.median(t["server_ms"] for t in trials[(f, n)])
            result[f"format {f}, {n} writers"] = {
                "saves_per_s": round(statistics.median(rates), 2),
                "saves_per_s_range": [round(min(rates), 2), round(max(rates), 2)],
                "ratio_vs_1_writer": round(statistics.median(ratios), 2),
                "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
                "cpu_ms_per_save": {"writers": round(writers_ms, 1), "server": round(server_ms, 1),
                                    "server_share": round(server_ms / ((writers_ms + server_ms) or 1), 2)},
            }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'':24} {'saves/s (median, min-max)':>30} {'vs 1 writer (median, min-max)':>32} {'CPU ms/save writers+server':>28}")
    for row, r in result.items():
        lo, hi = r["saves_per_s_range"]
        rlo, rhi = r["ratio_range"]
        cpu = r["cpu_ms_per_save"]
        print(f"{row:24} {r['saves_per_s']:>12.2f} ({lo:.2f}-{hi:.2f}) {r['ratio_vs_1_writer']:>18.2f}x ({rlo:.2f}-{rhi:.2f})"
              f" {cpu['writers']:>14.1f} + {cpu['server']:.1f}")


if __name__ == "__main__":
    main()

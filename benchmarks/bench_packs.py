"""Packs (format 2): save 20,000 x 4 KiB files as one tree, against ``cp -r`` + ``sync``
measured in the same run; and sync that tree local -> local and local -> S3 (moto), counting
objects written against files.

    python benchmarks/bench_packs.py [--files 20000] [--repeat 3] [--no-s3] [--json] [--workdir DIR]

``CAS_BENCH_PACKS_FILES`` sets the number of files for a quick run (e.g. 2000).  Each
figure is the median of ``--repeat`` runs, with min-max; ratios are reference time / cas
time (higher is better).  Old output is moved aside, never deleted between runs (on ext4,
creating files right after deleting tens of thousands is very slow: benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import cas

KiB = 1 << 10


def fresh(workdir: Path, name: str) -> Path:
    d = workdir / f"{name}-{uuid.uuid4().hex[:8]}"
    d.mkdir(parents=True)
    return d


def make_tree(root: Path, files: int) -> Path:
    if (root / ".done").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        d = root / f"d{i % 100:02d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(os.urandom(4 * KiB))
    (root / ".done").write_bytes(b"")
    return root


def spread(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def measure(fn, repeat: int) -> dict:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return spread(samples)


def count_objects(store: cas.Store) -> int:
    return sum(1 for e in store.backend.list("") if not e.path.startswith("index.sqlite"))


def bench_save(workdir: Path, tree: Path, files: int, repeat: int) -> dict:
    def cp_sync():
        subprocess.run(["cp", "-r", str(tree), str(fresh(workdir, "cp") / "t")], check=True)
        subprocess.run(["sync"], check=True)

    stores: list[cas.Store] = []

    def save(fmt: int):
        def run():
            store = cas.open_store(str(fresh(workdir, f"store{fmt}")), format=fmt)
            store.save(tree, "bench/packs/tree")
            stores.append(store)

        return run

    out: dict = {"files": files}
    out["cp_r_sync_seconds"] = measure(cp_sync, repeat)
    for fmt in (1, 2):
        stores.clear()
        t = measure(save(fmt), repeat)
        out[f"format{fmt}_save_seconds"] = t
        out[f"format{fmt}_vs_cp_r_sync"] = out["cp_r_sync_seconds"]["median"] / t["median"]
        out[f"format{fmt}_objects"] = count_objects(stores[-1])
        for s in stores:
            s.close()
    out["format2_objects_per_file"] = out["format2_objects"] / files
    return out


def bench_sync_local(workdir: Path, tree: Path, files: int, repeat: int) -> dict:
    src = cas.open_store(str(fresh(workdir, "sync-src")), format=2)
    src.save(tree, "bench/packs/tree")
    samples, objects = [], []
    for _ in range(repeat):
        dst = cas.open_store(str(fresh(workdir, "sync-dst")), format=2)
        before = count_objects(dst)
        t = time.perf_counter()
        src.sync_to(dst)
        samples.append(time.perf_counter() - t)
        objects.append(count_objects(dst) - before)
        dst.close()
    src.close()
    return {"seconds": spread(samples), "objects_written": objects[-1], "objects_per_file": objects[-1] / files}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_sync_s3(workdir: Path, tree: Path, files: int, repeat: int) -> dict:
    import s3fs

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        options = {"endpoint_url": endpoint, "key": "bench", "secret": "bench-secret"}
        s3fs.S3FileSystem(**options, skip_instance_cache=True).call_s3("create_bucket", Bucket="bench")
        os.environ["CAS_INDEX_DIR"] = str(fresh(workdir, "s3-index"))
        src = cas.open_store(str(fresh(workdir, "s3-src")), format=2)
        src.save(tree, "bench/packs/tree")
        samples, objects = [], []
        for i in range(repeat):
            dst = cas.open_store(f"s3://bench/cas{i}", format=2, **options)
            before = count_objects(dst)
            t = time.perf_counter()
            src.sync_to(dst)
            samples.append(time.perf_counter() - t)
            objects.append(count_objects(dst) - before)
            dst.close()
        src.close()
        return {"seconds": spread(samples), "objects_written": objects[-1], "objects_per_file": objects[-1] / files}
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=int(os.environ.get("CAS_BENCH_PACKS_FILES", "20000")))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cas-bench-packs-"))
    tree = make_tree(workdir / f"tree-{args.files}", args.files)
    result = {"save": bench_save(workdir, tree, args.files, args.repeat),
              "sync_local": bench_sync_local(workdir, tree, args.files, args.repeat)}
    if not args.no_s3:
        result["sync_s3"] = bench_sync_s3(workdir, tree, args.files, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    s = result["save"]
    for fmt in (1, 2):
        t = s[f"format{fmt}_save_seconds"]
        print(f"save {args.files} x 4 KiB, format {fmt}: {t['median']:.2f} s ({t['min']:.2f}-{t['max']:.2f}),"
              f" {s[f'format{fmt}_vs_cp_r_sync']:.2f}x cp -r + sync ({s['cp_r_sync_seconds']['median']:.2f} s),"
              f" {s[f'format{fmt}_objects']} objects")
    for key in ("sync_local", "sync_s3"):
        if key in result:
            r = result[key]
            print(f"{key}: {r['seconds']['median']:.2f} s ({r['seconds']['min']:.2f}-{r['seconds']['max']:.2f}),"
                  f" {r['objects_written']} objects written for {args.files} files ({100 * r['objects_per_file']:.2f} %)")
    if args.workdir is None:
        shutil.move(str(workdir), str(workdir) + "-done")  # moved aside, not deleted


if __name__ == "__main__":
    main()

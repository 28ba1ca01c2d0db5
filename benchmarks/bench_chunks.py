"""Chunk lists (format 2): a large file re-saved with 1 MiB changed, and a verified 64 KiB range read.

    python benchmarks/bench_chunks.py [--json] [--workdir DIR]
    CAS_BENCH_CHUNKS_SIZE=64MiB python benchmarks/bench_chunks.py     # quick

Rows (issue 14, items 1 and 2), medians of 3 with min-max:

* re-save of a SIZE file with 1 MiB changed in the middle: new bytes stored (target
  <= 4 MiB) and speed as a ratio against ``cp`` + ``sync`` of the same file measured
  in this run (target >= 0.7x; higher is better: reference time / cas time);
* 64 KiB read from the middle of the version through ``ArtifactVersion.open()``,
  verified: chunks read (target <= 2);
* the chunker against BLAKE3 in memory (MB/s), for pyfastcdc with cas's parameters
  and with 256 KiB / 1 MiB, and the ``fastcdc`` package when installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import blake3

import cas
from cas.core import chunks

MiB = 1 << 20


def parse_size(text: str) -> int:
    text = text.strip().lower()
    for suffix, mult in (("gib", 1 << 30), ("mib", MiB), ("kib", 1 << 10), ("g", 1 << 30), ("m", MiB)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * mult)
    return int(text)


def write_random(path: Path, size: int, seed: bytes) -> None:
    """Incompressible, non-repeating bytes (a rotated block would dedupe under CDC)."""
    xof = blake3.blake3(seed)
    with open(path, "wb") as f:
        for start in range(0, size, 16 * MiB):
            f.write(xof.digest(length=min(16 * MiB, size - start), seek=start))


def variant(src: Path, dst: Path, size: int, seed: int) -> None:
    """``src`` with 1 MiB in the middle replaced by fresh bytes."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.seek(size // 2 - MiB // 2)
        f.write(blake3.blake3(seed.to_bytes(8, "big")).digest(length=MiB))


def median_range(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def stored_bytes(store: cas.Store) -> int:
    return sum(size for _, _, size, _ in store.blobs.iter_digests())


def bench_resave(workdir: Path, size: int, repeat: int = 3) -> dict:
    src = workdir / "v0.bin"
    write_random(src, size, b"bench_chunks v0")
    variants = []
    for i in range(repeat):
        p = workdir / f"v{i + 1}.bin"
        variant(src, p, size, i + 1)
        variants.append(p)
    ref_times = []
    for p in variants:
        out = workdir / f"cp-{uuid.uuid4().hex[:8]}.bin"
        subprocess.run(["sync"], check=True)
        t = time.perf_counter()
        subprocess.run(["cp", str(p), str(out)], check=True)
        subprocess.run(["sync"], check=True)
        ref_times.append(time.perf_counter() - t)
        out.unlink()
    store = cas.open_store(str(workdir / "store"), format=2)
    try:
        first = time.perf_counter()
        store.save(src, "bench/chunks/big")
        first = time.perf_counter() - first
        cas_times, new_bytes = [], []
        for p in variants:
            subprocess.run(["sync"], check=True)
            before = stored_bytes(store)
            t = time.perf_counter()
            v = store.save(p, "bench/chunks/big")
            cas_times.append(time.perf_counter() - t)
            new_bytes.append(stored_bytes(store) - before)
        listed = store.index.chunk_list(v.digest.hex)
        n_chunks = len(store.contents.open(v.digest.hex).chunk_list)  # type: ignore[attr-defined]
        read = bench_range_read(v, size)
    finally:
        store.close()
    ratios = [r / c for r, c in zip(ref_times, cas_times, strict=True)]  # run i of each, in order
    return {
        "size": size,
        "chunks": n_chunks,
        "chunk_list": listed,
        "first_save_s": first,
        "cp_sync_s": median_range(ref_times),
        "resave_s": median_range(cas_times),
        "resave_vs_cp_sync": median_range(ratios),
        "new_bytes": median_range([float(b) for b in new_bytes]),
        "range_read": read,
    }


def bench_range_read(v: cas.ArtifactVersion, size: int) -> dict:
    times, chunks_read = [], []
    for i in range(3):
        at = size // 2 + i * 64 * 1024
        t = time.perf_counter()
        with v.open() as f:
            f.seek(at)
            data = f.read(64 * 1024)
            chunks_read.append(f.raw.chunks_read)
        times.append(time.perf_counter() - t)
        assert len(data) == 64 * 1024
    return {"bytes": 64 * 1024, "chunks_read": max(chunks_read), "seconds": median_range(times)}


def bench_chunkers(size: int) -> dict:
    data = blake3.blake3(b"bench_chunks chunkers").digest(length=size)
    results: dict[str, float] = {}

    def rate(fn) -> float:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return size / best / 1e6

    results["blake3 (1 thread)"] = rate(lambda: blake3.blake3(data).digest())
    results["pyfastcdc, cas parameters"] = rate(lambda: sum(1 for _ in chunks.chunker().cut_buf(data)))
    from pyfastcdc import FastCDC

    wide = FastCDC(1 << 20, min_size=256 << 10, max_size=4 << 20)
    results["pyfastcdc, 256 KiB / 1 MiB"] = rate(lambda: sum(1 for _ in wide.cut_buf(data)))
    try:
        from fastcdc import fastcdc_cy  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        results["fastcdc (Cython), 256 KiB / 1 MiB"] = rate(
            lambda: sum(1 for _ in fastcdc_cy.fastcdc_cy(data, min_size=256 << 10, avg_size=1 << 20, max_size=4 << 20))
        )
    return {name: round(mbps) for name, mbps in results.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    size = parse_size(os.environ.get("CAS_BENCH_CHUNKS_SIZE", "1GiB"))
    base = Path(args.workdir) if args.workdir else Path(os.environ.get("TMPDIR", "/tmp")) / "cas-bench-chunks"
    workdir = base / uuid.uuid4().hex[:8]  # old runs are left for the caller to move aside (benchmarks/README.md)
    workdir.mkdir(parents=True)
    result = {"resave": bench_resave(workdir, size), "chunkers_mb_s": bench_chunkers(min(size, 256 * MiB))}
    shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    r = result["resave"]
    print(f"file {size / MiB:.0f} MiB in {r['chunks']} chunks (first save {r['first_save_s']:.2f} s)")
    print(f"re-save with 1 MiB changed: new bytes {r['new_bytes']['median'] / MiB:.2f} MiB"
          f" (min {r['new_bytes']['min'] / MiB:.2f}, max {r['new_bytes']['max'] / MiB:.2f}); target <= 4 MiB")
    print(f"  cas {r['resave_s']['median']:.2f} s vs cp+sync {r['cp_sync_s']['median']:.2f} s:"
          f" {r['resave_vs_cp_sync']['median']:.2f}x (min {r['resave_vs_cp_sync']['min']:.2f},"
          f" max {r['resave_vs_cp_sync']['max']:.2f}); target >= 0.7x")
    rr = r["range_read"]
    print(f"64 KiB verified range read: {rr['chunks_read']} chunk(s) read, {rr['seconds']['median'] * 1000:.1f} ms;"
          " target <= 2 chunks")
    for name, mbps in result["chunkers_mb_s"].items():
        print(f"  {name}: {mbps} MB/s")


if __name__ == "__main__":
    main()

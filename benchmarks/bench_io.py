"""Whole verified reads against ``cat FILE > /dev/null``, measured in the same run.

    python benchmarks/bench_io.py [--json] [--workdir DIR] [--repeat 3]
    CAS_BENCH_IO_MIB=256 python benchmarks/bench_io.py     # a quick run (default 1024 MiB)

Rows: ``fs.cat_file`` (whole), ``cas cat NAME > /dev/null`` (the whole process,
start-up included; and minus the time of ``cas show NAME`` in the same round,
which is start-up alone), ``version.read_bytes()``, ``version.open().read()``.  Each
is a ratio of speeds (``cat``'s time / the row's time: 1.0 is as fast as cat),
the median of ``--repeat`` rounds with min-max; the rounds interleave the
contenders so a noisy neighbour disturbs them alike.  The page cache is warm
for everyone (the file is read once first): this measures cas's own cost.

Two floors are printed with them, to show what bounds a read that must
return one ``bytes`` object: allocating (faulting in) a buffer of the size,
and raw BLAKE3 of the file through a 1 MiB page-aligned buffer.

``save one 1 GiB file durable vs cp+sync`` is in ``bench_core.py``.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import blake3

import cas
from cas.fs import CasFileSystem

MiB = 1 << 20


def write_random_file(path: Path, size: int) -> None:
    block = os.urandom(16 * MiB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            block = block[1:] + block[:1]  # blocks never repeat
            left -= n


def raw_blake3(path: Path) -> None:
    buf = mmap.mmap(-1, MiB)
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb", buffering=0) as f, memoryview(buf) as view:
        while n := f.readinto(view):
            h.update(view[:n])
    buf.close()


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workdir", default=str(Path(__file__).parent / "_work"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = int(os.environ.get("CAS_BENCH_IO_MIB", "1024")) * MiB
    work = Path(args.workdir) / "io"
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"big-{size}.bin"
    if not src.exists() or src.stat().st_size != size:
        write_random_file(src, size)
    store_dir = work / f"store-{uuid.uuid4().hex[:8]}"  # fresh; old ones are left (see README)
    store = cas.open_store(str(store_dir))
    fmt = store.format
    v = store.save(src, "bench/io/big")
    fs = CasFileSystem(store=store, skip_instance_cache=True)
    path = f"{v.name}/{v.version}"
    cas_cli = [sys.executable, "-m", "cas.cli", "--store", str(store_dir)]

    def version_open_read() -> None:
        with v.open() as f:
            f.read()

    contenders = {
        "cat > /dev/null": lambda: subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True),
        "fs.cat_file": lambda: fs.cat_file(path),
        "cas cat > /dev/null": lambda: subprocess.run([*cas_cli, "cat", v.ref], stdout=subprocess.DEVNULL, check=True),
        "start-up: cas show NAME": lambda: subprocess.run([*cas_cli, "show", v.ref], stdout=subprocess.DEVNULL, check=True),
        "version.read_bytes()": v.read_bytes,
        "version.open().read()": version_open_read,
        "floor: allocate the bytes": lambda: bytearray(size),
        "floor: raw BLAKE3, 1 MiB buffer": lambda: raw_blake3(src),
    }
    subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    times: dict[str, list[float]] = {k: [] for k in contenders}
    cpu: dict[str, list[float]] = {k: [] for k in contenders}  # this process's threads and its children
    for _ in range(args.repeat):
        for label, fn in contenders.items():
            c, t = _cpu(), time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t)
            cpu[label].append(_cpu() - c)
    store.close()

    # what cas cat costs beyond starting a cas process (bench_cli.py measures start-up);
    # left out when start-up's own noise is larger than the read
    reading = [c - s for c, s in zip(times["cas cat > /dev/null"], times["start-up: cas show NAME"], strict=True)]
    if min(reading) > 0:
        times["cas cat minus start-up"] = reading
        cpu["cas cat minus start-up"] = [
            c - s for c, s in zip(cpu["cas cat > /dev/null"], cpu["start-up: cas show NAME"], strict=True)
        ]
    ref = times["cat > /dev/null"]
    rows = {}
    for label, ts in times.items():
        ratios = [r / t for r, t in zip(ref, ts, strict=True)]  # per round: the same moment's cat
        rows[label] = {
            "seconds_median": statistics.median(ts),
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "GB_per_s_median": size / statistics.median(ts) / 1e9,
            # CPU seconds (every thread, child processes included): steadier than wall time
            # on a loaded machine; cat's CPU / this CPU
            "cpu_seconds_median": statistics.median(cpu[label]),
            "cpu_ratio_median": statistics.median(
                [r / max(c, 1e-9) for r, c in zip(cpu["cat > /dev/null"], cpu[label], strict=True)]
            ),
        }
    if args.json:
        print(json.dumps({"size_bytes": size, "format": fmt, "repeat": args.repeat, "rows": rows}, indent=2))
        return
    print(f"read {size // MiB} MiB whole, verified, format {fmt}; ratio = cat's time / this time (target >= 0.8)")
    for label, r in rows.items():
        print(
            f"  {label:34s} {r['ratio_median']:5.2f}x  ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})"
            f"  {r['seconds_median']:.3f} s  {r['GB_per_s_median']:.2f} GB/s"
            f"  cpu {r['cpu_seconds_median']:.3f} s ({r['cpu_ratio_median']:.2f}x)"
        )


if __name__ == "__main__":
    main()

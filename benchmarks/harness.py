"""What every issue-14 benchmark shares: sizes, trials, rows, the table and the JSON.

A benchmark measures a *row* (one line of issue 14's table): a reference and
its contenders, each timed ``CAS_BENCH_REPEAT`` (default 3) times, the rounds
interleaved (reference, then every contender, then again) so a noisy
neighbour hurts them alike.  A contender's ratio is reference median / its
median (higher is better); its range is reference median / its max .. / its min.

Environment:

* ``CAS_BENCH_SCALE`` (default 1): multiplies every size (0.05 is a quick run);
* ``CAS_BENCH_REPEAT`` (default 3): trials per contender;
* ``CAS_NEW_STORE_FORMAT`` (1 or 2): the format of every store the benchmarks
  create (cas reads it itself); reported with the results.

``--json`` prints one document ``{"benchmark", "scale", "format", "rows": [...]}``;
``benchmarks/run_all.py`` reads the ``rows`` of every ``bench_*.py`` that prints them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = HERE / "_work"

# The rows of issue 14's table: id -> (work, reference, target, file that owns cas's figure).
ROWS: dict[str, tuple[str, str, str, str]] = {
    "save-tree": ("save 20,000 x 4 KiB as one tree", "cp -r + sync", ">= 1.0x", "bench_packs.py, bench_tree.py"),
    "resave-unchanged": ("re-save that tree unchanged", "raw BLAKE3 of all files", ">= 2x", "bench_tree.py"),
    "resave-1pct": ("re-save it with 1 % of files changed", "raw BLAKE3 of all files", ">= 1x", "bench_tree.py"),
    "big-1mib-changed": ("1 GiB file, 1 MiB changed, saved again", "cp + sync", "<= 4 MiB new, >= 0.7x", "bench_chunks.py"),
    "range-read": ("read 64 KiB from the middle of 1 GiB, verified", "-", "verified, <= 2 chunks", "bench_chunks.py"),
    "sync-local": ("sync 18,000 blobs, 99 % present, local -> local", "rclone sync size/modtime", ">= 1.5x", "bench_sync.py"),
    "sync-s3": ("sync the same, local -> S3 (moto)", "rclone sync size/modtime", ">= 15x, objects <= 2 %", "bench_sync.py"),
    "writers": ("1 -> 4 -> 8 writer processes, one bucket (moto)", "1 writer's saves/s", ">= 3x at 8", "bench_writers.py"),
    "read-whole": ("read a 1 GiB version whole", "cat > /dev/null", ">= 0.8x", "bench_io.py"),
    "show-log": ("cas show NAME@3 --json / cas log of 10,000", "python -c pass", "<= 100 ms / <= 150 ms", "bench_cli.py"),
    "put-vs-api": ("cas put DIR vs store.save(Path), 20k files", "the API call", "within 10 %", "bench_cli.py"),
}


def scale() -> float:
    return float(os.environ.get("CAS_BENCH_SCALE") or 1)


def scaled(n: int, minimum: int = 1) -> int:
    return max(minimum, round(n * scale()))


def repeat() -> int:
    return max(1, int(os.environ.get("CAS_BENCH_REPEAT") or 3))


def store_format() -> int:
    return int(os.environ.get("CAS_NEW_STORE_FORMAT") or 1)


def cas_cli() -> list[str]:
    """The ``cas`` command of this interpreter's environment (a whole process, as a user runs it)."""
    script = Path(sys.executable).with_name("cas")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cas.cli"]


def fresh(workdir: Path, name: str) -> Path:
    """A new, unused path under ``workdir`` (not created).

    Nothing is deleted between trials or runs: creating files right after
    deleting tens of thousands is very slow on ext4.  ``run_all.py`` moves a
    previous run's work aside; delete ``_old`` when nothing is being measured."""
    return workdir / f"{name}-{uuid.uuid4().hex[:8]}"


def move_aside(workdir: Path, keep: tuple[str, ...] = ()) -> None:
    """Rename every entry of ``workdir`` except ``keep`` into ``workdir/_old/<time>/`` (a rename, not a delete)."""
    if not workdir.exists():
        return
    old = workdir / "_old" / time.strftime("%Y%m%d-%H%M%S")
    for entry in workdir.iterdir():
        if entry.name in keep or entry.name == "_old":
            continue
        old.mkdir(parents=True, exist_ok=True)
        entry.rename(old / entry.name)


def run(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: float = 3600) -> str:
    """Run a command; its output, or SystemExit with the tail of its stderr."""
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} failed ({out.returncode}): {(out.stderr or out.stdout)[-1500:]}")
    return out.stdout + out.stderr


def local_env(**extra: str) -> dict:
    """The environment for tools talking to this machine's servers: no proxy for loopback."""
    env = dict(os.environ, **extra)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@dataclass
class Contender:
    """One tool in a row: ``setup()`` (untimed) returns what ``trial(state)`` gets; ``trial``
    returns None or a dict of extra figures (bytes sent, objects written), kept from the last trial,
    or a function returning that dict, called untimed (counting objects costs a listing)."""

    name: str
    trial: Callable[[object], dict | None]
    setup: Callable[[], object] = lambda: None
    skipped: str | None = None
    times: list[float] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    error: str | None = None


def spread(times: list[float]) -> dict:
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}


def measure(row: str, reference: Contender, contenders: list[Contender], trials: int | None = None, **info) -> dict:
    """Time the reference and every contender ``trials`` rounds, interleaved; the row as a dict."""
    trials = trials or repeat()
    everyone = [reference, *contenders]
    for _ in range(trials):
        for c in everyone:
            if c.skipped or c.error:
                continue
            try:
                state = c.setup()
                t = time.perf_counter()
                extra = c.trial(state)
                c.times.append(time.perf_counter() - t)
                extra = extra() if callable(extra) else extra  # counted after the clock stops
                c.extra.update(extra or {})
            except Exception as e:  # one broken tool must not lose the other figures
                c.error = f"{type(e).__name__}: {str(e).strip()[:400]}"
            print(f"  [{row}] {c.name}: {c.times[-1] if c.times and not c.error else c.error}", file=sys.stderr, flush=True)
    if reference.error or not reference.times:
        raise RuntimeError(f"{row}: the reference failed: {reference.error}")
    ref = spread(reference.times)
    out = []
    for c in contenders:
        entry: dict = {"name": c.name}
        if c.skipped or c.error:
            entry["skipped"] = c.skipped or c.error
        else:
            s = spread(c.times)
            entry |= {"seconds": s, "ratio": ref["median"] / s["median"],
                      "ratio_min": ref["median"] / s["max"], "ratio_max": ref["median"] / s["min"]}
        entry |= c.extra
        out.append(entry)
    return {"row": row, "work": ROWS[row][0] if row in ROWS else row, "reference": reference.name,
            "reference_seconds": ref, "contenders": out, **info}


def skipped_row(row: str, reference: str, why: str, **info) -> dict:
    """A row whose reference could not run: printed as "skipped: why"."""
    return {"row": row, "work": ROWS[row][0] if row in ROWS else row, "reference": reference,
            "skipped": why, "contenders": [], **info}


def ratio_text(entry: dict) -> str:
    if "skipped" in entry:
        return f"skipped: {entry['skipped']}"
    if "ratio" not in entry:
        return ", ".join(f"{k}={v}" for k, v in entry.items() if k != "name")
    text = f"{entry['ratio']:.2f}x ({entry['ratio_min']:.2f}-{entry['ratio_max']:.2f})  {entry['seconds']['median']:.3f} s"
    notes = [f"{k}={v}" for k, v in entry.items() if k not in ("name", "seconds", "ratio", "ratio_min", "ratio_max")]
    return text + (f"  [{', '.join(notes)}]" if notes else "")


def print_rows(rows: list[dict], file=None) -> None:
    file = file or sys.stdout
    for r in rows:
        ref = r.get("reference_seconds")
        ref_text = f"{ref['median']:.3f} s ({ref['min']:.3f}-{ref['max']:.3f})" if ref else ""
        print(f"\n{r['work']}  [{r['row']}]", file=file)
        print(f"  reference  {r['reference']}: {ref_text}", file=file)
        for c in r["contenders"]:
            print(f"  {c['name']:28} {ratio_text(c)}", file=file)
        for k, v in r.items():
            if k not in ("row", "work", "reference", "reference_seconds", "contenders"):  # skipped, sizes
                print(f"  {k}: {v}", file=file)


def emit(benchmark: str, rows: list[dict], as_json: bool, **info) -> None:
    doc = {"benchmark": benchmark, "scale": scale(), "format": store_format(), "repeat": repeat(), **info, "rows": rows}
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    print(f"{benchmark}: scale {doc['scale']}, store format {doc['format']}, {doc['repeat']} trials "
          "(ratio = reference median / tool median, range from the tool's min-max)")
    print_rows(rows)


def copy_tree(src: Path, dst: Path) -> None:
    """``cp -a``: the copy keeps modification times (size/modtime comparisons stay valid)."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def warm(path: Path) -> None:
    """Read a tree once so every contender starts from the same (warm) page cache."""
    for root, _dirs, files in os.walk(path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                while fh.read(1 << 20):
                    pass

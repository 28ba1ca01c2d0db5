"""The ``cas`` command's own cost, each a ratio against a reference measured in this run.

    python benchmarks/bench_cli.py [--quick] [--json] [--repeat 3] [--workdir DIR] [--only quick|put]

Rows of issue 14's table:

* ``cas show NAME@3 --json`` and ``cas log NAME`` (10,000 versions, every line printed), each a
  whole process, against ``python -c pass`` with the same interpreter: the issue's targets are
  100 ms and 150 ms where ``python -c pass`` takes 22 ms, so ratios of 4.5 and 6.8.
* ``cas put DIR`` against the API call ``store.save(Path(DIR), name)`` for a tree of 20,000
  files of 4 KiB (5,000 with ``--quick``), both a whole process into a fresh store: the target
  is the CLI within 10 % (a ratio of at most 1.10).

Each figure is the median of ``--repeat`` runs with min-max; the contenders run interleaved, so
a burst of load from a neighbour hits them alike.  CPU time (user + system of the child) is
printed beside wall time: on a shared machine it is the steadier of the two.  Children run with
a bytecode cache (``PYTHONPYCACHEPREFIX`` in the work dir, one warm-up run first), as an
installed cas has; ``PYTHONDONTWRITEBYTECODE`` would make every run compile cas anew.  The
10,000-version store is built through the public API on /dev/shm when it is there (the build
pays an fsync per ref otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import cas

# the targets, as ratios to its 22 ms `python -c pass`
TARGETS = {"show_vs_pass": 100 / 22, "log_vs_pass": 150 / 22, "put_vs_api": 1.10}
NAME = "bench/cli/history"
TREE = "bench/cli/tree"


def child_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env.pop("CAS_STORE", None)
    return env


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def interleaved(contenders: dict[str, Callable[[], tuple[float, float]]], repeat: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in contenders}
    for _ in range(repeat):
        for key, fn in contenders.items():
            wall, cpu = fn()
            samples[key]["wall"].append(wall)
            samples[key]["cpu"].append(cpu)
    return samples


def spread(values: list[float], scale: float = 1000.0) -> dict[str, float]:
    return {"median": statistics.median(values) * scale, "min": min(values) * scale, "max": max(values) * scale}


def ratio(samples, key: str, reference: str, what: str) -> dict[str, float]:
    """Median ratio, with the min-max of the per-round ratios (round i: contender i over reference i)."""
    per_round = [a / b for a, b in zip(samples[key][what], samples[reference][what], strict=True)]
    return {
        "median": statistics.median(samples[key][what]) / statistics.median(samples[reference][what]),
        "min": min(per_round),
        "max": max(per_round),
    }


def build_history(root: Path, versions: int) -> str:
    """A store with ``versions`` versions of one name (and an alias), built by the public API."""
    store = cas.open_store(str(root))
    first = store.save(b"history", NAME)
    for _ in range(versions - 1):
        store.link(NAME, first.digest)
    store.set_alias(NAME, versions // 2, "production")
    store.close()
    return str(root)


def bench_quick_commands(workdir: Path, versions: int, repeat: int, env: dict[str, str]) -> dict:
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="cas-bench-cli-", dir=shm if shm.is_dir() else workdir))
    try:
        url = build_history(scratch / "store", versions)
        py = sys.executable
        commands = {
            "python_c_pass": [py, "-c", "pass"],
            "cas_show": [py, "-m", "cas.cli", "--store", url, "show", f"{NAME}@3", "--json"],
            "cas_log": [py, "-m", "cas.cli", "--store", url, "log", NAME],
        }
        for cmd in commands.values():  # warm-up: bytecode cache, page cache, the index's WAL
            run(cmd, env)
        samples = interleaved({k: (lambda c=c: run(c, env)) for k, c in commands.items()}, repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result: dict = {"versions": versions, "repeat": repeat}
    for key in commands:
        result[f"{key}_wall_ms"] = spread(samples[key]["wall"])
        result[f"{key}_cpu_ms"] = spread(samples[key]["cpu"])
    for key, row in (("cas_show", "show_vs_pass"), ("cas_log", "log_vs_pass")):
        result[row] = ratio(samples, key, "python_c_pass", "wall") | {"target_at_most": TARGETS[row]}
        result[f"{row}_cpu"] = ratio(samples, key, "python_c_pass", "cpu")
    return result


# the API as documented: the store closed when done (as the CLI closes it: the index's WAL is
# checkpointed then), else the reference would skip work the command has to do
_API_SAVE = (
    "import sys, cas; from pathlib import Path\n"
    "with cas.open_store(sys.argv[1]) as store:\n"
    "    store.save(Path(sys.argv[2]), sys.argv[3])"
)


def small_tree(workdir: Path, count: int) -> Path:
    """``count`` files of 4 KiB in directories of 1,000 (bench_core.py's layout, shared with it)."""
    src = workdir / f"small-{count}"
    if not src.exists():
        tmp = workdir / f"small-{count}.partial-{uuid.uuid4().hex[:6]}"
        for i in range(count):
            d = tmp / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                d.mkdir(parents=True)
            (d / f"f{i:06d}.bin").write_bytes(os.urandom(4096))
        tmp.rename(src)
    subprocess.run(["du", "-s", str(src)], stdout=subprocess.DEVNULL, check=True)  # warm the inode cache
    return src


def fresh(workdir: Path, name: str) -> Path:
    """A new store path; old ones are left, not deleted (see README)."""
    return workdir / f"{name}-{uuid.uuid4().hex[:8]}"


def bench_put(workdir: Path, count: int, repeat: int, env: dict[str, str]) -> dict:
    src = small_tree(workdir, count)
    py = sys.executable
    contenders = {
        "api_save": lambda: run([py, "-c", _API_SAVE, str(fresh(workdir, "api")), str(src), TREE], env),
        "cas_put": lambda: run([py, "-m", "cas.cli", "-q", "--store", str(fresh(workdir, "cli")), "put", str(src), TREE], env),
    }
    run([py, "-c", _API_SAVE, str(fresh(workdir, "warm")), str(src), TREE], env)  # bytecode and page cache
    samples = interleaved(contenders, repeat)
    result: dict = {"files": count, "repeat": repeat}
    for key in contenders:
        result[f"{key}_wall_s"] = spread(samples[key]["wall"], 1.0)
    result["put_vs_api"] = ratio(samples, "cas_put", "api_save", "wall") | {"target_at_most": TARGETS["put_vs_api"]}
    result["put_vs_api_cpu"] = ratio(samples, "cas_put", "api_save", "cpu")
    return result


def show(results: dict) -> None:
    for section, figures in results.items():
        print(f"[{section}]")
        for k, v in figures.items():
            if isinstance(v, dict):
                text = f"{v['median']:,.2f} ({v['min']:,.2f}-{v['max']:,.2f})"
                if "target_at_most" in v:
                    met = "met" if v["median"] <= v["target_at_most"] else "NOT met"
                    text += f"  target <= {v['target_at_most']:.2f}: {met}"
                print(f"  {k:24s} {text}")
            else:
                print(f"  {k:24s} {v:,}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a 5,000-file tree (the log still has 10,000 versions)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--workdir", default=str(Path(__file__).parent / "_work"))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--versions", type=int, default=10_000, help="versions in the store show and log read")
    p.add_argument("--files", type=int, default=None, help="files in the tree put saves (default 20,000; 5,000 with --quick)")
    p.add_argument("--only", choices=["quick", "put"], action="append")
    args = p.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = child_env(workdir)
    todo = args.only or ["quick", "put"]
    results: dict = {}
    if "quick" in todo:  # show and log, the quick commands
        results["show_and_log"] = bench_quick_commands(workdir, args.versions, args.repeat, env)
    if "put" in todo:
        results["put_tree"] = bench_put(workdir, args.files or (5_000 if args.quick else 20_000), args.repeat, env)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        show(results)


if __name__ == "__main__":
    main()

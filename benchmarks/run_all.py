"""Run every ``benchmarks/bench_*.py`` and print one summary of issue 14's table.

    python benchmarks/run_all.py [--scale 0.05] [--format 1] [--format 2] [--only bench_tree] [--skip bench_core] [--json]

Each benchmark file runs as its own process with ``--json`` (and ``--quick``
when ``--scale`` is below 1 and the file has that option), with
``CAS_BENCH_SCALE``, ``CAS_BENCH_REPEAT`` and ``CAS_NEW_STORE_FORMAT`` set.  A
file whose JSON has ``"rows"`` (see harness.py) fills the rows of the table it
names; any other file's ratio-like figures (keys with ``_vs_`` or ``ratio``) are
shown under the rows its file owns, or under "other benchmarks".  Each file's
stderr goes to ``<workdir>/logs/<file>.log``.

Before running, the previous run's work directories are moved aside into
``_old/`` (renamed, not deleted: ext4 is slow creating files right after
deleting tens of thousands); cached inputs (source trees, big files) and the
tools venv stay where they are.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import harness as h

FRESH = re.compile(r"-[0-9a-f]{8}$")  # what harness.fresh (and bench_core's fresh) name their outputs


def move_old_work(workdir: Path) -> int:
    """Rename last run's outputs (``name-<8 hex>``, one or two levels down) into ``_old/<time>/``."""
    old = workdir / "_old" / time.strftime("%Y%m%d-%H%M%S")
    moved = 0
    for parent in [workdir, *(p for p in workdir.iterdir() if p.is_dir() and p.name not in ("_old", "tools", "logs"))] if workdir.exists() else []:
        for entry in list(parent.iterdir()):
            if FRESH.search(entry.name):
                target = old / entry.relative_to(workdir)
                target.parent.mkdir(parents=True, exist_ok=True)
                entry.rename(target)
                moved += 1
    return moved


def discover(only: list[str], skip: list[str]) -> list[Path]:
    files = sorted(h.HERE.glob("bench_*.py"))
    stem = {f: f.stem for f in files}
    if only:
        files = [f for f in files if stem[f] in only or f.name in only]
    return [f for f in files if stem[f] not in skip and f.name not in skip]


def run_one(path: Path, env: dict, quick: bool, timeout: float, logs: Path) -> dict:
    cmd = [sys.executable, str(path), "--json"]
    if quick:
        helptext = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, env=env, timeout=120).stdout
        if "--quick" in helptext:
            cmd.append("--quick")
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{path.stem}.log"
    start = time.perf_counter()
    result: dict = {"file": path.name, "command": " ".join(cmd[1:])}
    try:
        with open(log, "w") as err:
            done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, timeout=timeout, cwd=h.HERE.parent)
    except subprocess.TimeoutExpired:
        return result | {"seconds": timeout, "error": f"timed out after {timeout:.0f} s (log: {log})"}
    result |= {"seconds": round(time.perf_counter() - start, 1), "rc": done.returncode}
    out = done.stdout
    try:
        result["doc"] = json.loads(out[out.index("{"):])
    except ValueError:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        result["error"] = f"exit {done.returncode}, no JSON on stdout: {tail[0][:300]} (log: {log})"
    return result


def flat_ratios(doc, prefix: str = "") -> dict:
    """The ratio-like numbers of a document that has no "rows"."""
    found: dict = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            found |= flat_ratios(v, f"{prefix}{k}.")
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        key = prefix.rstrip(".")
        if "_vs_" in key or "ratio" in key:
            found[key] = round(doc, 3)
    return found


def summary(results: list[dict]) -> tuple[dict[str, list[dict]], dict[str, dict], list[str]]:
    by_row: dict[str, list[dict]] = {}
    other: dict[str, dict] = {}
    errors = []
    for r in results:
        if "error" in r:
            errors.append(f"{r['file']}: {r['error']}")
        doc = r.get("doc")
        if doc is None:
            continue
        rows = doc.get("rows") if isinstance(doc, dict) else None
        if isinstance(rows, list):
            for row in rows:
                by_row.setdefault(row.get("row", "?"), []).append(row | {"file": r["file"]})
        else:
            other[r["file"]] = flat_ratios(doc)
    return by_row, other, errors


def print_summary(results: list[dict], env: dict) -> None:
    by_row, other, errors = summary(results)
    print(f"\nissue 14, summary: scale {env['CAS_BENCH_SCALE']}, store format {env['CAS_NEW_STORE_FORMAT']}, "
          f"{env['CAS_BENCH_REPEAT']} trials; ratio = reference median / tool median (higher is better), "
          "range from the tool's min-max")
    shown = set()
    for key, (work, reference, target, owners) in h.ROWS.items():
        print(f"\n{work}   (reference: {reference}; target {target})")
        rows = by_row.get(key, [])
        for row in rows:
            ref = row.get("reference_seconds")
            if "skipped" in row:
                print(f"  skipped: {row['skipped']}  [{row['file']}]")
                continue
            if ref:
                print(f"  {row['reference']:34} {ref['median']:.3f} s ({ref['min']:.3f}-{ref['max']:.3f})  [{row['file']}]")
            for c in row.get("contenders", []):
                print(f"  {c['name']:34} {h.ratio_text(c)}")
        figures = {f: other[f] for f in other if f in owners}
        for f, fig in figures.items():
            shown.add(f)
            print(f"  figures from {f}: " + (", ".join(f"{k}={v}" for k, v in fig.items()) or "(no ratio-like keys)"))
        if not rows and not figures:
            print(f"  not measured: no report from {owners} (missing, failed or skipped)")
    extra_rows = [k for k in by_row if k not in h.ROWS]
    if extra_rows or set(other) - shown:
        print("\nother benchmarks")
        for k in extra_rows:
            h.print_rows(by_row[k])
        for f in sorted(set(other) - shown):
            print(f"  {f}: " + ", ".join(f"{k}={v}" for k, v in other[f].items()))
    print("\nfiles:")
    for r in results:
        print(f"  {r['file']:22} {r.get('seconds', '?')} s" + (f"  ERROR {r['error']}" if "error" in r else ""))
    for e in errors:
        print(f"  ! {e}", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=None, help="CAS_BENCH_SCALE for every file (default: $CAS_BENCH_SCALE or 1)")
    p.add_argument("--repeat", type=int, default=None, help="CAS_BENCH_REPEAT (default 3)")
    p.add_argument("--format", type=int, choices=[1, 2], action="append",
                   help="CAS_NEW_STORE_FORMAT of every new store; twice (--format 1 --format 2) runs everything per format")
    p.add_argument("--only", action="append", default=[], help="run only this file (bench_tree or bench_tree.py; repeatable)")
    p.add_argument("--skip", action="append", default=[], help="skip this file (repeatable)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per file")
    p.add_argument("--workdir", default=str(h.DEFAULT_WORKDIR))
    p.add_argument("--json", action="store_true")
    p.add_argument("--list", action="store_true", help="list the files and the rows, run nothing")
    args = p.parse_args()
    files = discover(args.only, args.skip)
    if args.list:
        for f in files:
            print(f.name)
        for key, (work, _ref, _target, owners) in h.ROWS.items():
            print(f"  {key:18} {work}  [{owners}]")
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    moved = move_old_work(workdir)
    if moved:
        print(f"moved {moved} entries of the last run into {workdir / '_old'}", file=sys.stderr)
    docs = []
    for fmt in args.format or [h.store_format()]:
        env = dict(os.environ)
        env["CAS_BENCH_SCALE"] = str(args.scale if args.scale is not None else h.scale())
        env["CAS_BENCH_REPEAT"] = str(args.repeat or h.repeat())
        env["CAS_NEW_STORE_FORMAT"] = str(fmt)
        results = []
        for f in files:
            print(f"running {f.name} (format {fmt}) ...", file=sys.stderr, flush=True)
            r = run_one(f, env, float(env["CAS_BENCH_SCALE"]) < 1, args.timeout, workdir / "logs" / f"format{fmt}")
            print(f"  {f.name}: {r.get('seconds')} s" + (f", {r['error']}" if "error" in r else ""), file=sys.stderr, flush=True)
            results.append(r)
        if args.json:
            by_row, other, errors = summary(results)
            docs.append({"scale": float(env["CAS_BENCH_SCALE"]), "format": fmt, "repeat": int(env["CAS_BENCH_REPEAT"]),
                         "rows": by_row, "other": other, "errors": errors,
                         "files": [{k: v for k, v in r.items() if k != "doc"} for r in results]})
        else:
            print_summary(results, env)
    if args.json:
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))


if __name__ == "__main__":
    main()

"""Sync with 99% of 18,000 blobs already at the destination: cas vs rclone, local and S3 (moto).

    python benchmarks/bench_sync.py [--files 18000] [--repeat 3] [--no-s3] [--json] [--workdir DIR]

Scenario: the source store holds a tree version of N*0.99 files, already synced;
then a second version adds N*0.01 new files.  Each trial starts from a copy of
that "99% there" destination and syncs it:

* ``cas sync SRC DST`` (the CLI, a fresh process, as a user runs it);
* ``rclone sync`` between the same two directories, by size/modtime (rclone's
  default) and with ``--checksum``;
* the same ``cas sync`` to S3 on a local moto server, against ``rclone sync`` to
  the same server (a bucket prefix filled with the same files).

Every figure is a ratio against a reference measured in this run.  rclone
comes from the Debian package (``apt-get install rclone``); without it the
local comparison falls back to ``rsync -a`` and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import cas

HERE = Path(__file__).resolve().parent
CAS = [sys.executable, "-m", "cas.cli"]
EXCLUDES = ["--exclude", "index.sqlite*", "--exclude", "tmp/**"]


def run(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({out.returncode}): {out.stderr[-2000:]}")
    return elapsed, out.stdout + out.stderr


def fresh(workdir: Path, name: str) -> Path:
    """A new path; old ones are moved aside, not deleted (see README)."""
    return workdir / f"{name}-{uuid.uuid4().hex[:8]}"


def copy_tree(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def build(workdir: Path, files: int) -> tuple[Path, Path, int]:
    """Source store (two versions) and a destination snapshot holding the first."""
    old = int(files * 0.99)
    src = fresh(workdir, "src")
    tree = fresh(workdir, "tree")
    tree.mkdir(parents=True)
    for i in range(old):
        (tree / f"f{i:06d}.bin").write_bytes(os.urandom(4096))
    with cas.open_store(src) as s:
        s.save(tree, "bench/prep/data")
    snapshot = fresh(workdir, "dst-snapshot")
    run([*CAS, "sync", str(src), str(snapshot)])
    for i in range(old, files):
        (tree / f"f{i:06d}.bin").write_bytes(os.urandom(4096))
    with cas.open_store(src) as s:
        s.save(tree, "bench/prep/data")
    new_bytes = (files - old) * 4096
    return src, snapshot, new_bytes


# the final --stats-one-line line: "INFO  :   80.012 KiB / 80.012 KiB, 100%, ..."
_TRANSFERRED = re.compile(r"([\d.]+)\s*(\w*)\s*/\s*[\d.]+\s*\w*,\s*\d+%")
_UNITS = {"": 1, "B": 1, "Byte": 1, "Bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "k": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def rclone_bytes(output: str) -> int | None:
    found = _TRANSFERRED.findall(output)
    if not found:
        return None
    value, unit = found[-1]
    return int(float(value) * _UNITS.get(unit, 1))


def bytes_missing(src: Path, dst: Path) -> int:
    """What the destination lacks, counted independently of cas: files under blobs/ only in src."""

    def blobs(root: Path) -> dict[str, int]:
        return {str(p.relative_to(root)): p.stat().st_size for p in (root / "blobs").rglob("*") if p.is_file()}

    have = blobs(dst)
    return sum(size for rel, size in blobs(src).items() if rel not in have)


def median_trial(n: int, setup, measure) -> tuple[float, object]:
    times, extra = [], None
    for _ in range(n):
        target = setup()
        t, extra = measure(target)
        times.append(t)
    return statistics.median(times), extra


def bench_local(workdir: Path, src: Path, snapshot: Path, repeat: int) -> dict:
    def setup() -> Path:
        dst = fresh(workdir, "dst")
        copy_tree(snapshot, dst)
        return dst

    def cas_sync(dst: Path):
        t, out = run([*CAS, "sync", str(src), str(dst), "--json"])
        return t, json.loads(out[: out.rindex("}") + 1])

    result: dict = {}
    t_cas, report = median_trial(repeat, setup, cas_sync)
    result["cas_sync_s"] = round(t_cas, 3)
    result["cas_bytes_sent"] = report["bytes_sent"]
    result["cas_blobs_sent"] = report["blobs_sent"]
    result["cas_blobs_skipped"] = report["blobs_skipped"]
    if shutil.which("rclone"):
        for label, flags in (("rclone_modtime", []), ("rclone_checksum", ["--checksum"])):

            def measure(dst: Path, flags=flags):
                t, out = run(["rclone", "sync", str(src), str(dst), *flags, *EXCLUDES, "--stats-one-line", "-v", "--stats", "1h"])
                return t, rclone_bytes(out)

            t, sent = median_trial(repeat, setup, measure)
            result[f"{label}_s"] = round(t, 3)
            result[f"{label}_bytes_sent"] = sent
            result[f"cas_vs_{label}"] = round(t / t_cas, 2)  # >1: cas is faster
    else:
        result["note"] = "rclone not installed (apt-get install rclone); reference is rsync -a"
        if shutil.which("rsync"):
            t, _ = median_trial(repeat, setup, lambda dst: (run(["rsync", "-a", f"{src}/", f"{dst}/"])[0], None))
            result["rsync_s"] = round(t, 3)
            result["cas_vs_rsync"] = round(t / t_cas, 2)
    return result


# -- S3 on moto ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto did not start")


def bench_s3(workdir: Path, src: Path, snapshot_src: Path, repeat: int) -> dict:
    import s3fs

    proc, endpoint = start_moto()
    try:
        env = dict(os.environ, FSSPEC_S3_ENDPOINT_URL=endpoint, FSSPEC_S3_KEY="bench", FSSPEC_S3_SECRET="bench-secret", CAS_INDEX_DIR=str(fresh(workdir, "s3-index")))
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="bench", secret="bench-secret", skip_instance_cache=True)
        fs.call_s3("create_bucket", Bucket="bench")
        url = "s3://bench/cas"
        # The 99% state: the first version synced from a store that holds only it.
        t_fill, _ = run([*CAS, "sync", str(snapshot_src), url], env=env)
        before = set(fs.find("bench/cas"))
        index_dir = Path(env["CAS_INDEX_DIR"])
        index_copy = fresh(workdir, "s3-index-copy")
        copy_tree(index_dir, index_copy)

        def reset_cas() -> None:
            extra = sorted(set(fs.find("bench/cas")) - before)
            if extra:
                fs.rm(extra)
            shutil.move(str(index_dir), str(fresh(workdir, "s3-index-old")))
            copy_tree(index_copy, index_dir)

        def cas_sync(_):
            t, out = run([*CAS, "sync", str(src), url, "--json"], env=env)
            return t, json.loads(out[: out.rindex("}") + 1])

        result: dict = {"fill_99pct_s": round(t_fill, 1)}
        t_cas, report = median_trial(repeat, reset_cas, cas_sync)
        result["cas_sync_s"] = round(t_cas, 3)
        result["cas_bytes_sent"] = report["bytes_sent"]
        result["cas_blobs_sent"] = report["blobs_sent"]
        if shutil.which("rclone"):
            renv = dict(
                os.environ,
                RCLONE_CONFIG_MOTO_TYPE="s3",
                RCLONE_CONFIG_MOTO_PROVIDER="Other",
                RCLONE_CONFIG_MOTO_ENDPOINT=endpoint,
                RCLONE_CONFIG_MOTO_ACCESS_KEY_ID="bench",
                RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY="bench-secret",
                RCLONE_CONFIG_MOTO_REGION="us-east-1",
            )
            renv.pop("AWS_CA_BUNDLE", None)  # rclone 1.60 cannot load a CA bundle for a plain-http endpoint
            run(["rclone", "sync", str(snapshot_src), "moto:bench/rclone", *EXCLUDES, "--transfers", "16"], env=renv)
            rbefore = set(fs.find("bench/rclone"))

            def reset_rclone() -> None:
                fs.invalidate_cache()
                extra = sorted(set(fs.find("bench/rclone")) - rbefore)
                if extra:
                    fs.rm(extra)

            for label, flags in (("rclone_modtime", []), ("rclone_checksum", ["--checksum"])):

                def measure(_, flags=flags):
                    t, out = run(["rclone", "sync", str(src), "moto:bench/rclone", *flags, *EXCLUDES, "--stats-one-line", "-v", "--stats", "1h"], env=renv)
                    return t, rclone_bytes(out)

                # rclone sync deletes files the source lacks, so each trial restores the 99% state
                t, sent = median_trial(repeat, reset_rclone, measure)
                run(["rclone", "sync", str(snapshot_src), "moto:bench/rclone", *EXCLUDES, "--transfers", "16"], env=renv)
                result[f"{label}_s"] = round(t, 3)
                result[f"{label}_bytes_sent"] = sent
                result[f"cas_vs_{label}"] = round(t / t_cas, 2)
        return result
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=18000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", default=str(HERE / "_work" / "sync"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    src, snapshot, new_bytes = build(workdir, args.files)
    report: dict = {
        "files": args.files,
        "new_file_bytes": new_bytes,
        "bytes_missing": bytes_missing(src, snapshot),
        "local": bench_local(workdir, src, snapshot, args.repeat),
    }
    if not args.no_s3:
        # the S3 destination's 99% state is filled from the snapshot (a store holding version 1)
        report["s3"] = bench_s3(workdir, src, snapshot, args.repeat)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"sync, {args.files} blobs, 99% already there ({new_bytes} bytes of new files)")
    print(f"bytes the destination lacks (counted from the two directories): {report['bytes_missing']}")
    for where, r in (("local -> local", report["local"]), ("local -> S3 (moto)", report.get("s3"))):
        if not r:
            continue
        print(f"\n{where}")
        for k, v in r.items():
            print(f"  {k:28} {v}")


if __name__ == "__main__":
    main()

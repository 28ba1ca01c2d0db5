"""Sync with 99 % of 18,000 blobs already at the destination: local -> local and local -> S3 (moto).

    python benchmarks/bench_sync.py [--files N] [--no-s3] [--json] [--workdir DIR]

Scenario: a source store holds version 1 of a tree (99 % of N 4 KiB files); a
copy of it at that point (``cp -a``, same mtimes) is the "99 %" source every
destination is filled from.  Then version 2 adds the other 1 %.  Each trial
starts from a copy of a destination holding version 1 and syncs version 2 in:

* reference ``rclone sync`` by size/modtime (rclone's default; no fsync) of the
  same N files as plain files (the tree, version 1 -> version 2: one file per
  blob, whatever the store's format packs them into), into a destination
  **rclone itself filled** (otherwise it rehashes every file whose mtime
  differs, and looks slow);
* ``cas sync SRC DST`` (the CLI, a new process, durable, with the bytecode cache
  an installed cas has), into a destination cas filled;
* ``rclone sync --checksum`` of the files, and ``dvc push`` of the same files
  (tracked as ``dvc add data``) to a dvc remote that holds version 1;
* local only: ``rclone sync`` of the store's own directory (format 1: a file per
  blob, as the reference; format 2: a few packs, so it has much less to compare).

The S3 row does the same against a moto server on loopback and also reports
the objects each tool wrote (new keys), against the target of <= 2 % of files.
Sizes times ``CAS_BENCH_SCALE``; stores of ``CAS_NEW_STORE_FORMAT``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import harness as h
from setup_tools import Missing, tool

import cas

EXCLUDES = ["--exclude", "index.sqlite*", "--exclude", "tmp/**"]
NAME = "bench/sync/data"
KEY, SECRET = "bench", "bench-secret"
PER_DIR = 1000


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def write_files(tree: Path, start: int, stop: int) -> None:
    for i in range(start, stop):
        d = tree / f"d{i // PER_DIR:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.bin").write_bytes(os.urandom(4096))


class Scenario:
    """The source store (versions 1 and 2), its version-1 copy, and the tree for dvc."""

    def __init__(self, workdir: Path, files: int) -> None:
        self.workdir = workdir
        self.files = files
        self.old = int(files * 0.99)
        self.tree = h.fresh(workdir, "tree")
        write_files(self.tree, 0, self.old)
        self.src = h.fresh(workdir, "src")
        with cas.open_store(str(self.src)) as s:
            s.save(self.tree, NAME)
        self.src_v1 = h.fresh(workdir, "src-v1")
        h.copy_tree(self.src, self.src_v1)
        self.v2_tree = h.fresh(workdir, "tree-v2")
        h.copy_tree(self.tree, self.v2_tree)
        write_files(self.v2_tree, self.old, files)
        with cas.open_store(str(self.src)) as s:
            s.save(self.v2_tree, NAME)
        self.new_bytes = (files - self.old) * 4096


def rclone_flags() -> list[str]:
    return [*EXCLUDES, "--stats", "0"]


def cas_env(workdir: Path, **extra: str) -> dict:
    """The cas CLI's environment: a bytecode cache in the work dir, as an installed cas has
    (``PYTHONDONTWRITEBYTECODE`` would make every trial compile cas anew; the untimed fill
    before the trials warms it)."""
    env = h.local_env(PYTHONPYCACHEPREFIX=str(workdir / "pycache"), **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# -- dvc ---------------------------------------------------------------------------------


class Dvc:
    """A dvc repository tracking the tree as ``data/``: version 1 pushed to a local remote
    (and to S3 when there is an endpoint), then version 2 added (not pushed)."""

    def __init__(self, workdir: Path, sc: Scenario, exe: str, endpoint: str | None) -> None:
        self.exe = exe
        self.env = dict(h.local_env(), DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(workdir / "dvc-site-cache"))
        self.repo = h.fresh(workdir, "dvc-repo")
        self.repo.mkdir(parents=True)
        self.dvc("init", "-q", "--no-scm")
        self.dvc("config", "core.analytics", "false")
        h.copy_tree(sc.tree, self.repo / "data")
        self.dvc("add", "-q", "data")
        self.remote_v1 = h.fresh(workdir, "dvc-remote-v1")
        self.dvc("remote", "add", "-f", "local", str(self.remote_v1))
        self.dvc("push", "-q", "-r", "local")
        if endpoint:
            self.dvc("remote", "add", "-f", "s3", "s3://bench/dvc")
            self.dvc("remote", "modify", "s3", "endpointurl", endpoint)
            self.dvc("remote", "modify", "s3", "region", "us-east-1")
            self.dvc("remote", "modify", "--local", "s3", "access_key_id", KEY)
            self.dvc("remote", "modify", "--local", "s3", "secret_access_key", SECRET)
            self.dvc("push", "-q", "-r", "s3")
        write_files(self.repo / "data", sc.old, sc.files)
        self.dvc("add", "-q", "data")

    def dvc(self, *args: str) -> str:
        return h.run([self.exe, *args], cwd=self.repo, env=self.env)


def bench_local(workdir: Path, sc: Scenario, dvc: Dvc | None, dvc_missing: str | None) -> dict:
    def copier(snapshot: Path, name: str):
        def setup() -> Path:
            dst = h.fresh(workdir, name)
            h.copy_tree(snapshot, dst)
            return dst

        return setup

    def written(dst: Path, before: int) -> dict:
        return {"files_written": count_files(dst) - before}

    try:
        rclone = tool("rclone", workdir)
    except Missing as e:
        return h.skipped_row("sync-local", "rclone sync (size/modtime)", str(e))
    env = cas_env(workdir)
    cas_v1 = h.fresh(workdir, "cas-dst-v1")
    h.run([*h.cas_cli(), "-q", "sync", str(sc.src_v1), str(cas_v1)], env=env)
    cas_before = count_files(cas_v1)

    def cas_trial(dst: Path):
        out = h.run([*h.cas_cli(), "-q", "sync", str(sc.src), str(dst), "--json"], env=env)
        report = json.loads(out[out.index("{"): out.rindex("}") + 1])
        return lambda: {"bytes_sent": report.get("bytes_sent"), "blobs_sent": report.get("blobs_sent")} | written(dst, cas_before)

    contenders = [h.Contender("cas sync (CLI)", cas_trial, copier(cas_v1, "cas-dst"))]
    rclone_v1 = h.fresh(workdir, "rclone-dst-v1")
    h.run([rclone, "sync", str(sc.tree), str(rclone_v1), *rclone_flags()])
    rclone_before = count_files(rclone_v1)
    store_v1 = h.fresh(workdir, "rclone-store-v1")
    h.run([rclone, "sync", str(sc.src_v1), str(store_v1), *rclone_flags()])
    store_before = count_files(store_v1)

    def rclone_trial(*flags: str, src: Path = sc.v2_tree, before: int = rclone_before):
        def trial(dst: Path):
            h.run([rclone, "sync", str(src), str(dst), *flags, *rclone_flags()])
            return lambda: written(dst, before)

        return trial

    ref = h.Contender("rclone sync (size/modtime)", rclone_trial(), copier(rclone_v1, "rclone-dst"))
    contenders.append(h.Contender("rclone sync --checksum", rclone_trial("--checksum"), copier(rclone_v1, "rclone-dst")))
    contenders.append(h.Contender("rclone sync (store dir)", rclone_trial(src=sc.src, before=store_before),
                                  copier(store_v1, "rclone-store")))
    if dvc is None:
        contenders.append(h.Contender("dvc push", lambda _: None, skipped=dvc_missing))
    else:
        dvc_before = count_files(dvc.remote_v1)

        def dvc_setup() -> Path:
            remote = copier(dvc.remote_v1, "dvc-remote")()
            dvc.dvc("remote", "modify", "local", "url", str(remote))
            return remote

        def dvc_trial(remote: Path):
            dvc.dvc("push", "-q", "-r", "local")
            return lambda: written(remote, dvc_before)

        contenders.append(h.Contender("dvc push", dvc_trial, dvc_setup))
    return h.measure("sync-local", ref, contenders, files=sc.files, new_file_bytes=sc.new_bytes)


# -- S3 on moto ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(600):
        try:
            opener.open(endpoint + "/moto-api/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto did not start")
    import s3fs

    s3fs.S3FileSystem(endpoint_url=endpoint, key=KEY, secret=SECRET, skip_instance_cache=True).call_s3("create_bucket", Bucket="bench")
    return proc, endpoint


def bench_s3(workdir: Path, sc: Scenario, endpoint: str, dvc: Dvc | None, dvc_missing: str | None) -> dict:
    import s3fs

    try:
        rclone = tool("rclone", workdir)
    except Missing as e:
        return h.skipped_row("sync-s3", "rclone sync (size/modtime)", str(e))
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key=KEY, secret=SECRET, skip_instance_cache=True)

    def keys(prefix: str) -> set[str]:
        fs.invalidate_cache()
        return set(fs.find(f"bench/{prefix}"))

    def reset(prefix: str, before: set[str]) -> None:
        extra = sorted(keys(prefix) - before)
        if extra:
            fs.rm(extra)

    # cas: the index lives outside the bucket; each trial restores its version-1 copy
    index_dir = workdir / f"s3-index-{os.getpid()}"
    env = cas_env(workdir, FSSPEC_S3_ENDPOINT_URL=endpoint, FSSPEC_S3_KEY=KEY, FSSPEC_S3_SECRET=SECRET, CAS_INDEX_DIR=str(index_dir))
    h.run([*h.cas_cli(), "-q", "sync", str(sc.src_v1), "s3://bench/cas"], env=env)
    cas_before = keys("cas")
    index_v1 = h.fresh(workdir, "s3-index-v1")
    h.copy_tree(index_dir, index_v1)

    def cas_setup() -> None:
        reset("cas", cas_before)
        index_dir.rename(h.fresh(workdir, "s3-index-old"))
        h.copy_tree(index_v1, index_dir)

    def cas_trial(_):
        out = h.run([*h.cas_cli(), "-q", "sync", str(sc.src), "s3://bench/cas", "--json"], env=env)
        report = json.loads(out[out.index("{"): out.rindex("}") + 1])
        return lambda: {"bytes_sent": report.get("bytes_sent"), "objects_written": len(keys("cas") - cas_before)}

    renv = h.local_env(RCLONE_CONFIG_MOTO_TYPE="s3", RCLONE_CONFIG_MOTO_PROVIDER="Other", RCLONE_CONFIG_MOTO_ENDPOINT=endpoint,
                       RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=KEY, RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=SECRET,
                       RCLONE_CONFIG_MOTO_REGION="us-east-1")
    renv.pop("AWS_CA_BUNDLE", None)  # rclone 1.60 cannot load a CA bundle for a plain-http endpoint
    fill = [rclone, "sync", str(sc.tree), "moto:bench/rclone", *rclone_flags(), "--transfers", "16"]
    h.run(fill, env=renv)
    rclone_before = keys("rclone")

    def rclone_setup() -> None:
        # back to version 1 exactly (rclone also rewrote changed files); by checksum, which reads
        # the ETags of the listing rather than every object's mtime: the same end state, sooner
        h.run([*fill, "--checksum"], env=renv)

    def rclone_trial(*flags: str):
        def trial(_):
            h.run([rclone, "sync", str(sc.v2_tree), "moto:bench/rclone", *flags, *rclone_flags()], env=renv)
            return lambda: {"objects_written": len(keys("rclone") - rclone_before)}

        return trial

    ref = h.Contender("rclone sync (size/modtime)", rclone_trial(), rclone_setup)
    contenders = [h.Contender("cas sync (CLI)", cas_trial, cas_setup),
                  h.Contender("rclone sync --checksum", rclone_trial("--checksum"), rclone_setup)]
    if dvc is None:
        contenders.append(h.Contender("dvc push", lambda _: None, skipped=dvc_missing))
    else:
        contenders.append(dvc_s3(dvc, keys, reset))
    return h.measure("sync-s3", ref, contenders, files=sc.files, target_objects=int(sc.files * 0.02))


def dvc_s3(dvc: Dvc, keys, reset) -> h.Contender:
    """dvc's S3 remote on moto, filled with version 1 before version 2 is added (see ``main``)."""
    before = keys("dvc")

    def setup() -> None:
        reset("dvc", before)

    def trial(_):
        dvc.dvc("push", "-q", "-r", "s3")
        return lambda: {"objects_written": len(keys("dvc") - before)}

    return h.Contender("dvc push", trial, setup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=None, help="blobs in all (default 18,000 x CAS_BENCH_SCALE)")
    p.add_argument("--no-s3", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--workdir", default=str(h.DEFAULT_WORKDIR / "sync"))
    args = p.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    files = args.files or h.scaled(18_000, 200)
    sc = Scenario(workdir, files)
    moto = None if args.no_s3 else start_moto()
    try:
        dvc, dvc_missing = None, None
        try:
            dvc = Dvc(workdir, sc, tool("dvc", workdir), moto[1] if moto else None)
        except (Missing, RuntimeError) as e:
            dvc_missing = str(e)
        rows = [bench_local(workdir, sc, dvc, dvc_missing)]
        if moto:
            rows.append(bench_s3(workdir, sc, moto[1], dvc, dvc_missing))
    finally:
        if moto:
            moto[0].terminate()
            moto[0].wait()
    h.emit("bench_sync.py", rows, args.json, files=files)


if __name__ == "__main__":
    main()

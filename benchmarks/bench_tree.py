"""A tree of 20,000 x 4 KiB files: save it, re-save it unchanged, re-save it with 1 % changed.

    python benchmarks/bench_tree.py [--json] [--workdir DIR] [--only save|unchanged|changed ...]

Rows of issue 14 (sizes times ``CAS_BENCH_SCALE``, stores of ``CAS_NEW_STORE_FORMAT``):

* ``save-tree``: reference ``cp -r`` + ``sync``; cas (CLI ``cas put`` and API
  ``store.save(Path)``, each into a new store), restic (``restic backup`` into a new
  repository; restic fsyncs what it writes) and dvc (``dvc add`` in a new repository,
  then ``sync``: dvc does not fsync).  bench_packs.py measures cas here too.
* ``resave-unchanged``: reference raw BLAKE3 of all files (walk, read, hash; one
  thread, warm page cache); every contender saves the tree it already holds again.
* ``resave-1pct``: the same reference; before each trial 1 % of the files (a new
  random choice) get new bytes of the same size in each contender's copy.

Each contender works on its own ``cp -a`` copy of the tree (dvc's inside its repo).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

import blake3
import harness as h
from setup_tools import Missing, tool

import cas

FILE_SIZE = 4096
PER_DIR = 1000
NAME = "bench/tree/data"


def source_tree(workdir: Path, count: int) -> Path:
    """The tree, built once per size and kept between runs (it is only read)."""
    src = workdir / f"tree-src-{count}"
    if not src.exists():
        tmp = h.fresh(workdir, f"tree-src-{count}.partial")
        for i in range(count):
            d = tmp / f"d{i // PER_DIR:03d}"
            if i % PER_DIR == 0:
                d.mkdir(parents=True)
            (d / f"f{i:06d}.bin").write_bytes(os.urandom(FILE_SIZE))
        tmp.rename(src)
    return src


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.bin"))


def raw_blake3(root: Path) -> None:
    """The reference: every file read and hashed, one thread, as a plain Python loop would."""
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                blake3.blake3(f.read()).digest()


def sync() -> None:
    subprocess.run(["sync"], check=True)


# -- contenders ---------------------------------------------------------------------------


def cas_api(workdir: Path, tree: Path, new_store: bool) -> h.Contender:
    prepared: list[Path] = []

    def save(store: Path) -> None:
        with cas.open_store(str(store)) as s:
            s.save(tree, NAME)

    def setup():
        store = h.fresh(workdir, "cas-api-store")
        if new_store:
            return store
        if not prepared:
            save(store)
            prepared.append(store)
        return prepared[0]

    return h.Contender("cas API store.save", save, setup)


def cli_env(workdir: Path) -> dict[str, str]:
    """The CLI's environment: with a bytecode cache, as an installed cas has (bench_cli.py does
    the same; ``PYTHONDONTWRITEBYTECODE`` would make every ``cas put`` compile cas anew, about
    0.5 s of CPU here), filled once before any trial."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env.pop("CAS_STORE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(cas.__file__).parent)], env=env, check=True,
        stdout=subprocess.DEVNULL,
    )
    return env


def cas_cli(workdir: Path, tree: Path, new_store: bool) -> h.Contender:
    prepared: list[Path] = []
    env = cli_env(workdir)

    def setup():
        store = h.fresh(workdir, "cas-cli-store")
        if new_store:
            return store
        if not prepared:
            h.run([*h.cas_cli(), "--store", str(store), "-q", "put", str(tree), NAME], env=env)
            prepared.append(store)
        return prepared[0]

    def trial(store: Path):
        h.run([*h.cas_cli(), "--store", str(store), "-q", "put", str(tree), NAME], env=env)

    return h.Contender("cas CLI put", trial, setup)


def restic(workdir: Path, tree: Path, new_repo: bool) -> h.Contender:
    try:
        exe = tool("restic", workdir)
    except Missing as e:
        return h.Contender("restic backup", lambda _: None, skipped=str(e))
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR=str(workdir / "restic-cache"))
    prepared: list[Path] = []

    def init() -> Path:
        repo = h.fresh(workdir, "restic-repo")
        h.run([exe, "init", "-q", "--repo", str(repo)], env=env)
        return repo

    def setup():
        if new_repo:
            return init()
        if not prepared:
            prepared.append(init())
            h.run([exe, "backup", "-q", "--repo", str(prepared[0]), str(tree)], env=env)
        return prepared[0]

    def trial(repo: Path):
        h.run([exe, "backup", "-q", "--repo", str(repo), str(tree)], env=env)

    return h.Contender("restic backup", trial, setup)


def dvc(workdir: Path, tree: Path, new_repo: bool, root: list[Path] | None = None) -> h.Contender:
    """``dvc add`` of the tree as ``data/`` in a dvc repository (no git: ``dvc init --no-scm``)."""
    try:
        exe = tool("dvc", workdir)
    except Missing as e:
        return h.Contender("dvc add", lambda _: None, skipped=str(e))
    env = dict(os.environ, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(workdir / "dvc-site-cache"))
    prepared: list[Path] = []

    def init() -> Path:
        repo = h.fresh(workdir, "dvc-repo")
        repo.mkdir(parents=True)
        h.run([exe, "init", "-q", "--no-scm"], cwd=repo, env=env)
        h.run([exe, "config", "core.analytics", "false"], cwd=repo, env=env)
        h.copy_tree(tree, repo / "data")
        return repo

    def setup():
        if new_repo:
            return init()
        if not prepared:
            prepared.append(init())
            h.run([exe, "add", "-q", "data"], cwd=prepared[0], env=env)
            if root is not None:
                root.append(prepared[0] / "data")
        return prepared[0]

    def trial(repo: Path):
        h.run([exe, "add", "-q", "data"], cwd=repo, env=env)
        if new_repo:
            sync()  # durable, like the reference and the others

    return h.Contender("dvc add" + (" + sync" if new_repo else ""), trial, setup)


# -- rows ------------------------------------------------------------------------------------


def bench_save(workdir: Path, src: Path) -> dict:
    def cp_setup() -> Path:
        return h.fresh(workdir, "cp-r")

    def cp_trial(dest: Path):
        subprocess.run(["cp", "-r", str(src), str(dest)], check=True)
        sync()

    ref = h.Contender("cp -r + sync", cp_trial, cp_setup)
    h.warm(src)
    contenders = [cas_cli(workdir, src, True), cas_api(workdir, src, True), restic(workdir, src, True), dvc(workdir, src, True)]
    return h.measure("save-tree", ref, contenders, files=len(files_of(src)), file_size=FILE_SIZE)


def bench_resave(workdir: Path, src: Path, changed: float, rng: random.Random) -> dict:
    """Each contender holds its own copy of the tree once (saved untimed), then saves it again per trial."""
    contenders = []
    for make in (cas_cli, cas_api, restic, dvc):
        tree = h.fresh(workdir, "tree-work")
        h.copy_tree(src, tree)
        root: list[Path] = [tree]  # dvc saves its copy inside its repository: it says where
        c = make(workdir, tree, False) if make is not dvc else make(workdir, tree, False, root)
        if not c.skipped:
            try:  # hold the tree before the first round, so every trial is a re-save
                c.setup()
            except Exception as e:
                c.error = f"{type(e).__name__}: {str(e).strip()[:400]}"
        if changed:
            c.setup = _then(c.setup, lambda root=root: _change(root[-1], changed, rng))
        contenders.append(c)
    tree = h.fresh(workdir, "tree-ref")
    h.copy_tree(src, tree)
    h.warm(tree)
    sync()  # the copies' dirty pages written now, not during a trial
    ref = h.Contender("raw BLAKE3 of all files", lambda _: raw_blake3(tree))
    count = len(files_of(src))
    row = "resave-1pct" if changed else "resave-unchanged"
    return h.measure(row, ref, contenders, files=count, changed_files=round(count * changed))


def _then(setup, before):
    def wrapped():
        state = setup()
        before()
        return state

    return wrapped


def _change(root: Path, fraction: float, rng: random.Random) -> None:
    """New bytes, same size, in ``fraction`` of the files of ``root`` (a new choice each time)."""
    paths = files_of(root)
    for path in rng.sample(paths, max(1, round(len(paths) * fraction))):
        path.write_bytes(os.urandom(FILE_SIZE))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true")
    p.add_argument("--workdir", default=str(h.DEFAULT_WORKDIR / "tree"))
    p.add_argument("--files", type=int, default=None, help="files in the tree (default 20,000 x CAS_BENCH_SCALE)")
    p.add_argument("--only", choices=["save", "unchanged", "changed"], action="append")
    args = p.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    count = args.files or h.scaled(20_000, 100)
    src = source_tree(workdir, count)
    rng = random.Random(14)
    todo = args.only or ["save", "unchanged", "changed"]
    rows = []
    if "save" in todo:
        rows.append(bench_save(workdir, src))
    if "unchanged" in todo:
        rows.append(bench_resave(workdir, src, 0.0, rng))
    if "changed" in todo:
        rows.append(bench_resave(workdir, src, 0.01, rng))
    h.emit("bench_tree.py", rows, args.json, files=count)


if __name__ == "__main__":
    sys.exit(main())

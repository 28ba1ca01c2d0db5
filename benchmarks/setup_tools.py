"""Install the reference tools the benchmarks compare cas with, where they are missing.

    python -m benchmarks.setup_tools [--workdir DIR] [restic rclone dvc ...]

* restic and rclone: the Debian packages (``apt-get install restic rclone``), installed
  only when running as root and the command is missing (``apt-get update`` first if
  the install fails on a stale list);
* dvc (with its S3 plugin): pip, into its own venv under the benchmark's work
  directory (``<workdir>/tools/dvc-venv``), never into the project's environment.

Idempotent: a tool already on PATH (or already in the venv) is used as it is.
``tool(name, workdir)`` returns the command's path or raises :class:`Missing`
with a one-line reason, which a benchmark prints as its row's "skipped: ...".
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "_work"
DEBIAN = {"restic": "restic", "rclone": "rclone"}
DVC_REQUIREMENT = "dvc[s3]>=3"


class Missing(Exception):
    """A reference tool is not installed and could not be installed; the message says why."""


def _quiet(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@functools.cache
def _apt_install(package: str) -> str | None:
    """Install one Debian package; None on success, else why not."""
    if not shutil.which("apt-get"):
        return "no apt-get on this machine: install it with the system's package manager"
    if os.geteuid() != 0:
        return f"not root: run `sudo apt-get install -y {package}`"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:  # most often a package list that was never fetched
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=900)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        return f"apt-get install {package} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


def _dvc(workdir: Path) -> str:
    venv = workdir / "tools" / "dvc-venv"
    exe = venv / "bin" / "dvc"
    if exe.exists():
        return str(exe)
    if shutil.which("dvc") and os.environ.get("CAS_BENCH_SYSTEM_DVC"):
        return shutil.which("dvc")  # type: ignore[return-value]
    venv.parent.mkdir(parents=True, exist_ok=True)
    made = _quiet([sys.executable, "-m", "venv", str(venv)])
    if made.returncode != 0:
        raise Missing(f"dvc: cannot create a venv at {venv}: {made.stderr.strip()[-200:]}")
    pip = _quiet([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", DVC_REQUIREMENT], timeout=1800)
    if pip.returncode != 0 or not exe.exists():
        tail = (pip.stderr.strip().splitlines() or ["?"])[-1]
        raise Missing(f"dvc: pip install {DVC_REQUIREMENT} into {venv} failed: {tail}")
    return str(exe)


def tool(name: str, workdir: Path | None = None) -> str:
    """The path of reference tool ``name``, installed first if missing; :class:`Missing` if it cannot be."""
    workdir = Path(workdir or DEFAULT_WORKDIR)
    if name == "dvc":
        return _dvc(workdir)
    found = shutil.which(name)
    if found:
        return found
    if name not in DEBIAN:
        raise Missing(f"{name}: not installed and no known way to install it")
    why = _apt_install(DEBIAN[name])
    found = shutil.which(name)
    if found:
        return found
    raise Missing(f"{name}: {why or 'installed, yet not on PATH'}")


def version(exe: str) -> str:
    out = _quiet([exe, "version"] if Path(exe).name in ("restic", "rclone", "dvc") else [exe, "--version"], timeout=60)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tools", nargs="*", default=["restic", "rclone", "dvc"])
    p.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    args = p.parse_args()
    failed = False
    for name in args.tools:
        try:
            exe = tool(name, Path(args.workdir))
            print(f"{name:8} {exe}  ({version(exe)})")
        except Missing as e:
            failed = True
            print(f"{name:8} skipped: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

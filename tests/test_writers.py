"""Multi-file writers through cas:// (issue 11, section 4): each real client, used
as its own docs show, ends as one committed version once its process ends, or
fails loudly; never a silent loss, never a half-written version committed.

The clients run in subprocesses (tests/writers_scenario.py): what counts is
what another process finds in the store after the writer has exited.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import fsspec
import pytest

import cas
from cas.fs import CasFileSystem
from cas.fs.finish import UncommittedDraftWarning

pytest.importorskip("pandas", reason="pandas is in the 'dataframe' extra, which tox installs")
pytest.importorskip("pyarrow", reason="pyarrow is in the 'dataframe' extra, which tox installs")
pytest.importorskip("dask.dataframe", reason="dask is in the 'dataframe' extra, which tox installs")

sys.path.insert(0, str(Path(__file__).parent))
import writers_scenario as scenario  # noqa: E402

SCRIPT = str(Path(__file__).parent / "writers_scenario.py")


def run(*args: str, options: dict | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CAS_TEST_OPTIONS": json.dumps(options or {})}
    argv = [sys.executable, "-c", code, *args] if code is not None else [sys.executable, SCRIPT, *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def cas_cli(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cas.cli", "--store", url, *args], capture_output=True, text=True,
                          timeout=120)


def committed(url: str, name: str, tmp_path, **options) -> list[tuple[int, str]]:
    """What a fresh index (another machine) finds in the backend for ``name``."""
    store = cas.open_store(url, index=str(tmp_path / f"fresh-{os.urandom(4).hex()}.sqlite"), **options)
    try:
        return [(v.version, v.kind) for v in store.list_versions(name)]
    except cas.errors.ArtifactNotFoundError:
        return []
    finally:
        store.close()


def open_drafts(url: str) -> list[str]:
    fs = CasFileSystem(store=url, skip_instance_cache=True)
    try:
        return fs.drafts()
    finally:
        fs.store.close()


@pytest.mark.parametrize("client", scenario.CLIENTS)
def test_a_directory_writer_commits_one_version_when_its_process_ends(client, tmp_path):
    if client in ("zarr", "xarray"):
        pytest.importorskip(client, reason="zarr 3 (Python >= 3.11) and xarray are in the 'dataframe' extra")
    url = str(tmp_path / "store")
    wrote = run("write", client, url)
    assert wrote.returncode == 0, wrote.stderr
    assert "UncommittedDraftWarning" not in wrote.stderr
    name = scenario.TARGET[client].rsplit("/", 1)[0]
    assert committed(url, name, tmp_path) == [(1, "tree")]
    assert open_drafts(url) == []
    back = run("read", client, url)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout.splitlines()[-1]) == scenario.expected(client)


@pytest.mark.s3
@pytest.mark.parametrize("client", ["pandas", "dask-processes"])
def test_a_directory_writer_commits_on_s3(client, s3_root, s3_options, tmp_path):
    wrote = run("write", client, s3_root, options=s3_options)
    assert wrote.returncode == 0, wrote.stderr
    name = scenario.TARGET[client].rsplit("/", 1)[0]
    assert committed(s3_root, name, tmp_path, **s3_options) == [(1, "tree")]
    back = run("read", client, s3_root, options=s3_options)
    assert json.loads(back.stdout.splitlines()[-1]) == scenario.expected(client), back.stderr


def test_a_writer_that_ends_on_an_exception_commits_nothing_and_says_so(tmp_path):
    url = str(tmp_path / "store")
    wrote = run("write", "pandas", url, "fail")
    assert wrote.returncode != 0 and "written" in wrote.stdout
    assert "UncommittedDraftWarning" in wrote.stderr and "ended with an exception" in wrote.stderr
    name = scenario.TARGET["pandas"]
    assert committed(url, name.rsplit("/", 1)[0], tmp_path) == []
    # every later process that opens the store hears about it, until a person decides
    with pytest.warns(UncommittedDraftWarning, match="ended with an exception"):
        fs = CasFileSystem(store=url, skip_instance_cache=True)
        assert fs.drafts() == [name]
    fs.store.close()
    listed = cas_cli(url, "draft", "list")
    assert listed.returncode == 0 and name in listed.stdout and "ended with an exception" in listed.stdout
    bad = cas_cli(url, "draft", "commit", "writers/nothing/here/1")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "no open draft" in bad.stderr
    kept = cas_cli(url, "draft", "commit", f"cas://{name}")  # the user looked, and keeps it
    assert kept.returncode == 0 and "committed writers/pandas/out@1" in kept.stdout, kept.stderr
    assert committed(url, name.rsplit("/", 1)[0], tmp_path) == [(1, "tree")]
    assert cas_cli(url, "draft", "list").stdout.strip() == "(no drafts)"


def test_a_killed_writer_blocks_the_commit_of_a_draft_it_shared(tmp_path):
    url = str(tmp_path / "store")
    killed = run(url, code=textwrap.dedent("""
        import os, signal, sys, fsspec
        fs = fsspec.filesystem("cas", store=sys.argv[1])
        fs.pipe("p/s/shared/1/part-0", b"from the killed writer")
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    assert killed.returncode == -signal.SIGKILL
    second = run(url, code=textwrap.dedent("""
        import sys, fsspec
        fs = fsspec.filesystem("cas", store=sys.argv[1])
        fs.pipe("p/s/shared/1/part-1", b"from a writer that ends cleanly")
    """))
    assert second.returncode == 0
    assert "UncommittedDraftWarning" in second.stderr and "ended without finishing" in second.stderr
    assert committed(url, "p/s/shared", tmp_path) == []
    with pytest.warns(UncommittedDraftWarning, match="p/s/shared/1"):
        fs = CasFileSystem(store=url, skip_instance_cache=True)
        assert fs.ls("p/s/shared/1", detail=False) == ["p/s/shared/1/part-0", "p/s/shared/1/part-1"]
    fs.store.close()
    listed = cas_cli(url, "draft", "list", "--json")
    [row] = json.loads(listed.stdout)
    assert row["path"] == "p/s/shared/1" and row["files"] == 2 and "ended without finishing" in row["broken"]
    dropped = cas_cli(url, "draft", "discard", "p/s")
    assert dropped.returncode == 0 and "discarded p/s/shared/1" in dropped.stdout
    assert open_drafts(url) == [] and committed(url, "p/s/shared", tmp_path) == []


def test_a_failed_file_write_keeps_its_draft_from_committing_even_when_caught(tmp_path):
    url = str(tmp_path / "store")
    done = run(url, code=textwrap.dedent("""
        import sys, fsspec
        fs = fsspec.filesystem("cas", store=sys.argv[1])
        fs.pipe("p/s/half/1/part-0", b"whole")
        try:
            with fs.open("p/s/half/1/part-1", "wb") as f:
                f.write(b"half of it")
                raise OSError("disk full")
        except OSError:
            pass  # the writer carries on and exits cleanly: the dataset is still half-written
    """))
    assert done.returncode == 0
    assert "UncommittedDraftWarning" in done.stderr and "writing cas://p/s/half/1/part-1 failed" in done.stderr
    assert committed(url, "p/s/half", tmp_path) == []
    with pytest.warns(UncommittedDraftWarning):
        fs = CasFileSystem(store=url, skip_instance_cache=True)
    fs.discard("p/s/half/1")
    fs.store.close()


def test_every_instance_in_a_process_shares_one_draft(tmp_path):
    """zarr asks for asynchronous=True and fsspec caches an instance per thread: one draft for all."""
    url = str(tmp_path / "store")
    plain = fsspec.filesystem("cas", store=url)
    other = fsspec.filesystem("cas", store=url, asynchronous=True)
    assert other is not plain
    other.pipe("p/s/z/1/zarr.json", b"{}")
    seen: list[object] = []

    def in_a_thread():
        mine = fsspec.filesystem("cas", store=url)
        seen.append(mine)
        mine.pipe("p/s/z/1/c/0/0", b"chunk")

    t = threading.Thread(target=in_a_thread)
    t.start()
    t.join()
    assert seen[0] is not plain
    assert plain.drafts() == ["p/s/z/1"]
    assert plain.find("p/s/z/1") == ["p/s/z/1/c/0/0", "p/s/z/1/zarr.json"]
    [version] = plain.commit()  # the user's own commit(), on any instance, commits what every instance wrote
    assert version.version == 1 and other.drafts() == []
    assert other.cat("p/s/z/1/c/0/0") == b"chunk"
    for fs in list(CasFileSystem._cache.values()):
        fs.store.close()
    CasFileSystem.clear_instance_cache()


POOL = """
import multiprocessing as mp, sys, fsspec

def part(i):
    fs = fsspec.filesystem("cas", store=sys.argv[1])
    fs.pipe(f"p/s/pooled/1/part-{i}", f"part {i}".encode())
    return i

if __name__ == "__main__":
    pool = mp.get_context(sys.argv[2]).Pool(2)
    assert pool.map(part, range(4)) == [0, 1, 2, 3]
    if sys.argv[3] == "join":
        pool.close()
        pool.join()  # the workers end cleanly: the last one commits
    else:
        pool.terminate()  # what leaving `with Pool(...)` does: the workers end without leaving
"""


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_a_pool_whose_workers_end_cleanly_commits_one_version(context, tmp_path):
    url = str(tmp_path / "store")
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    done = subprocess.run([sys.executable, str(script), url, context, "join"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "UncommittedDraftWarning" not in done.stderr
    assert committed(url, "p/s/pooled", tmp_path) == [(1, "tree")]
    fs = CasFileSystem(store=url, skip_instance_cache=True)
    assert fs.find("p/s/pooled/1") == [f"p/s/pooled/1/part-{i}" for i in range(4)]
    fs.store.close()


def test_a_pool_that_terminates_its_workers_commits_whole_or_leaves_a_draft_that_warns(tmp_path):
    """Terminated workers may have had more to write: their draft is kept back, loudly (workers that
    happened to leave cleanly before the terminate commit it whole)."""
    url = str(tmp_path / "store")
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    done = subprocess.run([sys.executable, str(script), url, "fork", "terminate"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    if not committed(url, "p/s/pooled", tmp_path):
        with pytest.warns(UncommittedDraftWarning, match="p/s/pooled/1"):
            fs = CasFileSystem(store=url, skip_instance_cache=True)
        assert [v.version for v in fs.commit("p/s/pooled/1")] == [1]  # the user checked it: keep it
        fs.store.close()
    fs = CasFileSystem(store=url, skip_instance_cache=True)
    assert fs.find("p/s/pooled/1") == [f"p/s/pooled/1/part-{i}" for i in range(4)] and fs.drafts() == []
    fs.store.close()


def test_a_move_into_a_draft_deletes_its_source_when_another_process_commits_it(tmp_path):
    url = str(tmp_path / "store")
    moved = run(url, code=textwrap.dedent("""
        import sys, fsspec
        fs = fsspec.filesystem("cas", store=sys.argv[1])
        fs.pipe("p/s/src/1", b"the source")
        fs.mv("p/s/src/1", "p/s/dst/1/moved.bin")  # into a draft: the source waits for its commit
        raise RuntimeError("the writer stops before committing")
    """))
    assert moved.returncode != 0
    assert committed(url, "p/s/src", tmp_path) == [(1, "blob")]  # kept: the draft is not committed
    done = cas_cli(url, "draft", "commit", "p/s/dst/1")
    assert done.returncode == 0, done.stderr
    assert committed(url, "p/s/dst", tmp_path) == [(1, "tree")]
    assert committed(url, "p/s/src", tmp_path) == []  # the move completed: its source is deleted

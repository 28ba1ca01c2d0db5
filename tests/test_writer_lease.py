"""Declared capabilities, and the writer lease of backends that cannot create atomically.

fsspec's own local filesystem (``local://``) goes through the generic
FsspecBackend: exists-then-put, not atomic between processes.  Real
subprocesses show that a second writing process is refused (and that
readers, and writers taking turns, are not).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

import cas
from cas.backends.factory import open_backend
from cas.backends.fsspec import FsspecBackend
from cas.backends.local import LocalBackend
from cas.errors import ConcurrentWriterError, ConflictError

HOLDER = textwrap.dedent(
    """
    import sys
    import cas
    store = cas.open_store(sys.argv[1], index=sys.argv[2], auto_mkdir=True)
    store.save(b"first writer", "p/s/a")
    print("writing", flush=True)
    sys.stdin.readline()  # hold the store open until told to go
    store.close()
    """
)

SECOND = textwrap.dedent(
    """
    import sys
    import cas
    from cas.errors import ConcurrentWriterError
    store = cas.open_store(sys.argv[1], index=sys.argv[2], create=False, auto_mkdir=True)
    print(store.get_artifact_version("p/s/a", 1).read_bytes().decode(), flush=True)  # reading needs no lease
    try:
        store.save(b"second writer", "p/s/a")
    except ConcurrentWriterError as e:
        print("refused:", e, flush=True)
        sys.exit(3)
    print("saved", flush=True)
    """
)


@pytest.fixture(autouse=True)
def _own_lease_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CAS_LEASE_DIR", str(tmp_path / "leases"))


def _url(tmp_path) -> str:
    return f"local://{tmp_path / 'store'}"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def holder(tmp_path):
    """A process that has written to the store and keeps it open for writing."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, _url(tmp_path), str(tmp_path / "holder.sqlite")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "writing", proc.stderr.read()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        proc.stdin.close()


def test_capabilities_are_declared_per_backend(tmp_path):
    local = open_backend(str(tmp_path / "a"))
    assert isinstance(local, LocalBackend)
    assert local.capabilities.atomic_create and local.capabilities.local
    memory = open_backend("memory://cas-lease-memory")
    assert memory.capabilities.atomic_create and memory.capabilities.in_process  # only this process sees it
    assert not memory.capabilities.local
    generic = open_backend(_url(tmp_path), auto_mkdir=True)
    assert type(generic) is FsspecBackend
    assert not generic.capabilities.atomic_create and not generic.capabilities.in_process


def test_a_second_writing_process_is_refused(tmp_path, holder):
    second = _run(SECOND, _url(tmp_path), str(tmp_path / "second.sqlite"))
    assert second.returncode == 3, (second.stdout, second.stderr)
    read, refused = second.stdout.splitlines()
    assert read == "first writer"
    assert "atomic_create" in refused and f"process {holder.pid}" in refused
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.wait(timeout=60) == 0
    # the holder is gone: writers take turns
    again = _run(SECOND, _url(tmp_path), str(tmp_path / "second.sqlite"))
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert again.stdout.splitlines()[-1] == "saved"
    with cas.open_store(_url(tmp_path), index=str(tmp_path / "check.sqlite"), auto_mkdir=True) as store:
        assert [v.version for v in store.list_versions("p/s/a")] == [1, 2]


def test_a_killed_writer_leaves_no_stale_lease(tmp_path, holder):
    holder.kill()
    holder.wait(timeout=60)
    second = _run(SECOND, _url(tmp_path), str(tmp_path / "second.sqlite"))
    assert second.returncode == 0, (second.stdout, second.stderr)


def test_this_process_is_refused_while_another_writes(tmp_path, holder):
    backend = open_backend(_url(tmp_path), auto_mkdir=True)
    assert backend.read_bytes("cas-format")  # reads are free
    with pytest.raises(ConcurrentWriterError) as e:
        backend.create_bytes("refs/x", b"1")
    assert isinstance(e.value, ConflictError)
    with pytest.raises(ConcurrentWriterError):
        backend.remove("refs/x")  # a remover is a writer too
    assert not backend.exists("refs/x")


def test_backends_of_one_process_share_the_lease_and_release_it(tmp_path):
    a = open_backend(_url(tmp_path), auto_mkdir=True)
    b = open_backend(_url(tmp_path), auto_mkdir=True)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda be=be: results.append(be.create_bytes("refs/x", b"1"))) for be in (a, b) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]  # one lock per store in the process: one winner
    probe = "import sys; from cas.backends.factory import open_backend; open_backend(sys.argv[1], auto_mkdir=True).create_bytes('refs/y', b'2')"
    assert _run(probe, _url(tmp_path)).returncode != 0  # held while either backend is open
    a.close()
    assert _run(probe, _url(tmp_path)).returncode != 0
    b.close()
    done = _run(probe, _url(tmp_path))
    assert done.returncode == 0, done.stderr
    assert os.path.exists(tmp_path / "store" / "refs" / "y")

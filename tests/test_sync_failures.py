"""A server that goes away mid-sync: clear BackendError, a consistent destination, a rerun that completes."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from servers import make_bucket, new_moto, s3_options_for
from store_helpers import start_paused, waits_for_paused
from sync_helpers import store_state

import cas
from cas.errors import BackendError

pytestmark = pytest.mark.s3

# Fail fast: the test is about what happens after the client gives up.
FAST_FAIL = {"config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 10}}


class DroppingProxy:
    """TCP proxy on 127.0.0.1 in front of a server; ``down()`` resets every connection
    and refuses new ones (a crashed server, from the client's side), ``up()`` serves again."""

    def __init__(self, target_port: int) -> None:
        from servers import free_port

        self.port = free_port()
        self.target_port = target_port
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server: socket.socket | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            socks, self._socks = self._socks, set()
        for s in socks:
            # shutdown, not just close: it wakes the pump thread blocked in recv() on it
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _fast_failing(store: cas.Store) -> cas.Store:
    store.backend.fs.retries = 1  # s3fs's own retry loop (a class attribute, not an option)
    return store


def _source(tmp_path, n: int = 150):
    src = cas.open_store(tmp_path / "src")
    for i in range(n):
        src.save(os.urandom(16 * 1024) + i.to_bytes(4, "big"), f"p/s/a{i % 10}")
    src.set_alias("p/s/a1", 1, "production")
    return src


def _wait_for_blobs(fs_store: cas.Store, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for _ in fs_store.backend.list("blobs")) >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError("the sync never got going")


def _sync_in_thread(src, dst):
    box: dict = {}

    def run():
        try:
            box["result"] = src.sync_to(dst, jobs=4)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_connections_dropped_mid_sync_fail_clearly_and_a_rerun_completes(moto_server, s3_root, tmp_path):
    proxy = DroppingProxy(moto_server.port)
    proxy.up()
    src = _source(tmp_path)
    via_proxy = s3_options_for(proxy.endpoint, **FAST_FAIL)
    direct = s3_options_for(moto_server.endpoint)
    dst = _fast_failing(cas.open_store(s3_root, index=str(tmp_path / "dst.sqlite"), **via_proxy))
    observer = cas.open_store(s3_root, index=str(tmp_path / "observer.sqlite"), **direct)
    thread, box = _sync_in_thread(src, dst)
    _wait_for_blobs(observer, 40)
    proxy.down()
    thread.join(120)
    assert not thread.is_alive()
    err = box.get("error")
    assert isinstance(err, BackendError), repr(box)
    assert s3_root.split("/")[2] in str(err) and "\n" not in str(err)
    assert direct["secret"] not in str(err)
    # The destination is consistent: whatever refs arrived point only at blobs that are there.
    with cas.open_store(s3_root, index=str(tmp_path / "check.sqlite"), **direct) as check:
        assert check.verify().ok
        partial = store_state(check)
    proxy.up()
    result = src.sync_to(dst)
    assert result.blobs_skipped >= 40  # what had arrived was not sent again
    expected = store_state(src)
    assert partial != expected
    with cas.open_store(s3_root, index=str(tmp_path / "final.sqlite"), **direct) as final:
        assert store_state(final) == expected
        assert final.verify(deep=True).ok
    again = src.sync_to(dst)
    assert (again.blobs_sent, again.refs_sent) == (0, 0)
    proxy.down()
    for s in (src, dst, observer):
        s.close()


def test_moto_killed_mid_sync_then_restarted(tmp_path):
    """The server process itself dies (SIGKILL).  moto keeps its state in memory, so the
    restarted server is empty: the rerun must rebuild the destination completely."""
    server = new_moto().start()
    try:
        options = s3_options_for(server.endpoint, **FAST_FAIL)
        make_bucket(options)
        url = "s3://cas-test/killed"
        src = _source(tmp_path)
        dst = _fast_failing(cas.open_store(url, index=str(tmp_path / "dst.sqlite"), **options))
        thread, box = _sync_in_thread(src, dst)
        _wait_for_blobs(dst, 40)
        server.kill()
        thread.join(120)
        assert isinstance(box.get("error"), BackendError), repr(box)
        server.start()  # same port, empty
        make_bucket(options)
        dst.close()
        dst = cas.open_store(url, index=str(tmp_path / "dst-after.sqlite"), **options)
        result = src.sync_to(dst)
        assert result.blobs_skipped == 0
        assert store_state(dst) == store_state(src)
        assert dst.verify(deep=True).ok
        src.close()
        dst.close()
    finally:
        server.stop()


# -- a hostile source or destination (invariant 12): bad keys are reported, never paths ------


def _escaped(root) -> list:
    return [p for p in root.rglob("*") if "escaped" in p.name]


@pytest.mark.parametrize("key", ["refs/versions/../../../escaped/7", "refs/../../escaped/x", "refs/runs/../../../../escaped/0"])
def test_ref_keys_listed_from_an_s3_source_never_become_paths_in_the_destination(s3_root, s3_options, tmp_path, key):
    with cas.open_store(s3_root, index=str(tmp_path / "writer.sqlite"), **s3_options) as writer:
        writer.save(b"one", "p/s/a")
        writer.save(b"two", "p/s/b")
        genuine = writer.records.read_ref("refs/versions/p/s/a/1")
        assert writer.backend.create_bytes(key, genuine.encode())  # a literal key: S3 keeps the dots
    src = cas.open_store(s3_root, index=str(tmp_path / "src.sqlite"), **s3_options)  # a fresh index lists refs/
    assert [line for line in src.verify().invalid if line.startswith(f"{key}: not a ref path")]
    mirror = tmp_path / "mirror"
    dst = cas.open_store(str(mirror / "dst"))
    result = src.sync_to(dst)
    assert (result.refs_sent, result.conflicts) == (2, ())
    assert [p.name for p in mirror.iterdir()] == ["dst"] and _escaped(tmp_path) == []
    assert dst.get_artifact_version("p/s/b").read_bytes() == b"two"
    assert dst.verify().ok
    src.close()
    dst.close()


def test_a_garbage_ref_at_the_destination_is_a_conflict_not_a_failed_sync(s3_root, s3_options, tmp_path):
    src = cas.open_store(tmp_path / "src")
    src.save(b"one", "p/s/a")
    src.save(b"two", "p/s/b")
    dst = cas.open_store(s3_root, index=str(tmp_path / "dst.sqlite"), **s3_options)
    assert dst.backend.create_bytes("refs/versions/p/s/a/1", b"../../../etc/passwd")
    result = src.sync_to(dst)
    assert result.conflicts == ("p/s/a",)
    assert dst.get_artifact_version("p/s/b").read_bytes() == b"two"
    with cas.open_store(s3_root, index=str(tmp_path / "check.sqlite"), **s3_options) as check:
        bad = [line for line in check.verify().invalid if line.startswith("refs/versions/p/s/a/1: not a ref")]
        assert bad, "verify names the bad ref"
        assert check.get_artifact_version("p/s/b").read_bytes() == b"two"


@pytest.mark.parametrize("backend_name", ["local", "s3"])
def test_sync_of_a_blob_the_destination_gc_is_removing(store_url, storage_options, tmp_path):
    """The destination holds a blob no version of its own needs, so sync skips sending
    it; the destination's gc (paused between listing the refs and removing that blob)
    then removes it.  The sync must wait for the sweep and send the blob after all."""
    data = b"content the destination deleted, and the source still has" * 50
    dst = cas.open_store(store_url, index=str(tmp_path / "dst.sqlite"), **storage_options)
    dst.save(data, "p/s/old")
    dst.delete_version("p/s/old", 1)
    src = cas.open_store(str(tmp_path / "src"))
    src.save(data, "p/s/new")
    gc = start_paused(store_url, storage_options, str(tmp_path / "gc.sqlite"), "gc", b"-")
    sent = waits_for_paused(lambda: src.sync_to(dst), gc, "sync published refs to a blob a running sweep may remove")
    assert sent.refs_sent >= 1
    assert dst.get_artifact_version("p/s/new").read_bytes() == data
    assert dst.verify(deep=True).ok
    src.close()
    dst.close()

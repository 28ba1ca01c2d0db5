"""Transient backend failures are retried (cas.backends.retry), and only those.

A real TCP proxy on 127.0.0.1 sits in front of moto and misbehaves as
networks do: it resets a fraction of requests before they reach the server,
and it can let a request through but lose the server's answer (so a
create-only write has happened although the client never heard so).  The
client library's own retries are turned down to one attempt (botocore
``total_max_attempts=1``, s3fs ``retries=1``), so what keeps these saves and
syncs alive is cas's retry, nothing below it.
"""

from __future__ import annotations

import os
import random
import re
import socket
import struct
import threading
import time

import msgpack
import pytest
from servers import azure_connection_string, free_port, s3_options_for
from store_helpers import make_tree
from sync_helpers import store_state

import cas
from cas.backends.retry import RetryPolicy, is_transient
from cas.core.packs import MIN_PACK_BLOBS
from cas.errors import BackendError, BlobNotFoundError

NO_LIBRARY_RETRIES = {"config_kwargs": {"retries": {"total_max_attempts": 1}, "connect_timeout": 5, "read_timeout": 20}}
_REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]\r\n")
_KEEP = 8192  # bytes of each request kept for matching lose() patterns


class FlakyProxy:
    """TCP proxy in front of a server on 127.0.0.1.

    ``drop_rate``: the fraction of requests whose connection is reset before
    the request is forwarded.  ``lose(pattern, n)``: the next ``n`` requests
    that match ``pattern`` (a regex over the request line, headers and body
    start) reach the server, but the connection is reset as the server's
    answer arrives, so the client never sees it.  ``requests`` holds every
    request line seen, in order.
    """

    def __init__(self, target_port: int, drop_rate: float = 0.0, seed: int = 7) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.drop_rate = drop_rate
        self.requests: list[bytes] = []
        self.dropped = 0
        self.lost: list[bytes] = []
        self._lose: list[list] = []  # [compiled pattern, how many more]
        self._pairs: set[_Pair] = set()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lose(self, pattern: str, n: int = 1) -> None:
        with self._lock:
            self._lose.append([re.compile(pattern.encode(), re.DOTALL), n])

    def close(self) -> None:
        """Stop accepting and end every open connection (clients keep pooled ones open)."""
        self._server.close()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            _shutdown(pair.client)
            _shutdown(pair.upstream)

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern.encode())
        with self._lock:
            return sum(1 for r in self.requests if rx.search(r))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _reset(client)
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._requests, args=(pair,), daemon=True).start()
            threading.Thread(target=self._answers, args=(pair,), daemon=True).start()

    def _drop(self, line: bytes) -> bool:
        with self._lock:
            self.requests.append(line)
            if self._random.random() < self.drop_rate:
                self.dropped += 1
                return True
        return False

    def _lose_answer(self, request: bytes) -> bool:
        with self._lock:
            for rule in self._lose:
                if rule[1] > 0 and rule[0].search(request):
                    rule[1] -= 1
                    self.lost.append(request.split(b"\r\n", 1)[0])
                    return True
        return False

    def _requests(self, pair: _Pair) -> None:
        """client -> server; this thread alone reads the client socket."""
        try:
            while data := pair.client.recv(65536):
                m = _REQUEST_LINE.match(data)
                if m:  # the start of a request (HTTP/1.1 clients do not pipeline)
                    if self._drop(m.group(0).strip()):
                        pair.reset = True
                        return
                    pair.request = bytearray(data[:_KEEP])
                elif pair.request is not None and len(pair.request) < _KEEP:
                    pair.request += data[: _KEEP - len(pair.request)]
                pair.upstream.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(pair.upstream)  # wakes the other thread
            self._done(pair)

    def _answers(self, pair: _Pair) -> None:
        """server -> client; this thread alone reads the server socket."""
        try:
            while data := pair.upstream.recv(65536):
                request, final = pair.request, not data.startswith(b"HTTP/1.1 100")
                if request is not None and final:
                    pair.request = None  # answered: the rest of this response passes
                    if self._lose_answer(bytes(request)):
                        # The server has done the work and is answering: the client never hears.
                        pair.reset = True
                        _shutdown(pair.client, socket.SHUT_RD)  # wakes the other thread, sends nothing
                        return
                pair.client.sendall(data)
        except OSError:
            pass
        finally:
            if not pair.reset:
                _shutdown(pair.client)
            self._done(pair)

    def _done(self, pair: _Pair) -> None:
        with self._lock:
            pair.running -= 1
            if pair.running:
                return
            self._pairs.discard(pair)
        if pair.reset:
            _reset(pair.client)  # RST: the client sees "connection reset", as after a network fault
        pair.client.close()
        pair.upstream.close()


class _Pair:
    """One proxied connection: the client's socket and ours to the server."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.request: bytearray | None = None  # the start of the request awaiting its answer
        self.reset = False  # end with RST rather than FIN
        self.running = 2  # pump threads still going


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), not FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _shutdown(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


@pytest.fixture
def proxies():
    made: list[FlakyProxy] = []

    def make(port: int, drop_rate: float = 0.0) -> FlakyProxy:
        made.append(FlakyProxy(port, drop_rate))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.fixture
def flaky(proxies, moto_server):
    """flaky(drop_rate) -> a FlakyProxy in front of moto."""
    return lambda drop_rate=0.0: proxies(moto_server.port, drop_rate)


def open_via(proxy: FlakyProxy, url: str, index: str, **kw) -> cas.Store:
    store = cas.open_store(url, index=index, **kw, **s3_options_for(proxy.endpoint, **NO_LIBRARY_RETRIES))
    store.backend.fs.retries = 1  # s3fs's own retry loop (a class attribute, not an option)
    return store


def open_direct(moto_server, url: str, index: str) -> cas.Store:
    return cas.open_store(url, index=index, **s3_options_for(moto_server.endpoint))


CLOUD = [pytest.param("s3", marks=pytest.mark.s3), pytest.param("gcs", marks=pytest.mark.gcs), pytest.param("azure", marks=pytest.mark.azure)]
SERVER = {"s3": "moto_server", "gcs": "gcs_server", "azure": "azurite_server"}
# The request line of a create of refs/versions/p/s/a/1, and of any journal entry.
CLAIM_V1 = {
    "s3": r"^PUT \S*/refs/versions/p/s/a/1 ",
    "azure": r"^PUT \S*/refs/versions/p/s/a/1[ ?]",
    "gcs": r"^POST /upload.*\"name\": \"[^\"]*/refs/versions/p/s/a/1\"",  # the name is in the body
}
JOURNAL_PUT = {"s3": r"^PUT \S*/journal/", "azure": r"^PUT \S*/journal/", "gcs": r"^POST /upload.*\"name\": \"[^\"]*/journal/"}
# Format 2: the create of any journal2 entry, and of a pack's index ref.
JOURNAL2_PUT = {"s3": r"^PUT \S*/journal2/", "azure": r"^PUT \S*/journal2/", "gcs": r"^POST /upload.*\"name\": \"[^\"]*/journal2/"}
CLAIM_PACK = {
    "s3": r"^PUT \S*/refs/packs/",
    "azure": r"^PUT \S*/refs/packs/",
    "gcs": r"^POST /upload.*\"name\": \"[^\"]*/refs/packs/",
}
PACK_PUT = r"^PUT \S*/packs/[0-9a-f]{2}/"  # a pack itself (s3), not its ref refs/packs/<hex>


def check_saved(check: cas.Store, files: dict[str, bytes]) -> None:
    """What both drop tests saved through the proxy, read back: each version once, every byte right."""
    assert [v.version for v in check.list_versions("p/s/plain")] == [1, 2, 3, 4, 5, 6]
    assert [v.version for v in check.list_versions("p/s/tree")] == [1]
    for i in range(6):
        assert check.get_artifact_version("p/s/plain", i + 1).read_bytes() == f"content {i}".encode()
    for rel, data in files.items():
        assert check.get_artifact_version("p/s/tree").read_bytes(rel) == data
    assert check.get_artifact_version("p/s/plain", "production").version == 3
    assert check.verify(deep=True).ok


def options_for(name: str, endpoint: str) -> dict:
    if name == "s3":
        return s3_options_for(endpoint)
    if name == "gcs":
        return {"endpoint_url": endpoint, "token": "anon", "project": "cas-test"}
    return {"connection_string": azure_connection_string(endpoint)}


@pytest.mark.usefixtures("format1_stores")  # counts format 1's objects; format 2: the _format2 test below it
@pytest.mark.s3
def test_save_and_sync_through_a_connection_that_drops(flaky, moto_server, s3_root, tmp_path):
    """A fifth of all requests reset, some answers to creates lost: a tree save,
    plain saves, an alias and a sync all succeed, with every byte right."""
    setup = flaky()
    open_via(setup, s3_root, str(tmp_path / "setup.sqlite")).close()  # the store exists
    proxy = flaky(drop_rate=0.2)
    # Answers lost after the server acted: refs and journal entries (create-only,
    # not named by their content) and a blob (named by its content).
    proxy.lose(r"^PUT \S*/refs/versions/", 2)
    proxy.lose(r"^PUT \S*/journal/", 2)
    proxy.lose(r"^PUT \S*/blobs/", 1)
    files = {f"dir{i % 3}/file{i}.bin": os.urandom(2048) + bytes([i]) for i in range(24)}
    root = make_tree(tmp_path / "tree", files)
    store = open_via(proxy, s3_root, str(tmp_path / "a.sqlite"))
    tree = store.save(root, "p/s/tree")
    plain = [store.save(f"content {i}".encode(), "p/s/plain") for i in range(6)]
    store.set_alias("p/s/plain", 3, "production")
    assert proxy.dropped > 0
    assert len(proxy.lost) == 5, proxy.lost  # every "answer lost" case happened
    assert (tree.version, [v.version for v in plain]) == (1, [1, 2, 3, 4, 5, 6])

    src = cas.open_store(tmp_path / "src")
    for i in range(20):
        src.save(os.urandom(4096) + bytes([i]), f"q/s/a{i % 4}")
    src.set_alias("q/s/a1", 2, "production")
    dst_root = s3_root + "-dst"
    dst = open_via(proxy, dst_root, str(tmp_path / "dst.sqlite"))
    proxy.lose(r"^PUT \S*/refs/", 3)
    result = src.sync_to(dst, jobs=4)
    assert result.refs_sent == len(list(src.index.iter_records())) and not result.conflicts
    assert proxy.dropped > 5

    # Read back without the proxy, from fresh indexes: each version once, every byte right.
    with open_direct(moto_server, s3_root, str(tmp_path / "check.sqlite")) as check:
        check_saved(check, files)
    with open_direct(moto_server, dst_root, str(tmp_path / "dst-check.sqlite")) as check:
        assert store_state(check) == store_state(src)
        assert check.verify(deep=True).ok
    for s in (store, src, dst):
        s.close()


@pytest.mark.s3
def test_save_and_sync_through_a_connection_that_drops_format2(flaky, moto_server, s3_root, tmp_path):
    """Format 2: the same drops, and lost answers to a pack's upload, its index ref's claim and
    journal2 entries.  The tree's 24 small files are one pack, retried, never doubled; a sync
    copies a pack whole through the same proxy.  Every byte reads back, verified."""
    setup = flaky()
    open_via(setup, s3_root, str(tmp_path / "setup.sqlite"), format=2).close()
    proxy = flaky(drop_rate=0.2)
    proxy.lose(r"^PUT \S*/refs/versions/", 2)
    proxy.lose(JOURNAL2_PUT["s3"], 2)
    proxy.lose(PACK_PUT, 1)
    proxy.lose(CLAIM_PACK["s3"], 1)
    files = {f"dir{i % 3}/file{i}.bin": os.urandom(2048) + bytes([i]) for i in range(24)}
    root = make_tree(tmp_path / "tree", files)
    store = open_via(proxy, s3_root, str(tmp_path / "a.sqlite"))
    assert store.format == 2
    tree = store.save(root, "p/s/tree")
    plain = [store.save(f"content {i}".encode(), "p/s/plain") for i in range(6)]
    store.set_alias("p/s/plain", 3, "production")
    assert proxy.dropped > 0
    assert len(proxy.lost) == 6, proxy.lost  # every "answer lost" case happened
    assert (tree.version, [v.version for v in plain]) == (1, [1, 2, 3, 4, 5, 6])

    src = cas.open_store(tmp_path / "src", format=2)
    src.save(make_tree(tmp_path / "src-tree", {f"f{i}": os.urandom(1000) + bytes([i]) for i in range(10)}), "q/s/tree")
    for i in range(20):
        src.save(os.urandom(4096) + bytes([i]), f"q/s/a{i % 4}")
    src.set_alias("q/s/a1", 2, "production")
    dst_root = s3_root + "-dst"
    dst = open_via(proxy, dst_root, str(tmp_path / "dst.sqlite"), format=2)
    proxy.lose(r"^PUT \S*/refs/", 3)
    proxy.lose(PACK_PUT, 1)
    lost_before = len(proxy.lost)
    result = src.sync_to(dst, jobs=4)
    assert len(proxy.lost) == lost_before + 4, proxy.lost
    assert result.refs_sent == len(list(src.index.iter_records())) and not result.conflicts
    assert proxy.dropped > 5

    # Read back without the proxy, from fresh indexes: each version once, one pack each, every byte right.
    with open_direct(moto_server, s3_root, str(tmp_path / "check.sqlite")) as check:
        assert len([e for e in check.backend.list("packs")]) == 1  # the lost answer did not make a second pack
        assert len([e for e in check.backend.list("refs/packs")]) == 1
        check_saved(check, files)
    with open_direct(moto_server, dst_root, str(tmp_path / "dst-check.sqlite")) as check:
        assert store_state(check) == store_state(src)
        assert len([e for e in check.backend.list("packs")]) == 1
        assert check.verify(deep=True).ok
    for s in (store, src, dst):
        s.close()


@pytest.mark.usefixtures("format1_stores")  # counts format 1's objects; format 2: the _format2 test below it
@pytest.mark.parametrize("name", CLOUD)
def test_a_lost_answer_to_a_version_claim_is_recognised_as_ours(proxies, request, name, tmp_path):
    """The claim of version 1 reaches the server, its answer is lost, the retry hears
    "already exists": the ref holds our record, so the save is version 1 - not a
    "lost race" followed by a duplicate version 2.  (The client libraries' own
    retries make the same retry; here they are left on, as they are by default.)"""
    server = request.getfixturevalue(SERVER[name])
    url = request.getfixturevalue(f"{name}_root")
    proxy = proxies(server.port)
    store = cas.open_store(url, index=str(tmp_path / "a.sqlite"), **options_for(name, proxy.endpoint))
    proxy.lose(CLAIM_V1[name])
    proxy.lose(JOURNAL_PUT[name])
    v = store.save(b"only once", "p/s/a")
    assert len(proxy.lost) == 2, b"\n".join(proxy.requests).decode()
    assert v.version == 1
    with cas.open_store(url, index=str(tmp_path / "check.sqlite"), **options_for(name, server.endpoint)) as check:
        assert [x.version for x in check.list_versions("p/s/a")] == [1]
        journal = [e.path for e in check.backend.list("journal")]
        assert len(journal) == 1, journal  # one entry, not a second for the same ref
    store.close()


@pytest.mark.parametrize("name", CLOUD)
def test_a_lost_answer_to_a_claim_is_recognised_as_ours_format2(proxies, request, name, tmp_path):
    """Format 2: the answers to the claim of version 1, to its journal2 entry and to a tree's
    pack index ref are lost; each retry hears "already exists" over our own bytes.  So: one
    version each, one pack ref, and three journal2 entries each announcing one ref once (the
    blob's version; the tree's pack ref, journalled as soon as it is claimed, then the tree's
    version) - not a duplicate version, entry or pack."""
    server = request.getfixturevalue(SERVER[name])
    url = request.getfixturevalue(f"{name}_root")
    proxy = proxies(server.port)
    store = cas.open_store(url, index=str(tmp_path / "a.sqlite"), format=2, **options_for(name, proxy.endpoint))
    proxy.lose(CLAIM_V1[name])
    proxy.lose(JOURNAL2_PUT[name])
    v = store.save(b"only once", "p/s/a")
    assert len(proxy.lost) == 2, b"\n".join(proxy.requests).decode()
    assert v.version == 1
    proxy.lose(CLAIM_PACK[name])
    # MIN_PACK_BLOBS small files: the fewest a save packs (fewer go loose and claim no pack ref)
    tree = store.save(make_tree(tmp_path / "tree", {f"f{i}": f"small {i}".encode() for i in range(MIN_PACK_BLOBS)}), "p/s/t")
    assert len(proxy.lost) == 3, b"\n".join(proxy.requests).decode()
    assert tree.version == 1
    with cas.open_store(url, index=str(tmp_path / "check.sqlite"), **options_for(name, server.endpoint)) as check:
        assert check.format == 2
        assert [x.version for x in check.list_versions("p/s/a")] == [1]
        assert [x.version for x in check.list_versions("p/s/t")] == [1]
        assert check.get_artifact_version("p/s/t").read_bytes("f1") == b"small 1"
        assert len(list(check.backend.list("refs/packs"))) == 1 and len(list(check.backend.list("packs"))) == 1
        journal = sorted(e.path for e in check.backend.list("journal2"))
        announced = [ref for key in journal for ref, _ in msgpack.unpackb(check.backend.read_bytes(key))["refs"]]
        assert len(journal) == 3 and len(announced) == len(set(announced)) == 3, announced
        assert not list(check.backend.list("journal"))  # format 1's journal is not written
        assert check.verify(deep=True).ok
    store.close()


@pytest.mark.s3
def test_already_exists_with_other_bytes_is_the_real_conflict(flaky, moto_server, s3_root, tmp_path):
    """Create-only on a path someone else holds: False after one PUT (412 is an answer,
    not retried) and one read to compare; with the answer lost, the same."""
    proxy = flaky()
    store = open_via(proxy, s3_root, str(tmp_path / "a.sqlite"))
    backend = store.backend
    assert backend.create_bytes("refs/x/theirs", b"their bytes")
    assert not backend.create_bytes("refs/x/theirs", b"my bytes")
    assert proxy.count(r"^PUT \S*/refs/x/theirs ") == 2
    proxy.lose(r"^PUT \S*/refs/x/theirs ")
    assert not backend.create_bytes("refs/x/theirs", b"my bytes")
    assert backend.read_bytes("refs/x/theirs") == b"their bytes"
    proxy.lose(r"^PUT \S*/refs/x/mine ")
    assert backend.create_bytes("refs/x/mine", b"my bytes")  # landed, answer lost, retried: ours
    assert proxy.count(r"^PUT \S*/refs/x/mine ") == 2
    store.close()


@pytest.mark.s3
def test_not_found_is_never_retried(flaky, s3_root, tmp_path):
    proxy = flaky()
    store = open_via(proxy, s3_root, str(tmp_path / "a.sqlite"))
    missing = "0" * 64
    with pytest.raises(BlobNotFoundError):
        store.blobs.read_bytes(missing)
    assert proxy.count(f"/{missing[2:]} ") == 1, proxy.requests  # one HEAD, not five
    store.close()


@pytest.mark.azure
def test_permission_denied_is_never_retried(proxies, azurite_server, azure_root):
    """A wrong account key (Azurite answers 403): one request per call, one BackendError."""
    from cas.backends.factory import open_backend

    proxy = proxies(azurite_server.port)
    wrong = azure_connection_string(proxy.endpoint).replace("AccountKey=", "AccountKey=AAAA")
    backend = open_backend(azure_root, connection_string=wrong)
    with pytest.raises(BackendError, match="authenticate") as e:
        backend.read_bytes("cas-format")
    assert "\n" not in str(e.value)
    with pytest.raises(BackendError, match="authenticate"):
        backend.create_bytes("refs/x", b"1")
    assert [r.split()[0] for r in proxy.requests] == [b"GET", b"PUT"]
    backend.close()


@pytest.mark.s3
def test_retries_exhausted_or_disabled_give_one_backend_error(flaky, moto_server, s3_root, tmp_path, monkeypatch):
    """Every request reset: the save fails with one BackendError.  With CAS_RETRIES=0
    cas tries once; by default five times, after a bounded wait."""
    proxy = flaky()
    open_via(proxy, s3_root, str(tmp_path / "setup.sqlite")).close()

    def failing_save(index: str) -> tuple[BackendError, int, float]:
        proxy.drop_rate = 0.0
        store = open_via(proxy, s3_root, str(tmp_path / index))
        proxy.drop_rate = 1.0
        seen = len(proxy.requests)
        start = time.monotonic()
        with pytest.raises(BackendError) as e:
            store.save(b"never arrives", "p/s/a")
        took = time.monotonic() - start
        store.close()
        message = str(e.value)
        assert "\n" not in message and s3_options_for(proxy.endpoint)["secret"] not in message
        return e.value, len(proxy.requests) - seen, took

    monkeypatch.setenv("CAS_RETRIES", "0")
    once, sent_once, _ = failing_save("a.sqlite")
    assert "attempts" not in str(once)
    monkeypatch.delenv("CAS_RETRIES")
    retried, sent, took = failing_save("b.sqlite")
    assert "after 5 attempts" in str(retried)
    # The client library below still makes sent_once requests a call (it cannot be
    # told to make exactly one); cas repeats the whole call 5 times.
    assert sent == 5 * sent_once
    assert took < 30
    proxy.drop_rate = 0.0
    with open_direct(moto_server, s3_root, str(tmp_path / "check.sqlite")) as check:
        assert check.list_artifacts() == []


# -- which failures are transient ---------------------------------------------------------


def _client_error(status: int, code: str):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def _translated(error: Exception) -> Exception:
    """What s3fs raises: its own OSError, raised from the botocore error."""
    from s3fs.errors import translate_boto_error

    try:
        raise translate_boto_error(error) from error
    except Exception as e:  # noqa: BLE001 - the raised form, with its __cause__
        return e


@pytest.mark.parametrize(
    "make, transient",
    [
        (lambda: ConnectionResetError(104, "Connection reset by peer"), True),
        (lambda: TimeoutError("timed out"), True),
        (lambda: _client_error(503, "SlowDown"), True),
        (lambda: _translated(_client_error(503, "SlowDown")), True),
        (lambda: _client_error(500, "InternalError"), True),
        (lambda: _client_error(429, "TooManyRequests"), True),
        (lambda: _client_error(404, "NoSuchKey"), False),
        (lambda: _translated(_client_error(404, "NoSuchKey")), False),
        (lambda: _translated(_client_error(403, "AccessDenied")), False),
        (lambda: _client_error(403, "AccessDenied"), False),
        (lambda: _client_error(412, "PreconditionFailed"), False),
        (lambda: FileExistsError("exists"), False),
        (lambda: PermissionError("denied"), False),
        (lambda: ValueError("bad argument"), False),
    ],
)
def test_which_failures_are_transient(make, transient):
    assert is_transient(make()) is transient


def test_cloud_library_errors_are_classified():
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ConnectionClosedError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ServiceRequestError("no answer"))
    assert is_transient(ServiceResponseError("cut short"))
    busy = HttpResponseError("busy")
    busy.status_code = 503
    assert is_transient(busy)
    gone = HttpResponseError("gone")
    gone.status_code = 404
    assert not is_transient(gone)


def test_retry_policy_from_the_environment(monkeypatch):
    assert RetryPolicy.from_env().attempts == 5
    monkeypatch.setenv("CAS_RETRIES", "0")
    assert RetryPolicy.from_env().attempts == 1
    monkeypatch.setenv("CAS_RETRIES", "many")
    with pytest.raises(cas.InvalidNameError, match="CAS_RETRIES"):
        RetryPolicy.from_env()

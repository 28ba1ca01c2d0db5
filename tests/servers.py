"""Real object-store servers for the tests: moto (S3), gcp-storage-emulator (GCS), Azurite (Azure).

Each server is a subprocess on 127.0.0.1 with a free port, started once per
session and stopped at its end.  Every test gets a fresh root (a unique prefix
in one bucket or container), so tests never see each other's objects.

Loaded from ``tests/conftest.py`` through ``pytest_plugins``.  The fixtures
``<backend>_root`` and ``<backend>_options`` are what the conformance fixtures
in conftest ask for.  tox installs all three servers (pip extras and npm), so
on a machine tox prepared nothing here skips; run by hand, a missing server
skips with the install command in its reason.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

import pytest

BUCKET = "cas-test"
# Azurite's fixed, publicly documented development account (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3_KEY, S3_SECRET = "cas-test-key", "cas-test-secret-value"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """One server subprocess; ``restart`` reuses the port so clients keep their endpoint."""

    name: str
    argv_for: object  # callable(port) -> argv
    ready_path: str = "/"
    env: dict = field(default_factory=dict)
    cwd: str | None = None
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: str = ""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        if not self.port:
            self.port = free_port()
        if not self.log_path:
            fd, self.log_path = tempfile.mkstemp(prefix=f"cas-{self.name}-", suffix=".log")
            os.close(fd)
        log = open(self.log_path, "ab")
        env = dict(os.environ, **self.env)
        self.proc = subprocess.Popen(
            self.argv_for(self.port),  # type: ignore[operator]
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,  # our own process group: stop() ends node's children too
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                urllib.request.urlopen(self.endpoint + self.ready_path, timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is serving
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {START_TIMEOUT:.0f}s:\n{self.tail()}")

    def tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crashing server would."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


# -- S3: moto ------------------------------------------------------------------


def moto_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def new_moto() -> ServerProcess:
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as e:
        pytest.skip(f"S3 tests need moto[server] and s3fs (pip install -e '.[dev,s3]'): {e}")
    return ServerProcess("moto", moto_argv, ready_path="/moto-api/")


def s3_options_for(endpoint: str, **extra) -> dict:
    return {
        "endpoint_url": endpoint,
        "key": S3_KEY,
        "secret": S3_SECRET,
        "client_kwargs": {"region_name": "us-east-1"},
        **extra,
    }


def make_bucket(options: dict, bucket: str = BUCKET) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    # not fs.mkdir: it sends a LocationConstraint, which us-east-1 refuses
    fs.call_s3("create_bucket", Bucket=bucket)


@pytest.fixture(scope="session")
def moto_server():
    server = new_moto().start()
    try:
        make_bucket(s3_options_for(server.endpoint))
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_options(moto_server) -> dict:
    return s3_options_for(moto_server.endpoint)


@pytest.fixture
def s3_root() -> str:
    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:16]}"


# -- GCS: gcp-storage-emulator -----------------------------------------------------


def gcs_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "gcp_storage_emulator", "start",
        "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", BUCKET, "--quiet",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def gcs_server():
    try:
        import gcp_storage_emulator  # noqa: F401
        import gcsfs  # noqa: F401
    except ImportError as e:
        pytest.skip(f"GCS tests need gcp-storage-emulator and gcsfs (pip install -e '.[dev,gcs]'): {e}")
    # Without this gcsfs probes for gRPC "zonal" buckets and stalls ~60 s per filesystem.
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    server = ServerProcess("gcs-emulator", gcs_argv, ready_path="/storage/v1/b").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_options(gcs_server) -> dict:
    return {"endpoint_url": gcs_server.endpoint, "token": "anon", "project": "cas-test"}


@pytest.fixture
def gcs_root() -> str:
    return f"gs://{BUCKET}/t-{uuid.uuid4().hex[:16]}"


# -- Azure: Azurite ------------------------------------------------------------------


def azurite_binary() -> str | None:
    configured = os.environ.get("CAS_AZURITE")
    if configured and os.path.exists(configured):
        return configured
    return shutil.which("azurite-blob")


def azure_connection_string(endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    try:
        import adlfs  # noqa: F401
    except ImportError as e:
        pytest.skip(f"Azure tests need adlfs (pip install -e '.[azure]'): {e}")
    binary = azurite_binary()
    if binary is None:
        pytest.skip(
            "Azure tests need Azurite: npm install --prefix DIR azurite@3 and set "
            "CAS_AZURITE=DIR/node_modules/.bin/azurite-blob (tox does this)"
        )
    workdir = str(tmp_path_factory.mktemp("azurite"))

    def argv(port: int) -> list[str]:
        return [
            binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
            "--skipApiVersionCheck", "--loose", "--disableTelemetry",
        ]  # fmt: skip

    server = ServerProcess("azurite", argv, ready_path=f"/{AZURITE_ACCOUNT}?comp=list", cwd=workdir).start()
    try:
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(azure_connection_string(server.endpoint))
        client.create_container(BUCKET)
        client.close()
        yield server
    finally:
        server.stop()


@pytest.fixture
def azure_options(azurite_server) -> dict:
    return {"connection_string": azure_connection_string(azurite_server.endpoint)}


@pytest.fixture
def azure_root() -> str:
    return f"az://{BUCKET}/t-{uuid.uuid4().hex[:16]}"


CLOUD_BACKENDS = ["s3", "gcs", "azure"]


@pytest.fixture
def make_location(request, tmp_path):
    """make_location(kind) -> (url, storage options) of a fresh, empty store on any backend."""

    def make(kind: str) -> tuple[str, dict]:
        if kind == "memory":
            return f"memory://cas-sync-{uuid.uuid4().hex}", {}
        if kind == "local":
            return str(tmp_path / f"store-{uuid.uuid4().hex[:8]}"), {}
        return request.getfixturevalue(f"{kind}_root"), request.getfixturevalue(f"{kind}_options")

    return make


class LineageReceiver:
    """A small OpenLineage HTTP endpoint (POST /api/v1/lineage) on 127.0.0.1."""

    def __init__(self, status: int = 200, delay: float = 0.0):
        self.events: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                if self.path == "/api/v1/lineage" and status == 200:
                    outer.events.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

"""Cloud backends against real servers: create-only writes, large uploads, failures, secrets.

The store's whole conformance suite also runs on s3, gcs and azure (see the
``backend_name`` params in conftest); these tests cover what only object
stores have.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

import cas
from cas.backends.cloud import AzureBackend, GcsBackend, S3Backend
from cas.backends.factory import open_backend
from cas.backends.fsspec import FsspecBackend
from cas.backends.retry import RetryPolicy
from cas.backends.secrets import secrets_of
from cas.errors import BackendError

CLOUD = [pytest.param("s3", marks=pytest.mark.s3), pytest.param("gcs", marks=pytest.mark.gcs), pytest.param("azure", marks=pytest.mark.azure)]
# The GCS emulator does not enforce ifGenerationMatch=0, so true races can only be tested where the server enforces.
ENFORCING = [pytest.param("s3", marks=pytest.mark.s3), pytest.param("azure", marks=pytest.mark.azure)]


@pytest.fixture
def cloud(request):
    """(url, options) for a fresh root on the named cloud backend."""

    def make(name: str) -> tuple[str, dict]:
        return request.getfixturevalue(f"{name}_root"), request.getfixturevalue(f"{name}_options")

    return make


@pytest.mark.parametrize("name", CLOUD)
def test_protocol_picks_the_object_store_backend(cloud, name):
    url, options = cloud(name)
    backend = open_backend(url, **options)
    expected = {"s3": S3Backend, "gcs": GcsBackend, "azure": AzureBackend}[name]
    assert type(backend) is expected
    assert isinstance(backend, FsspecBackend)


@pytest.mark.parametrize("name", CLOUD)
def test_object_stores_declare_their_capabilities(cloud, name):
    url, options = cloud(name)
    backend = open_backend(url, **options)
    caps = backend.capabilities
    assert caps.atomic_create and caps.retries and not caps.local and not caps.in_process
    assert caps.stale_uploads == (name == "s3")  # only S3 keeps unfinished uploads gc must abort
    # an object store holds no symlink, FIFO or device: the planted-object checks find none
    assert backend.create_bytes("journal2/d/s/e", b"entry")
    assert not backend.is_symlink("journal2/d/s/e") and backend.symlinked_dir("journal2/d/s/e") is None
    assert backend.planted("journal2/d/s/e") is None


def test_memory_keeps_the_generic_backend():
    assert type(open_backend("memory://cas-generic")) is FsspecBackend


@pytest.mark.parametrize("name", CLOUD)
def test_create_only_second_write_is_refused_and_content_kept(cloud, name):
    url, options = cloud(name)
    backend = open_backend(url, **options)
    assert backend.create_bytes("refs/x/1", b"first") is True
    assert backend.create_bytes("refs/x/1", b"second") is False
    assert backend.read_bytes("refs/x/1") == b"first"
    # The same bytes again are this write's own (a retry whose first answer was lost
    # cannot tell otherwise): success, as the same claim made twice.
    assert backend.create_bytes("refs/x/1", b"first") is True
    assert backend.create_bytes("refs/x/1", b"firs") is False
    assert backend.create_bytes("refs/x/1", b"first!") is False


@pytest.mark.parametrize("name", ENFORCING)
def test_create_only_race_has_exactly_one_winner(cloud, name):
    """Threads race to create the same keys with no client-side check: the server decides."""
    url, options = cloud(name)
    backend = open_backend(url, **options)
    keys = [f"refs/race/{i}" for i in range(10)]
    wins: dict[str, list[int]] = {k: [] for k in keys}
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(me: int) -> None:
        try:
            barrier.wait()
            for k in keys:
                if backend.create_bytes(k, f"{me}".encode()):
                    wins[k].append(me)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in keys:
        assert len(wins[k]) == 1, (k, wins[k])
        assert backend.read_bytes(k) == str(wins[k][0]).encode()


@pytest.mark.parametrize("name", CLOUD)
def test_large_file_uploads_in_parts_and_round_trips(cloud, name, tmp_path):
    url, options = cloud(name)
    backend = open_backend(url, **options)
    data = os.urandom(3 * backend.part_size + 12345)
    src = tmp_path / "big"
    src.write_bytes(data)
    assert backend.create_from_file("blobs/big", str(src), content_addressed=True) is True
    assert backend.size("blobs/big") == len(data)
    with backend.open_read("blobs/big") as f:
        assert f.read() == data
    assert backend.create_from_file("blobs/big", str(src), content_addressed=True) is False
    if name == "s3":
        etag = backend.fs.info(backend._abs("blobs/big"))["ETag"].strip('"')
        assert etag.endswith("-4"), etag  # 3 full parts + 1 short one: a multipart upload


@pytest.mark.s3
def test_failed_multipart_upload_leaves_nothing(s3_root, s3_options, tmp_path, monkeypatch):
    backend = open_backend(s3_root, **s3_options)
    assert isinstance(backend, S3Backend)
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3 * backend.part_size))
    real_call = backend.fs._call_s3
    calls: list[str] = []

    async def flaky(method, *args, **kwargs):
        calls.append(method)
        if method == "upload_part" and calls.count("upload_part") == 2:
            raise ConnectionResetError("connection dropped by test")
        return await real_call(method, *args, **kwargs)

    monkeypatch.setattr(backend.fs, "_call_s3", flaky)
    monkeypatch.setattr(backend, "retry", RetryPolicy(attempts=1))  # the failed attempt itself, not retried
    with pytest.raises(BackendError):
        backend.create_from_file("blobs/partial", str(src))
    monkeypatch.undo()
    assert "create_multipart_upload" in calls and "abort_multipart_upload" in calls
    assert not backend.exists("blobs/partial")
    assert backend.pending_uploads() == []
    # and the next attempt succeeds
    assert backend.create_from_file("blobs/partial", str(src)) is True
    # With retries (the default) the dropped part costs one aborted attempt, not the write.
    calls.clear()
    monkeypatch.setattr(backend.fs, "_call_s3", flaky)
    assert backend.create_from_file("blobs/retried", str(src)) is True
    monkeypatch.undo()
    assert calls.count("create_multipart_upload") == 2 and "abort_multipart_upload" in calls
    assert backend.pending_uploads() == []
    with backend.open_read("blobs/retried") as f:
        assert f.read() == src.read_bytes()


@pytest.mark.s3
def test_abort_stale_uploads_removes_an_interrupted_multipart(s3_root, s3_options):
    """What a SIGKILLed upload leaves behind: an invisible, unfinished multipart upload."""
    backend = open_backend(s3_root, **s3_options)
    bucket, key = backend._bucket_key("blobs/ab/interrupted")
    backend.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
    assert not backend.exists("blobs/ab/interrupted")
    assert len(backend.pending_uploads()) == 1
    # (moto reports a fixed 2010 "Initiated" time, so the grace cutoff itself is not testable here)
    assert backend.abort_stale_uploads(time.time() + 60) == 1
    assert backend.pending_uploads() == []


@pytest.mark.parametrize("name", CLOUD)
def test_store_on_cloud_saves_and_dedupes_files(cloud, name, tmp_path):
    url, options = cloud(name)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 * 8 * 1024 * 1024 + 7))
    with cas.open_store(url, **options) as s:
        v1 = s.save(big, "p/s/big")
        v2 = s.save(big, "p/s/big")
        assert v1.digest == v2.digest and (v1.version, v2.version) == (1, 2)
        assert s.get_artifact_version("p/s/big", 1).read_bytes() == big.read_bytes()
        assert s.stats().stored_bytes == big.stat().st_size


# -- secrets never leak (invariant 11) ------------------------------------------------

SECRET = "S3cr3t-never-print-me-0123456789"


def test_secrets_of_finds_nested_and_connection_string_secrets():
    found = secrets_of(
        {
            "key": "AKIAEXAMPLE",
            "secret": SECRET,
            "client_kwargs": {"aws_session_token": "tok-abcdefgh"},
            "connection_string": "AccountName=a;AccountKey=KEYVALUE123==;BlobEndpoint=http://x",
            "token": "anon",
            "endpoint_url": "http://127.0.0.1:1",
        }
    )
    assert {"AKIAEXAMPLE", SECRET, "tok-abcdefgh", "KEYVALUE123=="} <= found
    assert "http://127.0.0.1:1" not in found and "anon" not in found


def _all_text_under(path) -> bytes:
    out = b""
    for root, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out += fh.read()
    return out


@pytest.mark.s3
def test_s3_secret_never_reaches_index_records_reprs_logs_or_errors(s3_root, s3_options, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    options = dict(s3_options, secret=SECRET, key="AKIA-cas-test-key-id")
    index = tmp_path / "idx" / "index.sqlite"
    with cas.open_store(s3_root, index=str(index), **options) as s:
        v = s.save(b"payload", "p/s/a", metadata={"k": "v"})
        s.set_alias("p/s/a", 1, "prod")
        texts = [repr(s), str(s.url), repr(s.backend), repr(v), str(v)]
        records = b"".join(s.backend.read_bytes(e.path) for e in s.backend.list(""))
    dead = dict(options, endpoint_url="http://127.0.0.1:9", config_kwargs={"retries": {"max_attempts": 1}})
    backend = open_backend(s3_root, **dead)
    backend.fs.retries = 1
    with pytest.raises(BackendError) as err:
        backend.read_bytes("cas-format")
    texts += [str(err.value), repr(err.value)]
    assert "127.0.0.1:9" in str(err.value) or "connect" in str(err.value).lower()  # the real failure, explained
    ours = " ".join(texts).encode() + records + _all_text_under(index.parent)
    logs = "\n".join(r.getMessage() for r in caplog.records).encode()
    assert SECRET.encode() not in ours + logs
    # botocore's own DEBUG log names the access key *id* (Credential=...); cas's texts never do
    assert b"AKIA-cas-test-key-id" not in ours


@pytest.mark.azure
def test_azure_wrong_key_error_is_clear_and_scrubbed(azure_root, azure_options):
    import base64

    conn = azure_options["connection_string"]
    fake_key = base64.b64encode(b"not-the-azurite-key-but-a-secret!" * 2).decode()
    start = conn.index("AccountKey=") + len("AccountKey=")
    bad = conn[:start] + fake_key + conn[conn.index(";", start) :]
    backend = open_backend(azure_root, connection_string=bad)
    with pytest.raises(BackendError) as err:
        backend.create_bytes("refs/x", b"1")
    assert fake_key not in str(err.value) and fake_key not in repr(err.value)
    assert azure_root.split("/")[2] in str(err.value)  # says where it failed


@pytest.mark.parametrize("name", CLOUD)
@pytest.mark.parametrize("tail", [b"\r", b"\n", b"\r\n", b"\n--==0==--"])
def test_small_objects_keep_every_byte_of_awkward_endings(cloud, name, tail):
    """gcsfs uploads small objects as multipart/related; a body ending in CR used to lose it."""
    url, options = cloud(name)
    backend = open_backend(url, **options)
    data = b"\x89\xa7version" + tail
    assert backend.create_bytes("blobs/tail", data, content_addressed=True) is True
    assert backend.read_bytes("blobs/tail") == data
    assert backend.create_bytes("blobs/tail", data, content_addressed=True) is False

"""The cas:// filesystem beyond fsspec's abstract suite: namespace, index-only
metadata, streaming reads, drafts and commits, immutability, metadata-only
copies, recorded deletions, and bad input.  Runs on every backend in
conftest (memory and local here; the cloud backends when their servers run).
"""

from __future__ import annotations

import gc
import io
import os
import tracemalloc
from pathlib import Path

import fsspec
import pytest
from store_helpers import replace_blob

import cas
from cas.errors import (
    CasError,
    IntegrityError,
    InvalidNameError,
    PathExistsError,
    PathIsDirectoryError,
    PathNotDirectoryError,
    PathNotFoundError,
    ReadOnlyError,
    VersionExistsError,
)
from cas.fs import CasFileSystem

MiB = 1 << 20


@pytest.fixture
def fs(store_url, storage_options):
    fs = CasFileSystem(store=store_url, skip_instance_cache=True, **storage_options)
    yield fs
    fs.store.close()


@pytest.fixture
def reopen(store_url, storage_options, tmp_path):
    """A second handle on the same backend with its own, fresh index: what another machine sees."""
    opened = []

    def _open():
        s = cas.open_store(store_url, index=str(tmp_path / f"other-{len(opened)}.sqlite"), **storage_options)
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


def backend_state(store) -> list[tuple[str, int]]:
    """Everything cas keeps in the backend (blobs, refs, journal), to prove nothing changed."""
    return sorted(
        (e.path, e.size) for e in store.backend.list("") if e.path.split("/", 1)[0] in ("blobs", "refs", "journal")
    )


# -- registration and options -----------------------------------------------------


def test_registered_with_fsspec_through_the_entry_point(tmp_path):
    url = str(tmp_path / "store")
    assert fsspec.get_filesystem_class("cas") is CasFileSystem
    with fsspec.open("cas://p/s/a/1", "wb", store=url) as f:
        f.write(b"via fsspec.open")
    fs = fsspec.filesystem("cas", store=url)
    assert fs.cat("cas://p/s/a/1") == b"via fsspec.open"
    with fsspec.open("cas://p/s/a/latest", "rb", store=url) as f:
        assert f.read() == b"via fsspec.open"
    fs.store.close()
    CasFileSystem.clear_instance_cache()


def test_store_comes_from_option_then_env_then_default(tmp_path, monkeypatch):
    monkeypatch.setenv("CAS_STORE", str(tmp_path / "from-env"))
    fs = CasFileSystem(skip_instance_cache=True)
    assert fs.store.url == "file://" + str(tmp_path / "from-env")
    fs.store.close()
    monkeypatch.delenv("CAS_STORE")
    monkeypatch.chdir(tmp_path)
    fs = CasFileSystem(skip_instance_cache=True)
    assert fs.store.url == "file://" + str(tmp_path / ".cas")
    fs.store.close()
    store = cas.open_store(str(tmp_path / "obj"))
    assert CasFileSystem(store=store, skip_instance_cache=True).store is store
    store.close()


def test_two_store_objects_on_one_url_never_share_drafts(tmp_path):
    url = str(tmp_path / "store")
    a, b = cas.open_store(url), cas.open_store(url, index=str(tmp_path / "b.sqlite"))
    fa, fb = CasFileSystem(store=a), CasFileSystem(store=b)
    assert fa is not fb and fa.store is a and fb.store is b
    assert CasFileSystem(store=a) is fa  # the same Store: the cached instance
    fa.pipe("p/s/t/1/x", b"draft in fa")
    assert fb.drafts() == [] and fa.drafts() == ["p/s/t/1"]
    CasFileSystem.clear_instance_cache()
    a.close()
    b.close()


def test_storage_options_reach_the_backend_and_never_show(fs, storage_options):
    fs.pipe("p/s/a/1", b"x")
    text = repr(fs) + repr(fs.store)
    index_bytes = Path(fs.store.index.path).read_bytes()
    records = b"".join(fs.store.backend.read_bytes(p) for p, _ in backend_state(fs.store))
    secret_words = ("key", "secret", "token", "password", "connection", "credential", "sas")
    for name, value in storage_options.items():
        if any(w in name.lower() for w in secret_words) and isinstance(value, str) and len(value) > 6:
            assert value not in text
            assert value.encode() not in index_bytes and value.encode() not in records
    assert fs.cat("p/s/a/1") == b"x"


# -- the namespace, from the index ----------------------------------------------------


@pytest.fixture
def populated(fs, tmp_path):
    store = fs.store
    tree = tmp_path / "tree"
    (tree / "sub" / "deep").mkdir(parents=True)
    (tree / "top.txt").write_bytes(b"top")
    (tree / "sub" / "mid.bin").write_bytes(b"m" * 100)
    (tree / "sub" / "deep" / "leaf").write_bytes(b"leaf!")
    versions = {
        "a1": store.save(b"first", "churn/train/model"),
        "a2": store.save(b"second!", "churn/train/model"),
        "t1": store.save(tree, "churn/prep/features"),
        "m": store.save(b"{}", "churn/train/metrics"),
        "q": store.save(b"q", "other/s/x"),
    }
    store.set_alias("churn/train/model", 1, "production")
    return versions


def test_listing_each_level_gives_the_names_below(fs, populated):
    assert fs.ls("", detail=False) == ["churn", "other"]
    assert fs.ls("cas://churn", detail=False) == ["churn/prep", "churn/train"]
    assert fs.ls("churn/train", detail=False) == ["churn/train/metrics", "churn/train/model"]
    # versions only: latest and aliases resolve but are not listed (each version counted once)
    assert fs.ls("churn/train/model", detail=False) == ["churn/train/model/1", "churn/train/model/2"]
    assert fs.ls("churn/prep/features/1", detail=False) == [
        "churn/prep/features/1/sub",
        "churn/prep/features/1/top.txt",
    ]
    assert fs.ls("churn/prep/features/1/sub", detail=False) == [
        "churn/prep/features/1/sub/deep",
        "churn/prep/features/1/sub/mid.bin",
    ]
    assert [e["type"] for e in fs.ls("churn/prep/features/1/sub")] == ["directory", "file"]
    assert fs.isdir("churn") and fs.isdir("churn/prep/features/1") and fs.isfile("churn/train/model/2")
    fs.store.delete_version("churn/train/model", 2)
    assert fs.ls("churn/train/model", detail=False) == ["churn/train/model/1"]
    assert not fs.exists("churn/train/model/2")


def test_info_has_right_sizes_times_and_digests(fs, populated):
    a2, t1 = populated["a2"], populated["t1"]
    info = fs.info("churn/train/model/2")
    assert (info["type"], info["size"], info["digest"]) == ("file", 7, str(a2.digest))
    assert info["mtime"] == a2.created_at.timestamp() and info["committed"] is True
    assert fs.modified("churn/train/model/2") == a2.created_at
    assert fs.size("churn/prep/features/1/sub/mid.bin") == 100
    assert fs.info("churn/prep/features/1")["digest"] == str(t1.digest)
    assert fs.ukey("churn/train/model/2") == str(a2.digest)
    assert fs.checksum("churn/train/model/2") == int(a2.digest.hex, 16)
    leaf = fs.info("churn/prep/features/1/sub/deep/leaf")
    assert leaf["digest"] == str(cas.Digest(cas.core.digest.hash_bytes(b"leaf!")))
    assert fs.du("churn/prep/features/1") == 3 + 100 + 5
    assert fs.du("churn") == 5 + 7 + 108 + 2


def test_latest_and_aliases_work_wherever_a_version_does(fs, populated):
    assert fs.cat("churn/train/model/latest") == b"second!"
    assert fs.cat("churn/train/model/production") == b"first"
    assert fs.cat("churn/prep/features/latest/sub/deep/leaf") == b"leaf!"
    assert fs.ls("churn/prep/features/latest", detail=False) == [
        "churn/prep/features/latest/sub",
        "churn/prep/features/latest/top.txt",
    ]
    assert fs.info("churn/train/model/production")["version"] == 1


def test_metadata_calls_never_read_blob_bytes(fs, populated, monkeypatch):
    reads = []
    backend = fs.store.backend
    for method in ("read_bytes", "open_read"):
        original = getattr(backend, method)

        def counting(rel, _original=original):
            reads.append(rel)
            return _original(rel)

        monkeypatch.setattr(backend, method, counting)
    fs.ls("")
    fs.ls("churn/prep/features/1/sub")
    fs.info("churn/prep/features/1/sub/deep/leaf")
    fs.find("", withdirs=True)
    list(fs.walk("churn"))
    fs.glob("churn/*/*/*/**")
    fs.du("")
    fs.ukey("churn/train/model/1")
    fs.checksum("churn/prep/features/1/top.txt")
    assert fs.exists("churn/train/model/production") and fs.isdir("churn/prep/features/latest/sub")
    assert [r for r in reads if r.startswith("blobs/")] == []


def test_find_walk_glob_across_versions(fs, populated):
    fs.store.save(b"x", "churn/train/model")
    assert fs.find("churn/prep/features/1") == [
        "churn/prep/features/1/sub/deep/leaf",
        "churn/prep/features/1/sub/mid.bin",
        "churn/prep/features/1/top.txt",
    ]
    assert fs.find("churn/prep", maxdepth=3) == ["churn/prep/features/1/top.txt"]
    assert "churn/prep/features/1/sub/deep" in fs.find("churn", withdirs=True)
    assert fs.glob("churn/train/model/*") == [f"churn/train/model/{n}" for n in (1, 2, 3)]
    assert fs.glob("*/*/*/1/**/leaf") == ["churn/prep/features/1/sub/deep/leaf"]
    walked = {d: (sorted(ds), sorted(fs_)) for d, ds, fs_ in fs.walk("churn/prep/features")}
    assert walked["churn/prep/features/1/sub"] == (["deep"], ["mid.bin"])
    assert walked["churn/prep/features"] == (["1"], [])


# -- reads ---------------------------------------------------------------------------


def test_reads_have_random_access(fs):
    data = os.urandom(3 * MiB + 17)
    fs.pipe("p/s/big/1", data)
    assert fs.cat_file("p/s/big/1", start=MiB, end=MiB + 10) == data[MiB : MiB + 10]
    assert fs.cat_file("p/s/big/1", start=-5) == data[-5:]
    assert fs.tail("p/s/big/1", 100) == data[-100:]
    with fs.open("p/s/big/1", "rb") as f:
        assert f.size == len(data) and f.seekable()
        f.seek(2 * MiB + 3)
        assert f.read(1000) == data[2 * MiB + 3 : 2 * MiB + 1003]
        f.seek(-7, io.SEEK_END)
        assert f.read() == data[-7:]
        f.seek(0)
        assert f.read() == data


def test_a_full_read_is_checked_against_the_digest(local_store):
    fs = CasFileSystem(store=local_store, skip_instance_cache=True)
    version = local_store.save(b"A" * 5000, "p/s/a")
    path = os.path.join(local_store.backend.root, "blobs", version.digest.hex[:2], version.digest.hex[2:])
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"B")  # same size, different bytes: only the digest can tell
    with pytest.raises(IntegrityError):
        fs.cat("p/s/a/1")
    with pytest.raises(IntegrityError), fs.open("p/s/a/1") as f:
        while f.read(1024):
            pass


@pytest.mark.parametrize("damaged", ["flip", "truncate"])
def test_random_access_never_serves_bytes_of_a_damaged_blob(fs, damaged):
    """A seek (pyarrow's footer read, cat_file ranges) checks the whole blob first."""
    data = os.urandom(3 * MiB + 17)
    fs.pipe("p/s/big/1", data)
    bad = bytearray(data)
    bad[2 * MiB + 5] ^= 1
    replace_blob(fs.store, fs.ukey("p/s/big/1").split(":")[1], bytes(bad) if damaged == "flip" else data[: 3 * MiB])

    def seek_then_read(offset, whence=io.SEEK_SET):
        with fs.open("p/s/big/1", "rb") as f:
            f.seek(offset, whence)
            return f.read(1000)

    def read_exactly_to_the_end():  # as np.load and pickle do: never asking past the end
        with fs.open("p/s/big/1", "rb") as f:
            return f.read(len(data) if damaged == "flip" else 3 * MiB)

    for read in (
        lambda: fs.cat_file("p/s/big/1", start=MiB, end=MiB + 10),
        lambda: fs.cat_file("p/s/big/1", start=-5),
        lambda: fs.tail("p/s/big/1", 100),
        lambda: seek_then_read(2 * MiB + 3),
        lambda: seek_then_read(-7, io.SEEK_END),
        read_exactly_to_the_end,
    ):
        with pytest.raises(IntegrityError):
            read()
    with fs.open("p/s/big/1", "rb") as f:  # once found, the reader keeps refusing
        with pytest.raises(IntegrityError):
            f.seek(MiB)
        with pytest.raises(IntegrityError):
            f.seek(0)
            f.read(10)


@pytest.mark.parametrize("backend_name", ["local"])  # memory:// holds blobs in RAM by design
def test_reads_and_writes_stream_in_bounded_memory(fs, backend_name):
    size = 48 * MiB
    chunk = os.urandom(MiB)
    tracemalloc.start()
    try:
        with fs.open("p/s/big/1", "wb") as f:
            for _ in range(size // MiB):
                f.write(chunk)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        with fs.open("p/s/big/1", "rb") as f:
            while block := f.read(MiB):
                total += len(block)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size and fs.size("p/s/big/1") == size
    # a whole-blob copy would need >= 48 MiB; streaming needs a few buffers
    assert write_peak < size / 4, write_peak
    assert read_peak < size / 4, read_peak


# -- writes, drafts, commits ------------------------------------------------------------


def test_writing_a_version_path_commits_a_file_version_on_close(fs, reopen):
    with fs.open("cas://p/s/a/1", "wb") as f:
        f.write(b"one")
    fs.write_text("p/s/a/2", "two")
    assert fs.drafts() == []
    other = reopen()  # a fresh index, rebuilt from the backend alone
    assert [v.read_bytes() for v in other.list_versions("p/s/a")] == [b"one", b"two"]
    assert other.get_artifact_version("p/s/a", 2).kind == "blob"


def test_files_under_a_version_build_a_draft_until_commit(fs, reopen):
    fs.makedirs("p/s/t/1/empty")
    fs.pipe("p/s/t/1/a.txt", b"a")
    with fs.open("p/s/t/1/sub/b.txt", "w") as f:
        f.write("b")
    fs.pipe("p/s/t/1/a.txt", b"A")  # drafts are mutable: nothing is a version yet
    assert fs.drafts() == ["p/s/t/1"]
    assert fs.info("p/s/t/1")["committed"] is False
    assert fs.ls("p/s/t/1", detail=False) == ["p/s/t/1/a.txt", "p/s/t/1/empty", "p/s/t/1/sub"]
    assert fs.cat("p/s/t/1/a.txt") == b"A"
    with pytest.raises(cas.ArtifactNotFoundError):
        reopen().get_artifact_version("p/s/t")  # invisible outside this filesystem
    (version,) = fs.commit()
    assert (version.name, version.version, version.kind) == ("p/s/t", 1, "tree")
    assert [(p, d.hex) for p, d, _ in version.files()] == [
        ("a.txt", cas.core.digest.hash_bytes(b"A")),
        ("sub/b.txt", cas.core.digest.hash_bytes(b"b")),
    ]
    assert fs.drafts() == [] and fs.info("p/s/t/1")["committed"] is True
    assert not fs.exists("p/s/t/1/empty")  # a tree manifest lists files only
    assert reopen().get_artifact_version("p/s/t", 1).read_bytes("sub/b.txt") == b"b"


def test_a_transaction_commits_its_drafts_when_it_ends(fs, reopen):
    with fs.transaction:
        with fs.open("p/s/file/1", "wb") as f:
            f.write(b"whole file")
        fs.pipe("p/s/tree/1/x/y", b"y")
        fs.pipe("p/s/tree/2/z", b"z")  # consecutive drafts of one artifact
        assert fs.cat("p/s/file/1") == b"whole file"
        with pytest.raises(cas.ArtifactNotFoundError):
            reopen().get_artifact_version("p/s/file")
    other = reopen()
    assert other.get_artifact_version("p/s/file", 1).read_bytes() == b"whole file"
    assert other.get_artifact_version("p/s/tree", 1).read_bytes("x/y") == b"y"
    assert other.get_artifact_version("p/s/tree", 2).read_bytes("z") == b"z"


def test_an_error_in_a_transaction_discards_everything(fs):
    before = backend_state(fs.store)
    with pytest.raises(RuntimeError, match="boom"):
        with fs.transaction:
            fs.pipe("p/s/a/1", b"never")
            fs.pipe("p/s/t/1/x", b"never")
            raise RuntimeError("boom")
    assert fs.drafts() == [] and not fs.exists("p/s/a") and not fs.exists("p/s/t")
    refs = [p for p, _ in backend_state(fs.store) if p.startswith("refs/")]
    assert refs == [p for p, _ in before if p.startswith("refs/")]


def test_an_exception_inside_with_publishes_nothing(fs):
    with pytest.raises(ValueError):
        with fs.open("p/s/a/1", "wb") as f:
            f.write(b"partial content")
            raise ValueError("interrupted")
    assert not fs.exists("p/s/a/1") and fs.drafts() == []
    assert not fs.store.blobs.exists(cas.core.digest.hash_bytes(b"partial content"))
    abandoned = fs.open("p/s/a/1", "wb")
    abandoned.write(b"never closed")
    del abandoned
    gc.collect()  # a file dropped unclosed is discarded, never published
    assert not fs.exists("p/s/a/1") and fs.drafts() == []
    assert not fs.store.blobs.exists(cas.core.digest.hash_bytes(b"never closed"))


def test_copies_inside_a_transaction_commit_with_it(fs):
    fs.pipe("p/s/t/1/a", b"a")
    fs.commit()
    with fs.transaction:
        fs.cp("p/s/t/1", "p/s/u/1", recursive=True)
        fs.cp("p/s/t/1/a", "p/s/v/1")
        assert fs.info("p/s/u/1")["committed"] is False and fs.drafts() == ["p/s/u/1", "p/s/v/1"]
    assert fs.info("p/s/u/1")["digest"] == fs.info("p/s/t/1")["digest"]
    assert fs.cat("p/s/v/1") == b"a" and fs.drafts() == []


def test_commit_refuses_a_number_another_writer_claimed(fs, reopen):
    fs.pipe("p/s/t/1/x", b"mine")
    reopen().save(b"theirs", "p/s/t")  # another machine takes version 1 first
    with pytest.raises(VersionExistsError):
        fs.commit()
    assert fs.drafts() == ["p/s/t/1"]  # kept: nothing of it was committed
    fs.discard("p/s/t/1")
    assert fs.cat("p/s/t/1") == b"theirs"


def test_version_numbers_are_claimed_in_order(fs):
    with pytest.raises(InvalidNameError, match="next is 1"):
        fs.pipe("p/s/a/2", b"gap")
    fs.pipe("p/s/a/1", b"1")
    fs.makedirs("p/s/t/1/d")
    fs.pipe("p/s/t/2/x", b"draft after a draft")
    with pytest.raises(InvalidNameError, match="next is 3"):
        fs.pipe("p/s/t/4/x", b"gap")
    # draft 1 has no file and commits nothing, so draft 2 would leave a gap
    with pytest.raises(InvalidNameError, match="the next is 1"):
        fs.commit()
    assert fs.drafts() == ["p/s/t/2"]
    fs.discard()
    fs.store.delete_version("p/s/a", 1)
    with pytest.raises(VersionExistsError, match="never reused"):
        fs.pipe("p/s/a/1", b"again")
    fs.pipe("p/s/a/2", b"2")
    for pointer in ("latest", "production"):
        with pytest.raises(ReadOnlyError, match="points at a committed version"):
            fs.pipe(f"p/s/a/{pointer}", b"x")


# -- immutability ------------------------------------------------------------------------


def test_committed_files_never_change(fs, tmp_path):
    fs.pipe("p/s/a/1", b"file version")
    fs.pipe("p/s/t/1/x.txt", b"tree file")
    fs.commit()
    local = tmp_path / "local.txt"
    local.write_bytes(b"local")
    before = backend_state(fs.store)
    overwrite = [
        lambda: fs.pipe("p/s/a/1", b"changed"),
        lambda: fs.open("p/s/a/1", "wb"),
        lambda: fs.open("p/s/a/1", "ab"),
        lambda: fs.put_file(str(local), "p/s/a/1"),
        lambda: fs.cp("p/s/t/1/x.txt", "p/s/a/1"),
        lambda: fs.touch("p/s/a/1"),
        lambda: fs.mkdir("p/s/t/1"),
    ]
    inside = [
        lambda: fs.pipe("p/s/t/1/x.txt", b"changed"),
        lambda: fs.pipe("p/s/t/1/new.txt", b"added"),
        lambda: fs.put_file(str(local), "p/s/t/1/new.txt"),
        lambda: fs.cp("p/s/a/1", "p/s/t/1/copy"),
        lambda: fs.rm("p/s/t/1/x.txt"),
        lambda: fs.mv("p/s/t/1/x.txt", "p/s/u/1"),
        lambda: fs.mkdir("p/s/t/1/newdir"),
        lambda: fs.open("p/s/t/1/x.txt", "r+b"),
    ]
    for attempt in overwrite:
        with pytest.raises((VersionExistsError, PathExistsError)) as e:
            attempt()
        assert isinstance(e.value, FileExistsError)
    for attempt in inside:
        with pytest.raises(ReadOnlyError) as e:
            attempt()
        assert isinstance(e.value, PermissionError)
    assert backend_state(fs.store) == before
    assert not fs.exists("p/s/u")
    assert fs.cat("p/s/a/1") == b"file version" and fs.cat("p/s/t/1/x.txt") == b"tree file"


# -- copy and move: index entries only ------------------------------------------------------


def test_copy_and_move_move_no_bytes(fs, monkeypatch):
    content = os.urandom(MiB)
    fs.pipe("p/s/a/1", content)
    fs.pipe("p/s/t/1/data/part-0", content)
    fs.pipe("p/s/t/1/data/part-1", content[::-1])
    fs.commit()
    blobs_before = {p for p, _ in backend_state(fs.store) if p.startswith("blobs/")}
    writes, reads = [], []
    backend = fs.store.backend

    def record_write(method):
        original = getattr(backend, method)

        def wrapper(rel, payload, *a, **kw):
            size = len(payload) if isinstance(payload, (bytes, bytearray)) else os.path.getsize(payload)
            writes.append((rel, size))
            return original(rel, payload, *a, **kw)

        monkeypatch.setattr(backend, method, wrapper)

    def record_read(method):
        original = getattr(backend, method)

        def wrapper(rel, *a, **kw):
            reads.append(rel)
            return original(rel, *a, **kw)

        monkeypatch.setattr(backend, method, wrapper)

    record_write("create_bytes")
    record_write("create_from_file")
    record_read("read_bytes")
    record_read("open_read")

    fs.cp("p/s/a/1", "p/s/b/1")  # a file version to a new version
    fs.cp("p/s/t/1", "p/s/u/1", recursive=True)  # a whole tree version
    fs.cp("p/s/t/1/data/part-1", "p/s/v/1/picked")  # a file into a draft
    fs.cp("p/s/a/1", "p/s/v/1/whole")
    fs.commit()
    fs.mv("p/s/b/1", "p/s/c/1")  # a version moves: new version + recorded deletion
    fs.mv("p/s/u/1", "p/s/w/1", recursive=True)

    content_reads = [r for r in reads if r.startswith("blobs/") and fs.store.blobs.size(r.replace("/", "")[5:]) >= MiB]
    assert content_reads == []
    assert writes and max(size for _, size in writes) < 64 * 1024, writes  # records and manifests only
    new_blobs = {p for p, _ in backend_state(fs.store) if p.startswith("blobs/")} - blobs_before
    assert all(fs.store.backend.size(p) < 64 * 1024 for p in new_blobs)
    assert fs.cat("p/s/c/1") == content and not fs.exists("p/s/b/1")
    assert fs.cat("p/s/w/1/data/part-1") == content[::-1] and not fs.exists("p/s/u/1")
    assert fs.cat("p/s/v/1/whole") == content and fs.cat("p/s/v/1/picked") == content[::-1]
    assert fs.info("p/s/w/1")["digest"] == fs.info("p/s/t/1")["digest"]  # the same tree, linked


def _live(store, name):
    return [v.version for v in store.list_versions(name)] if store.list_artifacts(name) else []


def test_a_move_into_a_draft_deletes_its_source_only_when_the_draft_commits(fs, reopen):
    fs.pipe("p/s/a/1", b"precious")
    fs.mv("p/s/a/1", "p/s/b/1/inside/file.bin")
    assert fs.cat("p/s/a/1") == b"precious"  # still there: its target is only a draft
    assert _live(reopen(), "p/s/a") == [1]
    [committed] = fs.commit()
    assert committed.ref == "p/s/b@1" and fs.cat("p/s/b/1/inside/file.bin") == b"precious"
    assert not fs.exists("p/s/a/1")
    other = reopen()
    assert _live(other, "p/s/a") == [] and other.get_artifact_version("p/s/b", 1).read_bytes("inside/file.bin")


def test_discarding_the_draft_a_move_went_into_keeps_its_source(fs, reopen):
    fs.pipe("p/s/a/1", b"precious")
    fs.pipe("p/s/t/1/x.txt", b"tree file")
    fs.commit()
    fs.mv("p/s/a/1", "p/s/b/1/inside/file.bin")
    fs.mv("p/s/t/1", "p/s/b/1/tree", recursive=True)
    fs.discard()
    assert fs.drafts() == [] and not fs.exists("p/s/b")
    assert fs.cat("p/s/a/1") == b"precious" and fs.cat("p/s/t/1/x.txt") == b"tree file"
    assert _live(reopen(), "p/s/a") == [1] and _live(reopen(), "p/s/t") == [1]
    fs.commit()  # nothing left to commit, nothing deleted later either
    assert fs.cat("p/s/a/1") == b"precious"
    # rm of the draft path is a discard too
    fs.mv("p/s/a/1", "p/s/c/1/file.bin")
    fs.rm("p/s/c/1", recursive=True)
    fs.commit()
    assert fs.cat("p/s/a/1") == b"precious"


def test_a_move_inside_a_transaction_deletes_its_source_only_if_the_transaction_commits(fs, reopen):
    fs.pipe("p/s/a/1", b"precious")
    fs.pipe("p/s/a/2", b"second")
    with pytest.raises(RuntimeError, match="boom"), fs.transaction:
        fs.mv("p/s/a/1", "p/s/b/1")  # a whole version into the transaction's draft
        fs.mv("p/s/a/2", "p/s/c/1/in/tree.bin")
        assert fs.cat("p/s/a/1") == b"precious" and fs.cat("p/s/a/2") == b"second"
        raise RuntimeError("boom")
    assert _live(reopen(), "p/s/a") == [1, 2] and not fs.exists("p/s/b") and not fs.exists("p/s/c")
    with fs.transaction:
        fs.mv("p/s/a/1", "p/s/b/1")
        fs.mv("p/s/a/2", "p/s/c/1/in/tree.bin")
        assert _live(reopen(), "p/s/a") == [1, 2]
    other = reopen()
    assert _live(other, "p/s/a") == []
    assert other.get_artifact_version("p/s/b", 1).read_bytes() == b"precious"
    assert other.get_artifact_version("p/s/c", 1).read_bytes("in/tree.bin") == b"second"


# -- removal records deletions ------------------------------------------------------------------


def test_rm_records_deletions_and_bytes_go_only_through_gc(fs, reopen):
    data = os.urandom(1000)
    fs.pipe("p/s/a/1", data)
    fs.pipe("p/s/a/2", b"keep")
    digest = cas.core.digest.hash_bytes(data)
    fs.rm("p/s/a/1")
    assert fs.ls("p/s/a", detail=False) == ["p/s/a/2"]
    assert fs.store.blobs.exists(digest)  # still there: rm only records
    other = reopen()
    assert [(v.version, v.deleted) for v in other.list_versions("p/s/a", include_deleted=True)] == [
        (1, True),
        (2, False),
    ]
    fs.store.gc(grace=0)
    assert not fs.store.blobs.exists(digest)
    assert fs.cat("p/s/a/2") == b"keep"


def test_rm_of_namespace_levels(fs):
    fs.store.save(b"1", "p/s/a")
    fs.store.save(b"2", "p/s/a")
    fs.store.save(b"3", "p/t/b")
    fs.pipe("p/s/c/1/draft", b"d")
    with pytest.raises(PathIsDirectoryError):
        fs.rm("p/s")
    with pytest.raises(ReadOnlyError):
        fs.rm("", recursive=True)
    with pytest.raises(ReadOnlyError):
        fs.rm("p/s/a/latest")
    fs.rm("p/s", recursive=True)
    assert fs.ls("p", detail=False) == ["p/t"] and fs.drafts() == []
    assert [v.deleted for v in fs.store.list_versions("p/s/a", include_deleted=True)] == [True, True]
    fs.rm("cas://p", recursive=True)
    assert fs.ls("") == []


def test_drafts_support_append_rmdir_and_discard(fs):
    fs.pipe("p/s/t/1/log.txt", b"one\n")
    with fs.open("p/s/t/1/log.txt", "ab") as f:
        f.write(b"two\n")
    assert fs.cat("p/s/t/1/log.txt") == b"one\ntwo\n"
    fs.mkdir("p/s/t/1/d")
    fs.rmdir("p/s/t/1/d")
    assert not fs.exists("p/s/t/1/d")
    with pytest.raises(PathNotDirectoryError):
        fs.pipe("p/s/t/1/log.txt/inside", b"x")
    with pytest.raises(PathExistsError):
        fs.open("p/s/t/1/log.txt", "xb")
    fs.discard()
    assert fs.drafts() == [] and not fs.exists("p/s/t")


def test_removing_a_directory_in_a_draft_keeps_a_parent_made_with_makedirs(fs):
    # the directory d exists only because a file below it does, until makedirs makes it one
    fs.pipe("p/s/t/1/d/e/f", b"")
    fs.makedirs("p/s/t/1/d", exist_ok=True)
    with pytest.raises(PathExistsError):
        fs.mkdir("p/s/t/1/d")
    fs.rm("p/s/t/1/d/e", recursive=True)
    assert fs.ls("p/s/t/1", detail=False) == ["p/s/t/1/d"]
    assert fs.isdir("p/s/t/1/d") and fs.ls("p/s/t/1/d") == []
    fs.discard()


# -- bad input ------------------------------------------------------------------------------------

BAD_PATHS = [
    "p/s/a/1/../../../x",
    "p/../etc/passwd",
    "p/s/a/1/%2e%2e/x",
    "p/s/a/1/sub/%2E%2E",
    "p/s/a/1/%252e%252e/x",
    "p/s/a/1/a%2fb",
    "p/s/a/1//etc/passwd",
    "/etc/passwd",
    "cas:///etc/passwd",
    "p/s/a/1/./x",
    "p/s/a/1/x\\..\\y",
    "p/s/a/1/x\x00y",
    "p/s/a/1/x\ny",
    "p/s/%2e%2e/1",
    "p/s/a b/1",
    "p/s/a/-1",
    "p/s/a/1.5",
    "p/s/" + "a" * 200 + "/1",
]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_paths_that_escape_the_namespace_are_refused(fs, bad):
    fs.pipe("p/s/a/1/ok", b"ok")
    fs.commit()
    before = backend_state(fs.store)
    attempts = [
        lambda: fs.open(bad, "rb"),
        lambda: fs.open(bad, "wb"),
        lambda: fs.pipe(bad, b"x"),
        lambda: fs.ls(bad),
        lambda: fs.info(bad),
        lambda: fs.exists(bad),
        lambda: fs.rm(bad, recursive=True),
        lambda: fs.makedirs(bad, exist_ok=True),
        lambda: fs.cp_file("p/s/a/1/ok", bad),
        lambda: fs.cp_file(bad, "p/s/z/1"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidNameError):
            attempt()
    assert backend_state(fs.store) == before and fs.drafts() == []


def test_unknown_versions_and_aliases_are_clear_not_found_errors(fs):
    fs.pipe("p/s/a/1", b"x")
    before = backend_state(fs.store)
    for missing, words in [
        ("p/s/a/9", "no version 9"),
        ("p/s/a/staging", "no alias 'staging'"),
        ("p/s/nope/1", "no artifact named p/s/nope"),
        ("p/s/a/1/inside", "no such file"),
        ("p/zz", "no such pipeline|no such step"),
    ]:
        with pytest.raises(PathNotFoundError, match=words) as e:
            fs.open(missing, "rb")
        assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, CasError)
        assert not fs.exists(missing)
    with pytest.raises(PathIsDirectoryError):
        fs.open("p/s/a", "wb")
    with pytest.raises(PathIsDirectoryError):
        fs.open("p/s", "rb")
    assert backend_state(fs.store) == before

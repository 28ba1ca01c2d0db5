"""Downloads are whole and verified, or leave the destination as it was (invariant 14).

Every path that writes a user's files from the store - ``ArtifactVersion.download``,
``cas get``, the ``cas://`` filesystem's ``get_file`` and ``get`` - meets a
blob with a flipped byte, or a truncated one, in the *last* file it writes,
after the others have already been written.  It must raise IntegrityError
and leave the destination exactly as it was: absent (no parent directories
made, no temp file), or the old content untouched.  Runs on every backend in
conftest (memory, local, and S3/GCS/Azure on their servers).
"""

from __future__ import annotations

import os
from pathlib import Path

import fsspec.config
import pytest
from click.testing import CliRunner
from store_helpers import make_tree, replace_blob

from cas.cli import cli
from cas.errors import IntegrityError, PathIsDirectoryError, PathNotDirectoryError
from cas.fs import CasFileSystem

FILES = {
    "a.txt": b"first file, written early\n",
    "sub/b.bin": os.urandom(70_000),
    "sub/deeper/c.bin": b"c" * 5000,
    "zz/last.bin": os.urandom(300_000),  # sorted last: every other file is written before it
}
LAST = "zz/last.bin"


def damage(data: bytes, how: str) -> bytes:
    if how == "flip":
        bad = bytearray(data)
        bad[len(bad) // 2] ^= 0x01
        return bytes(bad)
    return data[: len(data) // 2]  # truncated


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Everything below ``root`` (dot files too, so a leftover temp shows): file bytes, None for a directory."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in files:
            out[os.path.relpath(os.path.join(dirpath, f), root)] = Path(dirpath, f).read_bytes()
    return out


@pytest.fixture
def fs(store):
    return CasFileSystem(store=store, skip_instance_cache=True)


@pytest.fixture
def cas_get(store, store_url, storage_options, monkeypatch):
    """``cas get`` in-process on the test's store (cloud credentials through fsspec's config)."""
    protocol = store_url.split("://", 1)[0] if "://" in store_url else None
    if protocol and storage_options:
        monkeypatch.setitem(fsspec.config.conf, protocol, dict(storage_options))
    runner = CliRunner()

    def _get(ref: str, dest: Path):
        force = ["--force"] if dest.exists() else []  # replacing the user's file is asked for explicitly
        result = runner.invoke(cli, ["--store", store_url, "get", ref, str(dest), *force], catch_exceptions=False)
        assert result.exit_code != 0, result.stdout
        assert "integrity error" in result.stderr and result.stderr.count("\n") == 1, result.stderr
        raise IntegrityError("", "", result.stderr)  # the same outcome as the library paths

    return _get


def _blob_downloader(how: str, store, fs, cas_get):
    return {
        "download": lambda dest: store.get_artifact_version("p/s/model.bin").download(dest),
        "cas get": lambda dest: cas_get("p/s/model.bin", dest),
        "fs.get": lambda dest: fs.get("p/s/model.bin/1", str(dest)),
        "fs.get_file": lambda dest: fs.get_file("p/s/model.bin/1", str(dest)),
    }[how]


def _tree_downloader(how: str, store, fs, cas_get):
    return {
        "download": lambda dest: store.get_artifact_version("p/s/model").download(dest),
        "cas get": lambda dest: cas_get("p/s/model", dest),
        "fs.get": lambda dest: fs.get("p/s/model/1", str(dest), recursive=True),
        "fs.get_file": lambda dest: fs.get_file(f"p/s/model/1/{LAST}", str(dest / LAST)),
    }[how]


PATHS = ["download", "cas get", "fs.get", "fs.get_file"]


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize("damaged", ["flip", "truncate"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-dest", "existing-dest"])
def test_a_damaged_file_download_leaves_the_destination_as_it_was(store, fs, cas_get, tmp_path, how, damaged, existing):
    data = FILES[LAST]
    v = store.save(data, "p/s/model.bin")
    replace_blob(store, v.digest.hex, damage(data, damaged))
    root = tmp_path / "out"
    root.mkdir()
    if existing:
        dest = root / "model.bin"
        dest.write_bytes(b"the user's own file")
    else:
        dest = root / "new" / "deeper" / "model.bin"  # parents that do not exist yet
    before = snapshot(root)
    with pytest.raises(IntegrityError):
        _blob_downloader(how, store, fs, cas_get)(dest)
    assert snapshot(root) == before


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize("damaged", ["flip", "truncate"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-dest", "existing-dest"])
def test_a_damaged_tree_download_leaves_the_destination_as_it_was(store, fs, cas_get, tmp_path, how, damaged, existing):
    v = store.save(make_tree(tmp_path / "src", FILES), "p/s/model")
    digest = {p: d for p, d, _ in v.files()}[LAST]
    replace_blob(store, digest.hex, damage(FILES[LAST], damaged))
    root = tmp_path / "out"
    root.mkdir()
    if existing:  # a directory the user already has, with a file the tree also holds
        dest = make_tree(root / "model", {"a.txt": b"the user's a.txt", "keep/mine.txt": b"mine"})
    else:
        dest = root / "new" / "deeper" / "model"
    before = snapshot(root)
    with pytest.raises(IntegrityError):
        _tree_downloader(how, store, fs, cas_get)(dest)
    assert snapshot(root) == before


@pytest.mark.parametrize("how", PATHS)
def test_a_sound_download_is_whole_and_leaves_no_temp(store, store_url, fs, cas_get, tmp_path, how):
    """The same calls on sound blobs: everything arrives, nothing else does."""
    store.save(make_tree(tmp_path / "src", FILES), "p/s/model")
    store.save(FILES[LAST], "p/s/model.bin")
    root = tmp_path / "out"
    root.mkdir()
    if how == "cas get":
        for ref, dest in (("p/s/model", root / "tree"), ("p/s/model.bin", root / "file.bin")):
            result = CliRunner().invoke(cli, ["--store", store_url, "get", ref, str(dest)], catch_exceptions=False)
            assert result.exit_code == 0, result.stderr
    else:
        _tree_downloader(how, store, fs, cas_get)(root / "tree")
        _blob_downloader(how, store, fs, cas_get)(root / "file.bin")
    want_tree = {LAST: FILES[LAST]} if how == "fs.get_file" else FILES
    got = {k.replace(os.sep, "/"): b for k, b in snapshot(root).items() if b is not None}
    assert got == {"file.bin": FILES[LAST], **{f"tree/{p}": b for p, b in want_tree.items()}}
    # modes as any new file or directory gets (a temp file's 0600 must not leak through)
    (root / "plain").write_bytes(b"")
    (root / "plain-dir").mkdir()
    assert {(root / p).stat().st_mode for p in got} == {(root / "plain").stat().st_mode}
    dirs = [root / "tree" / "sub", root / "tree"] if how != "fs.get_file" else [root / "tree"]
    assert {d.stat().st_mode for d in dirs} == {(root / "plain-dir").stat().st_mode}


@pytest.mark.parametrize("kind", ["file", "tree"])
def test_loading_a_damaged_path_version_leaves_no_scratch_directory(store, tmp_path, monkeypatch, kind):
    """store.load of a saved path downloads into a fresh temp directory: on an error, none is left."""
    src = make_tree(tmp_path / "src", FILES)
    v = store.save(src / LAST if kind == "file" else src, "p/s/model")
    digest = v.digest if kind == "file" else {p: d for p, d, _ in v.files()}[LAST]
    replace_blob(store, digest.hex, damage(FILES[LAST], "flip"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    with pytest.raises(IntegrityError):
        store.load("p/s/model")
    assert list(scratch.iterdir()) == []


def test_a_file_in_the_way_is_one_clear_error_and_changes_nothing(store, tmp_path):
    store.save(make_tree(tmp_path / "src", FILES), "p/s/model")
    store.save(b"bytes", "p/s/model.bin")
    root = tmp_path / "out"
    (root / "blocker").mkdir(parents=True)
    (root / "blocker" / "file").write_bytes(b"mine")
    (root / "dir").mkdir()
    before = snapshot(root)
    for ref, dest in (("p/s/model", root / "blocker" / "file"), ("p/s/model.bin", root / "blocker" / "file" / "x")):
        with pytest.raises(PathNotDirectoryError, match="is in the way"):
            store.get_artifact_version(ref).download(dest)
    with pytest.raises(PathIsDirectoryError):
        CasFileSystem(store=store, skip_instance_cache=True).get_file("p/s/model.bin/1", str(root / "dir"))
    assert snapshot(root) == before

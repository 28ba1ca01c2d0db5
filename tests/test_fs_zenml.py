"""ZenML's artifact-store method set over cas://, checked without a zenml install.

The signatures are compared with the ones ZenML declares on
``BaseArtifactStore`` (zenml 0.98, ``zenml/artifact_stores/base_artifact_store.py``),
written out here so the check runs where zenml is not installed.
"""

from __future__ import annotations

import inspect
import uuid

import pytest

from cas.errors import PathExistsError, PathNotDirectoryError, PathNotFoundError, ReadOnlyError
from cas.fs import CasFileSystem
from cas.integrations.zenml.filesystem import CasZenMLFileSystem

# method -> parameter names after self, with their defaults, as ZenML declares them
ZENML_SIGNATURES = {
    "open": [("path", None), ("mode", "r")],
    "copyfile": [("src", None), ("dst", None), ("overwrite", False)],
    "exists": [("path", None)],
    "glob": [("pattern", None)],
    "isdir": [("path", None)],
    "listdir": [("path", None)],
    "makedirs": [("path", None)],
    "mkdir": [("path", None)],
    "remove": [("path", None)],
    "rename": [("src", None), ("dst", None), ("overwrite", False)],
    "rmtree": [("path", None)],
    "stat": [("path", None)],
    "size": [("path", None)],
    "walk": [("top", None), ("topdown", True), ("onerror", None)],
}


@pytest.fixture
def zfs(tmp_path, request):
    fs = CasFileSystem(store=str(tmp_path / "store"), skip_instance_cache=True)
    yield CasZenMLFileSystem(fs)
    fs.store.close()


def test_method_set_and_signatures_match_zenml():
    assert CasZenMLFileSystem.IS_IMMUTABLE_FILESYSTEM is True
    assert CasZenMLFileSystem.SUPPORTED_SCHEMES == {"cas://"}
    for name, expected in ZENML_SIGNATURES.items():
        params = list(inspect.signature(getattr(CasZenMLFileSystem, name)).parameters.values())[1:]
        got = [(p.name, None if p.default is inspect.Parameter.empty else p.default) for p in params]
        assert got == expected, name


def test_an_artifact_round_trip_the_way_zenml_does_it(zfs):
    uri = "cas://training/trainer/model/1"
    zfs.makedirs(uri)
    assert zfs.isdir(uri) and zfs.exists(uri)
    with zfs.open(f"{uri}/data.json", "w") as f:
        f.write('{"weights": [1, 2]}')
    with zfs.open(f"{uri}/meta/info.txt".encode(), "wb") as f:  # ZenML's PathType includes bytes
        f.write(b"meta")
    assert sorted(zfs.listdir(uri)) == ["data.json", "meta"]
    assert zfs.size(f"{uri}/data.json") == len('{"weights": [1, 2]}')
    assert zfs.stat(f"{uri}/meta/info.txt")["size"] == 4
    assert zfs.glob("cas://training/trainer/model/1/*.json") == [f"{uri}/data.json"]
    walked = list(zfs.walk(uri))
    assert walked[0] == (uri, ["meta"], ["data.json"])
    assert walked[1] == (f"{uri}/meta", [], ["info.txt"])
    zfs.fs.commit(uri)  # the integration commits when the step's output is complete
    with zfs.open(f"{uri}/data.json") as f:
        assert f.read() == '{"weights": [1, 2]}'
    assert zfs.stat(uri)["committed"] is True


def test_copy_rename_remove_rmtree(zfs):
    zfs.fs.pipe("p/s/a/1", b"v1")
    zfs.copyfile("cas://p/s/a/1", "cas://p/s/b/1")
    with zfs.open("cas://p/s/b/1", "rb") as f:
        assert f.read() == b"v1"
    with pytest.raises(FileExistsError):
        zfs.copyfile("cas://p/s/a/1", "cas://p/s/b/1")
    with pytest.raises(PathExistsError):
        zfs.rename("cas://p/s/a/1", "cas://p/s/b/1")
    with pytest.raises(FileExistsError):  # immutable: even overwrite=True cannot replace a committed file
        zfs.copyfile("cas://p/s/a/1", "cas://p/s/b/1", overwrite=True)
    zfs.rename("cas://p/s/b/1", "cas://p/s/c/1")
    assert not zfs.exists("cas://p/s/b/1") and zfs.exists("cas://p/s/c/1")
    zfs.remove("cas://p/s/c/1")
    assert not zfs.exists("cas://p/s/c")
    zfs.fs.pipe("p/s/t/1/x", b"x")
    zfs.fs.commit()
    with pytest.raises(ReadOnlyError):
        zfs.remove("cas://p/s/t/1/x")
    zfs.rmtree("cas://p/s/t")
    assert not zfs.exists("cas://p/s/t/1")


def test_mkdir_listdir_errors(zfs):
    with pytest.raises(PathNotFoundError):
        zfs.mkdir("cas://p/s/a/1/x/y")  # the parent must exist
    zfs.mkdir("cas://p/s/a/1")
    zfs.mkdir("cas://p/s/a/1/x")
    assert zfs.listdir("cas://p/s/a/1") == ["x"]
    zfs.fs.pipe("p/s/f/1", b"file")
    with pytest.raises(PathNotDirectoryError):
        zfs.listdir("cas://p/s/f/1")
    with pytest.raises(FileNotFoundError):
        zfs.listdir(f"cas://p/s/none-{uuid.uuid4().hex[:6]}")
    errors = []
    assert list(zfs.walk("cas://p/s/nowhere", onerror=errors.append)) == []
    assert errors and isinstance(errors[0], FileNotFoundError)

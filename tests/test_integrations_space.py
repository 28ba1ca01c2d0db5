"""The framework-neutral half of the ZenML/MLflow integrations, on a real local store:
path layouts (a bijection between framework paths and cas folders) and the
filesystem answers built on them.  The frameworks themselves are exercised in
tests/integrations/ (tox -e zenml, tox -e mlflow)."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_helpers import replace_blob

import cas
from cas.core.names import SEGMENT_RE
from cas.errors import IntegrityError, InvalidNameError, PathExistsError, PathNotFoundError, ReadOnlyError
from cas.integrations._shared import segments as _segments
from cas.integrations._shared.folders import Folders
from cas.integrations._shared.space import PathSpace
from cas.integrations.mlflow.layout import MlflowLayout
from cas.integrations.zenml.layout import ZenMLLayout


@given(st.text(min_size=1, max_size=40).filter(lambda t: _segments.is_component(t) and len(t.encode()) <= 62))
def test_segment_encoding_round_trips(component):
    encoded = _segments.encode(component)
    assert SEGMENT_RE.match(encoded)
    assert _segments.decode(encoded) == component


def test_segment_encoding_keeps_plain_names_and_refuses_long_ones():
    assert _segments.encode("train") == "train"
    assert _segments.encode("_private").startswith("x--")
    assert _segments.encode("x--looks-escaped") != "x--looks-escaped"
    with pytest.raises(InvalidNameError):
        _segments.encode("é" * 40)


@pytest.mark.parametrize("component", ["..", ".", "a/b", "a\\b", "tab\there", "nul\x00"])
def test_what_is_not_a_path_component_is_neither_encoded_nor_decoded(component):
    with pytest.raises(InvalidNameError):
        _segments.encode(component)
    with pytest.raises(InvalidNameError):
        _segments.decode(_segments.ESCAPE + component.encode().hex())


def test_a_crafted_name_never_lists_as_a_path_outside(local_store, tmp_path):
    """A name read back from the backend that decodes to ``..`` (or a separator) is not
    part of any layout: listings never offer it, so a framework never writes there."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f.txt").write_bytes(b"x")
    dots = _segments.ESCAPE + b"../../escaped".hex()
    run_id = "0" * 32
    local_store.save(tree, "zen/x--2e2e/out", aliases=["zenml"])
    local_store.save(tree, "zen/ok/out", aliases=["zenml"])
    local_store.save(tree, f"p/s/{dots}", aliases=[f"mlflow.run.{run_id}"])
    local_store.save(tree, "p/s/fine", aliases=[f"mlflow.run.{run_id}"])
    zen = PathSpace(Folders(local_store), ZenMLLayout(("zen",)))
    assert zen.listdir("cas://zen") == ["ok"]
    assert [i.path for i in zen.find("cas://zen")] == ["cas://zen/ok/out/f.txt"]
    mlflow = PathSpace(Folders(local_store), MlflowLayout())
    assert mlflow.listdir(f"cas://p/s/{run_id}/artifacts") == ["fine"]


ids = st.uuids().map(str)
hex8 = st.text("0123456789abcdef", min_size=8, max_size=8)
words = st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True)
files = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}(\.json|\.log)?", fullmatch=True), min_size=0, max_size=3)


@given(words, words, ids, hex8, files)
def test_zenml_layout_is_a_bijection(step, output, step_run, rand, inner):
    layout = ZenMLLayout(("ns",))
    parts = ("ns", step, output, step_run, rand, *inner)
    key, path = layout.locate(parts)
    assert key.name == f"ns/{_segments.encode(step)}/{_segments.encode(output)}"
    assert layout.root_of(key) + (tuple(path.split("/")) if path else ()) == parts


@given(words, words, st.text("0123456789abcdef", min_size=32, max_size=32), words, files)
def test_mlflow_layout_is_a_bijection(pipeline, stepname, run_id, top, inner):
    layout = MlflowLayout()
    parts = (pipeline, stepname, run_id, "artifacts", top, *inner)
    key, path = layout.locate(parts)
    assert key.name == "/".join(_segments.encode(p) for p in (pipeline, stepname, top))
    assert layout.root_of(key) + (tuple(path.split("/")) if path else ()) == parts
    model = (pipeline, stepname, "models", "m-" + run_id, "artifacts", *inner)
    key, path = layout.locate(model)
    assert key.alias == f"mlflow.models.m-{run_id}"
    assert layout.root_of(key) + (tuple(path.split("/")) if path else ()) == model


prefixes = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), min_size=0, max_size=3).map(tuple)
NAMES = {"experiment": {"7": "churn model", "0": "x--looks-escaped"}, "models": {}}


def _names(what, ident):
    return NAMES[what].get(ident, f"model-{ident[-4:]}")


@given(prefixes, st.sampled_from(["0", "7"]), st.text("0123456789abcdef", min_size=32, max_size=32), words, files)
def test_mlflow_layout_under_a_server_root_is_a_bijection(prefix, exp, run_id, top, inner):
    """--default-artifact-root / --artifacts-destination cas://<prefix...>: MLflow adds
    <experiment id>/, and cas names use the experiment's name."""
    for root in (prefix, prefix + (exp, run_id, "artifacts")):  # the server's repo, a client's repo
        layout = MlflowLayout(root, _names)
        parts = (*prefix, exp, run_id, "artifacts", top, *inner)
        key, path = layout.locate(parts)
        pipeline = {"0": "x--looks-escaped", "7": "churn-model"}[exp]
        assert key.name == f"{pipeline}/run/{_segments.encode(top)}"
        assert layout.root_of(key) + (tuple(path.split("/")) if path else ()) == parts
        model = (*prefix, exp, "models", "m-" + run_id, "artifacts", *inner)
        key, path = layout.locate(model)
        assert key.name == f"{pipeline}/models/model-{run_id[-4:]}"
        assert layout.root_of(key) + (tuple(path.split("/")) if path else ()) == model
        assert layout.locate((*prefix, exp, run_id)) is None  # above the run's folders
        assert layout.name_prefix((*prefix, exp, run_id, "artifacts")) == f"{pipeline}/"


def test_mlflow_layout_names_steps_after_experiments_not_ids():
    layout = MlflowLayout(("team",), _names)
    key, _ = layout.locate(("team", "7", "a" * 32, "artifacts", "metrics.json"))
    assert key.name == "churn-model/run/metrics.json"
    # a hand-named location keeps its own pipeline and step, even a step called "models"
    key, _ = MlflowLayout().locate(("p", "models", "a" * 32, "artifacts", "x"))
    assert key.name == "p/models/x" and key.alias == "mlflow.run." + "a" * 32


def test_layouts_refuse_what_they_cannot_map():
    with pytest.raises(InvalidNameError):
        ZenMLLayout(("a", "b"))  # the artifact store path is cas://<namespace>
    with pytest.raises(InvalidNameError):
        ZenMLLayout(("ns",)).locate(("other", "a", "b"))
    with pytest.raises(InvalidNameError):  # artifact_location cas://<pipeline> only
        MlflowLayout().locate(("churn", "0" * 32, "artifacts", "x"))
    with pytest.raises(InvalidNameError):
        MlflowLayout().locate(("p", "s", "0" * 32, "elsewhere", "x"))


@pytest.fixture
def space(local_store):
    return PathSpace(Folders(local_store), ZenMLLayout(("zen",)))


def _uri(space_ns="zen"):
    return f"cas://{space_ns}/trainer/output/{uuid.uuid4()}/abcdef12"


def test_write_list_read_back(space, local_store):
    uri = _uri()
    assert not space.exists(uri)
    with space.open(uri + "/data.json", "w") as f:
        f.write('{"a": 1}')
    with space.open(uri + "/vis/describe.csv", "wb") as f:
        f.write(b"x,y\n")
    assert space.isdir(uri) and space.listdir(uri) == ["data.json", "vis"]
    assert space.listdir("cas://zen") == ["trainer"]
    assert space.open(uri + "/data.json", "rb").read() == b'{"a": 1}'
    assert space.info(uri + "/vis/describe.csv").size == 4
    assert space.glob("cas://zen/**/*.json") == [uri + "/data.json"]
    walked = list(space.walk("cas://zen/trainer"))
    assert walked[-1] == (uri + "/vis", [], ["describe.csv"])
    # one live version for the folder: the state after its first file was superseded
    versions = local_store.list_versions("zen/trainer/output", include_deleted=True)
    assert [v.deleted for v in versions] == [True, False]
    assert {p for p, _, _ in versions[-1].files()} == {"data.json", "vis/describe.csv"}


def test_same_content_in_a_new_folder_writes_no_blob(space, local_store):
    first, second = _uri(), _uri()
    with space.open(first + "/data.json", "wb") as f:
        f.write(b"payload" * 1000)
    blobs_before = local_store.stats().blobs
    with space.open(second + "/data.json", "wb") as f:
        f.write(b"payload" * 1000)
    assert space.info(first + "/data.json").digest == space.info(second + "/data.json").digest
    # only records and no content: the file blob and the tree manifest are dedupe hits
    digests = {v.digest.hex for v in local_store.list_versions("zen/trainer/output")}
    assert len(digests) == 1
    assert local_store.stats().blobs == blobs_before


def test_failed_write_publishes_nothing(space):
    uri = _uri()
    with pytest.raises(RuntimeError):
        with space.open(uri + "/data.json", "wb") as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert not space.exists(uri)


def test_copy_rename_remove_rmtree(space):
    uri = _uri()
    with space.open(uri + "/a.txt", "wb") as f:
        f.write(b"A")
    space.copy(uri + "/a.txt", uri + "/b.txt")
    with pytest.raises(PathExistsError):
        space.copy(uri + "/a.txt", uri + "/b.txt")
    space.rename(uri + "/b.txt", uri + "/c.txt")
    assert space.listdir(uri) == ["a.txt", "c.txt"]
    assert space.info(uri + "/c.txt").digest == space.info(uri + "/a.txt").digest
    space.remove(uri + "/a.txt")
    assert space.listdir(uri) == ["c.txt"]
    space.rmtree("cas://zen/trainer")
    assert not space.exists(uri) and space.listdir("cas://zen") == []
    with pytest.raises(PathNotFoundError):
        space.open(uri + "/c.txt", "rb")


def test_committed_files_are_not_appended(space):
    uri = _uri()
    with space.open(uri + "/log.txt", "w") as f:
        f.write("one\n")
    with pytest.raises(ReadOnlyError):
        space.open(uri + "/log.txt", "a")
    with pytest.raises(PathExistsError):
        space.open(uri + "/log.txt", "xb")


def test_cli_sees_folder_versions(space, local_store, tmp_path):
    from click.testing import CliRunner

    from cas.cli import cli

    uri = _uri()
    with space.open(uri + "/data.json", "wb") as f:
        f.write(b"{}")
    result = CliRunner().invoke(cli, ["--store", local_store.url, "log", "zen/trainer/output", "--json"])
    assert result.exit_code == 0, result.output
    assert '"zenml.' in result.output  # the folder alias names the ZenML directory


def test_a_user_alias_keeps_a_superseded_version(space, local_store):
    uri = _uri()
    with space.open(uri + "/a.txt", "wb") as f:
        f.write(b"A")
    local_store.set_alias("zen/trainer/output", 1, "production")
    with space.open(uri + "/b.txt", "wb") as f:
        f.write(b"B")
    assert not local_store.get_artifact_version("zen/trainer/output", "production").deleted
    assert cas.open_store(local_store.url).get_artifact_version("zen/trainer/output", 2).size == 2


_RACE_WRITER = """
import sys
import cas
from cas.integrations._shared.folders import Folders
from cas.integrations._shared.space import PathSpace
from cas.integrations.mlflow.layout import MlflowLayout

store = cas.open_store(sys.argv[1], create=False)
space = PathSpace(Folders(store), MlflowLayout())
sys.stdin.readline()  # start together
for i in range(int(sys.argv[3])):
    with space.open(f"cas://p/s/{'a' * 32}/artifacts/report/{sys.argv[2]}-{i}.txt", "wb") as f:
        f.write(f"{sys.argv[2]} {i}".encode())
store.close()
"""


def test_processes_writing_one_folder_lose_no_file(local_store, tmp_path):
    """Two processes (two `mlflow server` workers, say) adding files to one run's
    directory at once: every file is in the folder's final version."""
    import subprocess
    import sys

    script = tmp_path / "writer.py"
    script.write_text(_RACE_WRITER)
    n = 15
    procs = [
        subprocess.Popen([sys.executable, str(script), local_store.url, who, str(n)], stdin=subprocess.PIPE, text=True)
        for who in ("w1", "w2")
    ]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.close()
    assert [p.wait(120) for p in procs] == [0, 0]
    local_store.refresh()
    space = PathSpace(Folders(local_store), MlflowLayout())
    names = space.listdir(f"cas://p/s/{'a' * 32}/artifacts/report")
    assert sorted(names) == sorted(f"{w}-{i}.txt" for w in ("w1", "w2") for i in range(n))
    # every superseded version was retired: one live version of the folder
    live = [v for v in local_store.list_versions("p/s/report")]
    assert len(live) == 1


@pytest.mark.parametrize("damaged", ["flip", "truncate"])
def test_a_damaged_blob_never_reaches_a_framework(space, local_store, tmp_path, damaged):
    """What ZenML materializers and MLflow downloads read through a folder: a seek
    (Parquet), an exact read to the end (np.load) or a download all raise
    IntegrityError, and a download leaves its destination as it was."""
    uri = _uri()
    data = os.urandom(3 << 20)
    with space.open(uri + "/a.txt", "wb") as f:
        f.write(b"written before the damaged file")
    with space.open(uri + "/z.bin", "wb") as f:
        f.write(data)
    bad = data[: len(data) // 2] if damaged == "truncate" else data[:100] + bytes([data[100] ^ 1]) + data[101:]
    replace_blob(local_store, space.info(uri + "/z.bin").digest, bad)

    def seek_then_read():
        with space.open(uri + "/z.bin", "rb") as f:
            f.seek(2 << 20)
            return f.read(10)

    def read_exactly_to_the_end():
        with space.open(uri + "/z.bin", "rb") as f:
            return f.read(len(bad))

    dest = tmp_path / "out"
    dest.mkdir()
    for read in (
        seek_then_read,
        read_exactly_to_the_end,
        lambda: space.download(uri + "/z.bin", str(dest / "new" / "z.bin")),
        lambda: space.download(uri, str(dest / "new-tree")),
    ):
        with pytest.raises(IntegrityError):
            read()
    assert list(dest.iterdir()) == []

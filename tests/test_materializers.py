"""Materializers: chosen by type, recorded in the version, safe to load by default."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from store_helpers import BLOCK_DATAFRAME_LIBS

import cas
from cas import materializers
from cas.errors import MaterializerNotFoundError, UnsafeLoadError, UnsupportedDataError

# -- the core types keep their meaning ---------------------------------------------------


@pytest.mark.parametrize(
    "value, materializer, expected",
    [
        (b"\x00raw bytes\xff", "bytes", b"\x00raw bytes\xff"),
        (bytearray(b"abc"), "bytes", b"abc"),
        (memoryview(b"mv"), "bytes", b"mv"),
        ("héllo text", "str", "héllo text"),
        ({"b": 1, "a": [1.5, None, True, "x"]}, "json", {"b": 1, "a": [1.5, None, True, "x"]}),
        ([1, 2, {"k": "v"}], "json", [1, 2, {"k": "v"}]),
        (42, "json", 42),
        (None, "json", None),
        ({1: b"bin", "s": [b"\x00"]}, "msgpack", {1: b"bin", "s": [b"\x00"]}),
        ({"nan": float("inf")}, "msgpack", {"nan": float("inf")}),
    ],
)
def test_round_trip_records_the_materializer(store, value, materializer, expected):
    v = store.save(value, "p/s/a")
    assert v.materializer == materializer
    again = store.get_artifact_version("p/s/a", v.version)
    loaded = again.load()
    assert loaded == expected and type(loaded) is type(expected)


def test_json_keeps_key_order_and_is_readable(lstore):
    v = lstore.save({"z": 1, "a": 2}, "p/s/j")
    assert list(v.load()) == ["z", "a"]
    assert v.read_text() == '{"z":1,"a":2}'


def test_binary_file_object_loads_as_bytes(store):
    v = store.save(io.BytesIO(b"streamed"), "p/s/f")
    assert v.materializer == "bytes" and v.load() == b"streamed"


def test_paths_load_as_a_fresh_verified_copy(store, tmp_path):
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.bin").write_bytes(b"B" * 100)
    tree = store.save(src, "p/s/dir")
    assert tree.materializer == "path" and tree.kind == "tree"
    got = tree.load()
    assert isinstance(got, Path) and got.is_dir() and got != src
    assert (got / "a.txt").read_text() == "A" and (got / "sub" / "b.bin").read_bytes() == b"B" * 100
    f = store.save(src / "a.txt", "p/s/file")
    got_file = f.load()
    assert isinstance(got_file, Path) and got_file.read_text() == "A"


def test_a_version_without_a_materializer_loads_as_bytes_or_a_path(store, tmp_path):
    blob = store.save(b"legacy", "p/s/legacy", _extra={"materializer": None})
    assert blob.materializer is None and blob.load() == b"legacy"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    tree = store.save(tmp_path / "d", "p/s/legacy-tree", _extra={"materializer": None})
    assert (tree.load() / "f").read_bytes() == b"x"


@pytest.mark.parametrize("value", [(1, 2), {1, 2}, object(), [1, (2,)], {"k": {1, 2}}, {(1, 2): "tuple key"}])
def test_values_no_materializer_stores_exactly_are_refused(lstore, value):
    before = sorted(p for p, _ in lstore.records.iter_refs())
    with pytest.raises(UnsupportedDataError, match="pickle"):
        lstore.save(value, "p/s/a")
    assert sorted(p for p, _ in lstore.records.iter_refs()) == before
    assert lstore.list_artifacts() == []


def test_json_by_name_refuses_what_json_would_change(lstore):
    with pytest.raises(UnsupportedDataError):
        lstore.save({1: "int key"}, "p/s/a", materializer="json")
    with pytest.raises(UnsupportedDataError):
        lstore.save({"x": float("nan")}, "p/s/a", materializer="json")


def test_unknown_materializer_names(lstore):
    with pytest.raises(MaterializerNotFoundError, match="no materializer named 'nope'"):
        lstore.save(b"x", "p/s/a", materializer="nope")
    forged = lstore.save(b"x", "p/s/b", _extra={"materializer": "from-the-future"})
    with pytest.raises(MaterializerNotFoundError):
        forged.load()
    assert forged.read_bytes() == b"x"  # the bytes stay readable


def test_materializer_survives_reindex(store):
    store.save({"a": [1, 2]}, "p/s/j")
    store.save("txt", "p/s/t")
    store.reindex()
    assert store.load("p/s/j") == {"a": [1, 2]}
    assert store.load("p/s/t@1") == "txt"


# -- pickle: only when asked, never loaded by default ----------------------------------------


class _Touch:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_pickle_only_when_asked_and_loading_it_needs_allow_pickle(store, tmp_path):
    marker = tmp_path / "pwned"
    v = store.save(_Touch(marker), "p/s/evil", materializer="pickle")
    assert v.materializer == "pickle" and not marker.exists()
    with pytest.raises(UnsafeLoadError, match="allow_pickle=True"):
        v.load()
    with pytest.raises(UnsafeLoadError):
        store.load("p/s/evil")
    with pytest.raises(PermissionError):  # UnsafeLoadError is a PermissionError
        store.get_artifact_version("p/s/evil").load(allow_pickle=False)
    assert not marker.exists()
    v.load(allow_pickle=True)  # the caller trusts it: the payload runs (which is why it is refused by default)
    assert marker.exists()


def test_pickle_round_trip_for_trusted_objects(lstore):
    value = {"tuple": (1, 2), "set": {3}}
    v = lstore.save(value, "p/s/pk", materializer="pickle")
    assert v.load(allow_pickle=True) == value
    assert pickle.loads(v.read_bytes()) == value  # plain pickle bytes, nothing cas-specific


def test_pickle_is_never_chosen_by_type(lstore):
    with pytest.raises(UnsupportedDataError):
        lstore.save(_Touch(Path("x")), "p/s/a")


# -- numpy, pandas, Arrow (the dataframe extra, installed by tox) --------------------------


def test_numpy_arrays_round_trip_without_pickle(store):
    np = pytest.importorskip("numpy", reason="numpy comes with the dataframe extra, which tox installs")
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    v = store.save(arr, "p/s/arr")
    assert v.materializer == "numpy"
    assert v.read_bytes()[:6] == b"\x93NUMPY"
    got = v.load()
    assert got.dtype == np.float32 and got.shape == (3, 4) and (got == arr).all()
    rec = np.array([(1, 2.5)], dtype=[("a", "i4"), ("b", "f8")])
    assert store.save(rec, "p/s/rec").load().tolist() == rec.tolist()
    with pytest.raises(UnsupportedDataError, match="pickle"):
        store.save(np.array([object()], dtype=object), "p/s/obj")


def test_a_forged_pickled_numpy_version_is_refused(store, tmp_path):
    np = pytest.importorskip("numpy", reason="numpy comes with the dataframe extra, which tox installs")
    marker = tmp_path / "pwned-by-npy"
    buf = io.BytesIO()
    np.save(buf, np.array([_Touch(marker)], dtype=object), allow_pickle=True)
    forged = store.save(buf.getvalue(), "p/s/forged", _extra={"materializer": "numpy"})
    for allow in (False, True):  # numpy versions are never unpickled
        with pytest.raises(UnsafeLoadError):
            forged.load(allow_pickle=allow)
    assert not marker.exists()


def test_pandas_frames_round_trip_as_parquet(store):
    pd = pytest.importorskip("pandas", reason="pandas comes with the dataframe extra, which tox installs")
    df = pd.DataFrame(
        {"id": [3, 1, 2], "score": [0.5, 0.25, 1.0], "name": ["c", "a", "b"]},
        index=pd.Index(["x", "y", "z"], name="key"),
    )
    v = store.save(df, "p/s/df")
    assert v.materializer == "pandas"
    assert v.read_bytes()[:4] == b"PAR1"
    pd.testing.assert_frame_equal(v.load(), df)
    with pytest.raises(UnsupportedDataError):
        store.save(pd.DataFrame({"mixed": [1, "x"]}), "p/s/bad")  # one Parquet column, one type


def test_arrow_tables_round_trip_as_parquet(store):
    pa = pytest.importorskip("pyarrow", reason="pyarrow comes with the dataframe extra, which tox installs")
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    v = store.save(table, "p/s/tbl")
    assert v.materializer == "arrow"
    assert v.load().equals(table)


# -- plugins through the cas.materializers entry point group -------------------------------

PLUGIN = '''
from cas.materializers import Materializer


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


class PointMaterializer(Materializer):
    name = "point"

    def can_save(self, obj):
        return isinstance(obj, Point)

    def save(self, obj, scratch):
        return f"{obj.x},{obj.y}".encode()

    def load(self, version):
        x, y = version.read_text().split(",")
        return Point(float(x), float(y))
'''


@pytest.fixture
def plugin(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "cas_point_plugin.py").write_text(PLUGIN)
    dist = root / "cas_point_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cas-point-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[cas.materializers]\npoint = cas_point_plugin:PointMaterializer\nbroken = cas_no_such_module:Nope\n"
    )
    sys.path.insert(0, str(root))
    materializers.reload_plugins()
    try:
        yield sys.modules.get("cas_point_plugin") or __import__("cas_point_plugin")
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("cas_point_plugin", None)
        materializers.unregister("point")
        materializers.reload_plugins()


def test_entry_point_plugins_are_chosen_by_type_and_recorded(lstore, plugin):
    assert "point" in materializers.available()
    v = lstore.save(plugin.Point(1.5, 2.0), "p/s/pt")
    assert v.materializer == "point" and v.read_text() == "1.5,2.0"
    assert lstore.get_artifact_version("p/s/pt").load() == plugin.Point(1.5, 2.0)


def test_a_broken_plugin_does_not_break_other_saves(lstore, plugin):
    assert lstore.save({"a": 1}, "p/s/ok").load() == {"a": 1}
    with pytest.raises(MaterializerNotFoundError, match="failed to load"):
        materializers.get("broken")


def test_registering_by_hand_and_priority(lstore):
    class Special(dict):
        pass

    class SpecialMaterializer(materializers.Materializer):
        name = "special-dict"
        priority = 60  # above JSON, which would otherwise take any dict

        def can_save(self, obj):
            return isinstance(obj, Special)

        def save(self, obj, scratch):
            return repr(sorted(obj.items())).encode()

        def load(self, version):
            return version.read_text()

    materializers.register(SpecialMaterializer)
    try:
        assert lstore.save(Special(a=1), "p/s/sp").materializer == "special-dict"
        assert lstore.save({"a": 1}, "p/s/plain").materializer == "json"
        with pytest.raises(cas.InvalidNameError):
            materializers.register(type("Other", (SpecialMaterializer,), {}))  # the name is taken
    finally:
        materializers.unregister("special-dict")


# -- the core imports and works without the dataframe extra --------------------------------



def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CAS_INDEX_DIR=str(tmp_path / "idx"))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_core_works_without_numpy_pandas_pyarrow(tmp_path):
    code = BLOCK_DATAFRAME_LIBS + textwrap.dedent(
        f"""
        import cas
        from cas.errors import MaterializerNotFoundError
        s = cas.open_store({str(tmp_path / "s")!r})
        assert s.save({{"a": [1, 2]}}, "p/s/j").load() == {{"a": [1, 2]}}
        assert s.save(b"x", "p/s/b").load() == b"x"
        npy = s.save(b"\\x93NUMPYfake", "p/s/n", _extra={{"materializer": "numpy"}})
        try:
            npy.load()
        except MaterializerNotFoundError as e:
            assert "dataframe" in str(e), e
        else:
            raise AssertionError("loaded a numpy version without numpy")
        assert not {{"numpy", "pandas", "pyarrow"}} & set(sys.modules)
        print("ok")
        """
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"



# -- every loader verifies before it parses -------------------------------------------


def _flip_last_byte(store, version) -> None:
    from store_helpers import replace_blob

    data = bytearray(version.read_bytes())
    data[-1] ^= 0xFF
    replace_blob(store, version.digest.hex, bytes(data))


@pytest.mark.parametrize("kind", ["numpy", "pandas", "arrow"])
def test_a_corrupted_blob_never_loads_as_wrong_data(local_store, kind):
    """Parsers that seek (Parquet) or stop before EOF (.npy) must still get
    verified bytes: one flipped byte is an IntegrityError, never a wrong value."""
    if kind == "numpy":
        np = pytest.importorskip("numpy", reason="numpy is in the dataframe extra, which tox installs")
        obj = np.arange(1000)
    elif kind == "pandas":
        pd = pytest.importorskip("pandas", reason="pandas is in the dataframe extra, which tox installs")
        obj = pd.DataFrame({"x": range(100)})
    else:
        pa = pytest.importorskip("pyarrow", reason="pyarrow is in the dataframe extra, which tox installs")
        obj = pa.table({"x": list(range(100))})
    v = local_store.save(obj, "p/s/obj")
    assert v.materializer == kind
    _flip_last_byte(local_store, v)
    with pytest.raises(cas.IntegrityError):
        v.load()


def test_a_corrupted_pickle_is_refused_before_it_is_unpickled(local_store, tmp_path):
    v = local_store.save({"a": [1, 2, 3]}, "p/s/pickled", materializer="pickle")
    _flip_last_byte(local_store, v)
    with pytest.raises(cas.IntegrityError):
        v.load(allow_pickle=True)

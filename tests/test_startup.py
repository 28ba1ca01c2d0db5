"""A quick command loads only what it needs (issue 14 item 6), and costs what it prints.

Laziness is checked by what a fresh interpreter has imported, never by a clock: ``import cas``
and the ``show``/``log``/``ls`` paths of the ``cas`` command must not import lineage queries and
export, sync, the materializers (and their entry-point scan), sqlite-utils, fsspec or the cloud
backends.  The rest pins what the fast paths must keep: the same output as the version objects
give, and ``cas put``'s report without summing the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import cas
from cas.cli import cli
from cas.cli.common import created_at, created_second, row_dict, version_dict
from cas.index import VersionRow

# modules a quick command has no use for
HEAVY = (
    "cas.lineage.export",
    "cas.lineage.graph",
    "cas.lineage.live",
    "cas.lineage.query",
    "cas.store.sync",
    "cas.store.send",
    "cas.store.upgrade",
    "cas.materializers",
    "cas.backends.cloud",
    "cas.backends.fsspec",
    "sqlite_utils",
    "fsspec",
    "importlib.metadata",
)
# ... and what `import cas` alone must not pay for either: opening a store comes later
NOT_ON_IMPORT = (*HEAVY, "cas.store.facade", "cas.version", "cas.index", "cas.lineage.record", "cas.core.digest", "click")

_IMPORTED = """
import sys
{setup}
names = {names!r}
print(sorted(m for m in sys.modules if m.startswith(names)))
"""


def imported_after(setup: str, names: tuple[str, ...]) -> list[str]:
    # -I: the installed package only; CAS_STORE and friends come from argv
    code = _IMPORTED.format(setup=setup, names=names)
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))


@pytest.fixture
def store_url(tmp_path) -> str:
    url = str(tmp_path / "store")
    with cas.open_store(url) as store:
        for i in range(4):
            store.save(f"v{i}".encode(), "p/s/a", metadata={"i": i})
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "x.txt").write_text("x")
        store.save(tmp_path / "d", "p/s/tree")
        store.set_alias("p/s/a", 2, "production")
    return url


def test_import_cas_loads_no_layer_above_the_errors():
    assert imported_after("import cas", NOT_ON_IMPORT) == []


def test_every_public_name_still_resolves_lazily():
    code = (
        "import cas, cas.store, cas.lineage, cas.backends\n"
        "for pkg in (cas, cas.store, cas.lineage, cas.backends):\n"
        "    assert set(pkg.__all__) <= set(dir(pkg)), pkg\n"
        "    for name in pkg.__all__:\n"
        "        getattr(pkg, name)\n"
        "from cas.store.facade import Store\n"
        "assert cas.Store is Store and cas.store.Store is Store\n"
        "try:\n"
        "    cas.no_such_name\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_name' in str(e)\n"
        "else:\n"
        "    raise SystemExit('a missing name must raise AttributeError')\n"
    )
    subprocess.run([sys.executable, "-I", "-W", "error", "-c", code], check=True, timeout=300)


@pytest.mark.parametrize(
    "argv",
    [["show", "p/s/a@3", "--json"], ["show", "p/s/tree"], ["log", "p/s/a"], ["log", "p/s/a", "--json"], ["ls"]],
    ids=["show-json", "show-tree", "log", "log-json", "ls"],
)
def test_quick_commands_import_nothing_heavy(store_url, argv):
    setup = (
        "from cas.cli.main import cli\n"
        f"try:\n    cli({['--store', store_url, *argv]!r}, prog_name='cas')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
    )
    assert imported_after(setup, HEAVY) == []


# what a long command on a local store that draws no bar has no use for: fsspec (no progress is
# cas's own no-op), the bar (tqdm), the entry-point scan (put names its materializer), the chunker
# (small files are never cut), the cloud backends
NO_BAR = ("fsspec", "tqdm", "cas.cli.bars", "importlib.metadata", "pyfastcdc", "cas.backends.cloud", "cas.backends.fsspec")


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "put", "{tmp}/d", "p/s/put"],
        ["put", "{tmp}/d", "p/s/put"],  # not a terminal: no bar either
        ["put", "{tmp}/d/x.txt", "p/s/file", "--json"],
        ["-q", "put", "-", "p/s/stdin"],
        ["-q", "sync", "{store}", "{tmp}/other"],
        ["cat", "p/s/a"],
        ["cat", "p/s/tree", "x.txt"],
        ["-q", "get", "p/s/tree", "{tmp}/got"],
        ["get", "p/s/a", "{tmp}/got.bin", "--json"],
        ["-q", "verify"],
    ],
    ids=["put-q", "put-piped", "put-json", "put-stdin", "sync-q", "cat", "cat-path", "get-q", "get-json", "verify-q"],
)
def test_long_commands_drawing_no_bar_import_no_fsspec(store_url, tmp_path, argv):
    with cas.open_store(str(tmp_path / "other")) as other:
        other.save(b"elsewhere", "q/s/x")
    argv = [a.format(tmp=tmp_path, store=store_url) for a in argv]
    setup = (
        "import io, os\n"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(b'piped bytes'))\n"
        "sys.stdout = open(os.devnull, 'w')  # cat's bytes; the names are printed after\n"
        "from cas.cli.main import cli\n"
        f"try:\n    cli({['--store', store_url, *argv]!r}, prog_name='cas')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "sys.stdout = sys.__stdout__\n"
    )
    assert imported_after(setup, NO_BAR) == []
    with cas.open_store(store_url) as store:  # and the command did its work
        if "put" in argv:
            assert store.get_artifact_version(argv[-1] if argv[-1] != "--json" else argv[-2]).size > 0
    if "sync" in argv:
        with cas.open_store(str(tmp_path / "other")) as other:
            assert other.get_artifact_version("p/s/tree").read_bytes("x.txt") == b"x"


def test_a_bar_still_loads_when_one_is_drawn(store_url, tmp_path):
    """--progress draws on a pipe too: the bar (and fsspec, whose Callback it is) load then."""
    setup = (
        "from cas.cli.main import cli\n"
        f"try:\n    cli({['--store', store_url, '--progress', 'put', str(tmp_path / 'd'), 'p/s/bar']!r}, prog_name='cas')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
    )
    assert {"cas.cli.bars", "fsspec.callbacks", "tqdm"} <= set(imported_after(setup, ("fsspec.callbacks", "tqdm", "cas.cli.bars")))


def test_a_save_still_finds_the_materializers_and_plugins(tmp_path):
    """The lazy imports are on the save path too: a Python object still saves and loads."""
    with cas.open_store(str(tmp_path / "s")) as store:
        v = store.save({"a": [1, 2]}, "p/s/obj")
        assert v.load() == {"a": [1, 2]} and v.materializer


# -- the fast paths print what the version objects would ------------------------------------


def test_row_dict_equals_version_dict(store_url):
    with cas.open_store(store_url) as store:
        store.delete_version("p/s/a", 1)
        for row in store.versions.rows("p/s/a", include_deleted=True):
            assert row_dict(row) == version_dict(store._wrap(row))


@pytest.mark.parametrize(
    "stored", ["2026-12-01T13:51:07.604946+00:00", "2026-12-01T13:51:07Z", "2026-12-01 13:51:07", "2026-12-01T13:51", "20261201T135107"]
)
def test_log_prints_the_second_a_version_object_would(stored):
    row = VersionRow(1, "p/s/a", 1, "0" * 64, "blob", 1, stored, "{}", None, "0" * 64, None, None, None)
    assert created_second(row) == created_at(row)[:19]


def test_log_max_count_pages_newest_first(store_url):
    runner = CliRunner()
    full = json.loads(runner.invoke(cli, ["--store", store_url, "log", "p/s/a", "--json"]).stdout)
    assert [r["version"] for r in full] == [4, 3, 2, 1]
    assert full[2]["aliases"] == ["production"]
    two = json.loads(runner.invoke(cli, ["--store", store_url, "log", "p/s/a", "-n", "2", "--json"]).stdout)
    assert two == full[:2]
    text = runner.invoke(cli, ["--store", store_url, "log", "p/s/a", "--max-count", "3"]).stdout.splitlines()
    assert [line.split()[0] for line in text] == ["p/s/a@4", "p/s/a@3", "p/s/a@2"] and "(production)" in text[2]
    bad = runner.invoke(cli, ["--store", store_url, "log", "p/s/a", "-n", "0"])
    assert bad.exit_code != 0 and bad.stderr.count("\n") == 1


def test_ls_is_each_names_latest_live_version(store_url):
    with cas.open_store(store_url) as store:
        store.delete_version("p/s/a", 4)
        store.save(b"other", "p/t/b")
        expected = [version_dict(store.get_artifact_version(n)) for n in store.list_artifacts("p/s/")]
    out = CliRunner().invoke(cli, ["--store", store_url, "ls", "p/s/", "--json"])
    assert json.loads(out.stdout) == expected and [r["version"] for r in expected] == [3, 1]


def test_ls_refuses_a_bad_prefix_in_one_line(store_url):
    out = CliRunner().invoke(cli, ["--store", store_url, "ls", "p/\x01"])
    assert out.exit_code != 0 and out.stderr.startswith("cas: error: ") and out.stderr.count("\n") == 1


def test_put_reports_new_bytes_as_the_store_grew(tmp_path):
    """``new_bytes`` is what ``stats().stored_bytes`` grew by, found without summing the store."""
    url = str(tmp_path / "s")
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_bytes(b"a" * 100)
    (d / "b").write_bytes(b"b" * 50)
    runner = CliRunner()

    def put(*args: str) -> dict:
        with cas.open_store(url) as store:
            before = store.stats().stored_bytes
        result = runner.invoke(cli, ["--store", url, "put", *args, "--json"])
        assert result.exit_code == 0, result.stderr
        out = json.loads(result.stdout)
        with cas.open_store(url) as store:
            assert out["new_bytes"] == store.stats().stored_bytes - before, out
        return out

    assert put(str(d), "p/s/tree")["new_bytes"] == 150
    assert put(str(d), "p/s/tree")["new_bytes"] == 0  # the same tree again
    assert put(str(d / "a"), "p/s/file")["new_bytes"] == 0  # a blob a live tree holds
    (d / "c").write_bytes(b"c" * 7)
    assert put(str(d), "p/s/tree")["new_bytes"] == 7
    with cas.open_store(url) as store:
        store.delete_version("p/s/tree", 1)
        store.delete_version("p/s/tree", 2)
        store.delete_version("p/s/tree", 3)
    assert put(str(d / "c"), "p/s/c")["new_bytes"] == 7  # held by deleted versions only: counted again
    unchanged = put(str(d / "c"), "p/s/c", "--if-changed")
    assert unchanged["unchanged"] is True and unchanged["new_bytes"] == 0


def test_put_sizes_a_directory_bar_from_the_walk(tmp_path):
    """The tree's walk gives the bar its total (a percentage), with no second walk by the CLI."""
    from fsspec.callbacks import Callback

    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "one").write_bytes(os.urandom(1000))
    (d / "sub" / "two").write_bytes(os.urandom(234))
    sizes = []

    class Sizes(Callback):
        def set_size(self, size):
            sizes.append(size)
            super().set_size(size)

    with cas.open_store(str(tmp_path / "s")) as store:
        store.save(d, "p/s/tree", progress=Sizes())
    assert sizes == [1234]

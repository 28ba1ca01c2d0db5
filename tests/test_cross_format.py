"""Format 1 and format 2 side by side: a format-1 cas refuses a format-2 store, and
sync moves everything between stores of either format, in both directions.

Today both formats write the same objects, so these pass; they are the guard rails
for the format-2 pieces (journal, chunk lists, packs): whatever a format-2 store
writes, a sync into a format-1 store must still give a store a format-1 cas reads.

"A format-1 cas" is checked two ways: the format rules of today's code with
``FORMAT_VERSION`` set back to 1 (always runs), and the real thing - the cas of
the last commit that knew only format 1, checked out of this repository's history
and run in a subprocess (needs git and the history; skipped, saying so, without).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from test_old_store import FIXTURE, check_answers, check_everything

import cas
import cas.core.format
from cas.core.format import FORMAT_FILE
from cas.errors import UnsupportedFormatError

ROOT = Path(__file__).resolve().parents[1]
#: the last commit whose cas knows only format 1 (the parent of the one that made format 2 choosable)
FORMAT1_CAS = "36edea2cc6c6b6adfc788635ce6a90cd9b2d21d5"


@pytest.fixture
def copy(tmp_path) -> Path:
    dest = tmp_path / "format1-store"
    shutil.copytree(FIXTURE, dest)
    return dest


def opened(path: Path, tmp_path: Path, name: str, **kw) -> cas.Store:
    return cas.open_store(path, index=str(tmp_path / f"{name}.sqlite"), **kw)


def upgraded(path: Path, tmp_path: Path) -> Path:
    with opened(path, tmp_path, "upgrader", create=False) as store:
        assert store.upgrade().upgraded
    return path


# -- a format-1 cas refuses a format-2 store ------------------------------------------------


def test_format_1_rules_refuse_an_upgraded_store(copy, tmp_path, monkeypatch):
    upgraded(copy, tmp_path)
    raw = (copy / FORMAT_FILE).read_bytes()
    monkeypatch.setattr(cas.core.format, "FORMAT_VERSION", 1)
    message = f"store at file://{copy} has format 2; this cas reads up to 1 - upgrade cas"
    with pytest.raises(UnsupportedFormatError) as e:
        cas.core.format.decode_format(raw, f"file://{copy}")
    assert str(e.value) == message
    with pytest.raises(UnsupportedFormatError) as e:
        opened(copy, tmp_path, "format1-rules", create=False)
    assert str(e.value) == message


def test_format_1_rules_still_read_the_fixture(copy, tmp_path, monkeypatch):
    monkeypatch.setattr(cas.core.format, "FORMAT_VERSION", 1)
    with opened(copy, tmp_path, "format1-rules", create=False) as store:
        check_everything(store)


@pytest.fixture(scope="module")
def format1_cas(tmp_path_factory) -> Path:
    """The cas package of FORMAT1_CAS, extracted from git into a directory of its own."""
    if shutil.which("git") is None:
        pytest.skip("needs git to check out the format-1 cas from this repository's history")
    probe = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{FORMAT1_CAS}^{{commit}}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"needs this repository's git history (commit {FORMAT1_CAS[:8]}) to check out the format-1 cas")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", FORMAT1_CAS, "cas"], capture_output=True, check=True)
    dest = tmp_path_factory.mktemp("format1-cas")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return dest


def run_format1_cas(format1_cas: Path, *argv: str, code: str | None = None) -> subprocess.CompletedProcess:
    """Run the old cas: ``code`` with ``argv``, else its command line (``python -m cas.cli``)."""
    env = dict(os.environ, PYTHONPATH=str(format1_cas))  # before site-packages and the editable install
    env.pop("CAS_STORE", None)
    check = f"import cas, sys; assert cas.__file__.startswith({str(format1_cas)!r}), cas.__file__\n"
    args = ["-c", check + code, *argv] if code else ["-c", check + "from cas.cli.main import main; main()", *argv]
    # cwd: "-c" puts the working directory first on sys.path, and the test's may hold today's cas
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, cwd=format1_cas)


def test_the_format_1_cas_reads_the_fixture_and_refuses_it_once_upgraded(format1_cas, copy, tmp_path):
    before = run_format1_cas(format1_cas, "--store", str(copy), "show", "demo/ingest/raw@production", "--json")
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["version"] == 2
    upgraded(copy, tmp_path)
    after = run_format1_cas(format1_cas, "--store", str(copy), "show", "demo/ingest/raw@production")
    assert after.returncode == 1
    assert after.stderr == f"cas: error: store at file://{copy} has format 2; this cas reads up to 1 - upgrade cas\n"
    api = run_format1_cas(format1_cas, str(copy), str(tmp_path / "old.sqlite"), code=textwrap.dedent("""
        from cas.core.format import FORMAT_VERSION
        assert FORMAT_VERSION == 1
        try:
            cas.open_store(sys.argv[1], index=sys.argv[2], create=False)
        except cas.errors.UnsupportedFormatError as e:
            print("refused:", e)
    """))
    assert api.returncode == 0, api.stderr
    assert api.stdout == f"refused: store at file://{copy} has format 2; this cas reads up to 1 - upgrade cas\n"


def test_the_format_1_cas_cannot_sync_into_or_from_an_upgraded_store(format1_cas, copy, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(FIXTURE, other)
    upgraded(copy, tmp_path)
    for src, dst in ((other, copy), (copy, other)):
        result = run_format1_cas(format1_cas, "sync", str(src), str(dst))
        assert result.returncode == 1, result.stdout
        assert result.stderr == f"cas: error: store at file://{copy} has format 2; this cas reads up to 1 - upgrade cas\n"
    assert json.loads((other / FORMAT_FILE).read_text())["format"] == 1


OLD_READER = textwrap.dedent(
    """
    import json
    from pathlib import Path
    store_dir, index, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    s = cas.open_store(store_dir, index=index, create=False)

    def read_all():
        out = {}
        for name in s.list_artifacts():
            for v in s.list_versions(name):
                out[v.ref] = v.read_bytes().hex() if v.kind == "blob" else {p: v.read_bytes(p).hex() for p, _, _ in v.files()}
        return out

    print(json.dumps(read_all()), flush=True)
    sys.stdin.readline()  # the upgrade runs now
    print(json.dumps(read_all()), flush=True)
    try:
        cas.open_store(store_dir, index=index + "-2", create=False)
        print("opened")
    except cas.errors.UnsupportedFormatError:
        print("refused")
    """
)


def test_a_format_1_cas_that_opened_before_the_upgrade_still_reads_every_version(format1_cas, copy, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(format1_cas))
    code = f"import cas, sys\nassert cas.__file__.startswith({str(format1_cas)!r}), cas.__file__\n" + OLD_READER
    reader = subprocess.Popen(
        [sys.executable, "-c", code, str(copy), str(tmp_path / "old.sqlite"), str(tmp_path / "go")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=format1_cas,
    )
    first = json.loads(reader.stdout.readline() or reader.stderr.read())
    assert len(first) == 8  # every live version of the fixture
    upgraded(copy, tmp_path)
    out, err = reader.communicate("go\n", timeout=120)
    assert reader.returncode == 0, err
    second, verdict = out.splitlines()
    assert json.loads(second) == first
    assert verdict == "refused"  # but it no longer opens the store afresh


# -- sync between a format-1 and a format-2 store, both directions ---------------------------


def test_sync_from_format_1_into_format_2(copy, tmp_path):
    with opened(copy, tmp_path, "src", create=False) as src, opened(tmp_path / "f2", tmp_path, "dst", format=2) as dst:
        assert (src.format, dst.format) == (1, 2)
        result = src.sync_to(dst)
        assert result.refs_sent == 28 and not result.conflicts
        check_answers(dst)
        assert dst.verify(deep=True).ok
        again = src.sync_to(dst)
        assert (again.refs_sent, again.blobs_sent) == (0, 0)
    assert json.loads((tmp_path / "f2" / FORMAT_FILE).read_text())["format"] == 2
    with opened(tmp_path / "f2", tmp_path, "dst-fresh", create=False) as dst:
        check_answers(dst)


def format2_store_with_more(copy: Path, tmp_path: Path) -> Path:
    """A format-2 store holding the fixture (synced in) and versions written in format 2."""
    path = tmp_path / "f2"
    with opened(copy, tmp_path, "seed", create=False) as src, opened(path, tmp_path, "f2", format=2) as f2:
        src.sync_to(f2)
        f2.save(b"written by a format-2 store\n", "demo/ingest/raw")  # v4
        tree = tmp_path / "tree"
        (tree / "d").mkdir(parents=True)
        (tree / "d" / "x.bin").write_bytes(os.urandom(3000))
        f2.save(tree, "demo/train/model", aliases=["format2"])  # v2
    return path


def check_the_format2_versions(store: cas.Store, tmp_path: Path) -> None:
    assert store.get_artifact_version("demo/ingest/raw@4").read_bytes() == b"written by a format-2 store\n"
    model = store.get_artifact_version("demo/train/model@format2")
    assert model.version == 2 and model.read_bytes("d/x.bin") == (tmp_path / "tree" / "d" / "x.bin").read_bytes()


def test_sync_from_format_2_into_a_new_format_1_store(copy, tmp_path):
    f2 = format2_store_with_more(copy, tmp_path)
    with opened(f2, tmp_path, "src2", create=False) as src, opened(tmp_path / "f1", tmp_path, "f1", format=1) as dst:
        result = src.sync_to(dst)
        assert result.refs_sent == 28 + 3 and not result.conflicts
        assert dst.format == 1
        check_the_format2_versions(dst, tmp_path)
        assert dst.verify(deep=True).ok
    assert json.loads((tmp_path / "f1" / FORMAT_FILE).read_text())["format"] == 1


def test_sync_from_format_2_into_the_old_store_it_came_from(copy, tmp_path):
    """Back into the format-1 fixture: only the new refs travel, the store stays format 1
    byte for byte in its format file, and the old answers stay (but for what moved)."""
    f2 = format2_store_with_more(copy, tmp_path)
    format_file = (copy / FORMAT_FILE).read_bytes()
    with opened(f2, tmp_path, "src2", create=False) as src, opened(copy, tmp_path, "old", create=False) as dst:
        result = src.sync_to(dst)
        assert result.refs_sent == 3 and not result.conflicts
        check_the_format2_versions(dst, tmp_path)
        assert dst.get_artifact_version("demo/ingest/raw@production").version == 2
        assert dst.verify(deep=True).ok
    assert (copy / FORMAT_FILE).read_bytes() == format_file


def test_sync_between_an_upgraded_store_and_a_format_1_store_both_ways(copy, tmp_path):
    upgraded(copy, tmp_path)
    with opened(copy, tmp_path, "up", create=False) as up, opened(tmp_path / "f1", tmp_path, "f1", format=1) as f1:
        assert (up.format, f1.format) == (2, 1)
        up.sync_to(f1)
        check_answers(f1)
        f1.save(b"written by the format-1 store\n", "demo/notes/readme")
        result = f1.sync_to(up)
        assert result.refs_sent == 1 and not result.conflicts
        assert up.get_artifact_version("demo/notes/readme@2").read_bytes() == b"written by the format-1 store\n"
        assert up.verify(deep=True).ok and f1.verify(deep=True).ok
    with opened(copy, tmp_path, "up-fresh", create=False) as up:
        assert up.format == 2
        assert up.get_artifact_version("demo/notes/readme").version == 2

"""``cas upgrade``: a format-1 store converted in place to format 2 (docs/format.md, Upgrading).

Every test upgrades a copy of tests/fixtures/format1-store, the store an old cas
wrote (tests/test_old_store.py holds what it must answer), in a tmp directory.
The upgrade is attacked the way the design asks: SIGKILLed at counted points in
a real subprocess and run again (the end state is the one an uninterrupted run
leaves), and read by another process all the way through.  What a format-1 cas
does with the result is in tests/test_cross_format.py.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import kill_points
import pytest
from click.testing import CliRunner
from store_helpers import answers
from test_old_store import CONTENT, FIXTURE, MODEL_FILES, check_everything

import cas
from cas.cli import cli
from cas.core.format import FORMAT_FILE, UPGRADE_DIR
from cas.store import upgrade as upgrade_module
from cas.store.publish import Publisher

FORMAT2_BYTES = (
    b'{\n  "format": 2,\n  "hash": "blake3",\n  "store_id": "0123456789abcdef0123456789abcdef",\n'
    b'  "created_at": "2026-01-01T00:00:00.000000+00:00"\n}\n'
)
MARKER = f"{UPGRADE_DIR}/2/complete-orphans"


def files_of(root: Path) -> dict[str, bytes]:
    """What a store holds, for comparing end states: the derived index and spool files
    are not the store, and a step's marker is compared without its time."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or rel.startswith(("tmp/", "index.sqlite")):
            continue
        data = p.read_bytes()
        if rel.startswith(f"{UPGRADE_DIR}/"):
            data = json.dumps({k: v for k, v in json.loads(data).items() if k != "done_at"}).encode()
        out[rel] = data
    return out


@pytest.fixture
def copy(tmp_path) -> Path:
    dest = tmp_path / "format1-store"
    shutil.copytree(FIXTURE, dest)
    return dest


def open_copy(path: Path, index: Path) -> cas.Store:
    return cas.open_store(path, index=str(index), create=False)


class Died(BaseException):
    """A writer killed between claiming a ref and journalling it."""


def make_orphans(store_dir: Path, index: Path, other_index: Path) -> None:
    """Three refs claimed by a writer that died before journalling them: a new version,
    an alias move and a deletion.  ``index`` learns the fixture first, so the orphans are
    unknown to it and the upgrade's first step is what journals them."""
    open_copy(store_dir, index).close()
    with open_copy(store_dir, other_index) as s, mock.patch.object(Publisher, "commit", side_effect=Died):
        for act in (
            lambda: s.save(b"claimed, never journalled\n", "demo/orphan/data"),
            lambda: s.set_alias("demo/ingest/raw", 1, "staging"),
            lambda: s.delete_version("demo/notes/readme", 1),
        ):
            with pytest.raises(Died):
                act()


def journalled(store: cas.Store) -> list[str]:
    refs, seq = [], 0
    while (entry := store.records.read_journal(seq)) is not None:
        refs.append(entry.ref.path)
        seq += 1
    return refs


class TestUpgrade:
    def test_every_version_alias_and_run_reads_identically_after_the_upgrade(self, copy, tmp_path):
        with open_copy(copy, tmp_path / "index.sqlite") as store:
            assert store.format == 1
            report = store.upgrade()
            assert (report.from_format, report.to_format, report.upgraded, report.nothing_to_do) == (1, 2, True, False)
            assert [(s.name, s.status) for s in report.steps] == [("complete-orphans", "done"), ("cas-format", "done")]
            assert report.steps[0].detail == "journalled 0 orphan refs"
            assert store.format == store.publisher.format == 2
            check_everything(store)  # the same handle, after the flip
        assert (copy / FORMAT_FILE).read_bytes() == FORMAT2_BYTES  # same id and creation time, format 2
        with open_copy(copy, tmp_path / "fresh.sqlite") as store:  # a new index, built from the upgraded store
            assert store.format == 2
            check_everything(store)
            assert store.verify(deep=True).ok
            assert store.reindex() == 28
            check_everything(store)

    def test_only_the_format_file_changes_and_one_marker_is_added(self, copy, tmp_path):
        before = files_of(copy)
        with open_copy(copy, tmp_path / "index.sqlite") as store:
            store.upgrade()
        after = files_of(copy)
        assert set(after) - set(before) == {MARKER}
        assert {k for k in before if before[k] != after[k]} == {FORMAT_FILE}
        assert json.loads(after[MARKER]) == {"format": 2, "step": "complete-orphans"}

    def test_a_second_run_has_nothing_to_do_and_writes_nothing(self, copy, tmp_path):
        with open_copy(copy, tmp_path / "index.sqlite") as store:
            store.upgrade()
            upgraded = files_of(copy)
            again = store.upgrade()
        assert (again.nothing_to_do, again.upgraded, again.steps, again.from_format) == (True, False, (), 2)
        assert files_of(copy) == upgraded

    def test_an_upgrader_opened_before_another_ones_flip_finds_nothing_to_do(self, copy, tmp_path):
        with open_copy(copy, tmp_path / "a.sqlite") as a, open_copy(copy, tmp_path / "b.sqlite") as b:
            assert a.upgrade().upgraded
            assert b.format == 1  # opened before the flip
            report = b.upgrade()
            assert report.nothing_to_do and b.format == 2
        assert (copy / FORMAT_FILE).read_bytes() == FORMAT2_BYTES

    def test_dry_run_changes_nothing_and_says_what_would(self, copy, tmp_path):
        make_orphans(copy, tmp_path / "index.sqlite", tmp_path / "other.sqlite")
        before = files_of(copy)
        with open_copy(copy, tmp_path / "index.sqlite") as store:
            report = store.upgrade(dry_run=True)
            assert store.format == 1
        assert files_of(copy) == before
        assert (report.dry_run, report.upgraded, report.from_format, report.to_format) == (True, False, 1, 2)
        assert [(s.name, s.status) for s in report.steps] == [("complete-orphans", "would run"), ("cas-format", "would run")]
        assert report.steps[0].detail == "3 refs no journal entry announces would be journalled"
        assert report.steps[1].detail == "format 1 -> 2"

    def test_orphans_are_journalled_before_the_flip(self, copy, tmp_path):
        make_orphans(copy, tmp_path / "index.sqlite", tmp_path / "other.sqlite")
        with open_copy(copy, tmp_path / "index.sqlite") as store:
            assert len(journalled(store)) == 28
            report = store.upgrade()
            assert report.steps[0].detail == "journalled 3 orphan refs"
            refs = journalled(store)
            assert len(refs) == 31 and set(refs) == {ref for ref, _ in store.records.iter_refs()}
        with open_copy(copy, tmp_path / "fresh.sqlite") as store:
            assert store.get_artifact_version("demo/orphan/data@1").read_bytes() == b"claimed, never journalled\n"
            assert store.aliases("demo/ingest/raw") == {"production": 2, "staging": 1}
            assert store.list_versions("demo/notes/readme") == []

    def test_a_step_marked_done_is_not_run_again(self, copy, tmp_path, monkeypatch):
        ran = []
        step = upgrade_module.Step("count-me", "a step of a format-2 piece", lambda pub: ran.append(1) or "ran", lambda pub: "")
        monkeypatch.setitem(upgrade_module.STEPS, 2, [*upgrade_module.STEPS[2], step])
        with open_copy(copy, tmp_path / "index.sqlite") as store:
            store.records.mark_upgrade_step(2, "count-me")  # an earlier run finished it, then died
            report = store.upgrade()
        assert ran == []
        assert [(s.name, s.status) for s in report.steps] == [
            ("complete-orphans", "done"), ("count-me", "already done"), ("cas-format", "done"),
        ]

    def test_a_failing_step_leaves_the_store_format_1_and_a_rerun_finishes(self, copy, tmp_path, monkeypatch):
        def boom(pub):
            raise cas.errors.BackendError("the network went away")

        original = upgrade_module.STEPS[2]
        failing = upgrade_module.Step("flaky", "a step that fails once", boom, lambda pub: "")
        monkeypatch.setitem(upgrade_module.STEPS, 2, [*original, failing])
        with open_copy(copy, tmp_path / "index.sqlite") as store:
            with pytest.raises(cas.errors.BackendError):
                store.upgrade()
            assert store.format == 1
            assert json.loads((copy / FORMAT_FILE).read_bytes())["format"] == 1
            assert store.records.upgrade_step_done(2, "complete-orphans")
            monkeypatch.setitem(upgrade_module.STEPS, 2, original)  # the cause is gone
            report = store.upgrade()
        assert [(s.name, s.status) for s in report.steps] == [("complete-orphans", "already done"), ("cas-format", "done")]
        assert (copy / FORMAT_FILE).read_bytes() == FORMAT2_BYTES

    def test_the_upgraded_store_takes_new_versions(self, copy, tmp_path):
        with open_copy(copy, tmp_path / "index.sqlite") as store:
            store.upgrade()
            v = store.save(b"written after the upgrade\n", "demo/ingest/raw")
            assert v.version == 4
        with open_copy(copy, tmp_path / "fresh.sqlite") as store:
            assert store.get_artifact_version("demo/ingest/raw@4").read_bytes() == b"written after the upgrade\n"
            assert store.verify(deep=True).ok


def test_upgrade_on_every_backend(open_test_store, tmp_path):
    """The format file is replaced, not created: every backend's replace_bytes does it in place."""
    store = open_test_store(format=1)
    v = store.save(b"format 1 bytes\n", "up/grade/raw", aliases=["production"])
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_bytes(b"a")
    store.save(tree, "up/grade/tree")
    assert store.format == 1
    assert store.upgrade().upgraded
    assert store.format == 2
    again = open_test_store(index=str(tmp_path / "again.sqlite"))
    assert again.format == 2 and again.store_id == store.store_id
    assert again.get_artifact_version("up/grade/raw@production").read_bytes() == b"format 1 bytes\n"
    assert again.get_artifact_version("up/grade/tree").read_bytes("sub/a.txt") == b"a"
    assert again.upgrade().nothing_to_do
    assert again.get_artifact_version("up/grade/raw").digest == v.digest


# -- SIGKILL at counted points, then run again --------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    import cas
    import kill_points

    store_dir, index, crash_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = cas.open_store(store_dir, index=index, create=False)
    kill_points.arm(crash_at, (*kill_points.OS_CALLS, "chmod"))
    report = store.upgrade()
    print("calls", kill_points.calls(), "format", store.format, flush=True)
    """
)


def run_child(store_dir: Path, index: Path, crash_at: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(store_dir), str(index), str(crash_at)],
        capture_output=True, text=True, timeout=120, env=kill_points.child_env(),
    )


@pytest.mark.slow
def test_sigkill_at_counted_points_then_rerun_ends_as_one_uninterrupted_run(tmp_path):
    template = tmp_path / "template"
    shutil.copytree(FIXTURE, template / "store")
    make_orphans(template / "store", template / "index.sqlite", tmp_path / "other.sqlite")

    def fresh(label: str) -> tuple[Path, Path]:
        shutil.copytree(template, tmp_path / label)
        return tmp_path / label / "store", tmp_path / label / "index.sqlite"

    store_dir, index = fresh("reference")
    done = run_child(store_dir, index, 0)
    assert done.returncode == 0, done.stderr
    total = int(done.stdout.split()[1])
    assert done.stdout.split()[3] == "2"
    assert total > 20, "the counter did not see the upgrade's writes"
    reference = files_of(store_dir)
    with open_copy(store_dir, tmp_path / "reference-check.sqlite") as store:
        expected = answers(store)
        assert store.format == 2 and store.verify(deep=True).ok

    # every third call, and every call of the end, where the marker and the flip are
    points = sorted(set(range(1, total, 3)) | set(range(total - 10, total + 1)))
    for crash_at in points:
        store_dir, index = fresh(f"at-{crash_at}")
        killed = run_child(store_dir, index, crash_at)
        assert killed.returncode == -signal.SIGKILL, f"crash_at {crash_at}/{total}: {killed.returncode}\n{killed.stderr}"
        # killed anywhere, the store is a readable store of format 1 or 2, never anything else
        # (checked on a copy: a fresh index's reindex journals orphans, which is the rerun's job)
        shutil.copytree(store_dir, tmp_path / f"between-{crash_at}")
        with open_copy(tmp_path / f"between-{crash_at}", tmp_path / f"between-{crash_at}.sqlite") as between:
            assert between.format in (1, 2)
            assert answers(between) == expected, f"crash_at {crash_at}: a version was unreadable after the kill"
        rerun = run_child(store_dir, index, 0)
        assert rerun.returncode == 0, f"crash_at {crash_at}: {rerun.stderr}"
        assert files_of(store_dir) == reference, f"crash_at {crash_at}/{total}: the rerun ended elsewhere"
        with open_copy(store_dir, index) as store:  # the killed child's own index, caught up
            assert answers(store) == expected
        shutil.rmtree(tmp_path / f"at-{crash_at}")
        shutil.rmtree(tmp_path / f"between-{crash_at}")


# -- a reader in another process, all the way through -----------------------------------

READER = textwrap.dedent(
    """
    import json, sys
    import cas

    store_dir, index, expected = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    rounds, formats = 0, set()
    while True:
        if sys.stdin.readline().strip() == "stop":  # one round per line: the test decides when it reads
            break
        with cas.open_store(store_dir, index=index, create=False) as s:  # reopened: the format file is read each round
            formats.add(s.format)
            for ref, data in expected["blobs"].items():
                assert s.get_artifact_version(ref).read_bytes().hex() == data, ref
            for ref, files in expected["trees"].items():
                v = s.get_artifact_version(ref)
                assert {p: v.read_bytes(p).hex() for p in files} == files, ref
            assert s.aliases("demo/ingest/raw") == {"production": 2}
            assert [r.id for r in s.list_runs()] == ["fixture-run-2", "fixture-run-1"]
            rounds += 1
            print(json.dumps({"round": rounds, "format": s.format}), flush=True)
    print(json.dumps({"rounds": rounds, "formats": sorted(formats)}), flush=True)
    """
)


def test_a_reader_in_another_process_reads_every_version_throughout(copy, tmp_path, monkeypatch):
    expected = {
        "blobs": {f"{n}@{v}": data.hex() for (n, v), (data, _) in CONTENT.items()},
        "trees": {ref: {p: b.hex() for p, (_, b) in MODEL_FILES.items()} for ref in ("demo/train/model@1", "demo/train/model-link@1")},
    }
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(copy), str(tmp_path / "reader.sqlite"), json.dumps(expected)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )

    def rounds(n: int) -> list[int]:
        """Let the reader read everything ``n`` times (a fresh open each time); the formats it saw."""
        got = []
        for _ in range(n):
            reader.stdin.write("read\n")
            reader.stdin.flush()
            line = reader.stdout.readline()
            assert line, reader.stderr.read()
            got.append(json.loads(line)["format"])
        return got

    try:
        assert rounds(1) == [1]
        # A step of the upgrade (as the format-2 pieces will add) that lets the reader go round twice meanwhile.
        wait = upgrade_module.Step("let-the-reader-read", "waits for two reads", lambda pub: str(rounds(2)), lambda pub: "")
        monkeypatch.setitem(upgrade_module.STEPS, 2, [*upgrade_module.STEPS[2], wait])
        with open_copy(copy, tmp_path / "index.sqlite") as store:
            report = store.upgrade()
        assert report.steps[1].detail == "[1, 1]"  # the store was format 1 while its steps ran
        assert rounds(2) == [2, 2]
    finally:
        out, err = reader.communicate("stop\n", timeout=120)
    assert reader.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"rounds": 5, "formats": [1, 2]}


def test_the_format_file_is_replaced_atomically_under_a_reader(tmp_path):
    """A reader that opens the store while cas-format is rewritten, over and over, sees
    the old file or the new one, never a missing or partial one."""
    shutil.copytree(FIXTURE, tmp_path / "store")
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from cas.core.format import decode_format
        path, stop = Path(sys.argv[1]), Path(sys.argv[2])
        n = 0
        print("ready", flush=True)
        while not stop.exists():
            decode_format(path.read_bytes(), "store")  # raises on a partial or missing file
            n += 1
        print(n)
        """
    )
    reader = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "store" / FORMAT_FILE), str(tmp_path / "stop")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = cas.open_store(tmp_path / "store", index=str(tmp_path / "i.sqlite"), create=False)
    one = (tmp_path / "store" / FORMAT_FILE).read_bytes()
    assert reader.stdout.readline() == "ready\n", reader.stderr.read()
    for i in range(1000):
        store.backend.replace_bytes(FORMAT_FILE, FORMAT2_BYTES if i % 2 == 0 else one)
    (tmp_path / "stop").touch()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert int(out) > 10, "the reader read while the file was being replaced"
    assert not list(store.backend.list("tmp")), "no temp file is left behind"
    store.close()


# -- the command ---------------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


class TestUpgradeCli:
    def test_dry_run_then_upgrade_then_nothing_to_do(self, copy):
        dry = invoke("--store", str(copy), "upgrade", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert dry.stdout.splitlines()[0] == f"would upgrade file://{copy} from format 1 to 2"
        assert "would run    complete-orphans" in dry.stdout and "would run    cas-format" in dry.stdout
        assert json.loads((copy / FORMAT_FILE).read_text())["format"] == 1
        done = invoke("--store", str(copy), "upgrade", "--json")
        assert done.exit_code == 0, done.output
        data = json.loads(done.stdout)
        assert (data["from_format"], data["to_format"], data["upgraded"], data["dry_run"]) == (1, 2, True, False)
        assert [(s["name"], s["status"]) for s in data["steps"]] == [("complete-orphans", "done"), ("cas-format", "done")]
        again = invoke("--store", str(copy), "upgrade")
        assert again.exit_code == 0
        assert again.stdout == f"file://{copy} is already format 2: nothing to do\n"
        assert invoke("--store", str(copy), "log", "demo/ingest/raw").exit_code == 0

    def test_progress_is_drawn_when_asked(self, copy):
        result = invoke("--store", str(copy), "--progress", "upgrade")
        assert result.exit_code == 0, result.output
        assert "upgrading: 2 steps" in result.stderr

    def test_no_store_is_one_line_and_exit_1(self, tmp_path):
        result = invoke("--store", str(tmp_path / "nothing-here"), "upgrade")
        assert result.exit_code == 1
        assert result.stderr.startswith("cas: error: ") and result.stderr.count("\n") == 1
        assert not (tmp_path / "nothing-here").exists()  # nothing is created

    def test_a_newer_store_is_refused_in_one_line(self, copy):
        fmt = json.loads((copy / FORMAT_FILE).read_text())
        (copy / FORMAT_FILE).write_text(json.dumps(dict(fmt, format=3)))
        result = invoke("--store", str(copy), "upgrade")
        assert result.exit_code == 1
        assert result.stderr == f"cas: error: store at file://{copy} has format 3; this cas reads up to 2 - upgrade cas\n"
        as_json = invoke("--store", str(copy), "upgrade", "--json")
        assert as_json.exit_code == 1
        assert json.loads(as_json.stderr)["type"] == "UnsupportedFormatError"
        assert json.loads((copy / FORMAT_FILE).read_text())["format"] == 3  # untouched

    def test_a_format_2_store_is_nothing_to_do(self, tmp_path):
        url = str(tmp_path / "new")
        cas.open_store(url, format=2).close()
        result = invoke("--store", url, "upgrade", "--json")
        assert result.exit_code == 0
        data = json.loads(result.stdout)
        assert (data["nothing_to_do"], data["upgraded"], data["steps"]) == (True, False, [])
        assert not (tmp_path / "new" / UPGRADE_DIR).exists()


HOLDER = textwrap.dedent(
    """
    import sys
    import cas
    store = cas.open_store(sys.argv[1], index=sys.argv[2], auto_mkdir=True, format=1)
    store.save(b"a writer holds the lease", "p/s/a")
    print("writing", flush=True)
    sys.stdin.readline()  # hold the store open until told to go
    store.close()
    """
)


def test_on_a_backend_without_atomic_creates_a_writing_process_blocks_the_upgrade(tmp_path, monkeypatch):
    """``local://`` is fsspec's own filesystem: exists-then-put, so it holds the writer lease.
    The upgrade is a writer too: refused while another process writes, done once it left."""
    monkeypatch.setenv("CAS_LEASE_DIR", str(tmp_path / "leases"))
    url = f"local://{tmp_path / 'store'}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(tmp_path / "holder.sqlite")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "writing\n", holder.stderr.read()
        with cas.open_store(url, index=str(tmp_path / "upgrader.sqlite"), create=False, auto_mkdir=True) as store:
            with pytest.raises(cas.errors.ConcurrentWriterError):
                store.upgrade()
            assert store.format == 1
        assert json.loads((tmp_path / "store" / FORMAT_FILE).read_text())["format"] == 1
        assert not (tmp_path / "store" / UPGRADE_DIR).exists()
    finally:
        holder.communicate("go\n", timeout=60)
    assert holder.returncode == 0
    with cas.open_store(url, index=str(tmp_path / "upgrader.sqlite"), create=False, auto_mkdir=True) as store:
        assert store.upgrade().upgraded
        assert store.get_artifact_version("p/s/a").read_bytes() == b"a writer holds the lease"
    assert json.loads((tmp_path / "store" / FORMAT_FILE).read_text())["format"] == 2
    assert not list((tmp_path / "store" / "tmp").iterdir())  # the moved temp key is gone

"""`cas demo`: the README's first command, on a fresh store with only the core dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from store_helpers import BLOCK_DATAFRAME_LIBS

import cas
from cas.cli.demo import PIPELINE, run_demo


def test_demo_records_two_runs_dedupe_and_lineage(tmp_path):
    lines: list[str] = []
    with cas.open_store(str(tmp_path / "store")) as store:
        result = run_demo(store, say=lines.append)
        refs = [ref for ref, _ in result.created]
        assert refs == [
            "churn/ingest/raw@1",
            "churn/features/table@1",
            "churn/train/model@1",
            "churn/ingest/raw@2",
            "churn/features/table@2",
            "churn/train/model@2",
        ]
        new = dict(result.created)
        # one partition of six changed: most of raw@2 and features@2 was already stored
        assert 0 < new["churn/ingest/raw@2"] < new["churn/ingest/raw@1"] / 3
        assert 0 < new["churn/features/table@2"] < new["churn/features/table@1"] / 3
        assert result.saved_bytes > new["churn/ingest/raw@1"]

        model = store.get_artifact_version(f"{PIPELINE}/train/model")
        assert model.version == 2 and 0.5 < model.load()["train_accuracy"] <= 1
        up = store.lineage(model, "up")
        assert "churn/ingest/raw@2" in up.versions and "churn/ingest/raw@1" not in up.versions
        down = store.lineage("churn/ingest/raw@1", "down")
        assert sorted(down.versions) == ["churn/features/table@1", "churn/ingest/raw@1", "churn/train/model@1"]
        runs = store.list_runs(PIPELINE)
        assert [r.id for r in runs] == result.run_ids[::-1]
        assert all(r.status == "completed" and len(r.steps) == 3 for r in runs)
        # the features step's input was recorded by loading it, not declared
        assert [v.ref for v in runs[0].step("features").inputs] == ["churn/ingest/raw@2"]

    text = "\n".join(lines)
    for heading in ("== 1.", "== 2.", "== 3. dedupe", "== 4.", "== 5. lineage", "== 6.", "== 7. runs"):
        assert heading in text
    assert "produced by step ingest" in text and "consumed by step train" in text


def _run(argv: list[str], tmp_path: Path, *, code_prefix: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, CAS_INDEX_DIR=str(tmp_path / "idx"), TMPDIR=str(tmp_path))
    env.pop("CAS_STORE", None)
    code = code_prefix + textwrap.dedent(
        f"""
        import sys
        from cas.cli import main
        sys.argv = {["cas", *argv]!r}
        main()
        """
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def test_cas_demo_runs_with_only_the_core_dependencies(tmp_path):
    result = _run(["demo"], tmp_path, code_prefix=BLOCK_DATAFRAME_LIBS)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "churn/train/model@2" in out and "== 7. runs" in out and "saved" in out
    # a fresh temporary store (under TMPDIR), kept so the user can explore it
    demo_stores = [p for p in tmp_path.iterdir() if p.name.startswith("cas-demo-") and (p / "cas-format").exists()]
    assert len(demo_stores) == 1
    with cas.open_store(str(demo_stores[0]), create=False) as store:
        assert len(store.list_runs()) == 2


def test_cas_demo_into_a_given_store_both_ways(tmp_path):
    for argv, where in ((["demo", "--store", "a"], "a"), (["--store", "b", "demo"], "b")):
        result = _run(argv, tmp_path)
        assert result.returncode == 0, result.stderr
        with cas.open_store(str(tmp_path / where), create=False) as store:
            assert store.get_artifact_version("churn/train/model").version == 2


def test_the_installed_cas_command_runs_the_demo(tmp_path):
    exe = Path(sys.executable).with_name("cas")
    env = dict(os.environ, CAS_INDEX_DIR=str(tmp_path / "idx"))
    result = subprocess.run(
        [str(exe), "demo", "--store", str(tmp_path / "s")], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "what was derived from the uncorrected data" in result.stdout
    assert subprocess.run([str(exe), "demo", "--help"], capture_output=True, timeout=60).returncode == 0

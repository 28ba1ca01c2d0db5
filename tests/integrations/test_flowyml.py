"""cas as a real FlowyML artifact store (issue 11, section 3): found through the
``flowyml.plugins`` entry point, in a stack running a three-step pipeline
twice, outputs read back through FlowyML's ArtifactStore API and through
``cas log`` / ``cas lineage`` / ``cas run show``.  No mock of FlowyML.

FlowyML runs in subprocesses with cwd and HOME in a temp dir (it writes
``.flowyml`` folders there), so its own output and warnings stay out of pytest.
FlowyML's executor swallows every exception from ``materialize``, so each
output is looked for, not assumed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

import cas

pytest.importorskip("flowyml", reason="flowyml is installed by `tox -e flowyml` (extra cas-store[flowyml])")

HERE = Path(__file__).parent
CAS = [sys.executable, "-m", "cas.cli"]
STEPS = ["load", "featurize", "evaluate"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("flowyml")
    shutil.copy(HERE / "flowyml_pipeline.py", work / "flowyml_pipeline.py")
    return work


def _env(work: Path) -> dict:
    env = dict(os.environ, HOME=str(work), PYTHONWARNINGS="ignore", CAS_INDEX_DIR=str(work / "index-cache"))
    env.pop("CAS_STORE", None)
    return env


def _py(work: Path, *args: str) -> object:
    proc = subprocess.run(
        [sys.executable, "flowyml_pipeline.py", *args], cwd=work, env=_env(work), capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _cas(work: Path, store: Path, *args: str) -> str:
    proc = subprocess.run([*CAS, "--store", str(store), *args], cwd=work, env=_env(work), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def two_runs(work):
    store = work / "store"
    return store, _py(work, "run", str(store))


def test_every_step_output_of_both_runs_is_a_version_with_its_run(two_runs):
    store_dir, (first, second) = two_runs
    assert first["success"] and second["success"]
    # run 1 executes every step; FlowyML hands materialize()'s URI back on each step result
    assert first["uris"] == {s: f"cas://churn/{s}/output/1" for s in STEPS}
    assert second["cached"] == {s: True for s in STEPS}  # FlowyML caches by default
    with cas.open_store(store_dir) as store:
        for s in STEPS:
            versions = store.list_versions(f"churn/{s}/output")
            assert [v.version for v in versions] == [1, 2]
            assert versions[0].digest == versions[1].digest  # the cached run stored no new bytes
            assert [v.run_id for v in versions] == [first["run_id"], second["run_id"]]
            assert versions[1].metadata["flowyml_step"] == s
        for r in (first, second):
            run = store.get_run(r["run_id"])
            assert run.pipeline == "churn" and run.status == "completed"
            assert sorted(st.step for st in run.steps) == sorted(STEPS)
            assert all(st.status == "completed" for st in run.steps)


def test_outputs_read_back_through_flowymls_api(two_runs, work):
    store_dir, (first, _) = two_runs
    uris = list(first["uris"].values()) + ["cas://churn/evaluate/output/2", "churn/featurize/output@2"]
    read = _py(work, "read", str(store_dir), *uris)
    assert read["cas://churn/load/output/1"]["id"] == list(range(10))
    assert read["cas://churn/featurize/output/1"]["x2"] == [(i * 1.5) ** 2 for i in range(10)]
    total = sum((i * 1.5) ** 2 for i in range(10))
    assert read["cas://churn/evaluate/output/1"] == read["cas://churn/evaluate/output/2"] == {"rows": 10, "total": total}
    assert read["churn/featurize/output@2"] == read["cas://churn/featurize/output/1"]
    assert read["listed"] == sorted(f"cas://churn/{s}/output/{n}" for s in STEPS for n in (1, 2))


def test_cas_log_lineage_and_run_show_agree_with_flowyml(two_runs, work):
    store_dir, (first, second) = two_runs
    log = _cas(work, store_dir, "log", "churn/evaluate/output")
    assert "churn/evaluate/output@2" in log and "churn/evaluate/output@1" in log
    lineage = _cas(work, store_dir, "lineage", "churn/evaluate/output@2")
    # the cached run's lineage is whole: each step consumed the version its declared input came from
    assert lineage.index("churn/featurize/output@2") < lineage.index("churn/load/output@2")
    assert second["run_id"][:8] in lineage and "completed" in lineage
    shown = _cas(work, store_dir, "run", "show", first["run_id"])
    for s in STEPS:
        assert s in shown


def test_a_failed_step_fails_the_run_in_cas(two_runs, work):
    store_dir, _ = two_runs
    failed = _py(work, "fail", str(store_dir))
    assert failed["success"] is False
    with cas.open_store(store_dir) as store:
        run = store.get_run(failed["run_id"])
        assert run.status == "failed"
        status = {st.step: st.status for st in run.steps}
        assert status == {"load": "completed", "featurize": "completed", "broken_evaluate": "failed"}
        assert [v.version for v in store.list_versions("broken/featurize/output")] == [1]


# -- the store's own contract, in process ------------------------------------------------------


@pytest.fixture
def flowyml_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from cas.integrations.flowyml.artifact_store import CasArtifactStore

    s = CasArtifactStore(store=str(tmp_path / "store"), base_path=str(tmp_path / "files"))
    yield s
    s.store.close()


def test_paths_map_to_readable_cas_names_and_load_takes_every_uri_returned(flowyml_store):
    s = flowyml_store
    assert s.name_for("churn/train/model") == "churn/train/model"
    assert s.name_for("model.json") == "flowyml/files/model.json"
    assert s.name_for("churn/my step/model") == "churn/x--6d792073746570/model"
    assert s.path_for(s.name_for("churn/my step/model")) == "churn/my step/model"
    first = s.save({"auc": 0.9}, "churn/train/metrics", metadata={"owner": "ml"})
    second = s.save({"auc": 0.95}, "churn/train/metrics")
    assert (first, second) == ("cas://churn/train/metrics/1", "cas://churn/train/metrics/2")
    assert s.load(first) == {"auc": 0.9} and s.load(second) == {"auc": 0.95}
    assert s.load("churn/train/metrics") == {"auc": 0.95}  # a path: its latest version
    assert s.load("churn/train/metrics@1") == {"auc": 0.9}
    assert s.get_metadata(first)["owner"] == "ml" and s.size(first) > 0
    uri = s.materialize({"rows": 3}, "output", "run-1", "my step", "my pipeline")
    assert s.load(uri) == {"rows": 3}
    assert s.list_artifacts("churn/") == [first, second]
    s.delete(first)
    assert not s.exists(first) and s.exists(second)
    s.delete("churn/train/metrics")
    assert not s.exists("churn/train/metrics") and s.list_artifacts("churn/") == []
    for bad in ("/etc/passwd", "../x/y/z", "a/b/c/d", "cas://p/s/a/1/inside"):
        with pytest.raises(cas.errors.InvalidNameError):
            s.load(bad)


def test_any_python_object_is_kept_but_unpickled_only_when_allowed(flowyml_store, tmp_path):
    from cas.integrations.flowyml.artifact_store import CasArtifactStore

    value = Fraction(1, 3)  # nothing but pickle stores a Fraction
    uri = flowyml_store.materialize(value, "output", "run-2", "train", "churn")
    with pytest.raises(cas.errors.UnsafeLoadError):
        flowyml_store.load(uri)
    trusting = CasArtifactStore(store=flowyml_store.store, base_path=str(tmp_path / "files"), allow_pickle=True)
    assert trusting.load(uri) == value


def test_base_path_is_a_local_folder_never_the_store(tmp_path):
    from cas.integrations.flowyml.artifact_store import CasArtifactStore

    with pytest.raises(cas.errors.InvalidNameError, match="local directory"):
        CasArtifactStore(store=str(tmp_path / "store"), base_path="cas://churn")
    assert not (tmp_path / "cas:").exists()


def test_docs_flowyml_md_example_runs(tmp_path):
    text = (HERE.parent.parent / "docs" / "flowyml.md").read_text()
    [block] = re.findall(r"```python\n(.*?)```", text, re.S)
    check = textwrap.dedent("""
        assert result.step_results["evaluate"].artifact_uri == "cas://churn/evaluate/output/1"
        assert artifacts.load("cas://churn/evaluate/output/1") == {"rows": 5, "total": 41.25}
        print("DOC OK")
    """)
    (tmp_path / "doc_example.py").write_text(block + check)
    proc = subprocess.run([sys.executable, "doc_example.py"], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "DOC OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    shell = re.search(r"Then, in a shell:\n\n```\n(.*?)```", text, re.S).group(1)
    with cas.open_store(tmp_path / ".cas") as store:
        run_id = store.list_runs("churn")[0].id
    for line in shell.strip().splitlines():
        args = line.split("#")[0].split()[1:]
        out = _cas(tmp_path, tmp_path / ".cas", *[run_id if a == "<run" else a for a in args if a != "id>"])
        assert "churn" in out or "evaluate" in out

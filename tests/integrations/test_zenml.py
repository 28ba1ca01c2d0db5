"""cas as a real ZenML artifact store: flavor registered with the zenml CLI,
a stack using it, a real two-step pipeline run twice.  No mock of ZenML.

ZenML runs in subprocesses with its global config in a temp dir, so nothing
touches the user's ZenML setup and ZenML's own warnings stay out of pytest.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import cas
from cas.errors import VersionDeletedError
from cas.integrations._shared.folders import Folders
from cas.integrations._shared.space import PathSpace
from cas.integrations.zenml.layout import ZenMLLayout

pytest.importorskip("zenml", reason="zenml is installed by `tox -e zenml` (extra cas-store[zenml])")

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
NAMESPACE = "churn"


def _blob_digests(store_dir: Path) -> set[str]:
    return {p.parent.name + p.name for p in (store_dir / "blobs").glob("*/*")}


@pytest.fixture(scope="module")
def zenml_env(tmp_path_factory):
    work = tmp_path_factory.mktemp("zenml")
    env = dict(os.environ)
    env.update(
        ZENML_CONFIG_PATH=str(work / "zenml-config"),
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_ENABLE_RICH_TRACEBACK="false",
        ZENML_LOGGING_COLORS_DISABLED="true",
        ZENML_DISABLE_STEP_LOGS_STORAGE="false",
        AUTO_OPEN_DASHBOARD="false",
        PYTHONWARNINGS="ignore",  # ZenML's own deprecation noise, in its own process
        CAS_INDEX_DIR=str(work / "index-cache"),
        PYTHONPATH=os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p),
        COLUMNS="200",
    )
    env.pop("CAS_STORE", None)
    shutil.copy(HERE / "zenml_pipeline.py", work / "zenml_pipeline.py")
    return work, env


def _run(args: list[str], cwd: Path, env: dict, timeout: int = 600, both: bool = False) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr if both else proc.stdout


@pytest.fixture(scope="module")
def two_runs(zenml_env):
    work, env = zenml_env
    store_dir = work / "store"
    zenml = str(BIN / "zenml")
    _run([zenml, "init"], work, env)
    _run(
        [zenml, "artifact-store", "flavor", "register", "cas.integrations.zenml.flavor.CasArtifactStoreFlavor"],
        work,
        env,
    )
    flavors = _run([zenml, "artifact-store", "flavor", "list"], work, env, both=True)
    _run(
        [
            zenml,
            "artifact-store",
            "register",
            "cas_store",
            "--flavor=cas",
            f"--path=cas://{NAMESPACE}",
            f"--store={store_dir}",
        ],
        work,
        env,
    )
    _run([zenml, "stack", "register", "cas_stack", "-o", "default", "-a", "cas_store", "--set"], work, env)

    results, blobs_before = [], []
    for _ in range(2):
        blobs_before.append(_blob_digests(store_dir) if store_dir.exists() else set())
        out = _run([sys.executable, "zenml_pipeline.py"], work, env)
        line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
    return {
        "work": work,
        "env": env,
        "store_dir": store_dir,
        "flavors": flavors,
        "runs": results,
        "blobs_before": blobs_before,
    }


@pytest.fixture
def space(two_runs):
    store = cas.open_store(str(two_runs["store_dir"]), create=False)
    yield PathSpace(Folders(store), ZenMLLayout((NAMESPACE,)))
    store.close()


def test_flavor_is_registered(two_runs):
    assert "cas" in two_runs["flavors"]


def test_pipeline_artifacts_load_back_through_zenml(two_runs):
    for run in two_runs["runs"]:
        assert run["status"] == "completed"
        assert run["steps"]["make_data"]["loaded"] == {"rows": list(range(2000)), "source": "churn.csv"}
        assert run["steps"]["train"]["loaded"] == "model trained on 2000 rows"
        for s in run["steps"].values():
            assert s["uri"].startswith(f"cas://{NAMESPACE}/")


def test_artifact_bytes_live_in_cas_blobs(two_runs, space):
    store_dir = two_runs["store_dir"]
    blobs = _blob_digests(store_dir)
    for run in two_runs["runs"]:
        for step_name, s in run["steps"].items():
            files = space.find(s["uri"])
            assert files, f"{s['uri']} holds no file in cas"
            for f in files:
                assert f.digest in blobs
                blob = store_dir / "blobs" / f.digest[:2] / f.digest[2:]
                with space.open(f.path, "rb") as fh:
                    assert blob.read_bytes() == fh.read()
            # the version behind the uri is a cas version of <namespace>/<step>/output
            key, _ = space.layout.locate(space.split(s["uri"]))
            assert key.name == f"{NAMESPACE}/{step_name}/output"


def test_second_run_stored_no_new_content_blob(two_runs, space):
    before_second = two_runs["blobs_before"][1]
    first, second = two_runs["runs"]
    for step_name in ("make_data", "train"):
        one = {f.path.rsplit("/", 1)[-1]: f.digest for f in space.find(first["steps"][step_name]["uri"])}
        two = {f.path.rsplit("/", 1)[-1]: f.digest for f in space.find(second["steps"][step_name]["uri"])}
        assert one == two  # same content, so the same blobs...
        assert set(two.values()) <= before_second  # ...which were all there before run 2 started
        # and both runs' outputs are versions of one cas name
        key1, _ = space.layout.locate(space.split(first["steps"][step_name]["uri"]))
        key2, _ = space.layout.locate(space.split(second["steps"][step_name]["uri"]))
        assert key1.name == key2.name and key1.alias != key2.alias


def test_step_logs_were_written(two_runs, space):
    logs = space.find(f"cas://{NAMESPACE}/logs")
    assert logs
    text = "".join(space.open(f.path, "r").read() for f in logs)
    assert "hello-from-make-data" in text
    # immutable filesystem: every log file is its own write, none appended in place
    assert all(f.path.endswith(".log") for f in logs)


def test_cas_cli_log_and_lineage(two_runs):
    env = dict(two_runs["env"], PYTHONWARNINGS="error")
    store = str(two_runs["store_dir"])
    cas_bin = str(BIN / "cas")
    log = json.loads(
        _run([cas_bin, "--store", store, "log", f"{NAMESPACE}/train/output", "--json"], two_runs["work"], env)
    )
    assert len(log) == 2  # one live version per run
    run_ids = {r["run_id"] for r in two_runs["runs"]}
    assert {v["run_id"] for v in log} == run_ids
    assert all(v["metadata"]["zenml"]["pipeline"] == "churn" for v in log)

    graph = json.loads(
        _run(
            [cas_bin, "--store", store, "lineage", f"{NAMESPACE}/train/output", "--format", "json"],
            two_runs["work"],
            env,
        )
    )
    refs = json.dumps(graph)
    assert f"{NAMESPACE}/make_data/output" in refs  # train's input, traced through the step

    for run_id in run_ids:
        shown = json.loads(_run([cas_bin, "--store", store, "run", "show", run_id, "--json"], two_runs["work"], env))
        assert shown["pipeline"] == "churn"
        assert shown["status"] == "completed"
        assert sorted(s["step"] for s in shown["steps"]) == ["make_data", "train"]


# -- failures: cas's status is ZenML's final status, and nothing partial is published --------


def _failing_run(two_runs, mode: str, interrupt: bool = False) -> dict:
    env = dict(two_runs["env"], CAS_TEST_MODE=mode)
    if not interrupt:
        proc = subprocess.run(
            [sys.executable, "zenml_pipeline.py"],
            cwd=two_runs["work"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        out = proc.stdout + proc.stderr
    else:  # Ctrl-C in the middle of a step: the run is cancelled by its user
        lines = []
        with subprocess.Popen(
            [sys.executable, "zenml_pipeline.py"], cwd=two_runs["work"], env=env, stdout=subprocess.PIPE, text=True
        ) as proc:
            for line in proc.stdout:
                lines.append(line)
                if "SLOW-STEP-STARTED" in line:
                    proc.send_signal(signal.SIGINT)
            proc.wait(timeout=300)
        out = "".join(lines)
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, out[-4000:]
    return json.loads(line[len("RESULT ") :])


def _cas_run(two_runs, run_id: str) -> dict:
    env = dict(two_runs["env"], PYTHONWARNINGS="error")
    cas_bin = str(BIN / "cas")
    return json.loads(
        _run([cas_bin, "--store", str(two_runs["store_dir"]), "run", "show", run_id, "--json"], two_runs["work"], env)
    )


@pytest.mark.parametrize("mode", ["explode", "report", "slow"])
def test_failed_step_status_is_zenmls_and_publishes_nothing(two_runs, space, mode):
    """explode: the step raises; report: its materializer raises mid-write (after
    ZenML's cleanup_step_run(step_failed=False)); slow: Ctrl-C during the step."""
    zen = _failing_run(two_runs, mode, interrupt=mode == "slow")
    assert zen["steps"][mode]["status"] != "completed"
    shown = _cas_run(two_runs, zen["run_id"])
    assert shown["status"] == {"stopped": "cancelled"}.get(zen["status"], zen["status"]), (shown, zen)
    steps = {s["step"]: s for s in shown["steps"]}
    for name, s in zen["steps"].items():
        if name in steps:
            assert steps[name]["status"] == {"stopped": "cancelled"}.get(s["status"], s["status"]), (name, steps[name], s)
    store = space.folders.store
    for ref in steps[mode]["outputs"]:  # whatever the failed step wrote is deleted, as `cas rm`
        with pytest.raises(VersionDeletedError):
            store.get_artifact_version(ref)
    assert steps["make_data"]["status"] == "completed" and steps["make_data"]["outputs"]
    live = [f.path for f in space.find(f"cas://{NAMESPACE}")] if space.exists(f"cas://{NAMESPACE}/{mode}") else []
    assert not [p for p in live if f"/{mode}/output/" in p], live


# -- live OpenLineage from a ZenML pipeline ---------------------------------------------------------


def test_zenml_runs_emit_live_openlineage_events(two_runs):
    from servers import LineageReceiver

    receiver = LineageReceiver()
    try:
        env = dict(two_runs["env"], OPENLINEAGE_URL=receiver.url)
        out = _run([sys.executable, "zenml_pipeline.py"], two_runs["work"], env)
        zen = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])
        _failing_run(dict(two_runs, env=env), "report")
    finally:
        receiver.close()
    by_job: dict[str, list[dict]] = {}
    for e in receiver.events:
        by_job.setdefault(e["job"]["name"], []).append(e)
    # the passing run, then the failing one: each run and step STARTs, then ends with ZenML's status
    assert [e["eventType"] for e in by_job["churn"]] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in by_job["churn.train"]] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in by_job["churn.make_data"]] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in by_job["churn_fails.make_data"]] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in by_job["churn_fails"]] == ["START", "FAIL"]
    assert [e["eventType"] for e in by_job["churn_fails.report"]] == ["START", "FAIL"]
    assert by_job["churn_fails.report"][-1]["outputs"] == []  # its half-written output was retracted

    store = cas.open_store(str(two_runs["store_dir"]), create=False)
    try:
        [done] = [e for e in by_job["churn.train"] if e["eventType"] == "COMPLETE"]
        [out_ds] = done["outputs"]
        version = next(v for v in store.list_versions("churn/train/output") if v.run_id == zen["run_id"])
        assert out_ds["name"] == "churn/train/output"
        assert out_ds["facets"]["version"]["datasetVersion"] == f"blake3:{version.digest.hex}"
        assert [d["name"] for d in done["inputs"]] == ["churn/make_data/output"]
    finally:
        store.close()

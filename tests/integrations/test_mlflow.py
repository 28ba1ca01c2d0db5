"""cas as a real MLflow artifact repository (entry point ``mlflow.artifact_repository``).

MLflow runs in a subprocess (tracking in a temp SQLite file, the cas store
in a temp dir): an experiment with ``artifact_location="cas://churn/train"``,
two runs that log files, a directory and a pyfunc model, then list, download
and load them back.  No mock of MLflow.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cas
from cas.integrations._shared.folders import Folders
from cas.integrations._shared.space import PathSpace
from cas.integrations.mlflow.layout import MlflowLayout

pytest.importorskip("mlflow", reason="mlflow is installed by `tox -e mlflow` (extra cas-store[mlflow])")

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    work = tmp_path_factory.mktemp("mlflow")
    store_dir = work / "store"
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        CAS_STORE=str(store_dir),
        CAS_INDEX_DIR=str(work / "index-cache"),
        PYTHONWARNINGS="ignore",  # MLflow's own warnings, in its own process
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        MLFLOW_TRACKING_URI=f"sqlite:///{work}/mlflow.db",
        HOME=str(work),  # MLflow may write caches under ~
    )
    out = _run([sys.executable, str(HERE / "mlflow_scenario.py"), str(work)], work, env)
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    return {"work": work, "env": env, "store_dir": store_dir, **json.loads(line[len("RESULT ") :])}


@pytest.fixture
def space(session):
    store = cas.open_store(str(session["store_dir"]), create=False)
    yield PathSpace(Folders(store), MlflowLayout())
    store.close()


def test_mlflow_picks_the_cas_repository_by_scheme(session):
    assert session["repo_class"] == "cas.integrations.mlflow.repository.CasArtifactRepository"
    for run in session["runs"]:
        assert run["artifact_uri"] == f"cas://churn/train/{run['run_id']}/artifacts"
        assert run["model_location"] == f"cas://churn/train/models/{run['model_id']}/artifacts"


def test_list_and_download_round_trip(session):
    for run in session["runs"]:
        # direct children only, with sizes for files
        assert run["listing"] == [["extra", True, None], ["metrics.json", False, 13], ["report", True, None]]
        assert run["report"] == [["report/plots", True, None], ["report/summary.txt", False, 10]]
        assert run["downloaded"] == ["extra/metrics.json", "metrics.json", "report/plots/roc.txt", "report/summary.txt"]
        assert run["metrics"] == {"auc": 0.91}


def test_pyfunc_model_loads_from_cas(session):
    for run in session["runs"]:
        assert run["predict"] == [2, 4, 6]  # via models:/<id>
        assert run["predict_cas"] == [8]  # via the cas:// artifact location itself


def test_second_model_stored_no_new_content_blob(session, space):
    one_files, two_files = (
        {f.path[len(r["model_location"]) + 1 :]: f.digest for f in space.find(r["model_location"])}
        for r in session["runs"]
    )
    assert one_files.keys() == two_files.keys()
    assert "python_model.pkl" in two_files and "artifacts/weights.bin" in two_files
    # MLmodel names its run, model id and time: the only file that differs
    changed = {p for p in two_files if two_files[p] != one_files[p]}
    assert changed == {"MLmodel"}
    before_second = set(session["blobs_before"][1])
    assert {d for p, d in two_files.items() if p != "MLmodel"} <= before_second
    # and the 1 MiB of weights is stored once
    weights = two_files["artifacts/weights.bin"]
    assert (session["store_dir"] / "blobs" / weights[:2] / weights[2:]).stat().st_size == 1 << 20


def test_delete_artifacts(session, space):
    first = session["runs"][0]
    assert session["after_delete"] == ["metrics.json", "report"]
    assert not space.exists(first["artifact_uri"] + "/extra")
    assert space.exists(session["runs"][1]["artifact_uri"] + "/extra/metrics.json")  # other run untouched


def test_cas_cli_sees_runs_versions_and_lineage(session):
    env = dict(session["env"], PYTHONWARNINGS="error")
    cas_bin = str(BIN / "cas")
    store = str(session["store_dir"])
    run_ids = {r["run_id"] for r in session["runs"]}

    log = json.loads(_run([cas_bin, "--store", store, "log", "churn/train/report", "--json"], session["work"], env))
    assert {v["run_id"] for v in log} == run_ids
    assert all(v["kind"] == "tree" for v in log)
    metrics = json.loads(
        _run([cas_bin, "--store", store, "log", "churn/train/metrics.json", "--json"], session["work"], env)
    )
    assert len(metrics) == 2 and all(v["kind"] == "blob" for v in metrics)
    assert len({v["digest"] for v in metrics}) == 1  # same bytes, one blob
    models = json.loads(_run([cas_bin, "--store", store, "log", "churn/train/models", "--json"], session["work"], env))
    assert sorted(v["metadata"]["mlflow"]["models"] for v in models) == sorted(r["model_id"] for r in session["runs"])

    for run_id in run_ids:
        shown = json.loads(_run([cas_bin, "--store", store, "run", "show", run_id, "--json"], session["work"], env))
        assert shown["pipeline"] == "churn"
        assert [s["step"] for s in shown["steps"]] == ["train"]
        # both MLflow runs ended; cas learnt it when the artifacts were listed
        assert shown["status"] == "completed"
    graph = _run([cas_bin, "--store", store, "lineage", "churn/train/report"], session["work"], env)
    assert "produced by step train" in graph


# -- a real `mlflow server`, and clients that know only its URL ------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _mlflow_server(work: Path, env: dict, *args: str):
    """``mlflow server`` on 127.0.0.1 with a SQLite backend; yields its URL."""
    import urllib.request

    port = _free_port()
    log = open(work / f"server-{port}.log", "w")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--backend-store-uri", f"sqlite:///{work}/server.db", *args],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 420  # importing mlflow in each worker is slow on a loaded 2-core machine
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (work / f"server-{port}.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "mlflow server did not start:\n" + (work / f"server-{port}.log").read_text()[-4000:]
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _client(work: Path, env: dict, url: str, experiment: str) -> dict:
    out = _run([sys.executable, str(HERE / "mlflow_server_client.py"), str(work), url, experiment], work, env)
    return json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Both deployments: the server proxying artifacts to cas (the client has no cas
    configuration at all), and cas as the server's default artifact root (the client
    writes to cas itself)."""
    work = tmp_path_factory.mktemp("mlflow-server")
    store_dir = work / "store"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CAS_"))}
    base.update(PYTHONWARNINGS="ignore", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false", HOME=str(work))
    server_env = dict(base, CAS_STORE=str(store_dir), CAS_INDEX_DIR=str(work / "index-cache"))
    out = {"work": work, "store_dir": store_dir, "env": server_env}
    with _mlflow_server(work, server_env, "--serve-artifacts", "--artifacts-destination", "cas://team/models") as url:
        out["proxied"] = _client(work, base, url, "churn model")
    (work / "server.db").unlink()
    with _mlflow_server(work, server_env, "--no-serve-artifacts", "--default-artifact-root", "cas://team") as url:
        out["direct"] = _client(work, server_env, url, "fraud")
    return out


def test_server_round_trips_files_directories_and_models(served):
    for mode in ("proxied", "direct"):
        for run in served[mode]["runs"]:
            assert run["listing"] == [["metrics.json", False, 13], ["report", True, None]], mode
            assert run["report"] == [["report/plots", True, None], ["report/summary.txt", False, 10]], mode
            assert run["downloaded"] == ["metrics.json", "report/plots/roc.txt", "report/summary.txt"], mode
            assert run["metrics"] == {"auc": 0.91}
        assert served[mode]["registry"] == [[2, 20], [4, 20]], mode  # models:/<name>/<version> from the registry
        assert served[mode]["registry_versions"] == [1, 2]
    assert all(r["artifact_uri"].startswith("mlflow-artifacts:") for r in served["proxied"]["runs"])
    exp = served["direct"]["experiment_id"]
    assert all(r["artifact_uri"].startswith(f"cas://team/{exp}/") for r in served["direct"]["runs"])


def test_server_names_cas_versions_after_the_experiment(served):
    """cas names carry the experiment's name, never its id; cas log / lineage see every run."""
    env = dict(served["env"], PYTHONWARNINGS="error")
    cas_bin, store = str(BIN / "cas"), str(served["store_dir"])
    for mode, pipeline in (("proxied", "churn-model"), ("direct", "fraud")):
        runs = served[mode]["runs"]
        run_ids = {r["run_id"] for r in runs}

        def log(name):
            return json.loads(_run([cas_bin, "--store", store, "log", name, "--json"], served["work"], env))

        assert {v["run_id"] for v in log(f"{pipeline}/run/report")} == run_ids
        metrics = log(f"{pipeline}/run/metrics.json")
        assert len(metrics) == 2 and all(v["kind"] == "blob" for v in metrics)
        models = log(f"{pipeline}/models/model")
        assert sorted(v["metadata"]["mlflow"]["models"] for v in models) == sorted(r["model_id"] for r in runs)
        graph = _run([cas_bin, "--store", store, "lineage", f"{pipeline}/run/report"], served["work"], env)
        assert "produced by step run" in graph
        for run in runs:
            shown = json.loads(
                _run([cas_bin, "--store", store, "run", "show", run["run_id"], "--json"], served["work"], env)
            )
            assert shown["pipeline"] == pipeline and [s["step"] for s in shown["steps"]] == ["run"]
            assert shown["status"] == "completed"  # asked of the tracking store (the server's own, behind it)
    names = _run([cas_bin, "--store", store, "ls"], served["work"], env)
    assert "team" not in names and "/1/" not in names  # no prefix or experiment id became a name


def test_server_answers_caller_faults_as_invalid_parameter_value(served):
    bad = served["proxied"]["bad_path"]
    assert (bad["status"], bad["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert bad["seconds"] < 10  # refused at once: MLflow's client does not retry a 400
    # an absolute artifact_path is refused by cas's repository, and nothing was logged
    assert served["direct"]["absolute"] == "INVALID_PARAMETER_VALUE"
    assert served["direct"]["absolute_listing"] == []
    assert served["proxied"]["absolute"] != "accepted"


def test_docs_example_runs(tmp_path):
    """docs/mlflow.md's python example, as written (its /tmp/cas-demo moved into tmp_path)."""
    import re

    text = (HERE.parent.parent / "docs" / "mlflow.md").read_text()
    code = "\n\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S)).replace("/tmp/cas-demo", str(tmp_path))
    (tmp_path / "example.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CAS_"))}
    env.update(PYTHONWARNINGS="ignore", HOME=str(tmp_path), MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    out = _run([sys.executable, str(tmp_path / "example.py")], tmp_path, env)
    assert out.strip().splitlines()[-1] == "[2, 4] [6]"
    log = _run([str(BIN / "cas"), "--store", str(tmp_path / ".cas"), "log", "churn/train/metrics.json"], tmp_path, env)
    assert log.count("churn/train/metrics.json@") == 2


_DOWNLOAD = r"""
import json, sys
import mlflow.artifacts
out = {}
for uri in sys.argv[2:]:
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=sys.argv[1] or None)
        out[uri] = "downloaded"
    except Exception as e:
        out[uri] = f"{type(e).__name__}: {e}"
print("RESULT " + json.dumps(out))
"""


def _snapshot(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        out.update({os.path.relpath(os.path.join(dirpath, d), root): None for d in dirs})
        out.update({os.path.relpath(os.path.join(dirpath, f), root): Path(dirpath, f).read_bytes() for f in files})
    return out


@pytest.mark.parametrize("damaged", ["flip", "truncate"])
def test_a_damaged_download_leaves_the_destination_as_it_was(tmp_path, damaged):
    """download_artifacts (a file, a directory, a whole run) meets a bad blob in the
    last file it writes: it fails with cas's integrity error and leaves nothing."""
    store_dir = tmp_path / "store"
    store = cas.open_store(str(store_dir))
    root = "cas://churn/train/0123456789abcdef0123456789abcdef/artifacts"
    src = tmp_path / "src"
    src.mkdir()
    files = {"metrics.json": b'{"auc": 0.9}', "report/a.txt": b"first", "report/zz.bin": os.urandom(200_000)}
    local = {}
    for rel, data in files.items():
        (src / rel.replace("/", "_")).write_bytes(data)
        local[f"{root}/{rel}"] = str(src / rel.replace("/", "_"))
    space = PathSpace(Folders(store), MlflowLayout())
    space.put_files(local)
    digest = space.info(f"{root}/report/zz.bin").digest
    bad = files["report/zz.bin"]
    bad = bad[: len(bad) // 2] if damaged == "truncate" else bad[:10] + bytes([bad[10] ^ 1]) + bad[11:]
    path = store_dir / "blobs" / digest[:2] / digest[2:]
    path.chmod(0o644)
    path.write_bytes(bad)
    store.close()

    dst = tmp_path / "dst"
    (dst / "report").mkdir(parents=True)
    (dst / "report" / "a.txt").write_bytes(b"the user's own a.txt")
    before = _snapshot(dst)
    env = dict(os.environ, CAS_STORE=str(store_dir), CAS_INDEX_DIR=str(tmp_path / "cache"), PYTHONWARNINGS="ignore")
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db", HOME=str(tmp_path))
    uris = [f"{root}/report/zz.bin", f"{root}/report", root]
    out = _run([sys.executable, "-c", _DOWNLOAD, str(dst), *uris], tmp_path, env)
    result = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])
    assert all("integrity error" in result[u] for u in uris), result
    assert _snapshot(dst) == before
    # no dst_path: MLflow's contract is a new temp directory; a failure leaves none
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = _run([sys.executable, "-c", _DOWNLOAD, "", *uris], tmp_path, dict(env, TMPDIR=str(scratch)))
    result = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])
    assert all("integrity error" in result[u] for u in uris), result
    assert list(scratch.iterdir()) == []

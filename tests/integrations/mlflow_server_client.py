"""An MLflow client that knows only a tracking server's URL (tests/integrations/test_mlflow.py).

Usage: mlflow_server_client.py <work dir> <server url> <experiment name>.  Logs
files, a directory and a registered model in two runs, lists, downloads and
loads them back (the model from the registry), and probes what the server
refuses.  Prints one JSON line.
"""

import json
import os
import sys
import tempfile
import time

import mlflow
import mlflow.pyfunc
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [2 * x for x in model_input]


def main(work: str, url: str, experiment: str) -> None:
    mlflow.set_tracking_uri(url)
    client = MlflowClient()
    exp_id = mlflow.create_experiment(experiment)
    src = os.path.join(work, f"src-{exp_id}")
    os.makedirs(os.path.join(src, "plots"), exist_ok=True)
    with open(os.path.join(src, "plots", "roc.txt"), "w") as f:
        f.write("auc=0.91\n")
    with open(os.path.join(src, "summary.txt"), "w") as f:
        f.write("rows=2000\n")
    metrics = os.path.join(work, "metrics.json")
    with open(metrics, "w") as f:
        json.dump({"auc": 0.91}, f)

    out = {"experiment_id": exp_id, "runs": []}
    for _ in range(2):
        with mlflow.start_run(experiment_id=exp_id) as run:
            mlflow.log_artifact(metrics)
            mlflow.log_artifacts(src, "report")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=Doubler(), registered_model_name=f"{experiment}-m"
            )
        rid = run.info.run_id
        local = mlflow.artifacts.download_artifacts(run_id=rid, dst_path=tempfile.mkdtemp(dir=work))
        out["runs"].append(
            {
                "run_id": rid,
                "artifact_uri": run.info.artifact_uri,
                "model_id": info.model_id,
                "listing": [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(rid)],
                "report": [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(rid, "report")],
                "downloaded": sorted(
                    os.path.relpath(os.path.join(d, f), local) for d, _, fs in os.walk(local) for f in fs
                ),
                "metrics": json.load(open(os.path.join(local, "metrics.json"))),
            }
        )
    out["registry"] = [mlflow.pyfunc.load_model(f"models:/{experiment}-m/{v}").predict([v, 10]) for v in (1, 2)]
    out["registry_versions"] = sorted(int(v.version) for v in client.search_model_versions(f"name='{experiment}-m'"))

    # An absolute artifact_path is refused, not re-rooted below the run.
    with mlflow.start_run(experiment_id=exp_id) as run:
        try:
            mlflow.log_artifact(metrics, "/abs/dir")
            out["absolute"] = "accepted"
        except MlflowException as e:
            out["absolute"] = e.error_code
        out["absolute_listing"] = [f.path for f in client.list_artifacts(run.info.run_id)]

    # A path cas cannot map, straight to the artifact proxy: the caller's fault, answered at once.
    started = time.monotonic()
    resp = requests.put(f"{url}/api/2.0/mlflow-artifacts/artifacts/{exp_id}/not-a-run/x.txt", data=b"x", timeout=60)
    out["bad_path"] = {"status": resp.status_code, "seconds": time.monotonic() - started}
    try:
        out["bad_path"]["error_code"] = resp.json().get("error_code")
    except ValueError:
        out["bad_path"]["error_code"] = None
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:4])

"""A real MLflow session on cas://, run as a script by tests/integrations/test_mlflow.py.

Prints one JSON line of what MLflow saw; the test checks it against the store.
"""

import json
import os
import sys
import tempfile

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        with open(context.artifacts["weights"], "rb") as f:
            scale = len(f.read()) // (1 << 20)  # 1 MiB of weights -> 1
        return [2 * scale * x for x in model_input]


def main(work: str) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{work}/mlflow.db")
    exp = mlflow.create_experiment("churn", artifact_location="cas://churn/train")
    client = MlflowClient()
    weights = os.path.join(work, "weights.bin")
    with open(weights, "wb") as f:
        f.write(os.urandom(1 << 20))
    src = os.path.join(work, "src")
    os.makedirs(os.path.join(src, "plots"), exist_ok=True)
    with open(os.path.join(src, "plots", "roc.txt"), "w") as f:
        f.write("auc=0.91\n")
    with open(os.path.join(src, "summary.txt"), "w") as f:
        f.write("rows=2000\n")
    with open(os.path.join(work, "metrics.json"), "w") as f:
        json.dump({"auc": 0.91}, f)

    out = {"runs": [], "blobs_before": []}
    blobs = os.path.join(os.environ["CAS_STORE"], "blobs")
    for _ in range(2):
        out["blobs_before"].append(
            sorted(d + f for d in os.listdir(blobs) for f in os.listdir(os.path.join(blobs, d)))
            if os.path.isdir(blobs)
            else []
        )
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.log_artifact(os.path.join(work, "metrics.json"))
            mlflow.log_artifact(os.path.join(work, "metrics.json"), "extra")
            mlflow.log_artifacts(src, "report")
            info = mlflow.pyfunc.log_model(name="model", python_model=Doubler(), artifacts={"weights": weights})
            rid = run.info.run_id
        dl = tempfile.mkdtemp(dir=work)
        local = mlflow.artifacts.download_artifacts(run_id=rid, dst_path=dl)
        downloaded = sorted(os.path.relpath(os.path.join(d, f), local) for d, _, fs in os.walk(local) for f in fs)
        model = mlflow.pyfunc.load_model(info.model_uri)
        model_from_cas = mlflow.pyfunc.load_model(client.get_logged_model(info.model_id).artifact_location)
        listing = [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(rid)]
        report = [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(rid, "report")]
        out["runs"].append(
            {
                "run_id": rid,
                "artifact_uri": run.info.artifact_uri,
                "model_uri": info.model_uri,
                "model_id": info.model_id,
                "model_location": client.get_logged_model(info.model_id).artifact_location,
                "downloaded": downloaded,
                "listing": listing,
                "report": report,
                "predict": list(model.predict([1, 2, 3])),
                "predict_cas": list(model_from_cas.predict([4])),
                "metrics": json.load(open(os.path.join(local, "metrics.json"))),
            }
        )
    # delete one run's extra/ directory through MLflow's repository
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(out["runs"][0]["artifact_uri"])
    out["repo_class"] = type(repo).__module__ + "." + type(repo).__name__
    repo.delete_artifacts("extra")
    out["after_delete"] = [f.path for f in repo.list_artifacts()]
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])

"""A real two-step ZenML pipeline, run as a script by tests/integrations/test_zenml.py.

Runs the pipeline once per call and prints one JSON line describing what
ZenML stored, read back through ZenML itself.
"""

import json
import os
import sys
import time

from zenml import pipeline, step
from zenml.client import Client
from zenml.materializers.base_materializer import BaseMaterializer

MARKER = "hello-from-make-data"


@step
def make_data() -> dict:
    print(MARKER)
    return {"rows": list(range(2000)), "source": "churn.csv"}


@step
def train(data: dict) -> str:
    return f"model trained on {len(data['rows'])} rows"


# Caching off: the second run really executes and really writes its outputs,
# so "no new blob" is cas's dedupe, not ZenML skipping the step.
@pipeline(enable_cache=False)
def churn() -> None:
    train(make_data())


class Report:
    pass


class HalfWritten(BaseMaterializer):
    """Writes one file, then fails in the middle of the second (a disk filling up)."""

    ASSOCIATED_TYPES = (Report,)

    def save(self, data: Report) -> None:
        with self.artifact_store.open(os.path.join(self.uri, "part-0.txt"), "w") as f:
            f.write("first half")
        with self.artifact_store.open(os.path.join(self.uri, "part-1.txt"), "w") as f:
            f.write("second")
            raise OSError("disk full")


@step
def explode(data: dict) -> str:
    raise ValueError("step raised on purpose")


@step(output_materializers=HalfWritten)
def report(data: dict) -> Report:
    return Report()


@step
def slow(data: dict) -> str:
    print("SLOW-STEP-STARTED", flush=True)
    time.sleep(120)
    return "never"


@pipeline(enable_cache=False)
def churn_fails() -> None:
    {"explode": explode, "report": report, "slow": slow}[os.environ["CAS_TEST_MODE"]](make_data())


def failing() -> None:
    """Run a pipeline that fails (or is interrupted) in one step; print ZenML's statuses."""
    try:
        churn_fails()
    except BaseException as e:  # the failure (or Ctrl-C) is the point
        print(f"pipeline raised {type(e).__name__}", flush=True)
    run = Client().list_pipeline_runs(sort_by="desc:created", size=1).items[0]
    run = Client().get_pipeline_run(run.id)
    out = {"run_id": str(run.id), "status": str(run.status.value), "steps": {}}
    for name, step_run in run.steps.items():
        out["steps"][name] = {"status": str(step_run.status.value), "id": str(step_run.id)}
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    if os.environ.get("CAS_TEST_MODE"):
        return failing()
    run = churn()
    run = Client().get_pipeline_run(run.id)
    out = {"run_id": str(run.id), "status": str(run.status), "steps": {}}
    for name, step_run in run.steps.items():
        artifact = step_run.outputs["output"][0]
        loaded = Client().get_artifact_version(artifact.id).load()
        out["steps"][name] = {
            "uri": artifact.uri,
            "loaded": loaded,
            "artifact_version_id": str(artifact.id),
            "step_run_id": str(step_run.id),
        }
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
    sys.exit(0)

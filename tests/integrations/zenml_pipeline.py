"""A real two-step ZenML pipeline, run as a script by tests/integrations/test_zenml.py.

Runs the pipeline once per call and prints one JSON line describing what
ZenML stored, read back through ZenML itself.
"""

import json
import sys

from zenml import pipeline, step
from zenml.client import Client

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


def main() -> None:
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

"""A real three-step FlowyML pipeline on a stack whose artifact store is cas.

Run by tests/integrations/test_flowyml.py in its own process (cwd and HOME in
a temp dir):

    python flowyml_pipeline.py run STORE     # run the pipeline twice, print what FlowyML returned
    python flowyml_pipeline.py fail STORE    # a run whose last step raises
    python flowyml_pipeline.py read STORE URI...  # load each URI through FlowyML's ArtifactStore API

The store comes from FlowyML's own plugin discovery (the ``flowyml.plugins``
entry point), not from an import of cas.
"""

from __future__ import annotations

import json
import sys

import pandas as pd
from flowyml import LocalExecutor, Pipeline, Stack, step
from flowyml.plugins.manager import PluginManager
from flowyml.storage.metadata import SQLiteMetadataStore


def artifact_store(url: str):
    manager = PluginManager()
    manager._discover_entrypoint_plugins()  # what `flowyml plugin` does for community plugins
    return manager.get_instance("cas", store=url, base_path="flowyml-files")


def stack(url: str) -> Stack:
    return Stack(
        "cas-stack",
        executor=LocalExecutor(),
        artifact_store=artifact_store(url),
        metadata_store=SQLiteMetadataStore("flowyml-metadata.db"),
    )


@step(outputs=["raw"])
def load():
    return pd.DataFrame({"id": range(10), "x": [i * 1.5 for i in range(10)]})


@step(inputs=["raw"], outputs=["features"])
def featurize(raw):
    return raw.assign(x2=raw["x"] ** 2)


@step(inputs=["features"], outputs=["metrics"])
def evaluate(features):
    return {"rows": len(features), "total": float(features["x2"].sum())}


@step(inputs=["features"], outputs=["metrics"])
def broken_evaluate(features):
    raise ValueError("evaluation failed")


def run(url: str, last, name: str = "churn") -> dict:
    pipeline = Pipeline(name, stack=stack(url))
    for s in (load, featurize, last):
        pipeline.add_step(s)
    result = pipeline.run(auto_start_ui=False)  # FlowyML would otherwise start its UI server
    return {
        "run_id": result.run_id,
        "success": result.success,
        "uris": {n: r.artifact_uri for n, r in result.step_results.items()},
        "cached": {n: r.cached for n, r in result.step_results.items()},
    }


def main() -> None:
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "run":
        out: object = [run(url, evaluate), run(url, evaluate)]  # the second run hits FlowyML's cache
    elif mode == "fail":
        out = run(url, broken_evaluate, name="broken")
    else:
        store = artifact_store(url)
        out = {}
        for uri in sys.argv[3:]:
            value = store.load(uri)
            out[uri] = value.to_dict(orient="list") if isinstance(value, pd.DataFrame) else value
        out["listed"] = store.list_artifacts("churn/")
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()

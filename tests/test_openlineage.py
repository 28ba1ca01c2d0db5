"""OpenLineage export, checked against the openlineage-python package's own event classes."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

import cas
from cas.cli import cli
from cas.lineage import openlineage_event, openlineage_run_id

event_v2 = pytest.importorskip("openlineage.client.event_v2", reason="openlineage-python is in the dev extra")
from openlineage.client.serde import Serde  # noqa: E402


@pytest.fixture
def graph_store(local_store):
    with pytest.raises(KeyError):
        with local_store.run("churn", params={"lr": 0.1}, run_id="nightly-7") as run:
            with run.step("ingest") as s:
                raw = s.save(b"raw", "raw")
            with run.step("train", inputs=[raw]) as s:
                s.save({"w": [1.0, 2.0]}, "model")
            with run.step("evaluate", inputs=["churn/train/model@1"]):
                raise KeyError("auc")
    return local_store


def _events(store, ref="churn/ingest/raw@1", direction="down"):
    return store.lineage(ref, direction).to_openlineage()


def test_events_build_into_openlineage_run_events_unchanged(graph_store):
    events = _events(graph_store)
    assert events
    for e in events:
        obj = openlineage_event(e)
        assert isinstance(obj, event_v2.RunEvent)
        # the library's serialisation of the validated object is exactly what we emit
        assert Serde.to_dict(obj) == e
        assert json.loads(Serde.to_json(obj)) == json.loads(json.dumps(e))


def test_each_run_starts_once_and_ends_once_with_its_state(graph_store):
    events = _events(graph_store)
    by_run: dict[str, list[str]] = {}
    for e in events:
        uuid.UUID(e["run"]["runId"])
        by_run.setdefault(e["run"]["runId"], []).append(e["eventType"])
    states = {e["job"]["name"]: by_run[e["run"]["runId"]] for e in events}
    # downstream of the raw data: the steps that consumed it and what followed (not its producer)
    assert states == {
        "churn": ["START", "FAIL"],
        "churn.train": ["START", "COMPLETE"],
        "churn.evaluate": ["START", "FAIL"],
    }
    times = [e["eventTime"] for e in events]
    assert times == sorted(times)


def test_steps_point_at_their_pipeline_run_and_carry_datasets(graph_store):
    events = _events(graph_store)
    pipeline_run = openlineage_run_id("nightly-7")
    assert pipeline_run == str(uuid.uuid5(uuid.UUID("0b8e4f5e-7a43-5c2e-8f3b-6361732d6f6c"), "nightly-7"))
    train_done = next(e for e in events if e["job"]["name"] == "churn.train" and e["eventType"] == "COMPLETE")
    assert train_done["run"]["facets"]["parent"]["run"]["runId"] == pipeline_run
    assert train_done["run"]["facets"]["parent"]["job"]["name"] == "churn"
    [inp] = train_done["inputs"]
    [out] = train_done["outputs"]
    assert inp["namespace"] == graph_store.url and inp["name"] == "churn/ingest/raw"
    assert inp["facets"]["version"]["datasetVersion"] == "1"
    assert out["name"] == "churn/train/model"
    assert out["outputFacets"]["outputStatistics"]["size"] == graph_store.get_artifact_version("churn/train/model").size
    failed = next(e for e in events if e["job"]["name"] == "churn.evaluate" and e["eventType"] == "FAIL")
    assert failed["run"]["facets"]["errorMessage"]["message"].startswith("KeyError")
    assert openlineage_event(failed).run.facets["errorMessage"].programmingLanguage == "python"


def test_the_library_rejects_a_broken_event(graph_store):
    # The check above has teeth: the classes validate run ids and times.
    e = _events(graph_store)[0]
    with pytest.raises(ValueError):
        openlineage_event({**e, "run": {**e["run"], "runId": "not-a-uuid"}})
    with pytest.raises(ValueError):
        openlineage_event({**e, "eventTime": "yesterday"})


def test_openlineage_objects_for_emit(graph_store):
    objs = graph_store.lineage("churn/train/model@1", "up").openlineage_events(job_namespace="ml")
    assert all(isinstance(o, event_v2.RunEvent) for o in objs)
    assert {o.job.namespace for o in objs} == {"ml"}


def test_cli_openlineage_output_is_valid(tmp_path):
    url = str(tmp_path / "s")
    with cas.open_store(url) as store:
        with store.run("p") as run:
            with run.step("a") as s:
                v = s.save(b"x", "x")
            with run.step("b", inputs=[v]) as s:
                s.save(b"y", "y")
    out = CliRunner().invoke(cli, ["--store", url, "lineage", "p/b/y", "--format", "openlineage"])
    assert out.exit_code == 0
    events = json.loads(out.output)
    assert len(events) == 6  # pipeline run + two steps, START and COMPLETE each
    for e in events:
        assert Serde.to_dict(openlineage_event(e)) == e

"""OpenLineage export, checked against the openlineage-python package's own event classes."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from click.testing import CliRunner
from servers import LineageReceiver as Receiver

import cas
from cas.cli import cli
from cas.lineage import live as live_lineage
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
    # the dataset version is the content's BLAKE3 digest
    assert (
        inp["facets"]["version"]["datasetVersion"]
        == f"blake3:{graph_store.get_artifact_version('churn/ingest/raw@1').digest.hex}"
    )
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


# -- live: events sent while runs execute, to a receiver on 127.0.0.1 ----------------------------------


def _got(receiver: Receiver) -> list[dict]:
    """What the receiver got once every event emitted so far was sent (cas sends from a thread)."""
    assert live_lineage.flush(30)
    return receiver.events


def _ours(event: dict) -> dict:
    """An event as cas built it: without the facets the OpenLineage client adds (tags, environment)."""
    run_facets = {k: v for k, v in event["run"]["facets"].items() if k in ("parent", "errorMessage")}
    return {**event, "run": {**event["run"], "facets": run_facets}, "job": {**event["job"], "facets": {}}}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def no_openlineage_config(monkeypatch, tmp_path):
    """No standard OpenLineage configuration anywhere the client looks."""
    import os

    for key in list(os.environ):
        if key.startswith("OPENLINEAGE"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def _pipeline(store):
    with pytest.raises(KeyError):
        with store.run("churn", run_id="live-1") as run:
            with run.step("ingest") as s:
                raw = s.save(b"raw", "raw")
            with run.step("train", inputs=[raw]) as s:
                s.save({"w": [1.0, 2.0]}, "model")
            with run.step("evaluate", inputs=["churn/train/model@1"]):
                raise KeyError("auc")


def test_live_events_follow_the_run_as_it_happens(local_store, receiver, no_openlineage_config, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    with local_store.run("churn", run_id="live-0") as run:
        assert [(e["job"]["name"], e["eventType"]) for e in _got(receiver)] == [("churn", "START")]
        with run.step("ingest") as s:
            s.save(b"raw", "raw")
            assert _got(receiver)[-1]["eventType"] == "START" and _got(receiver)[-1]["job"]["name"] == "churn.ingest"
        done = _got(receiver)[-1]
        assert (done["job"]["name"], done["eventType"]) == ("churn.ingest", "COMPLETE")
        [out] = done["outputs"]
        digest = local_store.get_artifact_version("churn/ingest/raw@1").digest.hex
        assert out["name"] == "churn/ingest/raw" and out["facets"]["version"]["datasetVersion"] == f"blake3:{digest}"
        assert out["namespace"] == local_store.url
    assert _got(receiver)[-1]["job"]["name"] == "churn" and _got(receiver)[-1]["eventType"] == "COMPLETE"
    for e in map(_ours, _got(receiver)):  # what arrived is a valid 2-0-2 RunEvent, as the export makes them
        assert Serde.to_dict(openlineage_event(e)) == e


def test_live_events_are_the_exported_ones_fail_included(local_store, receiver, no_openlineage_config, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    _pipeline(local_store)
    states = [(e["job"]["name"], e["eventType"]) for e in _got(receiver)]
    assert states == [
        ("churn", "START"),
        ("churn.ingest", "START"),
        ("churn.ingest", "COMPLETE"),
        ("churn.train", "START"),
        ("churn.train", "COMPLETE"),
        ("churn.evaluate", "START"),
        ("churn.evaluate", "FAIL"),
        ("churn", "FAIL"),
    ]
    exported = local_store.lineage("churn/ingest/raw@1", "down").to_openlineage()
    key = lambda e: (e["run"]["runId"], e["eventType"])  # noqa: E731
    received = {key(e): _ours(e) for e in _got(receiver)}
    assert len(exported) == 6 and all(
        received[key(e)] == e for e in exported
    )  # the export (raw's consumers) is what was sent


def test_nothing_is_emitted_without_the_standard_config(local_store, receiver, no_openlineage_config, monkeypatch):
    import sys

    sys.modules.pop("openlineage.client.client", None)  # prove the client is not even imported
    _pipeline(local_store)
    assert _got(receiver) == []
    assert "openlineage.client.client" not in sys.modules
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")  # the client's own off switch
    with local_store.run("other") as run, run.step("s") as s:
        s.save(b"x", "x")
    assert _got(receiver) == []


def test_a_config_file_is_the_standard_config_too(local_store, receiver, no_openlineage_config, tmp_path, monkeypatch):
    (tmp_path / "openlineage.yml").write_text(f"transport:\n  type: http\n  url: {receiver.url}\n")
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "team-ml")
    with local_store.run("churn") as run, run.step("s") as s:
        s.save(b"x", "x")
    assert [e["eventType"] for e in _got(receiver)] == ["START", "START", "COMPLETE", "COMPLETE"]
    assert {e["job"]["namespace"] for e in receiver.events} == {"team-ml"}


def test_emission_failures_never_fail_the_pipeline(local_store, no_openlineage_config, tmp_path, caplog):
    down = Receiver(status=500)
    # the client's own retry settings, from its standard config file (fail fast here)
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: http\n  url: {down.url}\n  retry:\n    total: 1\n    backoff_factor: 0\n")
    try:
        with local_store.run("churn") as run, run.step("s") as s:
            s.save(b"x", "x")
        assert live_lineage.flush(60)
        down.close()  # and a receiver that is gone altogether
        with local_store.run("churn") as run, run.step("s") as s:
            s.save(b"y", "y")
        assert live_lineage.flush(60)
    finally:
        if down.thread.is_alive():
            down.close()
    assert [r.status for r in local_store.list_runs("churn")] == ["completed", "completed"]
    assert "could not emit an OpenLineage event" in caplog.text


def test_a_slow_receiver_never_slows_the_pipeline(local_store, no_openlineage_config, monkeypatch):
    slow = Receiver(delay=1.0)
    monkeypatch.setenv("OPENLINEAGE_URL", slow.url)
    try:
        started = time.monotonic()
        with local_store.run("churn") as run, run.step("s") as s:
            s.save(b"x", "x")
        assert time.monotonic() - started < 1.5  # four events, a second each: sent in the background
        assert _got(slow) and len(slow.events) == 4
    finally:
        slow.close()

"""Runs and steps: recording, failure, the framework form, FlowyML's materialize, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import cas
from cas.cli import cli
from cas.errors import ArtifactNotFoundError, InvalidNameError, RunError, UnsupportedDataError
from cas.lineage.record import step_run_id_for


def _backend_refs(store: cas.Store, kind: str = "") -> list[str]:
    return sorted(path for path, _ in store.records.iter_refs(kind))


def _churn(store: cas.Store, run_id: str | None = None):
    with store.run("churn", params={"lr": 0.1}, run_id=run_id) as run:
        with run.step("ingest") as step:
            raw = step.save(b"id,churned\n1,0\n2,1\n", "raw")
        with run.step("features", inputs=[raw]) as step:
            features = step.save({"rows": 2}, "table")
        with run.step("train", inputs=[features]) as step:
            model = step.save("model-bytes", "model")
    return run, raw, features, model


def test_run_records_steps_with_their_inputs_and_outputs(store):
    run, raw, features, model = _churn(store)
    assert (raw.name, features.name, model.name) == ("churn/ingest/raw", "churn/features/table", "churn/train/model")

    got = store.get_run(run.id)
    assert got.pipeline == "churn" and got.status == "completed" and got.params == {"lr": 0.1}
    assert got.started_at <= got.ended_at
    assert [s.step for s in got.steps] == ["ingest", "features", "train"]
    assert [v.ref for v in got.step("ingest").outputs] == ["churn/ingest/raw@1"]
    assert [v.ref for v in got.step("features").inputs] == ["churn/ingest/raw@1"]
    assert [v.ref for v in got.step("train").inputs] == ["churn/features/table@1"]
    assert all(s.status == "completed" for s in got.steps)
    assert [v.ref for v in got.outputs] == [raw.ref, features.ref, model.ref]

    assert model.run_id == run.id
    assert model.producer_step.step == "train"
    assert model.producer_step.id == step_run_id_for(run.id, "train")
    assert model.run.id == run.id
    assert [v.ref for v in model.inputs] == ["churn/features/table@1"]
    assert raw.inputs == []


def test_a_version_saved_outside_any_run_has_no_producer(lstore):
    v = lstore.save(b"x", "p/s/a")
    assert v.run_id is None and v.producer_step is None and v.run is None and v.inputs == []


def test_every_event_is_a_record_in_the_backend(store):
    run, *_ = _churn(store)
    refs = _backend_refs(store, f"runs/{run.id}")
    seqs = sorted(int(r.rsplit("/", 1)[1]) for r in refs)
    assert seqs == list(range(len(seqs)))  # claimed without gaps
    refs = [f"refs/runs/{run.id}/{n}" for n in seqs]
    types = [store.records.get_record(store.records.read_ref(ref), ref)["type"] for ref in refs]
    assert types[0] == "run_start" and types[-1] == "run_end"
    assert types.count("step_start") == 3 and types.count("step_end") == 3


def test_reading_a_version_inside_a_step_records_it_as_an_input(store):
    a = store.save(b"a", "p/src/a")
    b = store.save({"k": 1}, "p/src/b")
    c = store.save(b"c", "p/src/c")
    store.save(b"d", "p/src/d")
    e = store.save(b"e", "p/src/e")
    a.read_bytes()  # outside any step: not recorded anywhere
    with store.run("p") as run:
        with run.step("use") as step:
            assert store.get_artifact_version("p/src/a").read_bytes() == b"a"
            assert b.load() == {"k": 1}
            with c.open() as f:
                f.read()
            step.load("p/src/d")
            store.get_artifact_version(e.ref)  # looking a version up is not reading it
            own = step.save(b"out", "out")
            own.read_bytes()  # reading its own output is not an input
            a.read_bytes()  # twice: recorded once
    inputs = [v.ref for v in store.get_run(run.id).step("use").inputs]
    assert inputs == ["p/src/a@1", "p/src/b@1", "p/src/c@1", "p/src/d@1"]
    assert [v.ref for v in own.inputs] == inputs


def test_store_save_inside_a_step_is_an_output_of_that_step(lstore):
    with lstore.run("p") as run:
        with run.step("s"):
            v = lstore.save(b"x", "p/s/direct")
    assert v.run_id == run.id and v.producer_step.step == "s"


def test_a_failing_step_marks_step_and_run_failed_and_keeps_what_it_saved(store):
    with pytest.raises(ZeroDivisionError):
        with store.run("churn") as run:
            with run.step("ingest") as step:
                raw = step.save(b"raw", "raw")
            with run.step("train", inputs=[raw]) as step:
                partial = step.save(b"half a model", "checkpoint")
                1 / 0  # noqa: B018
    got = store.get_run(run.id)
    assert got.status == "failed"
    assert got.step("ingest").status == "completed"
    train = got.step("train")
    assert train.status == "failed" and train.error.startswith("ZeroDivisionError")
    kept = store.get_artifact_version("churn/train/checkpoint")
    assert kept.read_bytes() == b"half a model" and kept == partial
    assert kept.producer_step.status == "failed"
    assert [v.ref for v in kept.inputs] == [raw.ref]


def test_a_caught_step_failure_still_fails_the_run(lstore):
    with lstore.run("p") as run:
        with pytest.raises(ValueError):
            with run.step("flaky"):
                raise ValueError("boom")
        with run.step("after"):
            pass
    got = lstore.get_run(run.id)
    assert got.status == "failed" and "flaky" in got.error
    assert got.step("flaky").status == "failed" and got.step("after").status == "completed"


def test_given_run_id_is_used_and_a_taken_one_is_refused(store):
    run, *_ = _churn(store, run_id="nightly-2024-06-01")
    assert store.get_run("nightly-2024-06-01").status == "completed"
    before = _backend_refs(store)
    with pytest.raises(RunError, match="already exists"):
        store.run("churn", run_id="nightly-2024-06-01")
    assert _backend_refs(store) == before


def test_run_ids_are_claimed_across_machines(open_test_store, tmp_path):
    a = open_test_store(index=str(tmp_path / "a.sqlite"))
    b = open_test_store(index=str(tmp_path / "b.sqlite"))
    with a.run("p", run_id="shared-id"):
        pass
    # b's index has never heard of the run; the create-only claim still refuses it.
    with pytest.raises(RunError, match="already exists"):
        b.run("p", run_id="shared-id")
    assert b.get_run("shared-id").status == "completed"  # learned from the backend


@pytest.mark.parametrize("bad", ["../x", "", "a/b", "x" * 200, "with space"])
def test_invalid_run_ids_are_refused_before_writing(lstore, bad):
    before = _backend_refs(lstore)
    with pytest.raises(InvalidNameError):
        lstore.run("p", run_id=bad)
    with pytest.raises(InvalidNameError):
        lstore.save(b"x", "p/s/a", run_id=bad)
    assert _backend_refs(lstore) == before


def test_step_names_are_unique_within_a_run_and_ended_things_stay_ended(lstore):
    with lstore.run("p") as run:
        with run.step("s") as step:
            pass
        with pytest.raises(RunError, match="already ran"):
            run.step("s")
        with pytest.raises(RunError, match="has ended"):
            step.save(b"late", "late")
        with pytest.raises(InvalidNameError):
            run.step("bad name")
    with pytest.raises(RunError, match="has ended"):
        run.step("t")
    assert "p/s/late" not in lstore.list_artifacts("p/")


def test_framework_form_records_run_step_and_inputs(store):
    raw = store.save(b"raw", "flow/ingest/raw")
    extra = store.save(b"extra", "flow/ingest/extra")
    m1 = store.save(b"m1", "flow/train/model", run_id="r-1", inputs=[raw])
    m2 = store.save(b"m2", "flow/train/metrics", run_id="r-1", step="train", inputs=["flow/ingest/extra@latest"])
    assert m1.step_run_id == m2.step_run_id == step_run_id_for("r-1", "train")
    got = store.get_run("r-1")
    assert got.pipeline == "flow" and got.status == "running"
    train = got.step("train")
    assert train.status == "running"
    assert [v.ref for v in train.inputs] == [extra.ref, raw.ref]
    assert [v.ref for v in train.outputs] == [m2.ref, m1.ref]
    store.end_step("r-1", "train")
    store.end_run("r-1", "failed", error="evaluation below threshold")
    got = store.get_run("r-1")
    assert got.step("train").status == "completed"
    assert got.status == "failed" and got.error == "evaluation below threshold"
    with pytest.raises(RunError):
        store.end_step("r-1", "never-ran")
    with pytest.raises(RunError):
        store.end_run("no-such-run")
    with pytest.raises(InvalidNameError):
        store.end_run("r-1", "exploded")


def test_framework_form_from_two_machines_shares_one_step_run(open_test_store, tmp_path):
    a = open_test_store(index=str(tmp_path / "a.sqlite"))
    b = open_test_store(index=str(tmp_path / "b.sqlite"))
    va = a.save(b"shard-0", "dist/train/shard0", run_id="dist-run", step="train")
    vb = b.save(b"shard-1", "dist/train/shard1", run_id="dist-run", step="train")
    assert va.step_run_id == vb.step_run_id
    for s in (a, b):
        s.refresh()
        got = s.get_run("dist-run")
        assert [st.step for st in got.steps] == ["train"]
        assert sorted(v.ref for v in got.step("train").outputs) == ["dist/train/shard0@1", "dist/train/shard1@1"]


def test_framework_form_bad_arguments_leave_the_store_unchanged(lstore):
    lstore.save(b"raw", "flow/ingest/raw")
    before = (_backend_refs(lstore), lstore.list_runs())
    with pytest.raises(ArtifactNotFoundError):
        lstore.save(b"m", "flow/train/model", run_id="r", inputs=["flow/ingest/missing@1"])
    with pytest.raises(RunError, match="need run_id"):
        lstore.save(b"m", "flow/train/model", step="train")
    with pytest.raises(RunError, match="need run_id"):
        lstore.save(b"m", "flow/train/model", inputs=["flow/ingest/raw@1"])
    with pytest.raises(UnsupportedDataError):
        lstore.save(object(), "flow/train/model", run_id="r")
    with pytest.raises(InvalidNameError):
        lstore.save(b"m", "flow/train/model", run_id="r", inputs=[42])
    assert (_backend_refs(lstore), lstore.list_runs()) == before


def test_flowyml_materialize(lstore):
    path = lstore.materialize({"auc": 0.91}, "metrics", run_id="flowyml-run-7", step_name="evaluate")
    assert path == "cas://default/evaluate/metrics/1"
    v = lstore.get_artifact_version("default/evaluate/metrics@1")
    assert v.load() == {"auc": 0.91}
    assert v.producer_step.step == "evaluate"
    assert lstore.get_run("flowyml-run-7").pipeline == "default"
    path2 = lstore.materialize(b"weights", "model", "flowyml-run-7", "train", project_name="churn")
    assert path2 == "cas://churn/train/model/1"
    assert [s.step for s in lstore.get_run("flowyml-run-7").steps] == ["evaluate", "train"]


def test_list_runs_newest_first_with_filters(lstore):
    ids = []
    for i in range(3):
        with lstore.run("a" if i != 1 else "b") as run:
            ids.append(run.id)
    with pytest.raises(ZeroDivisionError):
        with lstore.run("a") as bad:
            1 / 0  # noqa: B018
    assert [r.id for r in lstore.list_runs()] == [bad.id, ids[2], ids[1], ids[0]]
    assert [r.id for r in lstore.list_runs("a")] == [bad.id, ids[2], ids[0]]
    assert [r.id for r in lstore.list_runs(status="failed")] == [bad.id]
    assert [r.id for r in lstore.list_runs(limit=1)] == [bad.id]
    with pytest.raises(RunError):
        lstore.get_run("nope")


def test_run_params_must_be_json(lstore):
    with pytest.raises(InvalidNameError):
        lstore.run("p", params={"f": object()})
    with pytest.raises(InvalidNameError):
        lstore.run("bad/pipeline")
    assert lstore.list_runs() == []


# -- CLI ---------------------------------------------------------------------------------


def test_cli_run_list_and_show(tmp_path):
    url = str(tmp_path / "store")
    with cas.open_store(url) as store:
        run, raw, features, model = _churn(store, run_id="cli-run")
    runner = CliRunner()
    out = runner.invoke(cli, ["--store", url, "run", "list"])
    assert out.exit_code == 0 and "cli-run" in out.output and "completed" in out.output
    listed = json.loads(runner.invoke(cli, ["--store", url, "run", "list", "--json"]).output)
    assert [r["id"] for r in listed] == ["cli-run"] and len(listed[0]["steps"]) == 3

    shown = runner.invoke(cli, ["--store", url, "run", "show", "cli-run"])
    assert shown.exit_code == 0
    assert "in   churn/ingest/raw@1" in shown.output and "out  churn/train/model@1" in shown.output
    data = json.loads(runner.invoke(cli, ["--store", url, "run", "show", "cli-run", "--json"]).output)
    assert data["params"] == {"lr": 0.1}
    assert data["steps"][2]["inputs"] == ["churn/features/table@1"]

    missing = runner.invoke(cli, ["--store", url, "run", "show", "nope"])
    assert missing.exit_code == 1 and missing.output.strip() == "cas: error: no run nope"
    for args in (["run", "--help"], ["run", "list", "--help"], ["run", "show", "--help"]):
        assert runner.invoke(cli, args).exit_code == 0


_WRITER = """
import sys, cas
url, index, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = cas.open_store(url, index=index)
for i in range(4):
    store.save(f"w{worker}-{i}".encode(), f"race/s{worker}/out", run_id="race-run", step=f"s{worker}")
store.end_step("race-run", f"s{worker}")
store.close()
"""


def test_concurrent_writers_to_one_run_lose_no_event(tmp_path):
    url = str(tmp_path / "store")
    cas.open_store(url).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, str(tmp_path / f"idx{w}.sqlite"), str(w)])
        for w in range(4)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    with cas.open_store(url, index=str(tmp_path / "reader.sqlite")) as store:
        got = store.get_run("race-run")
        assert sorted(s.step for s in got.steps) == ["s0", "s1", "s2", "s3"]
        for s in got.steps:
            assert s.status == "completed" and len(s.outputs) == 4
        seqs = sorted(int(r.rsplit("/", 1)[1]) for r in _backend_refs(store, "runs/race-run"))
        assert seqs == list(range(len(seqs)))  # every event claimed its own seq, no gaps


def test_end_status_does_not_depend_on_the_order_records_are_applied(local_store, tmp_path):
    """refresh applies run events in journal order, reindex in seq order; two
    writers can claim seqs in one order and journal them in the other.  The end
    event with the highest seq must win either way."""
    local_store.save(b"x", "pipe/step/a", run_id="r1")
    local_store.end_step("r1", "step", "failed")
    local_store.end_step("r1", "step", "completed")
    local_store.end_run("r1", "failed")
    local_store.end_run("r1", "completed")
    expected = local_store.get_run("r1")
    assert expected.status == "completed"
    assert [s.status for s in expected.steps] == ["completed"]

    # Apply every record again into a fresh index, newest first.
    with cas.open_store(local_store.backend.root, index=str(tmp_path / "reversed.sqlite")) as other:
        records = list(local_store.index.iter_records())
        with other.index.write() as c:
            other.index.clear(c)
            for ref, digest in reversed(records):
                other._apply(c, ref, digest, other.records.get_record(digest, ref))
        again = other.get_run("r1")
        assert again.status == "completed"
        assert [s.status for s in again.steps] == ["completed"]

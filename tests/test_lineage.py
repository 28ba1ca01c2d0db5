"""Lineage queries (recursive CTEs on the index), deletion, reindex, and the exports."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

import cas
from cas.cli import cli
from cas.lineage.events import publish_step_input as _add_inputs


def _diamond(store: cas.Store):
    """raw -> clean -> {stats, features}; {stats, features} -> model; plus an unrelated artifact."""
    store.save(b"unrelated", "other/x/y")
    with store.run("churn") as run:
        with run.step("ingest") as s:
            raw = s.save(b"raw-data", "raw")
        with run.step("clean", inputs=[raw]) as s:
            clean = s.save(b"clean-data", "table")
        with run.step("stats", inputs=[clean]) as s:
            stats = s.save({"mean": 1.5}, "summary")
        with run.step("features", inputs=[clean]) as s:
            features = s.save(b"features", "table")
        with run.step("train", inputs=[stats, features]) as s:
            model = s.save(b"model", "model")
    return run, {"raw": raw, "clean": clean, "stats": stats, "features": features, "model": model}


def _chain(store: cas.Store, n: int):
    """n steps in a row: v0 -> step1 -> v1 -> ... -> vn."""
    with store.run("deep") as run:
        with run.step("s0") as s:
            prev = s.save(b"v0", "v0")
        versions = [prev]
        for i in range(1, n + 1):
            with run.step(f"s{i}", inputs=[prev]) as s:
                prev = s.save(f"v{i}".encode(), f"v{i}")
            versions.append(prev)
    return versions


def _assert_no_dangling_edges(g):
    for e in g.edges:
        if e.kind == "input":
            assert e.source in g.versions and e.target in g.steps
        else:
            assert e.source in g.steps and e.target in g.versions


def test_upstream_reaches_the_raw_data_through_every_path(store):
    _, v = _diamond(store)
    g = store.lineage(v["model"], "up")
    assert g.root == "churn/train/model@1"
    assert sorted(g.versions) == sorted(x.ref for x in v.values())
    assert sorted(s.step for s in g.steps.values()) == ["clean", "features", "ingest", "stats", "train"]
    assert "other/x/y@1" not in g.versions
    _assert_no_dangling_edges(g)
    train = g.producer("churn/train/model@1")
    assert sorted(x.id for x in g.inputs_of(train.id)) == ["churn/features/table@1", "churn/stats/summary@1"]
    assert g.producer("churn/ingest/raw@1").step == "ingest"
    assert len(g.edges) == 5 + 5  # 5 outputs, 5 inputs (train has two)


def test_downstream_answers_what_was_derived_from_a_dataset(store):
    _, v = _diamond(store)
    g = store.lineage(v["raw"], "down")
    assert sorted(g.versions) == sorted(x.ref for x in v.values())
    _assert_no_dangling_edges(g)
    assert [s.step for s in g.consumers("churn/ingest/raw@1")] == ["clean"]
    leaf = store.lineage(v["model"], "down")
    assert list(leaf.versions) == ["churn/train/model@1"] and not leaf.steps and not leaf.edges
    # stats is derived from raw, but raw is not derived from stats
    assert "churn/ingest/raw@1" not in store.lineage(v["stats"], "down").versions


def test_a_consumer_that_produced_nothing_still_appears_downstream(lstore):
    raw = lstore.save(b"raw", "p/ingest/raw")
    with pytest.raises(RuntimeError):
        with lstore.run("p") as run:
            with run.step("validate", inputs=[raw]):
                raise RuntimeError("schema mismatch")
    g = lstore.lineage(raw, "down")
    [step] = g.steps.values()
    assert step.step == "validate" and step.status == "failed" and step.run_id == run.id


def test_depth_counts_steps(lstore):
    versions = _chain(lstore, 5)
    top = versions[-1]
    assert sorted(lstore.lineage(top, "up", depth=0).versions) == [top.ref]
    assert not lstore.lineage(top, "up", depth=0).steps
    g2 = lstore.lineage(top, "up", depth=2)
    assert sorted(g2.versions) == sorted(v.ref for v in versions[3:])
    assert sorted(s.step for s in g2.steps.values()) == ["s4", "s5"]
    _assert_no_dangling_edges(g2)
    assert len(lstore.lineage(top, "up").versions) == 6
    assert len(lstore.lineage(top, "up", depth=99).versions) == 6
    d1 = lstore.lineage(versions[0], "down", depth=1)
    assert sorted(d1.versions) == ["deep/s0/v0@1", "deep/s1/v1@1"]
    with pytest.raises(ValueError):
        lstore.lineage(top, "up", depth=-1)
    with pytest.raises(ValueError):
        lstore.lineage(top, "sideways")


def test_a_100_step_trace_is_complete(lstore):
    versions = _chain(lstore, 100)
    up = lstore.lineage(versions[-1], "up")
    assert len(up.versions) == 101 and len(up.steps) == 101
    down = lstore.lineage(versions[0], "down")
    assert len(down.versions) == 101 and len(down.steps) == 100
    _assert_no_dangling_edges(up)
    _assert_no_dangling_edges(down)


def test_cycles_between_concurrent_steps_terminate(lstore):
    # Step A saves x1; a concurrent step B reads x1 and saves y; A then reads y
    # and saves x2.  At the step level A and B feed each other.
    with lstore.run("p") as run_a, lstore.run("q") as run_b:
        with run_a.step("a") as a:
            x1 = a.save(b"x1", "x1")
            with run_b.step("b") as b:
                x1.read_bytes()
                y = b.save(b"y", "y")
            y.read_bytes()
            x2 = a.save(b"x2", "x2")
    assert [v.ref for v in x1.inputs] == ["q/b/y@1"]  # x1's producer A later consumed y
    for depth in (None, 50):
        g = lstore.lineage(x2, "up", depth=depth)
        assert sorted(g.versions) == ["p/a/x1@1", "p/a/x2@1", "q/b/y@1"]
        _assert_no_dangling_edges(g)
        assert "(see above)" in g.to_text()
        d = lstore.lineage(x1, "down", depth=depth)
        assert sorted(d.versions) == ["p/a/x1@1", "p/a/x2@1", "q/b/y@1"]


def test_deleting_a_version_keeps_its_lineage_marked_deleted(store):
    _, v = _diamond(store)
    store.delete_version("churn/clean/table", 1)
    up = store.lineage(v["model"], "up")
    assert sorted(up.versions) == sorted(x.ref for x in v.values())
    assert up.versions["churn/clean/table@1"].deleted is True
    assert up.versions["churn/ingest/raw@1"].deleted is False
    _assert_no_dangling_edges(up)
    down = store.lineage(v["raw"], "down")
    assert down.versions["churn/clean/table@1"].deleted and "churn/train/model@1" in down.versions
    # the deleted version's own lineage is still reachable by name
    own = store.lineage("churn/clean/table@1", "up")
    assert own.versions["churn/clean/table@1"].deleted and "churn/ingest/raw@1" in own.versions
    assert "[deleted]" in up.to_text()
    assert [x.ref for x in v["stats"].inputs] == ["churn/clean/table@1"]
    assert v["stats"].inputs[0].deleted


def test_lineage_survives_reindex_and_a_new_index(store, open_test_store, tmp_path):
    _, v = _diamond(store)
    store.delete_version("churn/features/table", 1)
    before_up = store.lineage(v["model"], "up").to_dict()
    before_down = store.lineage(v["raw"], "down").to_dict()
    before_run = store.get_run(v["model"].run_id).to_dict()
    store.reindex()
    assert store.lineage(v["model"], "up").to_dict() == before_up
    assert store.lineage(v["raw"], "down").to_dict() == before_down
    assert store.get_run(v["model"].run_id).to_dict() == before_run
    fresh = open_test_store(index=str(tmp_path / "fresh-index.sqlite"))  # built from the backend alone
    assert fresh.lineage("churn/train/model@1", "up").to_dict() == before_up
    assert fresh.lineage("churn/ingest/raw@1", "down").to_dict() == before_down
    assert fresh.get_run(v["model"].run_id).to_dict() == before_run


def test_a_consumed_version_unknown_to_this_index_is_a_node(store):
    # As after a partial sync: a step's input record names a version this store lacks.
    with store.run("p") as run:
        with run.step("s") as step:
            out = step.save(b"out", "out")
    _add_inputs(store, run.id, out.step_run_id, "s", [("elsewhere/ingest/raw", 7)])
    g = store.lineage(out, "up")
    ghost = g.versions["elsewhere/ingest/raw@7"]
    assert ghost.known is False and ghost.digest is None
    _assert_no_dangling_edges(g)
    assert "not in this index" in g.to_text()
    assert store.get_run(run.id).step("s").unknown_inputs == ("elsewhere/ingest/raw@7",)


def test_lineage_travels_with_sync(lstore, tmp_path):
    run, v = _diamond(lstore)
    lstore.delete_version("churn/stats/summary", 1)
    expected = lstore.lineage(v["model"], "up").to_dict()
    with cas.open_store(str(tmp_path / "mirror")) as mirror:
        lstore.sync_to(mirror)
        assert mirror.lineage("churn/train/model@1", "up").to_dict() == expected
        assert mirror.get_run(run.id).to_dict() == lstore.get_run(run.id).to_dict()
    with cas.open_store(str(tmp_path / "partial")) as partial:
        lstore.sync_to(partial, ["churn/train/*"])  # the model and its run, not the upstream versions
        g = partial.lineage("churn/train/model@1", "up")
        _assert_no_dangling_edges(g)
        assert g.versions["churn/train/model@1"].known
        assert not g.versions["churn/features/table@1"].known  # consumed, recorded, but not copied
        # the walk stops at versions this store does not hold: their producers are unknown here
        assert sorted(g.versions) == ["churn/features/table@1", "churn/stats/summary@1", "churn/train/model@1"]
        assert [s.step for s in partial.get_run(run.id).steps] == ["ingest", "clean", "stats", "features", "train"]


def test_lineage_reads_only_the_index(local_store):
    _, v = _diamond(local_store)
    expected = local_store.lineage(v["model"], "up").to_dict()
    shutil.rmtree(local_store.backend.abspath("blobs"))  # no record or content left to read
    assert local_store.lineage(v["model"], "up").to_dict() == expected


# -- exports -----------------------------------------------------------------------------


def test_json_export_lists_every_node_and_edge(lstore):
    _, v = _diamond(lstore)
    g = lstore.lineage(v["model"], "up")
    data = json.loads(g.to_json())
    assert data["root"] == "churn/train/model@1" and data["direction"] == "up" and data["depth"] is None
    ids = {n["id"] for n in data["nodes"]}
    assert ids == set(g.versions) | set(g.steps)
    assert {n["type"] for n in data["nodes"]} == {"version", "step"}
    assert len(data["edges"]) == len(g.edges)
    assert all(e["source"] in ids and e["target"] in ids for e in data["edges"])
    assert data["nodes"][0]["id"] == "churn/train/model@1"  # nearest first


def test_dot_export(lstore):
    _, v = _diamond(lstore)
    g = lstore.lineage(v["model"], "up")
    dot = g.to_dot()
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == len(g.edges)
    for ref in g.versions:
        assert f'"{ref}" [shape="box"' in dot
    for sid in g.steps:
        assert f'"step:{sid}" [shape="ellipse"' in dot


def test_mermaid_export(lstore):
    _, v = _diamond(lstore)
    lstore.delete_version("churn/stats/summary", 1)
    g = lstore.lineage(v["model"], "up")
    mm = g.to_mermaid().splitlines()
    assert mm[0] == "flowchart LR"
    assert sum(1 for line in mm if " --> " in line) == len(g.edges)
    assert sum(1 for line in mm if line.strip().startswith("v") and '["' in line) == len(g.versions)
    assert any(line.strip().startswith("class ") and line.strip().endswith(" deleted") for line in mm)


def test_text_export_is_a_tree_from_the_root(lstore):
    _, v = _diamond(lstore)
    text = lstore.lineage(v["model"], "up").to_text().splitlines()
    assert text[0].startswith("churn/train/model@1")
    assert text[1].startswith("└── produced by step train")
    assert any("churn/ingest/raw@1" in line for line in text)
    assert any("(see above)" in line for line in text)  # clean@1 is reached through stats and features
    down = lstore.lineage(v["raw"], "down").to_text()
    assert "consumed by step clean" in down


# -- CLI ---------------------------------------------------------------------------------


def test_cli_lineage_formats(tmp_path):
    url = str(tmp_path / "store")
    with cas.open_store(url) as store:
        _, v = _diamond(store)
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(cli, ["--store", url, "lineage", *args])
        assert result.exit_code == 0, result.output
        return result.output

    text = run("churn/train/model")
    assert text.startswith("churn/train/model@1") and "churn/ingest/raw@1" in text
    data = json.loads(run("churn/train/model@1", "--format", "json"))
    assert len(data["nodes"]) == 10
    assert json.loads(run("churn/train/model", "--json")) == data
    assert run("churn/ingest/raw@1", "--down", "--format", "dot").startswith("digraph lineage {")
    assert run("churn/ingest/raw@1", "--down", "--format", "mermaid").startswith("flowchart LR")
    shallow = json.loads(run("churn/train/model", "--depth", "1", "--json"))
    assert sorted(n["id"] for n in shallow["nodes"] if n["type"] == "version") == [
        "churn/features/table@1",
        "churn/stats/summary@1",
        "churn/train/model@1",
    ]
    events = json.loads(run("churn/train/model", "--format", "openlineage"))
    assert {e["eventType"] for e in events} == {"START", "COMPLETE"}

    bad = runner.invoke(cli, ["--store", url, "lineage", "churn/train/nope"])
    assert bad.exit_code == 1 and bad.output.startswith("cas: error: ") and "Traceback" not in bad.output
    bad_depth = runner.invoke(cli, ["--store", url, "lineage", "churn/train/model", "--depth", "-1"])
    assert bad_depth.exit_code == 2
    assert runner.invoke(cli, ["lineage", "--help"]).exit_code == 0

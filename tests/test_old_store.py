"""A store written by an older cas still reads the same.

tests/fixtures/format1-store/ was written once by cas at commit f1d96bd5
(tests/fixtures/make_format1_store.py) and is never regenerated: every
expected value below is a literal taken from what that cas wrote, so a change
that reads format 1 differently fails here.  Each test opens a copy in a tmp
directory, with a fresh index beside it: nothing is ever written into the repo.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import blake3
import pytest
from click.testing import CliRunner

import cas
import cas.core.records
import cas.core.tree
from cas.cli import cli

FIXTURE = Path(__file__).parent / "fixtures" / "format1-store"
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)

RUN1, RUN2 = "fixture-run-1", "fixture-run-2"
INGEST = "8e543fa1-6b16-5bef-9dba-4348f94f4ec7"
TRAIN = "5d4eea5b-8a2e-5f99-8464-8b0004afdf45"
EVALUATE = "17a0cd76-7feb-5a55-a556-4d159072942a"
REPORT = "021c03c3-c9bb-558c-9745-2ada59ea0fb2"

RAW1 = b"id,value\n1,10\n2,20\n"
RAW1_DIGEST = "b63ebc6569d9f56df258ee850bc23dcff7d846df710fa37b6f241fdd1f2dfd86"
MODEL_DIGEST = "08885184ce66eb570c409a0b15633d2591657ed241f08b83ebbc013ec2a79eea"
MODEL_FILES = {
    "README": ("b875d321ba164e902a247342e55d2c4dae57a5a74b7b2025190a12a85d893fa0", b"a model, as a directory\n"),
    "config.json": ("b409f3a18cadfc296dc1e0bc1af8cfc28be056f869f1affb710357a9740f2c07", b'{"layers": 2}\n'),
    "weights/extra/bias.bin": ("55155bf223f19edc6b1fa1e59f03a37735ef7d27097264431ad167ae492ec1f0", b"\x08\x09"),
    "weights/layer1.bin": ("f30f5ab28fe047904037f77b6da4fea1e27241c5d132638d8bedce9d40494f32", b"\x00\x01\x02\x03"),
    "weights/layer2.bin": ("f686a819d32d4ec884953f6be031c6705f561e465130754067858dc6d102506a", b"\x04\x05\x06\x07"),
}


def at(seconds: int) -> datetime:
    """The fixture's clock: record n was written at 2026-01-01T00:00:00Z + n seconds."""
    return EPOCH + timedelta(seconds=seconds)


# (name, version) -> digest, kind, size, materializer, created_at (s), metadata, run_id, step_run_id, deleted
VERSIONS = {
    ("demo/ingest/raw", 1): (RAW1_DIGEST, "blob", 19, "bytes", 3, {"rows": 2, "source": "fixture"}, RUN1, INGEST, False),
    ("demo/ingest/raw", 2): (
        "13ee770ba0cca19caa1d58828297e9e21d16c61615a5fdc79cf88a393a24d362", "blob", 24, "bytes", 14, {}, None, None, False,
    ),
    ("demo/ingest/raw", 3): (RAW1_DIGEST, "blob", 19, "bytes", 15, {}, None, None, True),
    ("demo/ingest/raw-link", 1): (RAW1_DIGEST, "blob", 19, None, 22, {"linked": True}, None, None, False),
    ("demo/notes/readme", 1): (
        "9b10a79dfed805d39543afddedfa130574ac483c436a26b99a1811547b506607", "blob", 22, "str", 21, {}, None, None, False,
    ),
    ("demo/report/summary", 1): (
        "b9990b852c9da12559f8ab75e40fb1a17a484b44b29b912b7eebfb83d64dd989", "blob", 12, "bytes", 26, {}, RUN2, REPORT, False,
    ),
    ("demo/train/metrics", 1): (
        "9f7373b4ab6fe73b48692b4e713d32d70da3193b027a5ed8dbab5185165677ce", "blob", 28, "json", 8, {}, RUN1, TRAIN, False,
    ),
    ("demo/train/model", 1): (MODEL_DIGEST, "tree", 48, "path", 6, {}, RUN1, TRAIN, False),
    ("demo/train/model-link", 1): (MODEL_DIGEST, "tree", 48, None, 23, {}, None, None, False),
}

CONTENT = {  # blob versions: bytes, and what load() gives
    ("demo/ingest/raw", 1): (RAW1, RAW1),
    ("demo/ingest/raw", 2): (b"id,value\n1,11\n2,21\n3,31\n", b"id,value\n1,11\n2,21\n3,31\n"),
    ("demo/ingest/raw-link", 1): (RAW1, RAW1),
    ("demo/notes/readme", 1): (b"notes for the fixture\n", "notes for the fixture\n"),
    ("demo/report/summary", 1): (b"summary: ok\n", b"summary: ok\n"),
    ("demo/train/metrics", 1): (b'{"accuracy":0.9,"loss":0.25}', {"accuracy": 0.9, "loss": 0.25}),
}

ARTIFACTS = [
    "demo/ingest/raw",
    "demo/ingest/raw-link",
    "demo/notes/readme",
    "demo/report/summary",
    "demo/train/metrics",
    "demo/train/model",
    "demo/train/model-link",
]

ALIASES = {"demo/ingest/raw": {"production": 2}, "demo/train/model": {"candidate": 1}}

# run id -> pipeline, status, error, params, started (s), ended (s), steps:
#   (step, step run id, status, error, started (s), ended (s), inputs, outputs)
RUNS = {
    RUN1: ("demo", "failed", "step evaluate failed", {"epochs": 3, "lr": 0.1}, 1, 13, [
        ("ingest", INGEST, "completed", None, 2, 4, [], ["demo/ingest/raw@1"]),
        ("train", TRAIN, "completed", None, 5, 9, ["demo/ingest/raw@1"], ["demo/train/metrics@1", "demo/train/model@1"]),
        ("evaluate", EVALUATE, "failed", "ValueError: evaluation failed", 10, 12,
         ["demo/ingest/raw@1", "demo/train/model@1"], []),
    ]),
    RUN2: ("demo", "completed", None, {}, 24, 28, [
        ("report", REPORT, "completed", None, 25, 27, ["demo/train/metrics@1"], ["demo/report/summary@1"]),
    ]),
}

LINEAGE_UP = {  # of demo/report/summary@1
    "versions": {"demo/report/summary@1", "demo/train/metrics@1", "demo/ingest/raw@1"},
    "steps": {REPORT, TRAIN, INGEST},
    "edges": {
        ("demo/ingest/raw@1", TRAIN, "input"),
        ("demo/train/metrics@1", REPORT, "input"),
        (REPORT, "demo/report/summary@1", "output"),
        (TRAIN, "demo/train/metrics@1", "output"),
        (INGEST, "demo/ingest/raw@1", "output"),
    },
}
LINEAGE_DOWN = {  # of demo/ingest/raw@1
    "versions": {"demo/ingest/raw@1", "demo/train/metrics@1", "demo/train/model@1", "demo/report/summary@1"},
    "steps": {TRAIN, EVALUATE, REPORT},
    "edges": {
        ("demo/ingest/raw@1", EVALUATE, "input"),
        ("demo/ingest/raw@1", TRAIN, "input"),
        ("demo/train/metrics@1", REPORT, "input"),
        ("demo/train/model@1", EVALUATE, "input"),
        (REPORT, "demo/report/summary@1", "output"),
        (TRAIN, "demo/train/metrics@1", "output"),
        (TRAIN, "demo/train/model@1", "output"),
    },
}


@pytest.fixture
def store_copy(tmp_path) -> Path:
    dest = tmp_path / "format1-store"
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture
def store(store_copy, tmp_path):
    with cas.open_store(store_copy, index=str(tmp_path / "index.sqlite"), create=False) as s:
        yield s


def check_everything(store: cas.Store) -> None:
    """Every answer the fixture gives, compared with the literals above."""
    assert store.store_id == "0123456789abcdef0123456789abcdef"
    check_answers(store)


def check_answers(store: cas.Store) -> None:
    """Every answer about the fixture's content (also of a store it was synced into)."""
    assert store.list_artifacts() == ARTIFACTS
    assert store.list_artifacts("demo/train/") == ["demo/train/metrics", "demo/train/model", "demo/train/model-link"]
    for name in ARTIFACTS:
        assert store.aliases(name) == ALIASES.get(name, {})
        listed = [(v.name, v.version) for v in store.list_versions(name, include_deleted=True)]
        assert listed == sorted(k for k in VERSIONS if k[0] == name)
        live = [(v.name, v.version) for v in store.list_versions(name)]
        assert live == [k for k in listed if not VERSIONS[k][8]]
    for v in store.list_versions("demo/ingest/raw", include_deleted=True):
        check_version(v)
    for (name, number), expected in VERSIONS.items():
        if expected[8]:
            continue
        v = store.get_artifact_version(name, number)
        check_version(v)
        if (name, number) in CONTENT:
            data, loaded = CONTENT[(name, number)]
            assert v.read_bytes() == data
            assert v.load() == loaded
        else:
            assert [(p, d.hex, s) for p, d, s in v.files()] == [(p, d, len(b)) for p, (d, b) in MODEL_FILES.items()]
            for path, (_, data) in MODEL_FILES.items():
                assert v.read_bytes(path) == data
    check_aliases(store)
    check_runs(store)
    check_lineage(store)


def check_version(v: cas.ArtifactVersion) -> None:
    digest, kind, size, materializer, created, metadata, run_id, step_run_id, deleted = VERSIONS[(v.name, v.version)]
    assert (v.digest.hex, v.kind, v.size, v.materializer) == (digest, kind, size, materializer)
    assert (v.created_at, v.metadata, v.run_id, v.step_run_id, v.deleted) == (at(created), metadata, run_id, step_run_id, deleted)


def check_aliases(store: cas.Store) -> None:
    assert store.get_artifact_version("demo/ingest/raw").version == 2  # latest: v3 is deleted
    assert store.get_artifact_version("demo/ingest/raw", "latest").version == 2
    assert store.get_artifact_version("demo/ingest/raw", "production").version == 2  # moved from 1
    assert store.get_artifact_version("demo/ingest/raw@production").read_bytes() == CONTENT[("demo/ingest/raw", 2)][0]
    assert store.get_artifact_version("demo/train/model@candidate").digest.hex == MODEL_DIGEST
    with pytest.raises(cas.VersionNotFoundError, match="no alias 'staging'"):  # removed
        store.get_artifact_version("demo/ingest/raw", "staging")
    with pytest.raises(cas.VersionDeletedError):
        store.get_artifact_version("demo/ingest/raw", 3)
    with pytest.raises(cas.VersionNotFoundError):
        store.get_artifact_version("demo/ingest/raw", 4)


def check_runs(store: cas.Store) -> None:
    assert [r.id for r in store.list_runs()] == [RUN2, RUN1]  # newest first
    assert [r.id for r in store.list_runs(status="failed")] == [RUN1]
    for run_id, (pipeline, status, error, params, started, ended, steps) in RUNS.items():
        r = store.get_run(run_id)
        assert (r.id, r.pipeline, r.status, r.error, r.params) == (run_id, pipeline, status, error, params)
        assert (r.started_at, r.ended_at, r.duration) == (at(started), at(ended), float(ended - started))
        for s, (step, sid, sstatus, serror, sstart, send, inputs, outputs) in zip(r.steps, steps, strict=True):
            assert (s.step, s.id, s.run_id, s.pipeline, s.status, s.error) == (step, sid, run_id, pipeline, sstatus, serror)
            assert (s.started_at, s.ended_at) == (at(sstart), at(send))
            assert sorted(v.ref for v in s.inputs) == inputs
            assert sorted(v.ref for v in s.outputs) == outputs
            assert s.unknown_inputs == ()
    metrics = store.get_artifact_version("demo/train/metrics", 1)
    assert metrics.producer_step.id == TRAIN
    assert metrics.run.id == RUN1
    assert [v.ref for v in metrics.inputs] == ["demo/ingest/raw@1"]
    assert store.get_artifact_version("demo/ingest/raw", 2).producer_step is None


def check_lineage(store: cas.Store) -> None:
    for ref, direction, expected in (("demo/report/summary@1", "up", LINEAGE_UP), ("demo/ingest/raw@1", "down", LINEAGE_DOWN)):
        graph = store.lineage(ref, direction)
        assert set(graph.versions) == expected["versions"]
        assert set(graph.steps) == expected["steps"]
        assert {(e.source, e.target, e.kind) for e in graph.edges} == expected["edges"]
    assert store.lineage("demo/report/summary@1", "up", depth=1).producer("demo/report/summary@1").id == REPORT
    assert store.lineage("demo/ingest/raw@3").edges == ()  # a deleted version keeps its (empty) lineage


class TestOldStore:
    def test_fixture_is_only_the_format(self):
        """The committed fixture holds what format 1 puts in a backend: no index, no spool files."""
        top = sorted(p.name for p in FIXTURE.iterdir())
        assert top == ["blobs", "cas-format", "gc", "journal", "refs"]
        files = [p for p in FIXTURE.rglob("*") if p.is_file()]
        assert len(files) == 98
        assert sum(p.stat().st_size for p in files) == 10528
        assert json.loads((FIXTURE / "cas-format").read_text())["format"] == 1

    def test_every_object_decodes_and_encodes_back_byte_for_byte(self):
        """The validating decoders accept all the old cas wrote, and today's encoders
        give the very same bytes back (so the digests of rewritten records match)."""
        refs = sorted(p.relative_to(FIXTURE).as_posix() for p in (FIXTURE / "refs").rglob("*") if p.is_file())
        assert len(refs) == 28
        journal = sorted((FIXTURE / "journal").iterdir())
        assert [p.name for p in journal] == [f"{n:016d}" for n in range(28)]
        announced = set()
        for path in journal:
            data = path.read_bytes()
            entry = cas.core.records.decode_journal_entry(data, f"journal/{path.name}")
            assert cas.core.records.encode({"ref": entry.ref.path, "record": entry.record}) == data
            assert cas.core.records.decode_ref((FIXTURE / entry.ref.path).read_bytes(), entry.ref.path) == entry.record
            announced.add(entry.ref.path)
            blob = (FIXTURE / "blobs" / entry.record[:2] / entry.record[2:]).read_bytes()
            assert blake3.blake3(blob).hexdigest() == entry.record
            record = cas.core.records.decode_record(blob, entry.record, entry.ref.path)
            assert cas.core.records.encode(record) == blob
            if record["type"] == "version" and record["kind"] == "tree":
                manifest = (FIXTURE / "blobs" / record["digest"][:2] / record["digest"][2:]).read_bytes()
                entries = cas.core.tree.decode_manifest(manifest, record["digest"])
                assert [(p, d) for p, d, _ in entries] == [(p, d) for p, (d, _) in MODEL_FILES.items()]
                assert cas.core.tree.encode_manifest(entries) == manifest
        assert announced == set(refs)  # no orphan: every ref is journalled

    def test_reads_everything(self, store):
        check_everything(store)

    def test_stats(self, store):
        stats = store.stats()
        assert (stats.artifacts, stats.versions, stats.blobs) == (7, 8, 10)
        assert (stats.logical_bytes, stats.stored_bytes) == (220, 153)

    def test_verify_deep(self, store):
        report = store.verify(deep=True)
        assert report.ok
        assert report.checked == 39
        assert (report.missing, report.corrupt, report.foreign) == ([], [], [])
        assert (report.orphans, report.dangling, report.invalid) == ([], [], [])

    def test_reindex_gives_the_same_answers(self, store):
        assert store.reindex() == 28  # every ref: 8 versions + 1 deletion, 5 alias moves, 14 run events
        check_everything(store)
        assert store.verify(deep=True).ok

    def test_a_second_index_agrees(self, store_copy, tmp_path):
        with cas.open_store(store_copy, index=str(tmp_path / "other.sqlite"), create=False) as other:
            check_everything(other)

    def test_old_store_takes_new_versions(self, store):
        v = store.save(b"written by today's cas\n", "demo/ingest/raw")
        assert v.version == 4  # after the deleted 3: numbers are never reused
        store.set_alias("demo/ingest/raw", 4, "staging")  # the removed alias comes back, seq 2
        assert store.aliases("demo/ingest/raw") == {"production": 2, "staging": 4}
        assert store.reindex() == 30
        assert store.get_artifact_version("demo/ingest/raw@staging").read_bytes() == b"written by today's cas\n"


class TestOldStoreCli:
    @pytest.fixture
    def run(self, store_copy):
        runner = CliRunner()

        def _run(*args: str) -> str:
            result = runner.invoke(cli, ["--store", str(store_copy), *args], catch_exceptions=False)
            assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
            return result.stdout

        return _run

    def test_log(self, run):
        assert run("log", "demo/ingest/raw") == (
            "demo/ingest/raw@2  13ee770ba0cc  blob  24 B  2026-01-01T00:00:14  (production)\n"
            "demo/ingest/raw@1  b63ebc6569d9  blob  19 B  2026-01-01T00:00:03\n"
        )

    def test_log_all_json(self, run):
        rows = json.loads(run("log", "demo/ingest/raw", "--all", "--json"))
        assert [(r["ref"], r["deleted"], r["aliases"]) for r in rows] == [
            ("demo/ingest/raw@3", True, []),
            ("demo/ingest/raw@2", False, ["production"]),
            ("demo/ingest/raw@1", False, []),
        ]
        assert rows[2] == {
            "aliases": [],
            "created_at": "2026-01-01T00:00:03+00:00",
            "deleted": False,
            "digest": f"blake3:{RAW1_DIGEST}",
            "kind": "blob",
            "materializer": "bytes",
            "metadata": {"rows": 2, "source": "fixture"},
            "name": "demo/ingest/raw",
            "ref": "demo/ingest/raw@1",
            "run_id": RUN1,
            "size": 19,
            "version": 1,
        }

    def test_show_json(self, run):
        data = json.loads(run("show", "demo/train/model@candidate", "--json"))
        assert data == {
            "created_at": "2026-01-01T00:00:06+00:00",
            "deleted": False,
            "digest": f"blake3:{MODEL_DIGEST}",
            "files": [{"digest": f"blake3:{d}", "path": p, "size": len(b)} for p, (d, b) in MODEL_FILES.items()],
            "kind": "tree",
            "materializer": "path",
            "metadata": {},
            "name": "demo/train/model",
            "ref": "demo/train/model@1",
            "run_id": RUN1,
            "size": 48,
            "version": 1,
        }

    def test_show_text(self, run):
        assert run("show", "demo/ingest/raw@production") == (
            "ref: demo/ingest/raw@2\n"
            "digest: blake3:13ee770ba0cca19caa1d58828297e9e21d16c61615a5fdc79cf88a393a24d362\n"
            "kind: blob\n"
            "size: 24\n"
            "created_at: 2026-01-01T00:00:14+00:00\n"
        )

    def test_run_show_json(self, run):
        data = json.loads(run("run", "show", RUN1, "--json"))
        assert (data["status"], data["error"], data["duration"]) == ("failed", "step evaluate failed", 12.0)
        assert [(s["step"], s["status"], s["inputs"], s["outputs"]) for s in data["steps"]] == [
            ("ingest", "completed", [], ["demo/ingest/raw@1"]),
            ("train", "completed", ["demo/ingest/raw@1"], ["demo/train/metrics@1", "demo/train/model@1"]),
            ("evaluate", "failed", ["demo/ingest/raw@1", "demo/train/model@1"], []),
        ]

    def test_verify_deep(self, run):
        assert run("verify", "--deep") == "rehashed 39 stored blobs (deep)\nok\n"

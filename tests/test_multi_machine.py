"""Many machines, one bucket: separate processes with separate index files on one backend.

Versions are claimed by create-only refs, so concurrent saves of one name never
duplicate a number; each machine catches up by reading the journal, at a cost
that follows what is new, not how big the bucket is.

GCS is not in the race tests: gcp-storage-emulator does not enforce
``ifGenerationMatch=0``, so two racing claims can both "win" there (real GCS
enforces it; see docs/backends.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sync_helpers import counting_store, store_state

import cas
from cas.core.refs import run_ref

RACE_BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3), pytest.param("azure", marks=pytest.mark.azure)]

WORKER = r"""
import json, sys, cas
url, options, index, name, count, tag = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
store = cas.open_store(url, index=index, **options)
got = [store.save(f"{tag} {i}".encode(), name).version for i in range(count)]
store.set_alias(name, got[-1], f"last-{tag}")
print(json.dumps(got))
"""


def _spawn(url, options, index, name, count, tag):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, json.dumps(options), index, name, str(count), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("kind", RACE_BACKENDS)
def test_two_machines_save_one_name_at_once_without_duplicates(make_location, tmp_path, kind):
    url, options = make_location(kind)
    cas.open_store(url, index=str(tmp_path / "init.sqlite"), **options).close()
    count = 15
    procs = [_spawn(url, options, str(tmp_path / f"machine-{m}.sqlite"), "team/train/model", count, f"m{m}") for m in (0, 1)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    mine0, mine1 = set(results[0]), set(results[1])
    assert len(mine0) == len(mine1) == count
    assert not (mine0 & mine1)
    assert mine0 | mine1 == set(range(1, 2 * count + 1))  # no duplicates, no gaps
    # Each machine, after refresh, sees all 30 versions with the content its writer saved.
    for m in (0, 1):
        with cas.open_store(url, index=str(tmp_path / f"machine-{m}.sqlite"), **options) as s:
            s.refresh()
            versions = s.list_versions("team/train/model")
            assert [v.version for v in versions] == list(range(1, 2 * count + 1))
            for v in versions:
                tag = "m0" if v.version in mine0 else "m1"
                assert v.read_bytes().startswith(tag.encode())
            assert s.aliases("team/train/model") == {"last-m0": max(mine0), "last-m1": max(mine1)}


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3), pytest.param("gcs", marks=pytest.mark.gcs), pytest.param("azure", marks=pytest.mark.azure)])
def test_refresh_sees_versions_aliases_and_lineage_at_a_cost_that_follows_what_is_new(make_location, tmp_path, kind):
    url, options = make_location(kind)
    writer = cas.open_store(url, index=str(tmp_path / "writer.sqlite"), **options)
    reader, counter = counting_store(url, index=str(tmp_path / "reader.sqlite"), **options)

    def write_batch(tag: str, n: int) -> None:
        for i in range(n):
            writer.save(f"{tag} {i}".encode(), f"p/{tag}/a{i % 3}")

    def cost_of_refresh_after_three_new() -> tuple[dict, int]:
        writer.save(b"new one", "p/s/new")
        writer.set_alias("p/s/new", "latest", "production")
        rid = f"run-{len(writer.list_artifacts())}-{writer.index.max_version('p/s/new')}"
        record = {"type": "run_start", "run_id": rid, "pipeline": "p", "params": {}, "started_at": "2024-01-01T00:00:00+00:00", "seq": 0}
        digest = writer.records.put_record(record)
        assert writer.records.claim(run_ref(rid, 0), digest)
        writer.publisher.commit(run_ref(rid, 0), digest, record)
        counter.reset()
        applied = reader.refresh()
        cost = dict(counter.calls)
        assert applied == 3
        assert reader.get_artifact_version("p/s/new", "production").read_bytes() == b"new one"
        assert reader.index.has_record(run_ref(rid, 0))
        return cost, applied

    write_batch("small", 5)
    reader.refresh()
    small_cost, _ = cost_of_refresh_after_three_new()
    write_batch("bigger", 60)  # the bucket grows twelvefold
    reader.refresh()
    big_cost, _ = cost_of_refresh_after_three_new()
    if reader.format >= 2:
        # Format 2 lists the two or three time slots since its horizon, whatever the bucket
        # holds (docs/format.md, Journal (format 2)); 3 entries + 3 records + 3 refs read back
        # (an entry counts only for a ref claimed with its record) + 1 probe of journal/
        assert small_cost["read"] == big_cost["read"] == 10
        assert 1 <= small_cost["list"] <= 3 and 1 <= big_cost["list"] <= 3
    else:
        assert small_cost == big_cost  # the same requests, whatever the bucket holds
        assert small_cost.get("list", 0) == 0
        # 3 journal entries + 3 records + 1 read past the end of the journal
        assert small_cost["read"] == 7
    assert store_state(reader)["versions"] == store_state(writer)["versions"]
    writer.close()
    reader.close()


@pytest.mark.s3
def test_cli_refresh_on_a_shared_bucket_with_two_index_dirs(s3_root, s3_options, tmp_path):
    """`cas refresh` from a second "machine" (its own index dir), configured only by environment."""
    env = dict(
        os.environ,
        FSSPEC_S3_ENDPOINT_URL=s3_options["endpoint_url"],
        FSSPEC_S3_KEY=s3_options["key"],
        FSSPEC_S3_SECRET=s3_options["secret"],
    )
    cmd = [sys.executable, "-m", "cas.cli", "--store", s3_root]
    a = dict(env, CAS_INDEX_DIR=str(tmp_path / "machine-a"))
    b = dict(env, CAS_INDEX_DIR=str(tmp_path / "machine-b"))
    (tmp_path / "f.txt").write_text("hello")
    out = subprocess.run([*cmd, "put", str(tmp_path / "f.txt"), "team/prep/data", "--json"], env=a, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    first = subprocess.run([*cmd, "refresh", "--json"], env=b, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    subprocess.run([*cmd, "put", str(tmp_path / "f.txt"), "team/prep/data"], env=a, check=True, capture_output=True)
    second = subprocess.run([*cmd, "refresh", "--json"], env=b, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr  # (opening the store already caught up)
    assert os.listdir(tmp_path / "machine-b") and os.listdir(tmp_path / "machine-a")  # two index files
    log = subprocess.run([*cmd, "log", "team/prep/data", "--json"], env=b, capture_output=True, text=True)
    assert [r["version"] for r in json.loads(log.stdout)] == [2, 1]
    assert s3_options["secret"] not in out.stdout + out.stderr + log.stdout

"""store.sync_to / cas.store.sync: copies versions, aliases and lineage, and only the blobs the destination lacks."""

from __future__ import annotations

import os

import pytest
from store_helpers import make_tree
from sync_helpers import CountingBackend, counting_store, store_state

import cas
from cas.core.packs import MIN_PACK_BLOBS
from cas.core.refs import pack_ref, run_ref
from cas.errors import IntegrityError, InvalidNameError
from cas.storage.blobs import blob_path
from cas.storage.packs import pack_path
from cas.store import Store
from cas.store.sync import status as sync_status

PAIRS = [
    ("local", "memory"),
    ("memory", "local"),
    ("local", "local"),
    pytest.param("local", "s3", marks=pytest.mark.s3),
    pytest.param("s3", "local", marks=pytest.mark.s3),
    pytest.param("local", "gcs", marks=pytest.mark.gcs),
    pytest.param("gcs", "azure", marks=[pytest.mark.gcs, pytest.mark.azure]),
    pytest.param("azure", "local", marks=pytest.mark.azure),
]


def _add_lineage(store: Store, run_id: str) -> str:
    """A run record under refs/runs/ (the lineage layer's ref kind), published like any ref."""
    record = {"type": "run_start", "run_id": run_id, "pipeline": "churn", "params": {}, "started_at": "2024-01-01T00:00:00+00:00", "seq": 0}
    digest = store.records.put_record(record)
    ref = run_ref(run_id, 0)
    assert store.records.claim(ref, digest)
    store.publisher.commit(ref, digest, record)
    return ref


def _populate(store: Store, tmp_path) -> None:
    store.save(b"v1 bytes", "churn/prep/features", metadata={"rows": 1})
    store.save(b"v2 bytes", "churn/prep/features", aliases=["production"])
    store.save(b"v3 bytes", "churn/prep/features")
    store.set_alias("churn/prep/features", 1, "production")  # moved back: a second alias record
    store.delete_version("churn/prep/features", 3)
    store.save(make_tree(tmp_path / "model", {"w.bin": os.urandom(3000), "cfg/a.json": b"{}", "cfg/b.json": b"[]"}), "churn/train/model")
    _add_lineage(store, "run-1")
    store.save(b"produced", "churn/train/metrics", _extra={"run_id": "run-1"})


@pytest.mark.parametrize("src_kind,dst_kind", PAIRS)
def test_sync_copies_versions_aliases_deletions_and_lineage(make_location, tmp_path, src_kind, dst_kind):
    src_url, src_opts = make_location(src_kind)
    dst_url, dst_opts = make_location(dst_kind)
    with cas.open_store(src_url, **src_opts) as src, cas.open_store(dst_url, **dst_opts) as dst:
        _populate(src, tmp_path)
        result = src.sync_to(dst)
        assert result.refs_sent == len(list(src.index.iter_records()))
        assert store_state(dst) == store_state(src)
        assert dst.get_artifact_version("churn/prep/features", "production").version == 1
        assert dst.get_artifact_version("churn/train/model").read_bytes("cfg/a.json") == b"{}"
        with pytest.raises(cas.VersionDeletedError):
            dst.get_artifact_version("churn/prep/features", 3)
        assert dst.index.has_record(run_ref("run-1", 0))
        assert dst.verify(deep=True).ok
        expected = store_state(src)
    # A second machine whose index already knew dst catches up through dst's own journal.
    if dst_kind != "memory":
        with cas.open_store(dst_url, index=str(tmp_path / "other.sqlite"), **dst_opts) as other:
            assert store_state(other) == expected


def test_sync_is_idempotent_second_run_sends_nothing(tmp_path):
    with cas.open_store(tmp_path / "src") as src:
        _populate(src, tmp_path)
        dst, counter = counting_store(str(tmp_path / "dst"))
        first = src.sync_to(dst)
        assert first.blobs_sent > 0 and first.bytes_sent == counter.bytes_written - _non_blob_bytes(counter)
        counter.reset()
        second = src.sync_to(dst)
        assert (second.blobs_sent, second.bytes_sent, second.refs_sent) == (0, 0, 0)
        assert second.blobs_skipped == first.blobs_sent + first.blobs_skipped
        assert counter.written == {}
        dst.close()


def _non_blob_bytes(counter: CountingBackend) -> int:
    # format 2: a pack's bytes are blob bytes after its 8-byte magic
    return sum(n if not p.startswith("packs/") else 8 for p, n in counter.written.items() if not p.startswith("blobs/"))


# Each of the 5 new versions changes `changed` files and adds as many: 2 new blobs per save go
# loose in format 2 (fewer than MIN_PACK_BLOBS), 4 are one pack per save, sent whole.
@pytest.mark.parametrize("changed", [1, 2])
def test_sync_sends_only_new_blobs_of_versions_that_share_content(tmp_path, changed):
    """N versions of a 40-file tree, each changing a few files: only the changed files travel."""
    files = {f"part-{i:02d}.bin": os.urandom(4096) for i in range(40)}
    with cas.open_store(tmp_path / "src") as src:
        src.save(make_tree(tmp_path / "v0", files), "ds/prep/table")
        dst, counter = counting_store(str(tmp_path / "dst"))
        src.sync_to(dst)
        for n in range(1, 6):
            for j in range(changed):
                files[f"part-{n * changed + j:02d}.bin"] = os.urandom(4096)
                files[f"new-{n:02d}-{j}.bin"] = os.urandom(4096)
            src.save(make_tree(tmp_path / f"v{n}", files), "ds/prep/table")
        counter.reset()
        result = src.sync_to(dst)
        new_count = 5 * 2 * changed
        # format 2 -> 2: a save's small files travel in its pack, whole, with the pack's index
        # (a record claimed by refs/packs/<pack>); elsewhere each file is a loose blob
        whole_packs = src.format >= 2 and dst.format >= 2
        packed_saves = src.format >= 2 and 2 * changed >= MIN_PACK_BLOBS

        def where(d: str) -> str:
            entry = src.blobs.packs.where(d) if whole_packs else None
            return blob_path(d) if entry is None else pack_path(entry.pack)

        sent_blobs = {p for p in counter.written if p.startswith(("blobs/", "packs/"))}
        # exactly: the new files + 5 manifests + 5 version records, no old file again
        old_digests = {d.hex for _, d, _ in src.get_artifact_version("ds/prep/table", 1).files()}
        new_digests = {d.hex for n in range(2, 7) for _, d, _ in src.get_artifact_version("ds/prep/table", n).files()} - old_digests
        assert len(new_digests) == new_count
        new_files = {where(d) for d in new_digests}
        assert sent_blobs.isdisjoint({where(d) for d in old_digests})
        content = {p for p in sent_blobs if p in new_files}
        assert content == new_files
        packs = [p.split("/", 1)[1].replace("/", "") for p in content if p.startswith("packs/")]
        assert len(packs) == (5 if whole_packs and packed_saves else 0)  # one pack per save, or all loose
        packed = [e for pack in packs for e in src.index.pack_entries(pack)]
        assert {e.digest for e in packed} == (new_digests if whole_packs and packed_saves else set())  # nothing old in a sent pack
        assert len(content) == (len(packs) if whole_packs and packed_saves else new_count)
        pack_indexes = {blob_path(src.backend.read_bytes(pack_ref(pack)).decode()) for pack in packs}
        assert result.blobs_sent == new_count + 5 + 5 + len(pack_indexes)
        assert len(sent_blobs) == len(content) + 5 + 5 + len(pack_indexes)
        loose_bytes = sum(counter.written[p] for p in sent_blobs if p.startswith("blobs/"))
        assert result.bytes_sent == loose_bytes + sum(e.length for e in packed)  # a pack counts its content bytes
        assert sum(counter.written[p] for p in content if p.startswith("blobs/")) + sum(e.length for e in packed) == new_count * 4096
        versions = [src.get_artifact_version("ds/prep/table", n) for n in range(2, 7)]
        manifests_and_records = {blob_path(v.digest.hex) for v in versions}
        manifests_and_records |= {blob_path(src.index.get_version(v.name, v.version).record) for v in versions}
        assert sent_blobs - content == manifests_and_records | pack_indexes
        assert result.bytes_sent < 40 * 4096  # less than one copy of the tree: only what is new
        assert result.refs_sent == 5 + len(packs)  # format 2: each pack's index ref too
        assert dst.get_artifact_version("ds/prep/table").read_bytes("new-05-0.bin") == files["new-05-0.bin"]
        dst.close()


def test_dry_run_reports_the_same_without_sending(tmp_path):
    with cas.open_store(tmp_path / "src") as src:
        _populate(src, tmp_path)
        dst, counter = counting_store(str(tmp_path / "dst"))
        counter.reset()
        dry = src.sync_to(dst, dry_run=True)
        assert counter.written == {}
        assert dst.list_artifacts() == []
        real = src.sync_to(dst)
        assert dry.dry_run and not real.dry_run
        for key in ("blobs_sent", "bytes_sent", "blobs_skipped", "bytes_skipped", "refs_sent", "refs_skipped"):
            assert getattr(dry, key) == getattr(real, key), key
        dst.close()


def test_name_patterns_select_artifacts_and_their_runs(tmp_path):
    with cas.open_store(tmp_path / "src") as src, cas.open_store(tmp_path / "dst") as dst:
        _populate(src, tmp_path)
        _add_lineage(src, "run-unrelated")
        src.sync_to(dst, names=["churn/train/*"])
        assert dst.list_artifacts() == ["churn/train/metrics", "churn/train/model"]
        assert dst.index.has_record(run_ref("run-1", 0))  # the run that produced metrics
        assert not dst.index.has_record(run_ref("run-unrelated", 0))
        # a prefix works too, and the rest arrives later without resending anything
        result = src.sync_to(dst, names=["churn/prep"])
        assert "churn/prep/features" in dst.list_artifacts()
        assert result.blobs_sent >= 3
        with pytest.raises(InvalidNameError):
            src.sync_to(dst, names=["bad\x00pattern"])


def test_diverged_history_is_a_conflict_and_is_not_overwritten(tmp_path):
    with cas.open_store(tmp_path / "src") as src, cas.open_store(tmp_path / "dst") as dst:
        src.save(b"from src", "p/s/a")
        src.save(b"other", "p/s/b")
        dst.save(b"made at dst", "p/s/a")
        result = src.sync_to(dst)
        assert result.conflicts == ("p/s/a",)
        assert dst.get_artifact_version("p/s/a", 1).read_bytes() == b"made at dst"
        assert dst.get_artifact_version("p/s/b").read_bytes() == b"other"


def test_conflict_on_an_unindexed_ref_is_found_at_claim_time(tmp_path):
    with cas.open_store(tmp_path / "src") as src, cas.open_store(tmp_path / "dst") as dst:
        src.save(b"from src", "p/s/a")
        # Another writer claimed p/s/a@1 in dst but died before journaling it.
        foreign = dst.records.put_record({"type": "version", "name": "p/s/a", "version": 1, "digest": "0" * 64, "kind": "blob", "size": 0, "created_at": "2024-01-01T00:00:00+00:00", "metadata": {}})
        assert dst.records.claim("refs/versions/p/s/a/1", foreign)
        result = src.sync_to(dst)
        assert result.conflicts == ("p/s/a",)
        assert dst.records.read_ref("refs/versions/p/s/a/1") == foreign


def test_corrupt_source_blob_is_refused_and_nothing_points_at_it(tmp_path):
    with cas.open_store(tmp_path / "src") as src, cas.open_store(tmp_path / "dst") as dst:
        v = src.save(b"good content" * 100, "p/s/a")
        path = tmp_path / "src" / blob_path(v.digest.hex)
        os.chmod(path, 0o644)
        path.write_bytes(b"evil content" * 100)
        with pytest.raises(IntegrityError):
            src.sync_to(dst)
        assert not dst.blobs.exists(v.digest.hex)
        assert dst.list_artifacts() == []
        assert dst.verify().ok


def test_large_blob_streams_and_round_trips(tmp_path):
    data = os.urandom(9 * 1024 * 1024 + 3)
    (tmp_path / "big").write_bytes(data)
    with cas.open_store(tmp_path / "src") as src, cas.open_store(f"memory://sync-big-{os.getpid()}") as dst:
        src.save(tmp_path / "big", "p/s/big")
        result = src.sync_to(dst)
        assert result.bytes_sent >= len(data)
        assert dst.get_artifact_version("p/s/big").read_bytes() == data


def test_large_blob_to_a_local_destination(tmp_path):
    """A large blob is spooled into the local destination's batch; the spool must
    survive until the batch publishes it (it used to be unlinked first)."""
    data = os.urandom(9 * 1024 * 1024 + 3)
    with cas.open_store(tmp_path / "src") as src, cas.open_store(tmp_path / "dst") as dst:
        src.save(data, "p/s/big")
        src.save(b"small", "p/s/small")
        result = src.sync_to(dst)
        assert result.bytes_sent >= len(data)
        assert dst.get_artifact_version("p/s/big").read_bytes() == data
        assert dst.verify(deep=True).ok


def test_status_lists_when_many_blobs_are_unknown(tmp_path):
    with cas.open_store(tmp_path / "src") as src:
        for i in range(50):
            src.save(f"content {i}".encode(), f"p/s/a{i:03d}")
        dst, counter = counting_store(f"memory://sync-cold-{os.getpid()}")
        counter.reset()
        plan = sync_status(src, dst)
        assert plan.method == "list"
        assert counter.calls["exists"] == 0
        assert len(plan.blobs) == 100  # 50 contents + 50 records
        dst.close()


def test_status_checks_few_unknown_blobs_one_by_one_on_a_big_destination(tmp_path):
    url = f"memory://sync-big-dst-{os.getpid()}"
    with cas.open_store(tmp_path / "src") as src, cas.open_store(url) as filler:
        # 4,000 blobs at the destination that the source knows nothing about
        with filler.backend.batch():
            for i in range(4000):
                filler.blobs.put_bytes(f"filler {i}".encode())
        src.save(b"x", "p/s/a")
        dst, counter = counting_store(url, index=str(tmp_path / "other.sqlite"))
        counter.reset()
        plan = sync_status(src, dst)
        assert plan.method == "exists"
        # only the one shard used for the estimate (format 2: and the journal's recent time slots)
        assert [p for p in counter.listed if not p.startswith("journal2/")] == ["blobs/00"]
        assert counter.calls["exists"] <= 2
        dst.close()

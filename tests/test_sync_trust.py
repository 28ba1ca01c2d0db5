"""Sync never trusts what the destination claims to hold (invariant 12): a listing or a pack
index that claims too much costs a request, never a missing blob; and a SIGKILL of a
format-2 sync leaves nothing half-visible, a rerun completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from store_helpers import make_tree
from sync_helpers import CountingBackend, store_state

import cas
from cas.backends.base import Entry
from cas.backends.factory import open_backend
from cas.core.digest import hash_bytes
from cas.storage.blobs import BLOB_PREFIX, blob_path
from cas.storage.packs import PackBuilder
from cas.store import Store
from cas.store.packing import publish_pack
from cas.store.sync import status as sync_status

CAS = [sys.executable, "-m", "cas.cli"]


class ListingLiar(CountingBackend):
    """A backend whose listings of ``blobs/`` also show ``claimed`` digests it does not hold."""

    def __init__(self, inner, claimed: set[str]) -> None:
        super().__init__(inner)
        self.claimed = claimed

    def list(self, prefix):
        yield from super().list(prefix)
        if prefix.rstrip("/") == BLOB_PREFIX:
            for digest in sorted(self.claimed):
                yield Entry(blob_path(digest), 4096, None)


def _files(n: int, seed: str) -> dict[str, bytes]:
    return {f"d/f{i:04d}.bin": (seed + str(i)).encode().ljust(4096, b".") for i in range(n)}


def _readable(store: cas.Store, name: str, tree: dict[str, bytes]) -> None:
    version = store.get_artifact_version(name)
    for rel, data in tree.items():
        assert version.open(rel).read() == data


@pytest.mark.parametrize("fmt", [1, 2])
def test_a_listing_that_claims_missing_blobs_costs_a_request_not_a_copy(tmp_path, fmt):
    tree = _files(60, "listed")
    with cas.open_store(tmp_path / "src", format=fmt) as src:
        src.save(make_tree(tmp_path / "t", tree), "p/s/tree")
        claimed = set(src.index.needed_blobs())  # every blob the source has, records included
        url = f"memory://sync-liar-{os.getpid()}-{fmt}"
        cas.open_store(url, format=fmt).close()
        liar = ListingLiar(open_backend(url), claimed)
        dst = Store(liar, index=str(tmp_path / "dst.sqlite"))
        try:
            plan = sync_status(src, dst)
            assert plan.method == "list"  # many unknown blobs: one listing, which lies
            assert set(plan.blobs) == claimed  # every claim checked (exists) and found false
            result = src.sync_to(dst)
            assert result.refs_sent == len(list(src.index.iter_records()))
            _readable(dst, "p/s/tree", tree)
            assert dst.verify(deep=True).ok
            assert store_state(dst) == store_state(src)
        finally:
            dst.close()


@pytest.mark.parametrize("dst_kind", ["local", "memory"])
def test_a_pack_index_entry_pointing_at_wrong_bytes_does_not_stand_for_the_blob(tmp_path, dst_kind):
    """The destination's own pack index says the new file is packed (the range holds other
    bytes): sync reads the range, finds it wrong, and sends the file."""
    old, new = _files(40, "old"), _files(3, "new")
    with cas.open_store(tmp_path / "src", format=2) as src:
        src.save(make_tree(tmp_path / "t1", old), "p/s/tree")
        src.save(make_tree(tmp_path / "t2", {**old, **{f"n/{k}": v for k, v in new.items()}}), "p/s/tree")
        url = str(tmp_path / "dst") if dst_kind == "local" else f"memory://sync-packliar-{os.getpid()}"
        with cas.open_store(url, format=2, index=str(tmp_path / "dst.sqlite")) as dst:
            # a pack whose index claims one of the new files where another's bytes are
            builder = PackBuilder(dst.backend)
            victim = hash_bytes(new["d/f0000.bin"])
            builder.add(victim, b"not the file".ljust(4096, b"."))
            builder.add(hash_bytes(b"filler"), b"filler")
            publish_pack(dst.publisher, builder.store())
            assert dst.index.pack_locations(victim)
            plan = sync_status(src, dst)
            assert victim in plan.blobs  # the claim was read and did not hold
            src.sync_to(dst)
            _readable(dst, "p/s/tree", {**old, **{f"n/{k}": v for k, v in new.items()}})
            assert dst.get_artifact_version("p/s/tree", 1).open("d/f0001.bin").read() == old["d/f0001.bin"]
        # a fresh index over the destination (from the backend alone) reads it all too
        with cas.open_store(url, index=str(tmp_path / "fresh.sqlite")) as again:
            _readable(again, "p/s/tree", {**old, **{f"n/{k}": v for k, v in new.items()}})


def test_a_destination_that_holds_the_new_blobs_already_sends_none(tmp_path):
    """The honest counterpart: what the destination really holds (loose or packed) is not sent."""
    tree = _files(30, "same")
    with cas.open_store(tmp_path / "src", format=2) as src, cas.open_store(tmp_path / "dst", format=2) as dst:
        src.save(make_tree(tmp_path / "t", tree), "p/s/tree")
        dst.save(make_tree(tmp_path / "t2", tree), "q/s/copy")  # the same content, under another name
        plan = sync_status(src, dst)
        assert not set(plan.blobs) & {hash_bytes(v) for v in tree.values()}
        src.sync_to(dst)
        _readable(dst, "p/s/tree", tree)


def _non_empty(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is not None
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("phase", ["blobs", "refs"])
def test_sigkill_of_a_format2_sync_then_rerun_completes(tmp_path, phase):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    with cas.open_store(src, format=2) as s:
        root = tmp_path / "tree"
        root.mkdir()
        for i in range(3000):
            (root / f"f{i:05d}").write_bytes(os.urandom(64) + str(i).encode())
        s.save(root, "big/prep/tree")
        for i in range(300):
            s.save(f"small {i}".encode(), f"p/s/item{i % 7}")
        expected = store_state(s)
    cas.open_store(dst, format=2).close()
    proc = subprocess.Popen([*CAS, "sync", src, dst, "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watch = os.path.join(dst, "packs" if phase == "blobs" else "refs")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not _non_empty(watch):
        time.sleep(0.002)
    assert proc.poll() is None, "sync finished before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    with cas.open_store(dst) as d:
        assert store_state(d) != expected  # it really was interrupted
        assert d.verify().ok  # nothing half-visible: every ref it shows has all it needs
    rerun = subprocess.run([*CAS, "sync", src, dst, "--json"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with cas.open_store(dst) as d:
        assert store_state(d) == expected
        assert d.verify(deep=True).ok
    with cas.open_store(dst, index=str(tmp_path / "fresh.sqlite")) as d:
        assert store_state(d) == expected
    final = json.loads(subprocess.run([*CAS, "sync", src, dst, "--json"], capture_output=True, text=True, timeout=300).stdout)
    assert (final["blobs_sent"], final["refs_sent"]) == (0, 0)


def test_a_format2_sync_claims_every_pack_ref_before_any_version_ref(tmp_path, monkeypatch):
    """Publish order across groups: claims run in parallel, but a version whose content is
    packed is never claimed before the pack ref that lets a reader find that content (a kill
    between the two would leave a visible version whose files no pack index places)."""
    with cas.open_store(tmp_path / "src", format=2) as src:
        for i in range(6):
            src.save(make_tree(tmp_path / f"t{i}", _files(20, f"v{i}")), f"p/s/tree{i}")
        with cas.open_store(tmp_path / "dst", format=2, index=str(tmp_path / "dst.sqlite")) as dst:
            claimed: list[str] = []
            real_claim = dst.records.claim

            def claim(ref, digest):  # a slow pack claim: other groups' threads run meanwhile
                if ref.startswith("refs/packs/"):
                    time.sleep(0.05)
                done = real_claim(ref, digest)
                claimed.append(ref)  # in the order the claims completed
                return done

            monkeypatch.setattr(dst.records, "claim", claim)
            src.sync_to(dst, jobs=4)
            kinds = [ref.split("/")[1] for ref in claimed]
            assert "packs" in kinds and "versions" in kinds
            last_pack = max(i for i, kind in enumerate(kinds) if kind == "packs")
            first_version = min(i for i, kind in enumerate(kinds) if kind == "versions")
            assert last_pack < first_version, kinds

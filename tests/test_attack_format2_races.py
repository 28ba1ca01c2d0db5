"""Format 2 under attack: gc racing a writer that is packing, SIGKILL during a repack.

Real processes: the writer is stopped with SIGSTOP at a chosen point of its save (between
storing its pack and publishing the pack's index, or between the index and the version
record), gc runs with grace 0 in another process, then the writer is continued.  Either
everything the writer committed reads back whole, or gc refused: nothing committed is lost
(DESIGN invariants 13, 14).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from store_helpers import make_tree

import cas
from cas.storage.packs import iter_packs

# The writer: saves a tree of small files (one pack), stopping itself (SIGSTOP) when it
# reaches the point named by argv[3].
WRITER = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    import cas
    from cas.storage import packs
    from cas.store import packing, publish

    url, tree, point, options, index = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
    real_publish_pack, real_claim = packing.publish_pack, publish.Publisher.claim
    stops = []
    def stop():
        if not stops:  # once: a put-back after the sweep publishes again
            stops.append(1)
            print("stopped", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
    def publish_pack(pub, stored, **kw):
        if point == "before-index":
            stop()  # the pack is stored (durable), nothing announces it yet
        real_publish_pack(pub, stored, **kw)
    def claim(self, record, field, *a, **kw):
        if point == "before-version" and record.get("type") == "version":
            stop()  # the pack and its index are published, the version is not claimed yet
        return real_claim(self, record, field, *a, **kw)
    real_store = packs.PackBuilder._store_locked
    def store_pack(self):
        stored = real_store(self)
        if point == "after-first-pack":
            stop()  # one full pack stored mid-save: no manifest, no index, nothing else written yet
        return stored
    packing.publish_pack = publish_pack
    publish.Publisher.claim = claim
    packs.PackBuilder._store_locked = store_pack
    packs.MAX_PACK_BLOBS = 8  # so the save fills a pack before it ends
    with cas.open_store(url, index=index, **options) as store:
        v = store.save(Path(tree), "race/s/tree")
        print("saved", v.version, flush=True)
    """
)

GC = "import json, sys, cas\nwith cas.open_store(sys.argv[1], index=sys.argv[2], **json.loads(sys.argv[3])) as s:\n    print(s.gc(grace=0))\n"
KILL_IN_REPACK = textwrap.dedent(
    """
    import os, signal, sys
    import cas
    from cas.store import packgc
    real = packgc.publish_pack
    def publish_pack(pub, stored, **kw):
        if sys.argv[2] == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(pub, stored, **kw)
        if sys.argv[2] == "after":
            os.kill(os.getpid(), signal.SIGKILL)  # the new pack is announced, the old one not yet removed
    packgc.publish_pack = publish_pack
    with cas.open_store(sys.argv[1]) as s:
        s.gc(grace=0)
    """
)


def _files(n: int, salt: str) -> dict[str, bytes]:
    return {f"d{i % 4}/f{i}.txt": f"{salt} {i} ".encode() * (i + 3) for i in range(n)}


def _wait_stopped(proc: subprocess.Popen) -> None:
    assert proc.stdout is not None and proc.stdout.readline().strip() == "stopped"
    for _ in range(400):
        with open(f"/proc/{proc.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.01)
    raise AssertionError("the writer did not stop")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def where(request, tmp_path) -> tuple[str, dict]:
    """A fresh format-2 store: (url, storage options).  S3 (moto) matters here: packs are
    created under packs/ as they fill, where a local batch keeps them in tmp/ until its end."""
    if request.param == "local":
        url, options = str(tmp_path / "store"), {}
    else:
        url, options = request.getfixturevalue("s3_root"), request.getfixturevalue("s3_options")
    cas.open_store(url, format=2, index=str(tmp_path / "init.sqlite"), **options).close()
    return url, options


@pytest.mark.parametrize("point", ["after-first-pack", "before-index", "before-version"])
def test_gc_with_grace_0_while_a_writer_is_stopped_mid_pack_loses_nothing(tmp_path, where, point):
    url, options = where
    files = _files(40, point)
    make_tree(tmp_path / "t", files)
    argv = [url, str(tmp_path / "t"), point, json.dumps(options), str(tmp_path / "w.sqlite")]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_stopped(writer)
        time.sleep(0.05)  # what the writer stored is now older than gc's cutoff (grace 0)
        gc = subprocess.run([sys.executable, "-c", GC, url, str(tmp_path / "gc.sqlite"), json.dumps(options)],
                            capture_output=True, text=True, timeout=120)
        assert gc.returncode == 0, gc.stderr
    finally:
        writer.send_signal(signal.SIGCONT)
    out, err = writer.communicate(timeout=120)
    with cas.open_store(url, index=str(tmp_path / "reader.sqlite"), **options) as store:
        if writer.returncode != 0:  # a save may fail loudly; then nothing of it is visible
            assert "race/s/tree" not in store.list_artifacts(), err
        else:
            assert "saved 1" in out
            v = store.get_artifact_version("race/s/tree", 1)
            assert {rel: v.read_bytes(rel) for rel in files} == files
        assert store.verify(deep=True).ok


@pytest.mark.parametrize("when", ["before", "after"])
def test_sigkill_during_a_repack_loses_no_live_blob_and_a_rerun_finishes(tmp_path, when):
    url = str(tmp_path / "store")
    files = _files(30, "repack")  # d0 holds a quarter of the bytes: the pack is repacked
    make_tree(tmp_path / "k", files)
    with cas.open_store(url, format=2) as store:
        store.save(tmp_path / "k", "rp/s/all")
        store.save(tmp_path / "k" / "d0", "rp/s/part")  # files in d0 are kept by this version
        store.delete_version("rp/s/all", 1)
        (old,) = [p for p, *_ in iter_packs(store.backend) if p is not None]
        wanted = {rel[3:]: data for rel, data in files.items() if rel.startswith("d0/")}
    time.sleep(0.05)
    proc = subprocess.run([sys.executable, "-c", KILL_IN_REPACK, url, when], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    for rerun in (False, True):
        with cas.open_store(url, index=str(tmp_path / f"r{rerun}.sqlite")) as store:
            v = store.get_artifact_version("rp/s/part", 1)
            assert {rel: v.read_bytes(rel) for rel in wanted} == wanted
            assert store.verify(deep=True).ok
            if rerun:
                continue
            time.sleep(0.05)
            store.gc(grace=0)  # the rerun repacks (or drops the half-done one) and keeps everything live
    with cas.open_store(url) as store:
        packs = {p for p, *_ in iter_packs(store.backend) if p is not None}
        assert old not in packs and len(packs) == 1
        assert {rel: store.get_artifact_version("rp/s/part", 1).read_bytes(rel) for rel in wanted} == wanted


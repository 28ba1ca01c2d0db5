"""Helpers the store tests share: backend snapshots, corruption, "the answers", paused processes.

Everything here goes through the Backend interface, so it works the same on
memory, local disk and the cloud backends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cas
from cas.core.digest import hash_bytes
from cas.storage.blobs import blob_path
from cas.storage.chunked import read_chunk_list
from cas.storage.packs import pack_path
from cas.store import INDEX_FILE


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` ({relative path: bytes}) under ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def backend_snapshot(store: cas.Store) -> dict[str, bytes]:
    """Every file in the backend with its bytes.

    A local store keeps its SQLite index next to the blobs; the index is a
    derived view (invariant 3), not backend content, so it is left out.
    """
    snap = {}
    for entry in store.backend.list(""):
        if entry.path.startswith(INDEX_FILE):
            continue
        snap[entry.path] = store.backend.read_bytes(entry.path)
    return snap


def blob_files(store: cas.Store) -> set[str]:
    return {e.path for e in store.backend.list("blobs")}


def replace_blob(store: cas.Store, hexdigest: str, data: bytes) -> None:
    """Overwrite stored content behind cas's back (what bit rot or a bad disk does),
    wherever it really lives: a loose blob, its range of a pack, or (a chunked file,
    format 2) each chunk whose bytes ``data`` changes."""
    list_digest = store.index.chunk_list(hexdigest)
    if list_digest is not None:
        _replace_chunks(store, list_digest, data)
        return
    packs = store.blobs.packs
    entry = packs.where(hexdigest) if packs is not None else None
    if entry is not None:
        _replace_in_pack(store, pack_path(entry.pack), entry.offset, entry.length, data)
        return
    rel = blob_path(hexdigest)
    store.backend.remove(rel)
    assert store.backend.create_bytes(rel, data)


def _replace_in_pack(store: cas.Store, rel: str, offset: int, length: int, data: bytes) -> None:
    """Rot a packed blob in place: its ``length`` bytes become ``data`` cut or zero-padded
    to that length, so the pack's other blobs stay where their index says (and intact).
    A shorter ``data`` that pads back to the original (a truncated run of zeros) gets
    its last byte flipped: a pack's range cannot shrink, but it must still be rotten."""
    pack = store.backend.read_bytes(rel)
    fitted = bytearray(data[:length].ljust(length, b"\0"))
    if fitted == pack[offset : offset + length] and len(data) != length and length:
        fitted[-1] ^= 0x01
    assert fitted != pack[offset : offset + length], "the replacement must change the packed bytes"
    store.backend.remove(rel)
    assert store.backend.create_bytes(rel, pack[:offset] + fitted + pack[offset + length :])


def _replace_chunks(store: cas.Store, list_digest: str, data: bytes) -> None:
    """Rot a chunked file: every chunk whose range of ``data`` differs from it is
    overwritten with that range (shorter, or empty, where ``data`` is shorter)."""
    listed = read_chunk_list(store.blobs, list_digest)
    changed = 0
    for start, ref in zip(listed.starts, listed.chunks, strict=True):
        piece = data[start : start + ref.size]
        if len(piece) == ref.size and hash_bytes(piece) == ref.digest:
            continue
        replace_blob(store, ref.digest, piece)
        changed += 1
    assert changed, "the replacement must change the file's bytes"


def remove_blob(store: cas.Store, hexdigest: str) -> None:
    store.backend.remove(blob_path(hexdigest))


def all_names(store: cas.Store) -> list[str]:
    """Every name with a version, live or deleted (list_artifacts shows live ones only)."""
    return sorted({name for name, _, _, _ in store.index.all_version_digests()})


def answers(store: cas.Store) -> dict[str, Any]:
    """What a user can learn from the store's queries, in comparable form."""
    out: dict[str, Any] = {"artifacts": store.list_artifacts(), "stats": store.stats()}
    for name in all_names(store):
        versions = store.list_versions(name, include_deleted=True)
        out[name] = {
            "versions": [
                (v.version, v.digest, v.kind, v.size, v.created_at, v.metadata, v.deleted, v.files())
                for v in versions
            ],
            "aliases": store.aliases(name),
            "latest": _latest(store, name),
        }
    return out


def _latest(store: cas.Store, name: str) -> int | None:
    try:
        return store.get_artifact_version(name).version
    except cas.VersionNotFoundError:
        return None


# Prepended to a child interpreter's code: numpy, pandas and pyarrow fail to
# import, as on a machine with only cas's core dependencies.
BLOCK_DATAFRAME_LIBS = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"numpy", "pandas", "pyarrow"}:
            raise ImportError("blocked for this test: " + name)
        return None
sys.meta_path.insert(0, _Block())
"""


# -- real paused processes (SIGSTOP/SIGCONT) for races with gc ----------------------------

# Stops itself (a real SIGSTOP) at a chosen point: before its first version claim
# (a writer; "writer-twice" stops again right after it), or before its first blob
# removal (gc).  The parent sends SIGCONT.
PAUSING_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    import cas
    import cas.errors
    from cas.storage.blobs import BlobStore
    from cas.storage.records import RecordStore

    url, options, index, role, data = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    store = cas.open_store(url, index=index, **options)
    paused = []
    def pause_once():
        if not paused:
            paused.append(True)
            os.kill(os.getpid(), signal.SIGSTOP)
    if role in ("writer", "one-pass", "writer-twice", "writer-object"):
        real_claim = RecordStore.claim
        def claim(self, ref, digest):
            if ref.startswith("refs/versions/"):
                pause_once()
            return real_claim(self, ref, digest)
        RecordStore.claim = claim
        if role == "writer-twice":  # and once more just after the claim, before it looks for gc sweeps
            from cas.store.publish import Publisher
            real_after = Publisher.after_claim
            def after_claim(self, *a, **k):
                os.kill(os.getpid(), signal.SIGSTOP)
                return real_after(self, *a, **k)
            Publisher.after_claim = after_claim
        if role in ("writer", "writer-twice"):
            print(store.save(data.encode(), "reuse/s/new").version, flush=True)
        elif role == "writer-object":  # stored through a materializer
            print(store.save({"text": data, "n": [1, 2, 3]}, "reuse/s/new").version, flush=True)
        else:  # a stream that cannot be read twice
            import io
            class OnePass(io.RawIOBase):
                def __init__(self, data):
                    self.data = data
                def readable(self):
                    return True
                def read(self, n=-1):
                    out, self.data = self.data, b""
                    return out
            try:
                store.save(OnePass(data.encode()), "reuse/s/new")
            except cas.errors.BlobNotFoundError as e:
                print("refused:", e, flush=True)
    else:
        real_remove = BlobStore.remove
        def remove(self, digest):
            pause_once()
            return real_remove(self, digest)
        BlobStore.remove = remove
        print(store.gc(grace=0).removed, flush=True)
    """
)


def start_paused(url: str, options: dict, index: str, role: str, data: bytes) -> subprocess.Popen:
    """Start a child and return once it has stopped itself (SIGSTOP) at its pause point."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSING_CHILD, url, json.dumps(options), index, role, data.decode()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the {role} ended before its pause point: {proc.communicate()}"
    return proc


def wait_stopped(proc: subprocess.Popen) -> None:
    """Return once a child resumed with :func:`resume_only` has stopped itself again."""
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the child ended before its next pause point: {proc.communicate()}"


def resume_only(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGCONT)


def resume(proc: subprocess.Popen) -> str:
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.strip()


def waits_for_paused(work: Callable[[], Any], paused: subprocess.Popen, why: str) -> Any:
    """Run ``work`` in a thread: it must still be waiting 2 s in (``why`` says what it would
    have done otherwise), then finish once ``paused`` resumes; returns its result."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(work()))
    try:
        thread.start()
        thread.join(timeout=2)
        assert thread.is_alive(), why
    finally:
        assert int(resume(paused)) >= 1
    thread.join(timeout=60)
    assert result
    return result[0]

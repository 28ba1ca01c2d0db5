"""What the `cas ui` tests share: a store with one of everything, and a real server.

The server is the real command, ``python -m cas.cli ui --port 0``, in a
subprocess; its first line of output gives the URL it bound.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from store_helpers import make_tree

import cas

BIG = 9 << 20  # above cas.ui.content.SMALL: streamed, not read whole


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG image (solid colour), made with zlib alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def csv_rows(n: int, offset: int = 0) -> bytes:
    lines = ["customer,tenure,charges,churned"] + [f"c{i + offset},{i % 72},{20 + i % 80}.5,{i % 3 == 0}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Refs:
    raw1: cas.ArtifactVersion
    raw2: cas.ArtifactVersion
    stats: cas.ArtifactVersion
    frame: cas.ArtifactVersion
    model: cas.ArtifactVersion
    failed_model: cas.ArtifactVersion
    summary: cas.ArtifactVersion
    deleted: cas.ArtifactVersion
    chart: cas.ArtifactVersion
    big: cas.ArtifactVersion
    run1: str
    run2: str


TREE1 = {
    "data/part-0.csv": csv_rows(60),
    "data/part-1.csv": csv_rows(60, 60),
    "notes/readme.md": b"# raw data\nexported nightly\n",
    "config.json": b'{"source":"crm","rows":120,"nested":{"ok":true}}',
    "images/logo.png": png(40, 24, (36, 87, 197)),
    "deep/a/b/c.txt": b"deep file\n",
    "notes/weird name #1?.txt": "spaces, # and ? in a name; ünïcode inside\n".encode(),
    "notes/<img src=x onerror=alert(1)>.txt": b"<script>alert(2)</script>\n",
    "tables/bad.parquet": b"PAR1 not really Parquet at all PAR1",
}


def build_store(root: Path, work: Path, format: int | None = None) -> Refs:
    """Two runs of a three-step pipeline (the second with a failed step), plus
    blobs of every previewable kind, an alias, a deleted version, 120 versions
    of one name (two pages) and a blob too big to read whole."""
    import pandas as pd

    store = cas.open_store(root, format=format)  # None: the default of new stores
    tree1 = TREE1
    tree2 = dict(tree1)
    tree2["data/part-1.csv"] = csv_rows(61, 60)  # changed
    tree2["data/part-2.csv"] = csv_rows(10, 200)  # added
    del tree2["deep/a/b/c.txt"]  # removed
    with store.run("churn", params={"lr": 0.1, "epochs": 3}) as run:
        with run.step("ingest") as s:
            raw1 = s.save(make_tree(work / "t1", tree1), "raw", metadata={"source": "crm-export", "rows": 120})
        with run.step("features", inputs=[raw1]) as s:
            stats = s.save({"columns": ["tenure", "charges"], "n": 120}, "stats")
            frame = s.save(pd.DataFrame({"tenure": [1, 2, 3], "charges": [20.5, 30.0, 41.25]}), "frame")
        with run.step("train", inputs=[stats, frame]) as s:
            model = s.save(b"weights-v1" * 10, "model", metadata={"accuracy": 0.91, "stage": "candidate"}, aliases=["production"])
        run1 = run.id
    failed_model = None
    with contextlib.suppress(RuntimeError):
        with store.run("churn", params={"lr": 0.5, "epochs": 3}) as run:
            run2 = run.id
            with run.step("ingest") as s:
                raw2 = s.save(make_tree(work / "t2", tree2), "raw", metadata={"source": "crm-export", "rows": 131})
            with run.step("train", inputs=[raw2]) as s:
                failed_model = s.save(b"weights-v2-partial", "model", metadata={"accuracy": 0.12})
                raise RuntimeError("loss diverged")
    deleted = store.save("first draft\n", "reports/daily/summary")
    summary = store.save(
        "line one\nline two\n", "reports/daily/summary", metadata={"owner": "ana", "note": "<script>alert(3)</script>"}
    )
    store.delete_version(deleted.name, deleted.version)
    chart = store.save(png(64, 32, (200, 60, 40)), "reports/daily/chart")
    big = store.save(b"0123456789abcdef" * (BIG // 16), "big/blob/file")
    for i in range(120):
        store.save(f"tick {i}".encode(), "many/versions/counter")
    store.close()
    assert failed_model is not None
    return Refs(raw1, raw2, stats, frame, model, failed_model, summary, deleted, chart, big, run1, run2)


def blob_file(store_root: Path, digest: cas.Digest) -> Path:
    return store_root / "blobs" / digest.hex[:2] / digest.hex[2:]


def packed_at(store_root: Path, digest: cas.Digest) -> tuple[Path, int, int]:
    """Format 2: the pack file holding blob ``digest``, and the blob's offset and length in it."""
    with cas.open_store(store_root) as store:
        (entry,) = store.index.pack_locations(digest.hex)
    return store_root / "packs" / entry.pack[:2] / entry.pack[2:], entry.offset, entry.length


def last_chunk_file(store_root: Path, digest: cas.Digest) -> Path:
    """Format 2: the loose blob of the last chunk of the chunked file ``digest``."""
    from cas.core.chunks import decode_chunk_list

    with cas.open_store(store_root) as store:
        listed = store.index.chunk_list(digest.hex)
        chunks = decode_chunk_list(store.blobs.read_bytes(listed), listed)
    last = chunks.chunks[-1].digest
    return store_root / "blobs" / last[:2] / last[2:]


def corrupt(path: Path, at: int) -> None:
    """Flip one byte of a blob file in place (a bad disk, an edited bucket)."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0xFF]))


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    stderr: Path

    def errors(self) -> str:
        return self.stderr.read_text()


def start_command(store_root: Path, *args: str, env: dict | None = None, stderr: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cas.cli", "--store", str(store_root), "ui", *args]
    with open(stderr, "w") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **(env or {})})


def first_line(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError("cas ui printed nothing within the timeout")
        return proc.stdout.readline()
    finally:
        sel.close()


@contextlib.contextmanager
def ui_server(store_root: Path, *args: str, tmp: Path, env: dict | None = None) -> Iterator[Server]:
    """``cas ui --port 0 --refresh 0`` on ``store_root``; stopped (SIGTERM) at the end."""
    stderr = tmp / f"ui-stderr-{os.getpid()}-{id(args)}.txt"
    proc = start_command(store_root, "--port", "0", "--refresh", "0", *args, env=env, stderr=stderr)
    try:
        line = first_line(proc)
        m = re.search(r"http://\S+/", line)
        assert m, f"no URL in {line!r}; stderr: {stderr.read_text()}"
        yield Server(m.group(0), proc, stderr)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

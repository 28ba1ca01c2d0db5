"""Content for the pages: directory listings, previews and verified downloads.

Every byte shown or served is checked against its digest first (invariant 7):

* up to ``SMALL`` bytes are read whole and verified before anything is sent,
  so a corrupt blob becomes an error page;
* bigger content is streamed in ``CHUNK`` blocks with the last block held
  back until the digest has been checked at EOF: a corrupt blob ends the
  response short of its Content-Length, so a client never ends up with a
  complete file of wrong bytes;
* a preview of big content streams all of it (verifying, bounded memory) and
  keeps only the first ``PREVIEW_BYTES``; past ``PREVIEW_MAX`` it is not
  previewed at all, only offered for download.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cas.core.digest import CHUNK

if TYPE_CHECKING:
    from cas.version import ArtifactVersion

__all__ = ["listing", "preview", "stream", "archive", "sniff_image", "Stream", "SMALL", "PREVIEW_BYTES", "PREVIEW_MAX"]

SMALL = 8 << 20
PREVIEW_BYTES = 64 << 10
PREVIEW_MAX = 256 << 20
TABLE_ROWS = 50
JSON_MAX = 1 << 20  # pretty-print JSON this size or smaller; larger shows as text


@dataclass
class Stream:
    """Verified content: headers known now, the body pulled chunk by chunk."""

    chunks: Iterator[bytes]
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


TEXT_SUFFIXES = {
    "txt", "md", "rst", "log", "py", "yaml", "yml", "toml", "ini", "cfg", "sh", "sql", "html", "xml",
    "js", "ts", "r", "ipynb", "tsv", "jsonl", "ndjson",
}  # fmt: skip
IMAGE_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
]


def listing(entries: list[tuple[str, Any, int]], path: str) -> list[dict[str, Any]]:
    """The immediate children of directory ``path``: directories first (with their
    file counts and total sizes), then files."""
    prefix = f"{path}/" if path else ""
    dirs: dict[str, dict[str, Any]] = {}
    files = []
    for p, digest, size in entries:
        rest = p[len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            d = dirs.setdefault(head, {"name": head, "path": prefix + head, "is_dir": True, "size": 0, "count": 0})
            d["size"] += size
            d["count"] += 1
        else:
            files.append({"name": rest, "path": p, "is_dir": False, "size": size, "digest": digest})
    return [*sorted(dirs.values(), key=lambda d: d["name"]), *files]


def sniff_image(head: bytes) -> str | None:
    for magic, media in IMAGE_MAGIC:
        if head.startswith(magic):
            return media
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _suffix(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def _read_head(v: ArtifactVersion, path: str | None, size: int, keep: int) -> bytes:
    """The first ``keep`` bytes, after every byte was verified (a full streamed read)."""
    if size <= SMALL:
        return v.read_bytes(path)[:keep]
    head = bytearray()
    with v.open(path) as f:
        while block := f.read(CHUNK):
            if len(head) < keep:
                head += block[: keep - len(head)]
    return bytes(head)


def preview(v: ArtifactVersion, path: str | None, size: int, filename: str) -> dict[str, Any]:
    """What the page shows for a file: ``kind`` is text, json, table, image, binary or none."""
    suffix = _suffix(filename)
    if size > PREVIEW_MAX:
        return {"kind": "none", "reason": f"larger than {PREVIEW_MAX >> 20} MiB: download it to look inside"}
    if size == 0:
        return {"kind": "text", "text": "", "truncated": False}
    if suffix == "parquet" or (path is None and v.materializer in ("pandas", "arrow")):
        return _parquet(v, path, size)
    if path is None and v.materializer == "msgpack" and size <= JSON_MAX:
        data = v.read_bytes()  # verified; an IntegrityError is an error page
        try:
            import msgpack

            return {"kind": "json", "text": json.dumps(msgpack.unpackb(data), indent=2, default=str, ensure_ascii=False)}
        except ValueError as e:
            return {"kind": "none", "reason": f"not readable as msgpack: {e}"}
    head = _read_head(v, path, size, max(PREVIEW_BYTES, JSON_MAX if size <= JSON_MAX else 0))
    image = sniff_image(head)
    if image:
        return {"kind": "image", "media_type": image}
    if head.startswith(b"PAR1"):
        return _parquet(v, path, size)
    text = _text(head[:PREVIEW_BYTES] if size > JSON_MAX else head)
    if text is None:
        return {"kind": "binary"}
    if (suffix == "json" or (path is None and v.materializer == "json")) and size <= JSON_MAX:
        try:
            return {"kind": "json", "text": json.dumps(json.loads(text), indent=2, ensure_ascii=False)}
        except ValueError:
            pass  # not JSON after all: show it as text
    shown = text[: PREVIEW_BYTES]
    truncated = size > len(shown.encode("utf-8"))
    if suffix in ("csv", "tsv"):
        return _csv(shown, "\t" if suffix == "tsv" else ",", truncated)
    return {"kind": "text", "text": shown, "truncated": truncated}


def _text(data: bytes) -> str | None:
    """UTF-8 text (a multi-byte character cut at the end is dropped), else None."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start >= len(data) - 3:
            return data[: e.start].decode("utf-8", errors="strict")
        return None


def _csv(text: str, delimiter: str, truncated: bool) -> dict[str, Any]:
    lines = text.splitlines()
    if truncated and lines:
        lines = lines[:-1]  # the last line may be cut
    rows = list(csv.reader(lines[: TABLE_ROWS + 1], delimiter=delimiter))
    if not rows:
        return {"kind": "text", "text": text, "truncated": truncated}
    return {"kind": "table", "columns": rows[0], "rows": rows[1:], "more": truncated or len(lines) > TABLE_ROWS + 1}


def _parquet(v: ArtifactVersion, path: str | None, size: int) -> dict[str, Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return {"kind": "none", "reason": "Parquet previews need the dataframe extra: pip install 'cas-store[dataframe]'"}
    with _verified_file(v, path, size) as f:  # IntegrityError here is the store's fault: let it be an error page
        try:
            pf = pq.ParquetFile(f)
            batch = next(pf.iter_batches(batch_size=TABLE_ROWS), None)
            columns = pf.schema_arrow.names
            rows = [] if batch is None else [[_cell(x) for x in row.values()] for row in batch.to_pylist()]
            total = pf.metadata.num_rows
        except Exception as e:  # noqa: BLE001 - verified bytes that are not Parquet: say so, show no table
            return {"kind": "none", "reason": f"not readable as Parquet: {type(e).__name__}: {e}"}
    return {"kind": "table", "columns": columns, "rows": rows, "more": total > len(rows), "total": total}


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


class _verified_file:
    """A seekable file of verified bytes: in memory when small, else a private temp copy."""

    def __init__(self, v: ArtifactVersion, path: str | None, size: int) -> None:
        self.v, self.path, self.size = v, path, size
        self.tmpdir: str | None = None

    def __enter__(self) -> Any:
        if self.size <= SMALL:
            self.f = io.BytesIO(self.v.read_bytes(self.path))
            return self.f
        self.tmpdir = tempfile.mkdtemp(prefix="cas-ui-")
        target = os.path.join(self.tmpdir, "content")
        with self.v.open(self.path) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)  # EOF checks the digest before anyone parses it
        self.f = open(target, "rb")  # noqa: SIM115 - closed in __exit__
        return self.f

    def __exit__(self, *exc: Any) -> None:
        self.f.close()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def stream(v: ArtifactVersion, path: str | None, filename: str, *, download: bool) -> Stream:
    """The version's (or its file's) verified bytes as a response body."""
    size = v.size if path is None else _file_size(v, path)
    if size <= SMALL:
        data = v.read_bytes(path)  # verified before a byte is sent
        chunks: Iterator[bytes] = _once(data)
        head = data[:16]
    else:
        chunks = _held_back(v.open(path))
        head = next(chunks)
        chunks = _prepend(head, chunks)
    image = sniff_image(head)
    media = image if image and not download else "application/octet-stream"
    disposition = "inline" if media != "application/octet-stream" else "attachment"
    headers = {"Content-Length": str(size), "Content-Disposition": f'{disposition}; filename="{_safe(filename)}"'}
    return Stream(chunks, media, headers)


def archive(v: ArtifactVersion) -> Stream:
    """A tree version as a tar stream, each file verified as it goes (bounded memory).

    No Content-Length: the body is chunked, and a corrupt file ends it without
    the closing chunk, so a client sees a broken transfer, never a whole archive.
    """
    top = f"{v.name.rsplit('/', 1)[-1]}-v{v.version}"
    headers = {"Content-Disposition": f'attachment; filename="{_safe(top)}.tar"'}
    return Stream(_tar(v, top), "application/x-tar", headers)


def _tar(v: ArtifactVersion, top: str) -> Iterator[bytes]:
    mtime = int(v.created_at.timestamp())
    for path, _, size in v.files():
        info = tarfile.TarInfo(f"{top}/{path}")
        info.size, info.mode, info.mtime = size, 0o644, mtime
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        yield from _held_back(v.open(path))
        if size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)  # end of archive


def _safe(filename: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in filename) or "content"


def _file_size(v: ArtifactVersion, path: str) -> int:
    for p, _, size in v.files(path):
        if p == path:
            return size
    raise FileNotFoundError(f"{v.ref} has no file {path!r}")


def _held_back(f: Any) -> Iterator[bytes]:
    """Blocks of ``f``, each yielded only once the next one was read: the last
    leaves only after EOF, where the reader checks the digest."""
    try:
        pending = f.read(CHUNK)
        while pending:
            block = f.read(CHUNK)  # at EOF this raises IntegrityError on a mismatch
            yield pending
            pending = block
    finally:
        f.close()


def _once(data: bytes) -> Iterator[bytes]:
    yield data


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close:
            close()

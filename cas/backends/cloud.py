"""Object-store backends: S3 (s3fs), GCS (gcsfs), Azure Blob (adlfs).

They keep the contract in :mod:`cas.backends.base` with writes the *server*
makes create-only (invariant 5), so many machines can share one bucket:

=========  ==================================  ===============================
backend    create-only put                     large objects (parts of 8 MiB)
=========  ==================================  ===============================
S3         ``If-None-Match: *``                multipart upload, completed with
                                               ``If-None-Match: *``; aborted on
                                               any error
Azure      ``If-None-Match: *`` (upload_blob   staged blocks, committed with
           ``overwrite=False``)                ``If-None-Match: *``
GCS        ``ifGenerationMatch=0``             resumable upload session,
                                               cancelled on error
=========  ==================================  ===============================

An object store never shows a partial object: the final key appears only
when the single PUT, the multipart completion, the block commit or the last
resumable chunk succeeds.  So there is no temp-key-then-rename (S3 has no
rename; a copy would double the bytes).  A process killed mid-upload can
leave an *unfinished* multipart upload (S3) or uncommitted blocks (Azure);
they are invisible, and :meth:`S3Backend.abort_stale_uploads`
(called by ``cas gc``) removes S3's.

"Already exists" is an answer, not an error: ``create_*`` returns False.

Every call is retried while it fails transiently (:mod:`cas.backends.retry`).  A
retried create-only put can meet its own earlier attempt, which reached the
server although its answer was lost (so can the client library's own
retries, which cas cannot see): so "already exists" for a path that is not
named by its content (a ref, a journal entry) is checked against the bytes
we meant to write, and the same bytes mean this call created it.

Every failure of the client library becomes one :class:`BackendError` whose
text has had every secret from the storage options removed (invariant 11).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, BinaryIO, TypeVar

from cas.backends.base import Capabilities, Entry
from cas.backends.fsspec import FsspecBackend
from cas.backends.retry import RetryPolicy
from cas.backends.secrets import Scrubber, secrets_of
from cas.errors import BackendError, CasError

T = TypeVar("T")

__all__ = ["ObjectStoreBackend", "S3Backend", "GcsBackend", "AzureBackend", "cloud_backend", "cloud_options", "is_cloud_url"]

PART_SIZE = 8 << 20
# gcsfs put_file sends files below this in one multipart/related request.
_GCSFS_SIMPLE_UPLOAD_MAX = 5 << 20
# S3 allows at most 10,000 parts per upload.
_MAX_PARTS = 10_000

class ObjectStoreBackend(FsspecBackend):
    """An fsspec object store with server-enforced create-only writes."""

    #: Check existence before every create.  Only for servers that may not
    #: enforce the precondition (see GcsBackend); a false "absent" is still
    #: caught by the conditional write where the server enforces it.
    precheck = False
    part_size = PART_SIZE
    capabilities = Capabilities(atomic_create=True, retries=True)

    def __init__(self, fs, root: str, url: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fs, root, url)
        self._scrub = Scrubber(secrets)
        self.retry = RetryPolicy.from_env()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried while it fails transiently; then library failures become
        one BackendError, while not-found/exists stay what they are."""
        tries = 0

        def attempt() -> T:
            nonlocal tries
            tries += 1
            return fn()

        try:
            return self.retry.call(attempt)
        except (FileNotFoundError, FileExistsError, CasError):
            raise
        except Exception as e:  # client libraries raise their own hierarchies
            detail = " ".join(self._scrub(f"{type(e).__name__}: {e}").split())  # one line (Azure's span several)
            after = f" (after {tries} attempts)" if tries > 1 else ""
            raise BackendError(f"{what} failed on {self.url}: {detail}{after}", what) from None

    def _create(self, rel: str, put: Callable[[], bool], content: Callable[[], BinaryIO], content_addressed: bool) -> bool:
        """Run the create-only ``put`` (False: "already exists"), retried; see the module docstring."""
        tries = 0

        def attempt() -> bool:
            nonlocal tries
            tries += 1
            return put()

        if self._call(f"write {rel}", attempt):
            return True
        if content_addressed:
            # The name is the hash: whoever wrote it, these are our bytes.  Ours if we had to retry.
            return tries > 1
        with content() as ours:
            return self._holds(rel, ours)

    def _holds(self, rel: str, ours: BinaryIO) -> bool:
        """Does the object at ``rel`` hold exactly the bytes of ``ours``?"""

        def compare() -> bool:
            ours.seek(0)
            with self.fs.open(self._abs(rel), "rb", block_size=self.part_size) as theirs:
                while True:
                    block = theirs.read(self.part_size)
                    if block != ours.read(len(block) or 1):
                        return False
                    if not block:
                        return True

        try:
            return self._call(f"read {rel}", compare)
        except FileNotFoundError:
            return False  # removed meanwhile: not ours to claim

    def _part_size(self, size: int) -> int:
        return max(self.part_size, -(-size // _MAX_PARTS))

    # -- reads -------------------------------------------------------------------

    def exists(self, rel: str) -> bool:
        return self._call(f"exists {rel}", lambda: self.fs.exists(self._abs(rel)))

    def read_bytes(self, rel: str) -> bytes:
        return self._call(f"read {rel}", lambda: self.fs.cat_file(self._abs(rel)))

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""  # fsspec reads an empty range as "to the end"
        # one ranged GET (S3/GCS/Azure "Range: bytes=start-end-1")
        return self._call(f"read {rel}", lambda: self.fs.cat_file(self._abs(rel), start=start, end=end))

    def open_read(self, rel: str) -> BinaryIO:
        return self._call(f"open {rel}", lambda: self.fs.open(self._abs(rel), "rb", block_size=self.part_size))

    def size(self, rel: str) -> int:
        return self._call(f"size {rel}", lambda: int(self.fs.size(self._abs(rel))))

    def list(self, prefix: str) -> Iterator[Entry]:
        return iter(self._call(f"list {prefix}", lambda: list(super(ObjectStoreBackend, self).list(prefix))))

    def remove(self, rel: str) -> None:
        self._call(f"remove {rel}", lambda: super(ObjectStoreBackend, self).remove(rel))

    # -- create-only writes ----------------------------------------------------------

    def _create_options(self, size: int) -> dict[str, Any]:
        return {"mode": "create"}

    def create_bytes(self, rel: str, data: bytes, *, content_addressed: bool = False) -> bool:
        path = self._abs(rel)
        data = bytes(data)

        def put() -> bool:
            if self.precheck and self.fs.exists(path):
                return False
            try:
                self.fs.pipe_file(path, data, **self._create_options(len(data)))
            except FileExistsError:
                return False
            return True

        return self._create(rel, put, lambda: io.BytesIO(data), content_addressed)

    def replace_bytes(self, rel: str, data: bytes) -> None:
        # One unconditional PUT: an object store swaps the whole object at once, and a
        # retry of the same bytes gives the same result.
        path = self._abs(rel)
        self._call(f"replace {rel}", lambda: self.fs.pipe_file(path, bytes(data)))

    def create_from_file(
        self, rel: str, local_path: str, *, move: bool = False, content_addressed: bool = False
    ) -> bool:
        path = self._abs(rel)
        try:
            size = os.path.getsize(local_path)

            def put() -> bool:
                # A HEAD is cheaper than re-sending a large object the server would refuse.
                if (self.precheck or size >= self.part_size) and self.fs.exists(path):
                    return False
                try:
                    self.fs.put_file(local_path, path, **self._create_options(size))
                except FileExistsError:
                    return False
                return True

            return self._create(rel, put, lambda: open(local_path, "rb"), content_addressed)
        finally:
            if move:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(local_path)

class S3Backend(ObjectStoreBackend):
    # only S3 keeps unfinished uploads that cost money and can be listed: GCS sessions
    # expire by themselves, Azure drops uncommitted blocks after a week
    capabilities = Capabilities(atomic_create=True, retries=True, stale_uploads=True)

    def _create_options(self, size: int) -> dict[str, Any]:
        # Parts go up one at a time: memory stays at one part whatever the size.
        return {"mode": "create", "chunksize": self._part_size(size), "max_concurrency": 1}

    def _find(self, base: str) -> dict:
        # s3fs's find of a prefix holding nothing asks again whether it is a file (a HEAD
        # and a second LIST); given as a key prefix under its parent it is one paged LIST.
        # The gc/ marks every claim checks, and a journal slot nobody wrote, are empty.
        parent, _, leaf = base.rstrip("/").rpartition("/")
        if not parent or not leaf:
            return super()._find(base)
        return self.fs.find(parent, prefix=leaf + "/", detail=True)

    def _bucket_key(self, rel: str = "") -> tuple[str, str]:
        bucket, _, key = self._abs(rel).partition("/")
        return bucket, key

    def pending_uploads(self) -> list[dict[str, Any]]:
        """Unfinished multipart uploads under this store's root."""
        bucket, prefix = self._bucket_key()
        out = self._call(
            "list multipart uploads", lambda: self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix + "/")
        )
        return list(out.get("Uploads", []))

    def abort_stale_uploads(self, older_than: float) -> int:
        """Abort unfinished multipart uploads started before ``older_than`` (epoch seconds);
        how many were aborted.  Declared by ``capabilities.stale_uploads``."""
        bucket, _ = self._bucket_key()
        aborted = 0
        for upload in self.pending_uploads():
            started = upload.get("Initiated")
            if isinstance(started, datetime):
                if started.tzinfo is None:
                    started = started.replace(tzinfo=timezone.utc)
                if started.timestamp() > older_than:
                    continue
            self._call(
                f"abort upload {upload['Key']}",
                lambda u=upload: self.fs.call_s3(
                    "abort_multipart_upload", Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]
                ),
            )
            aborted += 1
        return aborted


class GcsBackend(ObjectStoreBackend):
    # Real GCS enforces ifGenerationMatch=0; gcp-storage-emulator ignores it,
    # so a HEAD first keeps sequential conflicts correct there too.  Races
    # between machines rely on the server (see docs/backends.md).
    precheck = True

    def create_from_file(
        self, rel: str, local_path: str, *, move: bool = False, content_addressed: bool = False
    ) -> bool:
        try:
            if os.path.getsize(local_path) < _GCSFS_SIMPLE_UPLOAD_MAX:
                # small: gcsfs would send it multipart/related; go through create_bytes' checks
                with open(local_path, "rb") as f:
                    return self.create_bytes(rel, f.read(), content_addressed=content_addressed)
            return super().create_from_file(rel, local_path, content_addressed=content_addressed)
        finally:
            if move:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(local_path)

    def _create_options(self, size: int) -> dict[str, Any]:
        part = self._part_size(size)
        part = -(-part // (256 << 10)) * (256 << 10)  # resumable chunks are multiples of 256 KiB
        return {"mode": "create", "chunksize": part}

    def create_bytes(self, rel: str, data: bytes, *, content_addressed: bool = False) -> bool:
        if not _breaks_gcsfs_multipart(data):
            return super().create_bytes(rel, data, content_addressed=content_addressed)
        # A one-chunk resumable upload sends the raw bytes, no multipart framing.
        path = self._abs(rel)
        data = bytes(data)

        def put() -> bool:
            if self.fs.exists(path):
                return False
            try:
                _run(self.fs, _resumable_put(self.fs, path, data))
            except FileExistsError:
                return False
            return True

        return self._create(rel, put, lambda: io.BytesIO(data), content_addressed)

    def replace_bytes(self, rel: str, data: bytes) -> None:
        # Only the format file is replaced, and its JSON never trips gcsfs's multipart upload;
        # refuse anything that would rather than let the server keep a cut-short object.
        if _breaks_gcsfs_multipart(data):
            raise BackendError(f"cannot replace {rel} on GCS: gcsfs would upload these bytes cut short", rel)
        super().replace_bytes(rel, data)


def _breaks_gcsfs_multipart(data: bytes) -> bool:
    """gcsfs uploads objects under 5 MiB as multipart/related with a fixed boundary
    (``--==0==``) preceded by a bare LF.  A body that contains the boundary is cut
    short, and one that ends in CR loses it ("CR" + "LF--==0==" reads as CRLF +
    boundary).  Those bodies must not go through that route."""
    return data.endswith(b"\r") or b"--==0==" in data


async def _resumable_put(fs, path: str, data: bytes) -> None:
    from gcsfs.core import initiate_upload, upload_chunk

    bucket, key, _ = fs.split_path(path)
    content_type = "application/octet-stream"
    location = await initiate_upload(fs, bucket, key, content_type, mode="create")
    await upload_chunk(fs, location, data, 0, len(data), content_type)


def _run(fs, coro) -> Any:
    from fsspec.asyn import sync

    async def wrapped():
        return await coro

    return sync(fs.loop, wrapped)


class AzureBackend(ObjectStoreBackend):
    def __init__(self, fs, root: str, url: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fs, root, url, secrets)
        # The SDK buffers a whole blob below max_single_put_size (64 MiB by
        # default); cap it so memory stays at one part per upload.
        for client in (getattr(fs, "service_client", None),):
            config = getattr(client, "_config", None)
            if config is not None:
                config.max_single_put_size = self.part_size
                config.max_block_size = min(getattr(config, "max_block_size", self.part_size), self.part_size)

    def _create_options(self, size: int) -> dict[str, Any]:
        return {"mode": "create", "max_concurrency": 1}


_BY_PROTOCOL: dict[str, type[ObjectStoreBackend]] = {
    "s3": S3Backend,
    "s3a": S3Backend,
    "gs": GcsBackend,
    "gcs": GcsBackend,
    "az": AzureBackend,
    "abfs": AzureBackend,
    "abfss": AzureBackend,
}


def is_cloud_url(url: str) -> bool:
    return url.partition("://")[0].lower() in _BY_PROTOCOL


def cloud_options(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Storage options for a cloud URL: listings are never cached, because
    another machine may write at any moment and a stale listing would hide it."""
    if is_cloud_url(url):
        options = {"use_listings_cache": False, **options}
    return options


def cloud_backend(fs, root: str, url: str, options: dict[str, Any]) -> ObjectStoreBackend | None:
    """The object-store backend for ``url``'s protocol, or None for other filesystems."""
    cls = _BY_PROTOCOL.get(url.partition("://")[0].lower())
    if cls is None:
        return None
    return cls(fs, root, url, secrets_of(options))

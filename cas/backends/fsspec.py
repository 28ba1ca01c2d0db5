"""The backend for any fsspec filesystem that has no better one (memory://, sftp, ...).

Create-only is exists-then-put, which no server makes atomic: only
``memory://`` (which no other process can see) declares ``atomic_create``.
Every other filesystem holds a writer lease (:mod:`cas.backends.lease`) before
its first write, so a second writing process is refused instead of racing.
Object stores subclass this with server-enforced create-only puts
(:mod:`cas.backends.cloud`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

from cas.backends.base import TMP_DIR, Backend, Capabilities, Entry
from cas.backends.lease import WriterLease, acquire, process_lock
from cas.backends.secrets import redact_url

__all__ = ["FsspecBackend"]

class FsspecBackend(Backend):
    """Any fsspec filesystem: exists-then-put under one lock per store and process.

    ``memory://`` declares ``atomic_create`` (only this process can see it, and
    the lock orders its threads); any other filesystem takes the writer lease
    before its first write (:mod:`cas.backends.lease`).  Object stores override
    the creates with server-enforced ones (:mod:`cas.backends.cloud`).
    """

    def __init__(self, fs, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = redact_url(url)
        if "memory" in _protocols(fs):
            self.capabilities = Capabilities(atomic_create=True, in_process=True)
        self._key = _store_key(fs, self.root, self.url)
        # shared by every backend object of this store in this process: exists+put must not
        # interleave, and a listing must not walk memory://'s dict while another thread writes
        self._lock = process_lock(self._key)
        self._lease: WriterLease | None = None

    def __repr__(self) -> str:
        return f"FsspecBackend({self.url!r})"

    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._abs(rel))

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self._abs(rel))

    def open_read(self, rel: str) -> BinaryIO:
        return self.fs.open(self._abs(rel), "rb")

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""  # fsspec reads an empty range as "to the end"
        return self.fs.cat_file(self._abs(rel), start=start, end=end)

    def size(self, rel: str) -> int:
        return int(self.fs.size(self._abs(rel)))

    def _put_bytes(self, path: str, data: bytes) -> bool:
        self.fs.pipe_file(path, data)
        return True

    def _put_file(self, path: str, local_path: str) -> bool:
        # Upload under a temporary key, then rename: a failed upload never
        # leaves a partial object under the final key.
        tmp = f"{self.root}/{TMP_DIR}/{uuid.uuid4().hex}"
        try:
            self.fs.put_file(local_path, tmp)
            self.fs.mv(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise
        return True

    def _writing(self) -> threading.Lock:
        """The lock for exists-then-put, once this process may write (see the class docstring)."""
        self._take_lease()
        return self._lock

    def _take_lease(self) -> None:
        if self.capabilities.atomic_create or (self._lease is not None and self._lease.held):
            return
        with self._lock:  # one acquire per backend object, so one release in close() balances it
            if self._lease is None or not self._lease.held:
                self._lease = acquire(self._key, self.url)

    def create_bytes(self, rel: str, data: bytes, *, content_addressed: bool = False) -> bool:
        path = self._abs(rel)
        with self._writing():
            if self.fs.exists(path):
                return False
            return self._put_bytes(path, bytes(data))

    def create_from_file(
        self, rel: str, local_path: str, *, move: bool = False, content_addressed: bool = False
    ) -> bool:
        path = self._abs(rel)
        try:
            with self._writing():
                if self.fs.exists(path):
                    return False
                return self._put_file(path, local_path)
        finally:
            if move:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(local_path)

    def replace_bytes(self, rel: str, data: bytes) -> None:
        # Written under a temporary key, then moved over the name: a filesystem whose
        # move is a rename (memory, sftp, file) never shows a half-written file.
        path = self._abs(rel)
        tmp = f"{self.root}/{TMP_DIR}/{uuid.uuid4().hex}"
        with self._writing():
            try:
                self.fs.pipe_file(tmp, bytes(data))
                self.fs.mv(tmp, path)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.fs.rm_file(tmp)
                raise

    def list(self, prefix: str) -> Iterator[Entry]:
        base = self._abs(prefix)
        try:
            # in-process filesystems (memory://) change the dict a listing walks while
            # other threads write: a listing takes the same lock as exists+put
            with self._lock:
                found = self._find(base)
        except FileNotFoundError:
            return
        root = self.fs._strip_protocol(self.root).rstrip("/")
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            path = self.fs._strip_protocol(path)
            rel = path[len(root) :].lstrip("/")
            yield Entry(rel, int(info.get("size") or 0), _mtime(info))

    def _find(self, base: str) -> dict:
        """Every object under ``base``, with details (``fs.find``)."""
        return self.fs.find(base, detail=True)

    def remove(self, rel: str) -> None:
        self._take_lease()  # a remover is a writer too
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._abs(rel))

    def close(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _store_key(fs, root: str, url: str) -> str:
    """One name per store for its lease: a local path by its real path, whatever the URL spelling."""
    if "file" in _protocols(fs):
        return "file://" + os.path.realpath(root)
    return url.rstrip("/")


def _mtime(info: dict) -> float | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if hasattr(value, "timestamp"):
            return value.timestamp()
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None

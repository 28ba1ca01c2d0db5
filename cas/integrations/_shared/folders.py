"""Framework directories kept as cas versions.

ZenML and MLflow think in directories they fill one file at a time.  cas
thinks in immutable versions.  A *folder* bridges the two: it is a cas
artifact name plus an alias that always points at the folder's current
content.  Every change (a file written, replaced or removed) creates a new
version of the name, moves the alias to it, and deletes the superseded version
(recorded, as ``cas rm`` does; ``gc`` may later reclaim bytes only it held).
So ``cas log NAME`` shows one live version per framework directory, while the
backend keeps the full history of records.

A folder whose content is a single file at its own root is a ``blob`` version
(an MLflow run's top-level file); otherwise it is a ``tree``.  Unchanged
content is never copied: new versions are linked to blobs already stored
(``Store.link`` / ``Store.link_tree``), and new bytes are hashed while spooled,
so saving content that exists writes no blob.

A folder has one writer at a time (a ZenML step, an MLflow run); the lock
below serialises the threads of one process (MLflow uploads from a pool).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from cas.core.digest import CHUNK
from cas.core.names import check_alias
from cas.core.tree import check_tree_path
from cas.errors import (
    ArtifactNotFoundError,
    InvalidNameError,
    PathIsDirectoryError,
    PathNotDirectoryError,
    PathNotFoundError,
    VersionDeletedError,
)
from cas.store.facade import Store
from cas.version import BLOB, TREE, ArtifactVersion

__all__ = ["FolderKey", "Folders", "Entry"]


@dataclass(frozen=True, order=True)
class FolderKey:
    name: str  # pipeline/step/artifact
    alias: str  # points at the folder's current version


@dataclass(frozen=True)
class Entry:
    """One file of a folder: ``path`` inside it ("" for a blob folder's root)."""

    path: str
    digest: str
    size: int


class Folders:
    """Folders over one store.  Paths inside a folder are "/"-separated, relative."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.RLock()

    # -- reading ---------------------------------------------------------------

    def current(self, key: FolderKey) -> ArtifactVersion | None:
        """The folder's live version, or None if it was never written or is gone."""
        with self.lock:
            try:
                return self.store.get_artifact_version(key.name, key.alias)
            except (ArtifactNotFoundError, VersionDeletedError):
                return None

    def entries(self, key: FolderKey) -> dict[str, Entry] | None:
        """Every file of the folder by path; None if the folder does not exist."""
        with self.lock:
            version = self.current(key)
            if version is None:
                return None
            if version.kind == BLOB:
                return {"": Entry("", version.digest.hex, version.size)}
            return {p: Entry(p, d.hex, s) for p, d, s in version.files()}

    def open(self, key: FolderKey, path: str) -> BinaryIO:
        """A verified reader for one file."""
        entry = self.file(key, path)
        # Read outside the lock: blob reads need no index and may run in parallel.
        return io.BufferedReader(self.store.contents.open(entry.digest), CHUNK)  # type: ignore[arg-type]

    def file(self, key: FolderKey, path: str) -> Entry:
        entries = self.entries(key)
        shown = f"{key.name}@{key.alias}" + (f"/{path}" if path else "")
        if entries is None:
            raise PathNotFoundError(f"no such file: {shown}", shown)
        entry = entries.get(path)
        if entry is None:
            if any(p.startswith(f"{path}/") or not path for p in entries):
                raise PathIsDirectoryError(f"is a directory: {shown}", shown)
            raise PathNotFoundError(f"no such file: {shown}", shown)
        return entry

    # -- writing ---------------------------------------------------------------

    def put(
        self,
        key: FolderKey,
        files: dict[str, Entry],
        *,
        remove: tuple[str, ...] = (),
        metadata: dict[str, Any],
        lineage: dict[str, str] | None = None,
    ) -> ArtifactVersion | None:
        """Add ``files`` (already stored blobs) and drop paths under ``remove``.

        The result becomes the folder's new current version; None if nothing is
        left (the folder is then deleted).  ``lineage``: ``run_id`` and
        ``step_run_id`` of the producing step, written into the version record.
        """
        check_alias(key.alias)
        for path in files:
            if path:
                check_tree_path(path)
        with self.lock:
            while True:
                # Another process may move the folder between our read and our move
                # (two `mlflow server` workers): the move is claimed as the next one
                # after what we read, and a lost claim merges again from the winner's.
                seq = self.store.index.alias_seq(key.name, key.alias)
                old = self.current(key)
                entries = self.entries(key) or {}
                for prefix in remove:
                    entries = {p: e for p, e in entries.items() if not _under(p, prefix)}
                if "" in files and (entries.keys() - {""} or len(files) > 1):
                    raise PathIsDirectoryError(f"{key.name}@{key.alias} is a directory", key.name)
                if "" in entries and files.keys() - {""}:
                    raise PathNotDirectoryError(f"{key.name}@{key.alias} is a file, not a directory", key.name)
                entries.update(files)
                if old is not None and _same(old, entries):
                    return old  # nothing changed: no new version
                new: ArtifactVersion | None = None
                if "" in entries:
                    e = entries[""]
                    new = self.store.link(key.name, e.digest, BLOB, metadata=metadata, lineage=lineage)
                elif entries:
                    files_ = [(e.path, e.digest, e.size) for e in entries.values()]
                    new = self.store.link_tree(key.name, files_, metadata=metadata, lineage=lineage)
                if new is not None and not self.store.versions.move_alias(key.name, key.alias, new.version, after=seq):
                    self.store.delete_version(key.name, new.version)  # never current: retract, merge again
                    continue
                if old is not None and (new is None or old.version != new.version):
                    self._retire(key, old)
                return new

    def write(
        self,
        key: FolderKey,
        path: str,
        source: BinaryIO | bytes | str | os.PathLike,
        *,
        metadata: dict[str, Any],
        lineage: dict[str, str] | None = None,
    ) -> ArtifactVersion | None:
        """Store one file's bytes (hashed first: a dedupe hit writes no blob) and add it."""
        return self.put(key, {path: Entry(path, *self.store_bytes(source))}, metadata=metadata, lineage=lineage)

    def store_bytes(self, source: BinaryIO | bytes | str | os.PathLike) -> tuple[str, int]:
        """Put content into the store's blobs; returns (digest, size)."""
        blobs, backend = self.store.blobs, self.store.backend
        with backend.batch():
            if isinstance(source, (bytes, bytearray, memoryview)):
                result = blobs.put_bytes(bytes(source))
            elif isinstance(source, (str, os.PathLike)):
                result = blobs.put_file(source)
            else:
                result = blobs.put_stream(source)
        return result.digest, result.size

    def remove(self, key: FolderKey, path: str, *, metadata: dict[str, Any]) -> None:
        """Remove a file, or everything below a directory path ("" = the whole folder)."""
        with self.lock:
            entries = self.entries(key)
            if entries is None or not any(_under(p, path) for p in entries):
                shown = f"{key.name}@{key.alias}/{path}"
                raise PathNotFoundError(f"no such file or directory: {shown}", shown)
            self.put(key, {}, remove=(path,), metadata=metadata)

    def _retire(self, key: FolderKey, old: ArtifactVersion) -> None:
        """Delete a superseded version, unless a user alias still points at it."""
        others = [a for a, v in self.store.aliases(key.name).items() if v == old.version and a != key.alias]
        if others:
            return
        try:
            self.store.delete_version(key.name, old.version)
        except VersionDeletedError:
            pass

    # -- enumerating -----------------------------------------------------------

    def live(self, name_prefix: str, alias_prefix: str) -> Iterator[tuple[FolderKey, ArtifactVersion]]:
        """Every live folder whose name starts with ``name_prefix``, by its alias prefix."""
        with self.lock:
            try:
                names = self.store.list_artifacts(name_prefix)
            except InvalidNameError:
                return
            found = []
            for name in names:
                for alias in sorted(self.store.aliases(name)):
                    if not alias.startswith(alias_prefix):
                        continue
                    key = FolderKey(name, alias)
                    version = self.current(key)
                    if version is not None:
                        found.append((key, version))
        yield from found


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _same(version: ArtifactVersion, entries: dict[str, Entry]) -> bool:
    if version.kind == BLOB:
        return set(entries) == {""} and entries[""].digest == version.digest.hex
    if version.kind != TREE or "" in entries:
        return False
    return {(p, d.hex) for p, d, _ in version.files()} == {(e.path, e.digest) for e in entries.values()}

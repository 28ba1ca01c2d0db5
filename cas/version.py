"""ArtifactVersion: one immutable name@version -> digest binding, and its bytes."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cas.core.digest import CHUNK, Digest
from cas.core.records import BLOB, TREE
from cas.core.tree import check_tree_path
from cas.errors import InvalidValueError, PathNotFoundError
from cas.storage.download import Download

if TYPE_CHECKING:
    from cas.core.progress import Callback
    from cas.index import VersionRow
    from cas.lineage.query import LineageGraph
    from cas.lineage.runs import PipelineRun, StepRun
    from cas.store.facade import Store

__all__ = ["ArtifactVersion", "BLOB", "TREE"]



@dataclass(frozen=True)
class ArtifactVersion:
    name: str
    version: int
    digest: Digest
    kind: str  # "blob" or "tree"
    size: int  # bytes of content (a tree: the sum of its files)
    created_at: datetime
    metadata: dict[str, Any] = field(compare=False, hash=False)
    materializer: str | None = None
    run_id: str | None = None
    step_run_id: str | None = None
    deleted: bool = False
    store: Store = field(default=None, repr=False, compare=False, hash=False)  # type: ignore[assignment]
    id: int = field(default=0, repr=False, compare=False)

    @classmethod
    def from_row(cls, store: Store, row: VersionRow) -> ArtifactVersion:
        """Build a version from an index row (for cas internals; users call ``Store.get_artifact_version``)."""
        return cls(
            name=row.name,
            version=row.version,
            digest=Digest(row.digest),
            kind=row.kind,
            size=row.size,
            created_at=datetime.fromisoformat(row.created_at),
            metadata=json.loads(row.metadata),
            materializer=row.materializer,
            run_id=row.run_id,
            step_run_id=row.step_run_id,
            deleted=row.deleted_at is not None,
            store=store,
            id=row.id,
        )

    @property
    def ref(self) -> str:
        """``pipeline/step/artifact@N``."""
        return f"{self.name}@{self.version}"

    def __str__(self) -> str:
        return f"{self.ref} ({self.kind}, {self.size} bytes, {self.digest})"

    # -- objects and lineage (reads inside a step are recorded as its inputs) --

    def load(self, allow_pickle: bool = False) -> Any:
        """The object that was saved, rebuilt by the materializer its record names.

        bytes load as bytes, str as str, a saved path as a ``Path`` to a fresh
        verified copy, JSON/msgpack data, arrays and frames as themselves.
        A pickled version raises :class:`~cas.errors.UnsafeLoadError` unless
        ``allow_pickle=True``.  Large blobs: prefer ``open()`` or ``download()``.
        """
        from cas.materializers import load_version  # a version that is only shown never loads the materializers

        return load_version(self, allow_pickle=allow_pickle)

    @property
    def producer_step(self) -> StepRun | None:
        """The step run that saved this version (None if saved outside any run)."""
        return self.store.step_run(self.step_run_id)

    @property
    def run(self) -> PipelineRun | None:
        """The pipeline run whose step saved this version (None if saved outside any run)."""
        return self.store.get_run(self.run_id) if self.run_id else None

    @property
    def inputs(self) -> list[ArtifactVersion]:
        """The versions the producing step consumed (deleted ones included, marked)."""
        return self.store.producer_inputs(self)

    def lineage(self, direction: str = "up", depth: int | None = None) -> LineageGraph:
        """``store.lineage(self, direction, depth)``."""
        return self.store.lineage(self, direction, depth)

    # -- bytes ---------------------------------------------------------------

    def files(self, prefix: str = "") -> list[tuple[str, Digest, int]]:
        """(path, digest, size) of every file in a tree version."""
        if self.kind != TREE:
            return [("", self.digest, self.size)]
        return [(p, Digest(d), s) for p, d, s in self.store.index.tree_entries(self.digest.hex, prefix)]

    def _blob_for(self, path: str | None) -> str:
        if self.kind == BLOB:
            if path:
                raise InvalidValueError(f"{self.ref} is a file, not a directory: no {path!r} inside it")
            return self.digest.hex
        if not path:
            raise IsADirectoryError(f"{self.ref} is a directory; name a file inside it")
        entry = self.store.index.tree_entry(self.digest.hex, check_tree_path(path))
        if entry is None:
            raise FileNotFoundError(f"{self.ref} has no file {path!r}")
        return entry[0]

    def open(self, path: str | None = None) -> BinaryIO:
        """A buffered, seekable reader, verified at the end of a sequential read and before
        the first byte of a random access (see ``cas.storage.blobs.VerifyingReader``); a
        chunked file (format 2) reads only the chunks a range needs, each verified first
        (``cas.storage.chunk_reader.ChunkedReader``)."""
        self.store.publisher.note_read(self)
        return io.BufferedReader(self.store.contents.open(self._blob_for(path)), CHUNK)  # type: ignore[arg-type]

    def read_bytes(self, path: str | None = None) -> bytes:
        """All the bytes of the version (or of ``path`` inside a tree), verified against the digest; raises ``IntegrityError`` on a mismatch."""
        self.store.publisher.note_read(self)
        return self.store.contents.read_bytes(self._blob_for(path))

    def blocks(self, path: str | None = None) -> Iterator[memoryview]:
        """The bytes of the version (or of ``path`` inside a tree) in order, a block at a
        time, each a view valid until the next is asked for - what ``cas cat`` streams.
        A chunked file (format 2) yields each chunk only once it matches its digest; a
        whole blob is checked when its last block has passed (``IntegrityError`` then):
        use ``read_bytes`` to get nothing before everything is verified."""
        self.store.publisher.note_read(self)
        return self.store.contents.blocks(self._blob_for(path))

    def read_text(self, path: str | None = None, encoding: str = "utf-8") -> str:
        """``read_bytes(path)`` decoded with ``encoding``."""
        return self.read_bytes(path).decode(encoding)

    def download(
        self,
        dest: str | os.PathLike,
        *,
        paths: Iterable[str] | None = None,
        progress: Callback | None = None,
    ) -> Path:
        """Write the file (or the directory tree) to ``dest``; returns what was written.

        If ``dest`` is an existing directory, the artifact is written inside it
        under its artifact name.  Nothing appears until every byte is verified;
        on an error the destination is left as it was (see :mod:`cas.storage.download`).
        ``paths`` (a tree only): just these files or directories inside it, each
        written at its own path below ``dest``; a path the tree lacks is an error.
        ``progress``, an fsspec ``Callback``, gets the bytes written and each
        finished file (see :mod:`cas.core.progress`).
        """
        self.store.publisher.note_read(self)
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / self.name.rsplit("/", 1)[-1]
        if self.kind == BLOB and paths is not None:
            raise InvalidValueError(f"{self.ref} is a file, not a directory: it has no paths inside")
        with Download(self.store.contents, progress=progress) as d:  # whole and verified, or nothing at all
            if self.kind == BLOB:
                d.file(self.digest.hex, dest)
            else:
                d.tree([(path, digest.hex) for path, digest, _ in self.select(paths)], dest)
        return dest


    def select(self, paths: Iterable[str] | None) -> list[tuple[str, Digest, int]]:
        """The tree's files, or those at or below each of ``paths`` (PathNotFoundError
        for a path with nothing at or below it)."""
        if paths is None:
            return self.files()
        wanted = [check_tree_path(p.strip("/")) for p in ([paths] if isinstance(paths, str) else paths)]
        chosen: dict[str, tuple[str, Digest, int]] = {}
        for want in wanted:
            found = [e for e in self.files(want) if e[0] == want or e[0].startswith(want + "/")]
            if not found:
                raise PathNotFoundError(f"{self.ref} has no file or directory {want!r}")
            chosen.update((e[0], e) for e in found)
        return [chosen[p] for p in sorted(chosen)]

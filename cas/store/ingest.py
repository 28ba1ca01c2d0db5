"""Ingesting content: blobs and trees put into the store, and versions claimed for them.

``save`` stores new content; ``link`` and ``link_tree`` bind a new version to
content already stored, reading and writing no content byte.  Each returns the
committed version's index row.  A directory being saved never includes the
store it is saved into.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from cas.core.chunks import wants_chunks
from cas.core.digest import Digest
from cas.core.names import ArtifactName, parse_name
from cas.core.progress import as_callback
from cas.core.records import BLOB, TREE, Lineage, check_json_map, version_record
from cas.core.refs import version_ref
from cas.core.tree import ChunkedEntry, check_entries, chunks_of, decode_manifest, encode_manifest
from cas.errors import (
    BlobNotFoundError,
    CasError,
    IntegrityError,
    InvalidValueError,
    UnsupportedDataError,
    VersionExistsError,
)
from cas.index import Looked, StatCache, VersionRow
from cas.storage.blobs import PutResult
from cas.storage.chunked import ChunkedPut, put_chunked, read_chunk_list
from cas.store import trees
from cas.store.publish import Publisher
from cas.store.versions import Versions

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["Ingest"]


class Ingest:
    """Puts content into one store and claims the versions that name it."""

    def __init__(self, publisher: Publisher, versions: Versions) -> None:
        self.publisher = publisher
        self.versions = versions
        self.backend = publisher.backend
        self.blobs = publisher.blobs
        self.index = publisher.index

    def save(
        self,
        data: Any,
        aname: ArtifactName,
        payload: Callable[[], AbstractContextManager[Any]],
        *,
        materializer: str | None,
        metadata: dict[str, Any],
        aliases: list[str],
        progress: Callback | None,
        if_changed: bool,
        lineage: Callable[[], Lineage | None] | None,
        extra: dict[str, Any] | None,
        rehash: bool = False,
    ) -> VersionRow:
        """Store ``data`` as the next version of ``aname`` (arguments already checked).

        ``payload()`` materializes ``data`` into what is stored (bytes, str, a path,
        a binary file); it is called again if a gc sweep may have taken the content.
        ``lineage()``, called once the content is stored and a version will be made,
        names the producing step.  ``extra``: fields written over the record's
        (tests forge old or foreign records with it).  ``rehash``: bypass the stat cache.
        """
        started, position = time.time(), _position(data)
        with payload() as content:
            # the stat cache for the caller's own files, not for a materializer's scratch files
            kind, result, entries = self.put_content(content, progress, cache=content is data, rehash=rehash)
        name = str(aname)
        if if_changed and (same := self.latest_if_same(name, kind, result.digest)) is not None:
            with self.publisher.batch():
                for alias in aliases:
                    self.versions.move_alias(name, alias, same)
            return self.versions.committed(name, same)
        produced = lineage() if lineage is not None else None
        chunked = result if isinstance(result, ChunkedPut) else None
        record = version_record(
            name, result.digest, kind, result.size, metadata, materializer=materializer, lineage=produced,
            chunks=chunked.chunks if chunked else None,
        )
        record.update(extra or {})  # type: ignore[typeddict-item]

        def restore() -> None:
            # Put the content again, from the data the caller gave (materialized again).
            if position is None:  # a one-pass stream: it can only be checked
                self.publisher.check_present(kind, result.digest, entries, record.get("chunks"))
                return
            if hasattr(data, "read"):
                data.seek(position)
            with payload() as content:
                again = self.put_content(content, None, cache=content is data, rehash=rehash)[1]
            if again.digest != result.digest:
                raise IntegrityError(result.digest, again.digest, "the content changed while it was being saved")

        content = [chunked.chunks, *chunked.chunk_digests] if chunked else None
        with self.publisher.batch():  # format 2: the version and its aliases in one journal entry
            version = self.claim_version(aname, record, entries, since=started, restore=restore, content=content)
            for alias in aliases:
                self.versions.move_alias(name, alias, version)
        return self.versions.committed(name, version)

    def link(
        self,
        name: str,
        digest: str | Digest,
        kind: str = BLOB,
        *,
        version: int | None = None,
        metadata: dict[str, Any] | None = None,
        lineage: Lineage | None = None,
    ) -> VersionRow:
        """A new version of ``name`` bound to blob or tree manifest ``digest``, already stored
        (``Store.link`` says the rest)."""
        started = time.time()  # before the blobs are checked: see claim_version
        aname = parse_name(name)
        hexdigest = Digest.parse(digest).hex
        metadata = check_json_map(metadata, "metadata")
        self.publisher.refresh()  # the index vouches for blobs of live versions: not for ones deleted (and collected) elsewhere
        exact = self.versions.check_exact(str(aname), version)
        entries = content = None
        chunks = self.index.chunk_list(hexdigest) if kind == BLOB else None
        if chunks is not None:  # a chunked file (format 2): its list and chunks must be there
            listed = read_chunk_list(self.blobs, chunks)
            if not any(row.deleted_at is None for row in self.index.versions_with_digest(hexdigest)):
                self.require_blobs(listed.chunks)
            size, content = listed.size, [chunks, *(c.digest for c in listed.chunks)]
        elif kind == BLOB:
            size = self.blobs.size(hexdigest)  # BlobNotFoundError if absent
        elif kind == TREE:
            if self.index.has_tree(hexdigest):
                if not self.blobs.exists(hexdigest):
                    raise BlobNotFoundError(hexdigest)
                listed = self.index.tree_entries(hexdigest)
            else:
                listed = entries = decode_manifest(self.blobs.read_bytes(hexdigest), hexdigest)
            if not any(row.deleted_at is None for row in self.index.versions_with_digest(hexdigest)):
                # No live version protects these blobs from gc: check they are all there.
                self.require_blobs((d, s) for _, d, s in listed)
            size = sum(s for _, _, s in listed)
        else:
            raise InvalidValueError(f"invalid kind {kind!r}: expected {BLOB!r} or {TREE!r}")
        # A link names no materializer (the content's writer chose none here).
        record = version_record(str(aname), hexdigest, kind, size, metadata, lineage=lineage, chunks=chunks)
        number = self.claim_version(
            aname, record, entries, exact=exact, since=started, content=content,
            restore=lambda: self.publisher.check_present(kind, hexdigest, None, chunks),
        )
        return self.versions.committed(str(aname), number)

    def link_tree(
        self,
        name: str,
        entries: Iterable[tuple[str, str, int]],
        *,
        version: int | None = None,
        metadata: dict[str, Any] | None = None,
        lineage: Lineage | None = None,
    ) -> VersionRow:
        """A new tree version from blobs already stored (``Store.link_tree`` says the rest)."""
        aname = parse_name(name)
        metadata = check_json_map(metadata, "metadata")
        # an entry names its chunk list when its file is chunked (format 2)
        clean = [ChunkedEntry(*e, c) if (c := self.index.chunk_list(e[1])) else e for e in check_entries(entries)]
        exact = self.versions.check_exact(str(aname), version)
        started = time.time()
        self.publisher.refresh()  # as in link(): a version deleted elsewhere no longer vouches for its blobs
        self.require_blobs((d, s) for _, d, s in clean)
        manifest = self.blobs.put_bytes(encode_manifest(clean))
        record = version_record(
            str(aname), manifest.digest, TREE, sum(s for _, _, s in clean), metadata, lineage=lineage
        )

        def restore() -> None:
            self.blobs.put_bytes(encode_manifest(clean))
            self.publisher.check_present(TREE, manifest.digest, clean)

        number = self.claim_version(aname, record, clean, exact=exact, since=started, restore=restore)
        return self.versions.committed(str(aname), number)

    # -- claiming a version number ---------------------------------------------------------

    def claim_version(
        self,
        aname: ArtifactName,
        record: dict[str, Any],
        entries,
        exact: int | None = None,
        since: float | None = None,
        restore: Callable[[], None] | None = None,
        content: list[str] | None = None,
    ) -> int:
        """Claim the next free number, or exactly ``exact`` (VersionExistsError if taken).

        ``since``: when the save began storing content; ``restore`` puts that
        content back (or checks it is there) if a gc sweep ran since then.
        ``content``: the blobs the version needs when they are not its digest and a
        tree's files (a chunked file: its list and chunks).
        """
        name = str(aname)
        caught_up = False

        def after(lost: int) -> int:
            nonlocal caught_up
            if not caught_up:
                # This index is behind (another machine wrote): catch up once from
                # the journal rather than failing one claim per missed version.
                self.publisher.refresh()
                caught_up = True
            return max(lost + 1, self.index.max_version(name) + 1)

        first = exact if exact is not None else self.index.max_version(name) + 1
        claimed = self.publisher.claim(
            record,
            "version",
            first,
            lambda n: version_ref(name, n),
            exact=exact is not None,
            next_after=after,
            since=since,
            blobs=lambda: content if content is not None else self._content_blobs(record, entries),
        )
        if claimed is None:
            raise VersionExistsError(f"{name}@{exact} was claimed by another writer", f"{name}@{exact}")
        if claimed.swept and restore is not None:
            try:
                restore()
            except Exception:
                # Reused content is gone and cannot be put back (a one-pass stream, a
                # source file that changed or vanished): the number is spent, so the
                # version is committed and its deletion recorded at once - never left
                # as an orphan that someone would complete into a version without content.
                self.publisher.commit(claimed.ref, claimed.record_digest, record, entries)
                self.versions.record_deletion(name, claimed.number)
                raise
        self.publisher.commit(claimed.ref, claimed.record_digest, record, entries)
        return claimed.number

    def _content_blobs(self, record: dict[str, Any], entries) -> list[str]:
        """The content blobs of a version record: its digest, and a tree's files."""
        if record["kind"] != TREE:
            return self._chunked_content(record["chunks"]) if record.get("chunks") else [record["digest"]]
        listed = entries if entries is not None else self.index.tree_entries(record["digest"])
        found = [record["digest"]]
        for entry in listed:
            chunks = chunks_of(entry) or (self.index.chunk_list(entry[1]) if entries is None else None)
            found.extend(self._chunked_content(chunks) if chunks else [entry[1]])
        return found

    def _chunked_content(self, list_digest: str) -> list[str]:
        """A chunked file's list and chunks; just the list if it cannot be read (then a
        sweep that removed it overlaps anyway, and the content is put back)."""
        try:
            return [list_digest, *(c.digest for c in read_chunk_list(self.blobs, list_digest).chunks)]
        except CasError:
            return [list_digest]

    def require_blobs(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Every blob is stored with that size.  A blob a live version already
        uses is known without asking the backend, so re-linking a tree with one
        new file costs one request, not one per file."""
        seen: set[str] = set()
        for digest, size in pairs:
            if digest in seen:
                continue
            seen.add(digest)
            actual = self.index.live_blob_size(digest)
            if actual is None and (chunks := self.index.chunk_list(digest)) is not None:
                listed = read_chunk_list(self.blobs, chunks)  # a chunked file (format 2): its chunks
                self.require_blobs(listed.chunks)
                actual = listed.size
            elif actual is None:
                actual = self.blobs.size(digest)  # BlobNotFoundError if absent
            if actual != size:
                raise IntegrityError(digest, "?", f"blob is {actual} bytes, the entry says {size}")

    def latest_if_same(self, name: str, kind: str, digest: str) -> int | None:
        """The latest live version of ``name`` if its content is exactly this."""
        rows = self.index.list_versions(name, include_deleted=False)
        latest = rows[-1] if rows else None
        if latest is not None and latest.kind == kind and Digest(latest.digest).hex == digest:
            return latest.version
        return None

    # -- content ---------------------------------------------------------------------------

    def put_content(self, data, progress: Callback | None, *, cache=False, rehash=False) -> tuple[str, PutResult, list | None]:
        """Store ``data`` (bytes, str, a path, a binary file): (kind, result, tree entries).
        ``cache``: use the stat cache for a path's files (``rehash``: but read each one)."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            with self.backend.batch():
                if wants_chunks(self.publisher.format, len(data)):
                    return BLOB, put_chunked(self.blobs, data, progress), None
                return BLOB, self.blobs.put_bytes(bytes(data)), None
        if isinstance(data, str):
            with self.backend.batch():
                return BLOB, self.blobs.put_bytes(data.encode("utf-8")), None
        if isinstance(data, os.PathLike):
            path = os.fspath(data)
            self.refuse_own(path)
            if os.path.isdir(path):
                return trees.put_tree(self, path, progress, self.index.stat_cache(path, use=cache, rehash=rehash))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no such file or directory: {path}")
            with self.backend.batch(), self.index.stat_cache(path, use=cache, rehash=rehash) as seen:
                return BLOB, self.put_file(path, as_callback(progress), seen, seen.look(path)), None
        if hasattr(data, "read"):
            with self.backend.batch():
                return BLOB, self.blobs.put_stream(data, progress), None
        raise UnsupportedDataError(
            f"cannot save a {type(data).__name__}: pass bytes, str, a pathlib.Path, or a binary file object"
        )

    def put_file(self, path: str, progress: Callback, seen: StatCache, looked: Looked, sink=None) -> PutResult:
        """A file as one blob, or (format 2) a large one as chunks and a chunk list, a small one
        into the tree's packing session ``sink``.  A blob the stat cache vouches for (``looked``)
        is not read: the store is only asked if it holds it, of the file's size (gc; a poisoned row)."""
        if wants_chunks(self.publisher.format, looked.stat.size if looked.key else os.path.getsize(path)):
            result: PutResult = put_chunked(self.blobs, path, progress)
        elif looked.digest is not None and self.blobs.stored_size(looked.digest) == looked.stat.size:
            progress.relative_update(looked.stat.size)
            return PutResult(looked.digest, looked.stat.size, False)
        else:
            result = (sink or self.blobs).put_file(path, progress)
        seen.learn(looked, result.digest, result.size)
        return result

    def refuse_own(self, path: str) -> None:
        own = self.own_files()
        if any(_identity(p) in own for p in _self_and_parents(path)):
            raise InvalidValueError(f"refusing to save {path!r}: it is part of the store it would be saved into")

    def own_files(self) -> set[tuple[int, int]]:
        """Identities of this store's own directory and live index files: a
        directory being saved never includes the store it is saved into."""
        paths = [self.index.path + suffix for suffix in ("", "-wal", "-shm", "-journal")]
        if self.backend.capabilities.local:
            paths.append(self.backend.root)  # type: ignore[attr-defined]  # a local backend's directory
        return {ident for p in paths if (ident := _identity(p)) is not None}


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _self_and_parents(path: str) -> Iterable[str]:
    path = os.path.abspath(path)
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _position(payload: Any) -> int | None:
    """Where the content of ``payload`` starts, if it can be read again (None: a one-pass stream)."""
    if not hasattr(payload, "read"):
        return 0  # bytes, str, a path: read again from where they are
    try:
        return payload.tell() if payload.seekable() else None
    except (OSError, ValueError):
        return None

"""The ``cas://`` filesystem: an fsspec view over the index.

Namespace: ``cas://<pipeline>/<step>/<artifact>/<version>[/<path in a tree>]``.
The root lists pipelines, a pipeline its steps, a step its artifacts, an
artifact its live version numbers.  A blob version is a file; a tree version
is a directory.  ``latest`` and aliases work wherever a version number does,
for reading (they are not listed, so ``find``/``du`` count each version once).
``info``/``ls``/``find``/``walk``/``glob``/``du`` are answered from the index
and never read blob bytes; ``ukey`` is the digest, ``checksum`` the digest as
an integer.

Writing (see docs/filesystem.md for the whole contract):

* ``p/s/a/N`` must be the next version number of ``p/s/a`` (or follow a draft
  ``N-1`` of this filesystem).  Committed versions never change: writing over
  one raises VersionExistsError, writing or removing inside one ReadOnlyError.
* Writing the version path itself (``p/s/a/N``) stores one file; when the file
  is closed outside a transaction, version N is committed at once.
* Writing below it (``p/s/a/N/x/y``), ``mkdir`` and copies into it build a
  *draft* tree — mutable, seen by every instance and process on this store's
  index (``fs_drafts``), not a version yet — committed as one version by
  :meth:`CasFileSystem.commit`, when an fsspec transaction (``with
  fs.transaction:``) ends (an exception in it discards the draft), or when the
  last process writing it ends cleanly (``fs_finish``).  Blobs are durable
  when each file closes; a commit writes the manifest, the version record and
  its ref, so ``reindex`` sees it.
* Copy and move inside the view move no bytes: only index entries and records.
  ``rm`` records deletions of versions; bytes go only through ``gc``.

Layers, each building on the one before: ``fs_paths`` (the path grammar),
``fs_base`` (lookups and info from the index), ``fs_write`` (drafts and
commits), ``fs_copy`` (copy, move, remove), this module (listing, reading,
registration); ``fs_drafts`` (the draft book), ``fs_finish`` (committing
drafts when their writers end), ``fs_procs`` and ``fs_files`` (the file
objects) support them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.spec import AbstractFileSystem
from fsspec.transaction import Transaction
from fsspec.utils import isfilelike

from cas.core.digest import CHUNK, Digest
from cas.errors import (
    ArtifactNotFoundError,
    PathIsDirectoryError,
    PathNotFoundError,
    ReadOnlyError,
)
from cas.fs.base import dir_info, file_info
from cas.fs.copy import CopyRemoveMixin
from cas.fs.drafts import Draft, DraftMap, Staged
from cas.fs.files import CasReadFile, CasWriteFile
from cas.fs.paths import CasPath
from cas.storage.download import Download
from cas.store.facade import Store, open_store
from cas.version import TREE, ArtifactVersion

__all__ = ["CasFileSystem", "CasTransaction"]

# Options fsspec itself understands; everything else goes to the store's backend.
_FSSPEC_OPTIONS = ("use_listings_cache", "listings_expiry_time", "max_paths", "asynchronous", "loop")


class CasTransaction(Transaction):
    """fsspec's transaction, plus: on success commit this process's open drafts, on error discard them."""

    def complete(self, commit: bool = True) -> None:
        fs = self.fs
        super().complete(commit)  # our files' commit()/discard(): closing already staged them
        if fs is not None:
            if commit:
                fs.commit()
            else:
                fs.discard()


class _CasCached(type(AbstractFileSystem)):  # type: ignore[misc]
    def __call__(cls, *args, **kwargs):
        store = kwargs.get("store")
        if store is not None and not isinstance(store, (str, os.PathLike)):
            # fsspec caches instances by the repr of their options, and a Store
            # reprs as its URL: two Store objects on one URL must not share drafts.
            kwargs["_store_id"] = id(store)
        return super().__call__(*args, **kwargs)


class CasFileSystem(CopyRemoveMixin, metaclass=_CasCached):
    """``cas://`` over a store.

    ``store``: a :class:`~cas.Store`, or a URL/path to open (default
    ``$CAS_STORE``, else ``./.cas``).  ``index`` and ``create`` go to
    :func:`cas.open_store`, as does every other option (credentials and
    settings for the backend's fsspec filesystem; never stored or shown).
    Instances are cached per options and thread, as fsspec does; drafts
    belong to the store, so every instance sees them.
    """

    protocol = "cas"
    root_marker = ""
    transaction_type = CasTransaction

    def __init__(
        self,
        store: Store | str | os.PathLike | None = None,
        *,
        index: str | None = None,
        create: bool = True,
        **storage_options: Any,
    ) -> None:
        storage_options.pop("_store_id", None)
        fsspec_options = {k: storage_options.pop(k) for k in _FSSPEC_OPTIONS if k in storage_options}
        super().__init__(**fsspec_options)
        if isinstance(store, Store):
            self.store = store
        else:
            self.store = open_store(store, index=index, create=create, **storage_options)
        self._drafts = DraftMap(self.store)
        self._lock = threading.RLock()
        self._getting = threading.local()  # .download: the Download a running get() collects into

    def __repr__(self) -> str:
        return f"CasFileSystem({self.store!r})"

    @property
    def fsid(self) -> str:
        return f"cas-{self.store.store_id}"

    # -- reading the namespace -----------------------------------------------------

    def info(self, path, **kwargs) -> dict[str, Any]:
        return self._info(self._parse(path))

    def exists(self, path, **kwargs) -> bool:
        cp = self._parse(path)  # a malformed path is an error, not "no"
        try:
            self._info(cp)
        except FileNotFoundError:
            return False
        return True

    def isdir(self, path) -> bool:
        cp = self._parse(path)
        try:
            return self._info(cp)["type"] == "directory"
        except FileNotFoundError:
            return False

    def isfile(self, path) -> bool:
        cp = self._parse(path)
        try:
            return self._info(cp)["type"] == "file"
        except FileNotFoundError:
            return False

    def ls(self, path, detail=True, **kwargs):
        cp = self._parse(path)
        if cp.level < 4:
            entries = self._ls_namespace(cp)
        else:
            v = self._version_of(cp)
            info = self._node_info(cp, v)
            entries = [info] if info["type"] == "file" else self._ls_version(cp, v)
        if detail:
            return entries
        return sorted(e["name"] for e in entries)

    def _ls_namespace(self, cp: CasPath) -> list[dict[str, Any]]:
        self.store.refresh()  # the index may be behind the backend (another machine wrote)
        if cp.level < 3:
            prefix = f"{cp.path}/" if cp.path else ""
            kids = sorted({n[len(prefix) :].split("/", 1)[0] for n in self._names_below(cp)})
            if not kids and cp.level > 0:
                raise PathNotFoundError(f"no such {cp.what}: cas://{cp.path}", cp.path)
            return [dir_info(cp.join(k)) for k in kids]
        out: dict[int, dict[str, Any]] = {}
        try:
            versions = self.store.list_versions(cp.path)
        except ArtifactNotFoundError:
            versions = []
        for av in versions:
            child = CasPath(cp.join(str(av.version)), (*cp.segments, str(av.version)), "", av.version)
            out[av.version] = self._node_info(child, av)
        for (name, number), draft in self._drafts.items():
            if name == cp.path:
                child = CasPath(cp.join(str(number)), (*cp.segments, str(number)), "", number)
                out[number] = self._node_info(child, draft)
        if not out:
            raise PathNotFoundError(f"no such artifact: cas://{cp.path}", cp.path)
        return [out[k] for k in sorted(out)]

    def _ls_version(self, cp: CasPath, v: Draft | ArtifactVersion) -> list[dict[str, Any]]:
        if isinstance(v, Draft):
            extra = {"version": v.version, "committed": False}
            return [
                file_info(cp.join(name), s.digest, s.size, s.mtime, **extra)
                if s is not None
                else dir_info(cp.join(name), v.created, **extra)
                for name, s in v.children(cp.inner)
            ]
        ts = v.created_at.timestamp()
        extra = {"version": v.version, "committed": True}
        prefix = f"{cp.inner}/" if cp.inner else ""
        kids: dict[str, tuple[str, int] | None] = {}
        for path, digest, size in self.store.index.tree_entries(v.digest.hex, prefix):
            head, sep, _ = path[len(prefix) :].partition("/")
            if sep:
                kids.setdefault(head, None)
            else:
                kids[head] = (digest, size)
        return [
            file_info(cp.join(name), kid[0], kid[1], ts, **extra) if kid else dir_info(cp.join(name), ts, **extra)
            for name, kid in sorted(kids.items())
        ]

    def _below(self, cp: CasPath, maxdepth: int | None) -> Iterator[dict[str, Any]]:
        """Every file and directory below a directory, at most ``maxdepth`` levels down."""
        if cp.level < 4:
            if maxdepth is not None and maxdepth < 1:
                return
            for info in self._ls_namespace(cp):
                yield info
                if info["type"] == "directory":
                    yield from self._below(self._parse(info["name"]), None if maxdepth is None else maxdepth - 1)
            return
        # Inside a version: one pass over its entries (one index query for a tree).
        v = self._version_of(cp)
        if isinstance(v, Draft):
            extra = {"version": v.version, "committed": False}
            rows: Iterator[tuple[str, Staged | None]] = v.below(cp.inner)
            for rel, s in rows:
                if maxdepth is not None and rel.count("/") + 1 > maxdepth:
                    continue
                name = cp.join(rel)
                yield file_info(name, s.digest, s.size, s.mtime, **extra) if s else dir_info(name, v.created, **extra)
            return
        if v.kind != TREE:
            return
        ts = v.created_at.timestamp()
        extra = {"version": v.version, "committed": True}
        prefix = f"{cp.inner}/" if cp.inner else ""
        seen: set[str] = set()
        for path, digest, size in self.store.index.tree_entries(v.digest.hex, prefix):
            rel = path[len(prefix) :]
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                d = "/".join(parts[:depth])
                if d not in seen and (maxdepth is None or depth <= maxdepth):
                    seen.add(d)
                    yield dir_info(cp.join(d), ts, **extra)
            if maxdepth is None or len(parts) <= maxdepth:
                yield file_info(cp.join(rel), digest, size, ts, **extra)

    def find(self, path, maxdepth=None, withdirs=False, detail=False, **kwargs):
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        cp = self._parse(path)
        try:
            top = self._info(cp)
        except FileNotFoundError:
            return {} if detail else []
        out: dict[str, dict[str, Any]] = {}
        if top["type"] == "file":
            out[cp.path] = top
        else:
            if withdirs and cp.path:
                out[cp.path] = top  # as fsspec's find does, for posix glob semantics
            for info in self._below(cp, maxdepth):
                if withdirs or info["type"] == "file":
                    out[info["name"]] = info
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def du(self, path, total=True, maxdepth=None, withdirs=False, **kwargs):
        found = self.find(path, maxdepth=maxdepth, withdirs=withdirs, detail=True)
        sizes = {name: info["size"] for name, info in found.items()}
        return sum(sizes.values()) if total else sizes

    def ukey(self, path) -> str:
        """The content digest, ``blake3:<hex>`` (for a tree version, its manifest's)."""
        info = self.info(path)
        return info["digest"] if "digest" in info else super().ukey(path)

    def checksum(self, path) -> int:
        """The content digest as an integer: equal checksums mean equal bytes."""
        info = self.info(path)
        if "digest" in info:
            return int(Digest.parse(info["digest"]).hex, 16)
        return super().checksum(path)

    def created(self, path) -> datetime:
        return self._time(path, "created")

    def modified(self, path) -> datetime:
        return self._time(path, "mtime")

    def _time(self, path, key: str) -> datetime:
        info = self.info(path)
        if key not in info:
            raise PathIsDirectoryError(f"cas://{info['name']} is a namespace directory; it has no time", info["name"])
        return datetime.fromtimestamp(info[key], tz=timezone.utc)

    # -- reading bytes ---------------------------------------------------------------

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        cp = self._parse(path)
        if mode == "rb":
            info = self._info(cp)
            if info["type"] != "file":
                raise PathIsDirectoryError(f"cas://{cp.path} is a directory", cp.path)
            return CasReadFile(self, cp.path, Digest.parse(info["digest"]).hex, info)
        if mode not in ("wb", "xb", "ab"):
            raise ReadOnlyError(
                f"mode {mode!r} is not supported: cas files are read ('rb') or written whole ('wb', 'xb', 'ab')",
                cp.path,
            )
        with self._lock:
            draft = self._check_writable(cp, exclusive=mode == "xb")
        f = CasWriteFile(self, cp, autocommit=autocommit, mode=mode)
        if mode == "ab" and draft is not None:
            existing = draft.blob if not cp.inner else draft.file(cp.inner)
            if existing is not None:  # append to a draft file: start from its content
                with self.store.blobs.open(existing.digest) as src:
                    while block := src.read(CHUNK):
                        f.write(block)
        return f

    # -- downloading ----------------------------------------------------------------

    def get(self, rpath, lpath, recursive=False, callback=DEFAULT_CALLBACK, maxdepth=None, **kwargs) -> None:
        """fsspec's ``get``, all or nothing: files are moved into place only once every one is verified."""
        with Download(self.store.blobs) as download:
            self._getting.download = download
            try:
                super().get(rpath, lpath, recursive=recursive, callback=callback, maxdepth=maxdepth, **kwargs)
            finally:
                self._getting.download = None

    def get_file(self, rpath, lpath, callback=DEFAULT_CALLBACK, outfile=None, **kwargs) -> None:
        """One file to a local path, whole and verified or not at all (a directory: made)."""
        if outfile is not None or isfilelike(lpath):
            # the caller's own file object: streamed, and verified when the read reaches EOF
            return super().get_file(rpath, lpath, callback=callback, outfile=outfile, **kwargs)
        info = self._info(self._parse(rpath))
        active = getattr(self._getting, "download", None)
        with contextlib.nullcontext(active) if active is not None else Download(self.store.blobs) as download:
            if info["type"] == "directory":
                download.mkdir(lpath)
                return None
            callback.set_size(info["size"])
            download.file(Digest.parse(info["digest"]).hex, lpath)
            callback.relative_update(info["size"])
        return None

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
  index (:mod:`cas.fs.book`), not a version yet — committed as one version by
  :meth:`CasFileSystem.commit`, when an fsspec transaction (``with
  fs.transaction:``) ends (an exception in it discards the draft), or when the
  last process writing it ends cleanly (:mod:`cas.fs.finish`).  Blobs are durable
  when each file closes; a commit writes the manifest, the version record and
  its ref, so ``reindex`` sees it.
* Copy and move inside the view move no bytes: only index entries and records.
  ``rm`` records deletions of versions; bytes go only through ``gc``.

The filesystem holds its collaborators, each owning its part of the state:
a :class:`~cas.fs.drafts.DraftMap` (the store's drafts, rows of its draft
book, :mod:`cas.fs.book`), a :class:`~cas.fs.view.View` (paths resolved to
versions and drafts; info and listings), a :class:`~cas.fs.write.Writer`
(staging files, making directories, committing drafts; it owns the lock) and
a :class:`~cas.fs.copy.Copier` (copy, move, remove).  :mod:`cas.fs.finish`
commits drafts when their writers end; :mod:`cas.fs.files` has the file
objects; :mod:`cas.fs.paths` the path grammar.
"""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import datetime, timezone
from typing import Any

from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.spec import AbstractFileSystem
from fsspec.transaction import Transaction
from fsspec.utils import isfilelike

from cas.core.digest import Digest
from cas.errors import PathIsDirectoryError, ReadOnlyError
from cas.fs.copy import Copier
from cas.fs.drafts import DraftMap
from cas.fs.files import CasReadFile
from cas.fs.view import View
from cas.fs.write import Writer
from cas.storage.download import Download
from cas.store.facade import Store, open_store
from cas.version import ArtifactVersion

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


class CasFileSystem(AbstractFileSystem, metaclass=_CasCached):
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
        self._view = View(self.store, self._drafts, self._strip_protocol)
        self._writer = Writer(self.store, self._view, self._drafts)
        self._copier = Copier(self, self._view, self._writer)
        self._getting = threading.local()  # .download: the Download a running get() collects into

    def __repr__(self) -> str:
        return f"CasFileSystem({self.store!r})"

    @property
    def fsid(self) -> str:
        return f"cas-{self.store.store_id}"

    # -- reading the namespace -----------------------------------------------------

    def info(self, path, **kwargs) -> dict[str, Any]:
        return self._view.info(self._view.parse(path))

    def _type(self, path) -> str | None:
        cp = self._view.parse(path)  # a malformed path is an error, not "no"
        try:
            return self._view.info(cp)["type"]
        except FileNotFoundError:
            return None

    def exists(self, path, **kwargs) -> bool:
        return self._type(path) is not None

    def isdir(self, path) -> bool:
        return self._type(path) == "directory"

    def isfile(self, path) -> bool:
        return self._type(path) == "file"

    def ls(self, path, detail=True, **kwargs):
        entries = self._view.ls(self._view.parse(path))
        if detail:
            return entries
        return sorted(e["name"] for e in entries)

    def find(self, path, maxdepth=None, withdirs=False, detail=False, **kwargs):
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        out = self._view.find(self._view.parse(path), maxdepth, withdirs)
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

    # -- files ---------------------------------------------------------------------

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        cp = self._view.parse(path)
        if mode == "rb":
            info = self._view.info(cp)
            if info["type"] != "file":
                raise PathIsDirectoryError(f"cas://{cp.path} is a directory", cp.path)
            return CasReadFile(self, cp.path, Digest.parse(info["digest"]).hex, info)
        if mode not in ("wb", "xb", "ab"):
            raise ReadOnlyError(
                f"mode {mode!r} is not supported: cas files are read ('rb') or written whole ('wb', 'xb', 'ab')",
                cp.path,
            )
        return self._writer.open(cp, mode, autocommit=autocommit)

    def get(self, rpath, lpath, recursive=False, callback=DEFAULT_CALLBACK, maxdepth=None, **kwargs) -> None:
        """fsspec's ``get``, all or nothing: files are moved into place only once every one is verified."""
        with Download(self.store.contents) as download:
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
        info = self.info(rpath)
        active = getattr(self._getting, "download", None)
        with contextlib.nullcontext(active) if active is not None else Download(self.store.contents) as download:
            if info["type"] == "directory":
                download.mkdir(lpath)
                return None
            callback.set_size(info["size"])
            download.file(Digest.parse(info["digest"]).hex, lpath)
            callback.relative_update(info["size"])
        return None

    def pipe_file(self, path, value, mode="overwrite", **kwargs) -> None:
        cp = self._view.parse(path)
        self._writer.put_bytes(cp, bytes(value), exclusive=mode == "create", autocommit=not self._intrans)

    def put_file(self, lpath, rpath, callback=DEFAULT_CALLBACK, mode="overwrite", **kwargs) -> None:
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        cp = self._view.parse(rpath)
        self._writer.put_file(cp, lpath, callback, exclusive=mode == "create", autocommit=not self._intrans)

    def mkdir(self, path, create_parents=True, **kwargs) -> None:
        self._writer.make_dir(self._view.parse(path), create_parents, exist_ok=False)

    def makedirs(self, path, exist_ok=False) -> None:
        try:
            self._writer.make_dir(self._view.parse(path), create_parents=True, exist_ok=exist_ok)
        except FileExistsError:
            if not exist_ok:
                raise

    # -- copy, move, remove ----------------------------------------------------------

    def cp_file(self, path1, path2, **kwargs) -> None:
        self._copier.cp_file(path1, path2, autocommit=not self._intrans)

    def copy(self, path1, path2, recursive=False, maxdepth=None, on_error=None, **kwargs) -> None:
        if self._copier.copy_version(path1, path2, recursive, maxdepth, autocommit=not self._intrans):
            return
        super().copy(path1, path2, recursive=recursive, maxdepth=maxdepth, on_error=on_error, **kwargs)

    def mv(self, path1, path2, recursive=False, maxdepth=None, **kwargs) -> None:
        self._copier.mv(path1, path2, recursive, maxdepth)

    def rm(self, path, recursive=False, maxdepth=None) -> None:
        self._copier.rm(path, recursive=recursive, maxdepth=maxdepth)

    def rm_file(self, path) -> None:
        self.rm(path)

    def _rm(self, path) -> None:
        self.rm(path)

    def rmdir(self, path) -> None:
        self._copier.rmdir(path)

    # -- drafts and commits --------------------------------------------------------------

    def draft_status(self) -> list[dict[str, Any]]:
        """The store's open drafts: path, files, bytes, pids of writers still at work, and why one
        is kept from committing on its own (``broken``, None if it is not)."""
        return self._writer.status()

    def drafts(self) -> list[str]:
        """Version paths (``p/s/a/N``) of the store's open drafts, whichever instance or process writes them."""
        return [f"{name}/{number}" for name, number in sorted(self._drafts)]

    def commit(self, path=None) -> list[ArtifactVersion]:
        """Commit open drafts as versions, in version order: those at or below ``path``
        (whoever wrote them), or with no path those this process wrote to.

        A draft with no file commits nothing.  Each version commits
        atomically; several drafts are not one atomic unit: on an error the
        drafts not yet committed stay open.
        """
        return self._writer.commit(None if path is None else self._view.parse(path))

    def discard(self, path=None) -> None:
        """Drop open drafts (at or below ``path``, or this process's); their blobs are left for ``gc``.
        A ``mv`` into a dropped draft keeps its source."""
        self._writer.discard(None if path is None else self._view.parse(path))

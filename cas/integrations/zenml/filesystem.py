"""ZenML's filesystem method set over the ``cas://`` version namespace, without importing zenml.

ZenML's ``BaseArtifactStore`` (and ``zenml.io.filesystem.BaseFilesystem``)
expects exactly these methods and signatures.  The cas artifact store
(:mod:`.artifact_store`) answers them from folders (one live version per
ZenML directory, see :mod:`cas.integrations._shared.space`); this class
answers them from :class:`cas.fs.CasFileSystem` itself - paths are
``cas://<pipeline>/<step>/<artifact>/<version>/...``, drafts and commits as
the filesystem has them - for code that wants ZenML's interface over
versions it names.
Paths may be ``str`` or ``bytes`` (ZenML's ``PathType``) and carry the
``cas://`` scheme.  ``IS_IMMUTABLE_FILESYSTEM`` tells ZenML not to expect
overwrites or appends of committed files.

Mapping (ZenML method -> cas:// filesystem):

=============  ==============================================================
open           ``fs.open`` (text or binary); writes follow the draft rules
copyfile       ``fs.copy`` - metadata only; FileExistsError if dst exists
               and not ``overwrite`` (a committed dst is never overwritten)
exists         ``fs.exists``
glob           ``fs.glob``, results as ``cas://`` URIs
isdir          ``fs.isdir``
listdir        ``fs.ls`` names relative to ``path`` (what ``os.listdir`` gives)
makedirs       ``fs.makedirs(exist_ok=True)``
mkdir          ``fs.mkdir(create_parents=False)``
remove         ``fs.rm`` of one file (a blob version is deleted, recorded)
rename         ``fs.mv`` - metadata only; FileExistsError as for copyfile
rmtree         ``fs.rm(recursive=True)`` - versions are deleted, recorded
stat           ``fs.info`` (name, size, type, mtime, digest, version)
size           ``fs.size``
walk           ``fs.walk`` yielding (``cas://`` dir, dir names, file names)
=============  ==============================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Union

from cas.errors import PathExistsError, PathNotDirectoryError
from cas.fs import CasFileSystem

__all__ = ["CasZenMLFileSystem", "PathType"]

PathType = Union[bytes, str]
SCHEME = "cas://"


def _str(path: PathType) -> str:
    return os.fsdecode(path) if isinstance(path, bytes) else str(path)


class CasZenMLFileSystem:
    """ZenML's artifact-store method set, with ZenML's signatures."""

    SUPPORTED_SCHEMES: ClassVar[set[str]] = {SCHEME}
    IS_IMMUTABLE_FILESYSTEM: ClassVar[bool] = True

    def __init__(self, fs: CasFileSystem | None = None, **options: Any) -> None:
        """``fs``: a CasFileSystem; else one is made from ``options`` (``store=...``)."""
        self.fs = fs if fs is not None else CasFileSystem(**options)

    def open(self, path: PathType, mode: str = "r") -> Any:
        return self.fs.open(_str(path), mode=mode)

    def copyfile(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        if not overwrite and self.fs.exists(_str(dst)):
            raise PathExistsError(
                f"unable to copy to {_str(dst)}: it already exists (set overwrite=True to replace a draft file)",
                _str(dst),
            )
        self.fs.copy(_str(src), _str(dst))

    def exists(self, path: PathType) -> bool:
        return self.fs.exists(_str(path))

    def glob(self, pattern: PathType) -> list[PathType]:
        return [self.fs.unstrip_protocol(p) for p in self.fs.glob(_str(pattern))]

    def isdir(self, path: PathType) -> bool:
        return self.fs.isdir(_str(path))

    def listdir(self, path: PathType) -> list[PathType]:
        info = self.fs.info(_str(path))  # PathNotFoundError if it is not there
        base = info["name"]
        if info["type"] != "directory":
            raise PathNotDirectoryError(f"{_str(path)} is a file, not a directory", base)
        prefix = f"{base}/" if base else ""
        return [name[len(prefix) :] for name in self.fs.ls(base, detail=False)]

    def makedirs(self, path: PathType) -> None:
        self.fs.makedirs(_str(path), exist_ok=True)

    def mkdir(self, path: PathType) -> None:
        self.fs.mkdir(_str(path), create_parents=False)

    def remove(self, path: PathType) -> None:
        self.fs.rm(_str(path))

    def rename(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        if not overwrite and self.fs.exists(_str(dst)):
            raise PathExistsError(
                f"unable to rename to {_str(dst)}: it already exists (set overwrite=True to replace a draft file)",
                _str(dst),
            )
        self.fs.mv(_str(src), _str(dst), recursive=True)

    def rmtree(self, path: PathType) -> None:
        self.fs.rm(_str(path), recursive=True)

    def stat(self, path: PathType) -> Any:
        return self.fs.info(_str(path))

    def size(self, path: PathType) -> int:
        return int(self.fs.size(_str(path)))

    def walk(
        self,
        top: PathType,
        topdown: bool = True,
        onerror: Callable[..., None] | None = None,
    ) -> Iterable[tuple[PathType, list[PathType], list[PathType]]]:
        on_error: Any = onerror if onerror is not None else "omit"
        for directory, dirs, files in self.fs.walk(_str(top), topdown=topdown, on_error=on_error):
            yield self.fs.unstrip_protocol(directory), list(dirs), list(files)

"""The materializer contract: Python objects to stored content, and back.

A materializer is chosen by the type of the object being saved (or by name,
``store.save(obj, name, materializer="pickle")``) and its ``name`` is written
into the version record, so ``ArtifactVersion.load()`` finds the same
materializer again without a hint.  The name is part of the stored format:
once versions carry it, never change what it means.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Union

if TYPE_CHECKING:
    from cas.version import ArtifactVersion

__all__ = ["Materializer", "Payload", "verified_file"]

# Below this, verify in memory; above, stream to a private temp file (bounded memory).
_IN_MEMORY = 64 << 20


@contextlib.contextmanager
def verified_file(version: ArtifactVersion) -> Iterator[BinaryIO]:
    """A seekable file of the version's bytes, all checked against the digest
    *before* a parser sees any of them.

    ``version.open()`` verifies when a sequential read reaches EOF; parsers
    that seek (Parquet footers) or stop early (``.npy``, pickle's STOP opcode)
    never get there, and pickle would have run code first.  Loaders of such
    formats read from this instead.
    """
    if version.size <= _IN_MEMORY:
        yield io.BytesIO(version.read_bytes())
        return
    tmpdir = tempfile.mkdtemp(prefix="cas-load-")
    try:
        path = version.download(os.path.join(tmpdir, "content"))
        with open(path, "rb") as f:
            yield f
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

#: What ``save`` returns: anything the core ``Store.save`` stores as is -
#: bytes, str (UTF-8 text), a path to a file or a directory (a tree), or a binary file object.
Payload = Union[bytes, str, os.PathLike, BinaryIO]


class Materializer:
    """Base class for materializers; subclass it and register it.

    Class attributes:

    ``name``      recorded in every version it saves; a stable identifier.
    ``priority``  among the materializers whose ``can_save`` accepts an object,
                  the highest priority wins (core types 100, plugins 50 by
                  default, dataframe types 10, JSON 1, msgpack 0).
    ``auto``      False: never chosen by type, only when asked for by name.
    ``safe``      False: loading may run code from the stored bytes (pickle);
                  ``load()`` then refuses unless the caller passes
                  ``allow_pickle=True``.
    """

    name: ClassVar[str] = ""
    priority: ClassVar[int] = 50
    auto: ClassVar[bool] = True
    safe: ClassVar[bool] = True
    passthrough: ClassVar[bool] = False  # True: ``save`` returns ``obj`` itself (core types only)

    def can_save(self, obj: Any) -> bool:
        """True if this materializer stores ``obj`` faithfully.  Must not import heavy modules."""
        raise NotImplementedError

    def save(self, obj: Any, scratch: Path) -> Payload:
        """Turn ``obj`` into storable content.

        ``scratch`` is an empty private directory, removed after the save: write
        large content there as a file (or a directory tree) and return its path,
        so it is streamed, not held in memory.  Raise
        :class:`cas.errors.UnsupportedDataError` for an object it cannot store.
        """
        raise NotImplementedError

    def load(self, version: ArtifactVersion) -> Any:
        """Rebuild the object from ``version`` (``version.open()``, ``read_bytes()``,
        ``download()``); every byte read is verified against its digest."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<materializer {self.name}>"

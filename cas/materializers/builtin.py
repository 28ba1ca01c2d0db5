"""Materializers that need nothing beyond the core dependencies.

``bytes``, ``str`` and ``path`` keep the core meanings of ``Store.save``;
``json`` and ``msgpack`` store plain data exactly (anything they would not
give back unchanged - tuples, sets, NaN in JSON, custom classes - is refused,
not silently altered); ``pickle`` is used only when asked for by name, and its
versions load only with ``allow_pickle=True``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from cas.errors import UnsupportedDataError
from cas.materializers.base import Materializer, Payload, verified_file

if TYPE_CHECKING:
    from cas.version import ArtifactVersion

__all__ = [
    "BytesMaterializer",
    "TextMaterializer",
    "PathMaterializer",
    "JsonMaterializer",
    "MsgpackMaterializer",
    "PickleMaterializer",
]

_MAX_NESTING = 500  # deeper values are refused rather than risk a RecursionError


class BytesMaterializer(Materializer):
    """bytes, bytearray, memoryview and binary file objects; loads as ``bytes``."""

    name = "bytes"
    priority = 100
    passthrough = True

    def can_save(self, obj: Any) -> bool:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return True
        return hasattr(obj, "read") and not isinstance(obj, (str, os.PathLike))

    def save(self, obj: Any, scratch: Path) -> Payload:
        return obj

    def load(self, version: ArtifactVersion) -> bytes:
        return version.read_bytes()


class TextMaterializer(Materializer):
    """str, stored as UTF-8; loads as ``str``."""

    name = "str"
    priority = 100
    passthrough = True

    def can_save(self, obj: Any) -> bool:
        return isinstance(obj, str)

    def save(self, obj: Any, scratch: Path) -> Payload:
        return obj

    def load(self, version: ArtifactVersion) -> str:
        return version.read_text()


class PathMaterializer(Materializer):
    """A file or directory named by an ``os.PathLike``.

    Loads as a ``pathlib.Path`` to a fresh, verified copy in a new temporary
    directory, named after the artifact; the caller owns (and removes) it.
    """

    name = "path"
    priority = 100
    passthrough = True

    def can_save(self, obj: Any) -> bool:
        return isinstance(obj, os.PathLike)

    def save(self, obj: Any, scratch: Path) -> Payload:
        return obj

    def load(self, version: ArtifactVersion) -> Path:
        scratch = tempfile.mkdtemp(prefix="cas-load-")
        try:
            return version.download(scratch)
        except BaseException:
            os.rmdir(scratch)  # a failed download leaves it empty: leave nothing at all
            raise


def _json_plain(obj: Any, depth: int = 0) -> bool:
    """Exactly representable in JSON: json.loads(json.dumps(obj)) gives obj back, same types."""
    if depth > _MAX_NESTING:
        return False
    t = type(obj)
    if t is str or t is bool or t is int or obj is None:
        return True
    if t is float:
        return math.isfinite(obj)
    if t is list:
        return all(_json_plain(v, depth + 1) for v in obj)
    if t is dict:
        return all(type(k) is str and _json_plain(v, depth + 1) for k, v in obj.items())
    return False


def _msgpack_plain(obj: Any, depth: int = 0) -> bool:
    """Exactly representable in msgpack: adds bytes and non-string keys to what JSON takes."""
    if depth > _MAX_NESTING:
        return False
    t = type(obj)
    if t is str or t is bool or t is float or t is bytes or obj is None:
        return True
    if t is int:
        return -(2**63) <= obj < 2**64
    if t is list:
        return all(_msgpack_plain(v, depth + 1) for v in obj)
    if t is dict:
        return all(type(k) in (str, int, bytes, bool) and _msgpack_plain(k) and _msgpack_plain(v, depth + 1) for k, v in obj.items())
    return False


class JsonMaterializer(Materializer):
    """dict / list / int / float / bool / None made of plain JSON values; UTF-8 JSON, key order kept."""

    name = "json"
    priority = 1

    def can_save(self, obj: Any) -> bool:
        return _json_plain(obj)

    def save(self, obj: Any, scratch: Path) -> Payload:
        if not _json_plain(obj):
            raise UnsupportedDataError(f"a {type(obj).__name__} with non-JSON parts cannot be saved as JSON exactly")
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

    def load(self, version: ArtifactVersion) -> Any:
        return json.loads(version.read_bytes())


class MsgpackMaterializer(Materializer):
    """Plain data JSON cannot hold exactly: bytes values, int or bytes keys, NaN."""

    name = "msgpack"
    priority = 0

    def can_save(self, obj: Any) -> bool:
        return _msgpack_plain(obj)

    def save(self, obj: Any, scratch: Path) -> Payload:
        if not _msgpack_plain(obj):
            raise UnsupportedDataError(f"a {type(obj).__name__} with non-msgpack parts cannot be saved as msgpack exactly")
        return msgpack.packb(obj, use_bin_type=True)

    def load(self, version: ArtifactVersion) -> Any:
        return msgpack.unpackb(version.read_bytes(), raw=False, strict_map_key=False)


class PickleMaterializer(Materializer):
    """Any picklable object - only when asked for: ``save(obj, name, materializer="pickle")``.

    Unpickling runs code chosen by whoever wrote the bytes, so loading needs
    ``load(allow_pickle=True)``.
    """

    name = "pickle"
    priority = -100
    auto = False
    safe = False

    def can_save(self, obj: Any) -> bool:
        return True

    def save(self, obj: Any, scratch: Path) -> Payload:
        path = scratch / "object.pickle"
        try:
            with open(path, "wb") as f:
                pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise UnsupportedDataError(f"cannot pickle a {type(obj).__name__}: {e}") from None
        return path

    def load(self, version: ArtifactVersion) -> Any:
        with verified_file(version) as f:
            return pickle.load(f)  # noqa: S301 - the caller passed allow_pickle=True

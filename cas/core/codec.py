"""The bytes of a record: canonical msgpack, and the checks a value passes before it is stored.

``encode`` is the one encoder of records, journal entries and every other msgpack
object cas writes (keys sorted at every level, so equal records hash equal);
``unpack`` is the first step of every decoder of backend bytes.  Pure: no I/O.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import msgpack

from cas.errors import InvalidNameError, InvalidValueError

__all__ = ["brief", "check_json_map", "decode", "encode", "now_iso", "unpack"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def encode(record: dict[str, Any]) -> bytes:
    """Canonical msgpack: keys sorted at every level, so equal records hash equal."""
    return msgpack.packb(_canonical(record), use_bin_type=True)


def check_json_map(value: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """A user-supplied map (metadata, params) as it will be stored, or InvalidValueError.

    Checked before any byte is written: JSON-able, no NaN, and integers that
    fit msgpack's 64 bits (JSON's ints are unbounded, the record's are not).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValueError(f"{what} must be a dict")
    try:
        checked = json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InvalidValueError(f"{what} must be JSON-serialisable: {e}") from None
    try:
        encode({what: checked})
    except (OverflowError, ValueError, TypeError) as e:
        raise InvalidValueError(f"{what} cannot be stored: {e} (integers must fit in 64 bits)") from None
    return checked


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def decode(data: bytes) -> dict[str, Any]:
    """Raw msgpack, the inverse of :func:`encode`, for tools and tests (cas reads backends only through the validating decoders)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def unpack(data: bytes) -> Any:
    """Untrusted msgpack bytes as a value; InvalidNameError (the decoders' signal) if they are not msgpack."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise InvalidNameError(f"not msgpack ({e})") from None


def brief(value: Any) -> str:
    """``value`` for an error message: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

"""Field checkers of the record codecs: each checks one decoded value against docs/format.md.

A checker returns normally or raises ``InvalidNameError`` saying what is wrong;
the record decoder (``cas.core.records``) turns that into a ``CorruptRecordError``
naming the blob.  The record families (``version_records``, ``run_records``) build
their schemas from these.  Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cas.core.codec import brief
from cas.core.digest import is_hex_digest
from cas.core.names import MAX_VERSION, check_alias, check_segment, parse_name
from cas.errors import InvalidNameError

__all__ = [
    "Check", "alias", "digest", "inputs", "integer", "json_map", "name", "one_of", "optional", "segment", "text", "time",
]

#: a field checker: returns, or raises InvalidNameError
Check = Callable[[Any], None]


def text(v: Any) -> None:
    if not isinstance(v, str):
        raise InvalidNameError(f"expected a string, got {brief(v)}")


def time(v: Any) -> None:
    text(v)
    try:
        datetime.fromisoformat(v)
    except ValueError:
        raise InvalidNameError(f"not an ISO 8601 time: {brief(v)}") from None


def integer(lowest: int, highest: int) -> Check:
    def check(v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not lowest <= v <= highest:
            raise InvalidNameError(f"expected an integer in [{lowest}, {highest}], got {brief(v)}")

    return check


def one_of(*choices: str) -> Check:
    def check(v: Any) -> None:
        if v not in choices:
            raise InvalidNameError(f"expected one of {', '.join(choices)}, got {brief(v)}")

    return check


def digest(v: Any) -> None:
    if not isinstance(v, str) or not is_hex_digest(v):
        raise InvalidNameError(f"not a digest: {brief(v)}")


def name(v: Any) -> None:
    text(v)
    parse_name(v)


def segment(v: Any) -> None:
    check_segment(v, "segment")


def alias(v: Any) -> None:
    check_alias(v)


def _json(v: Any, depth: int = 0) -> None:
    """What the index stores as JSON: maps with string keys, lists, finite numbers, 64-bit ints."""
    if depth > 64:
        raise InvalidNameError("nested too deep")
    if isinstance(v, dict):
        for k, item in v.items():
            if not isinstance(k, str):
                raise InvalidNameError(f"map key {brief(k)} is not a string")
            _json(item, depth + 1)
    elif isinstance(v, list):
        for item in v:
            _json(item, depth + 1)
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise InvalidNameError(f"{v} is not a finite number")
    elif isinstance(v, int) and not isinstance(v, bool):
        if not -(2**63) <= v < 2**64:
            raise InvalidNameError(f"{v} does not fit in 64 bits")
    elif v is not None and not isinstance(v, (str, bool)):
        raise InvalidNameError(f"{type(v).__name__} is not JSON data")


def json_map(v: Any) -> None:
    if not isinstance(v, dict):
        raise InvalidNameError(f"expected a map, got {brief(v)}")
    _json(v)


def inputs(v: Any) -> None:
    if not isinstance(v, list):
        raise InvalidNameError(f"expected a list of [name, version], got {brief(v)}")
    for item in v:
        if not (isinstance(item, list) and len(item) == 2):
            raise InvalidNameError(f"an input is [name, version], got {brief(item)}")
        name(item[0])
        integer(1, MAX_VERSION)(item[1])


def optional(check: Check) -> Check:
    def maybe(v: Any) -> None:
        if v is not None:
            check(v)

    return maybe

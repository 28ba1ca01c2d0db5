"""Framework path components <-> cas name segments, reversibly.

A component that already is a valid segment (and does not start with the
escape prefix) is used as is, so ``train/model`` stays readable.  Anything
else (``_private``, ``my step``, non-ASCII) becomes ``x--`` + the hex of its
UTF-8 bytes; that fits names of up to 62 bytes.  Longer ones are refused.

Names come back from the backend (invariant 12): a decoded component is a
path component a framework could have written -- never empty, ``.``, ``..``,
and never holding a separator or a control character -- else it is refused,
so a crafted name cannot make a listing say ``../../x``.
"""

from __future__ import annotations

import re

from cas.core.names import SEGMENT_RE
from cas.errors import InvalidNameError

__all__ = ["encode", "decode", "is_id", "is_component"]

ESCAPE = "x--"
_HEX_RE = re.compile(r"[0-9a-f]{8,64}\Z")
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def is_component(text: str) -> bool:
    """One path component: what ``PathSpace.split`` lets through."""
    return text not in ("", ".", "..") and "/" not in text and "\\" not in text and not any(ord(ch) < 32 for ch in text)


def encode(component: str) -> str:
    if SEGMENT_RE.match(component) and not component.startswith(ESCAPE):
        return component
    if not is_component(component):
        raise InvalidNameError(f"{component!r} is not a path component")
    escaped = ESCAPE + component.encode("utf-8").hex()
    if not component or len(escaped) > 128:
        raise InvalidNameError(f"path component {component!r} cannot be a cas name segment (empty or too long)")
    return escaped


def decode(segment: str) -> str:
    if segment.startswith(ESCAPE):
        try:
            component = bytes.fromhex(segment[len(ESCAPE) :]).decode("utf-8")
        except ValueError:
            raise InvalidNameError(f"{segment!r} is not an escaped path component") from None
        if not is_component(component):
            raise InvalidNameError(f"{segment!r} decodes to {component!r}, which is not a path component")
        return component
    return segment


def is_id(component: str) -> bool:
    """A generated id: a UUID or a run of lowercase hex (8-64 digits)."""
    return bool(_UUID_RE.match(component) or _HEX_RE.match(component))

"""The ``cas-format`` file at a store's root: which format and hash the store uses, and its id.

    {"format": 1, "hash": "blake3", "store_id": "<32 hex>", "created_at": "<ISO 8601 UTC>"}

A cas that meets a newer format refuses the store rather than misread it (docs/format.md).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from cas.errors import InvalidValueError, UnsupportedFormatError

__all__ = [
    "FORMAT_FILE", "FORMAT_VERSION", "NEW_STORE_FORMAT", "HASH_ALGORITHM", "encode_format", "decode_format",
    "new_store_format", "UPGRADE_DIR", "upgrade_step_path", "encode_upgrade_step",
]

FORMAT_FILE = "cas-format"
FORMAT_VERSION = 2  # the newest format this cas reads and writes; bumped by any change to docs/format.md
# What a new store is created as.  Format 1 is still written when chosen explicitly
# (``open_store(url, format=1)``, ``cas init --format 1``, or ``CAS_NEW_STORE_FORMAT=1``),
# for stores that format-1 cas installs must keep reading.
NEW_STORE_FORMAT = 2
HASH_ALGORITHM = "blake3"
_STORE_ID_RE = re.compile(r"[0-9a-f]{32}\Z")
#: ``upgrade/<format>/<step>``: one create-only object per step of an upgrade to <format> that is done
UPGRADE_DIR = "upgrade"
_STEP_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")


def new_store_format(requested: int | None = None) -> int:
    """The format a new store gets: ``requested``, else ``$CAS_NEW_STORE_FORMAT``, else NEW_STORE_FORMAT."""
    raw = requested if requested is not None else os.environ.get("CAS_NEW_STORE_FORMAT") or NEW_STORE_FORMAT
    try:
        version = int(raw)
    except ValueError:
        raise UnsupportedFormatError(f"format {raw!r} is not a number; cas writes formats 1 to {FORMAT_VERSION}") from None
    if not 1 <= version <= FORMAT_VERSION:
        raise UnsupportedFormatError(f"format {version} does not exist; cas writes formats 1 to {FORMAT_VERSION}")
    return version


def encode_format(store_id: str, created_at: str, version: int = NEW_STORE_FORMAT) -> bytes:
    fmt = {"format": version, "hash": HASH_ALGORITHM, "store_id": store_id, "created_at": created_at}
    return (json.dumps(fmt, indent=2) + "\n").encode()


def decode_format(raw: bytes, url: str) -> dict[str, Any]:
    """The ``cas-format`` file of the store at ``url``, or UnsupportedFormatError
    (not one, a newer format, another hash, or no valid store id)."""
    try:
        fmt = json.loads(raw)
        version = int(fmt["format"])  # a dict, or TypeError
    except (ValueError, KeyError, TypeError):
        raise UnsupportedFormatError(f"{FORMAT_FILE} at {url} is not a cas format file") from None
    if version > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"store at {url} has format {version}; this cas reads up to {FORMAT_VERSION} - upgrade cas"
        )
    if fmt.get("hash") != HASH_ALGORITHM:
        raise UnsupportedFormatError(f"store uses hash {fmt.get('hash')!r}; cas supports {HASH_ALGORITHM}")
    if not isinstance(fmt.get("store_id"), str) or not _STORE_ID_RE.match(fmt["store_id"]):
        raise UnsupportedFormatError(f"{FORMAT_FILE} at {url} has no valid store_id (32 hex)")
    return fmt


def upgrade_step_path(target: int, step: str) -> str:
    """The key that records that ``step`` of the upgrade to format ``target`` is done
    (docs/format.md, Upgrading).  Step names are cas's own constants, checked here anyway:
    a key is never built from anything but a known grammar."""
    if not _STEP_RE.match(step) or not 2 <= target <= FORMAT_VERSION:
        raise InvalidValueError(f"not an upgrade step: format {target!r}, step {step!r}")
    return f"{UPGRADE_DIR}/{target}/{step}"


def encode_upgrade_step(target: int, step: str, done_at: str) -> bytes:
    """The content of a step's marker: what was done and when (its existence is what counts)."""
    return (json.dumps({"format": target, "step": step, "done_at": done_at}, indent=2) + "\n").encode()

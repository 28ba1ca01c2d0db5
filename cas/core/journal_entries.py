"""A ref's content and a format-1 journal entry: their bytes and validating decoders.

A ref holds its record's digest; a format-1 journal entry ``journal/<seq>`` is
``{"ref": <ref path>, "record": <hex digest>}`` (docs/format.md, Refs and Journal;
format 2's entries are ``cas.core.entries``).  Pure: no I/O.
"""

from __future__ import annotations

from typing import NamedTuple

from cas.core.codec import brief, encode, unpack
from cas.core.digest import is_hex_digest
from cas.core.refs import RefKey, parse_ref_path
from cas.errors import CorruptRecordError, InvalidNameError

__all__ = ["JournalEntry", "decode_journal_entry", "decode_ref", "encode_journal_entry"]


class JournalEntry(NamedTuple):
    ref: RefKey
    record: str  # record digest, hex


def encode_journal_entry(ref: str, record_digest: str) -> bytes:
    return encode({"ref": ref, "record": record_digest})


def decode_ref(data: bytes, key: str) -> str:
    """A ref's content: the hex digest of its record (a trailing newline is allowed)."""
    raw = data.decode("ascii", "replace").strip()
    if not is_hex_digest(raw):
        raise CorruptRecordError(key, f"not a ref: expected a record digest, got {raw[:64]!r}")
    return raw


def decode_journal_entry(data: bytes, key: str) -> JournalEntry:
    """``{"ref": <ref path>, "record": <hex digest>}``, or CorruptRecordError naming ``key``."""
    try:
        entry = unpack(data)
        if not isinstance(entry, dict) or not {"ref", "record"} <= entry.keys():
            raise InvalidNameError(f"expected a map with 'ref' and 'record', got {brief(entry)}")
        if not isinstance(entry["record"], str) or not is_hex_digest(entry["record"]):
            raise InvalidNameError(f"'record' is not a digest: {brief(entry['record'])}")
    except InvalidNameError as e:
        raise CorruptRecordError(key, f"not a journal entry: {e}") from None
    try:
        ref = parse_ref_path(entry["ref"])
    except CorruptRecordError as e:
        raise CorruptRecordError(key, f"not a journal entry: 'ref' {e}") from None
    return JournalEntry(ref, entry["record"])

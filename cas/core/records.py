"""Record codecs: the bytes of every record, of a ref's content and of a journal entry.

Every fact (a version, an alias move, a deletion, a run, a step, a pack index) is an immutable
msgpack record stored as a blob, claimed by a create-only ref (``cas.core.refs``) whose content
is its digest, and announced in the journal.  Everything read from a backend is untrusted
(invariant 12): these decoders (with ``cas.core.refs``, ``format``, ``tree``) are the one place
backend bytes become values, validated against docs/format.md or refused with
:class:`~cas.errors.CorruptRecordError` naming the blob or key.  Pure: no I/O.

This module decodes every record type; each family lives in its own module, re-exported
here: the bytes (``codec``), field checkers (``fields``), versions, aliases and deletions
(``version_records``), run and step events (``run_records``), pack indexes (``packs``),
ref contents and format-1 journal entries (``journal_entries``).
"""

from __future__ import annotations

from typing import Any

from cas.core import fields as f
from cas.core import run_records, version_records
from cas.core.codec import brief, check_json_map, decode, encode, now_iso, unpack
from cas.core.journal_entries import JournalEntry, decode_journal_entry, decode_ref, encode_journal_entry
from cas.core.packs import PACK_TYPE, decode_pack_index
from cas.core.refs import RefKey, parse_ref_path
from cas.core.run_records import END_STATUSES
from cas.core.version_records import (
    BLOB,
    NOT_RECORDED,
    TREE,
    AliasRecord,
    DeletionRecord,
    Lineage,
    VersionRecord,
    alias_record,
    deletion_record,
    version_record,
)
from cas.errors import CorruptRecordError, InvalidNameError

__all__ = [
    "BLOB", "END_STATUSES", "NOT_RECORDED", "TREE", "AliasRecord", "DeletionRecord", "JournalEntry", "Lineage",
    "VersionRecord", "alias_record", "check_json_map", "decode", "decode_journal_entry", "decode_record", "decode_ref",
    "deletion_record", "encode", "encode_journal_entry", "now_iso", "version_record",
]

# type -> (ref kind it lives under, required fields, optional fields): every family's schemas
_RECORDS: dict[str, tuple[str, dict[str, f.Check], dict[str, f.Check]]] = {
    **version_records.SCHEMAS,
    **run_records.SCHEMAS,
    PACK_TYPE: ("packs", {"pack": f.digest, "seq": f.integer(0, 0)}, {}),
}


def decode_record(data: bytes, hexdigest: str, ref: RefKey | str) -> dict[str, Any]:
    """The record stored as blob ``hexdigest`` and claimed by ``ref``, validated.

    Its fields follow docs/format.md and agree with the ref that claims it
    (a version record under ``refs/versions/p/s/a/3`` is version 3 of
    ``p/s/a``), so a record can never be applied under another name.
    A record type this cas does not know is returned as is (and ignored).
    """
    if isinstance(ref, str):
        ref = parse_ref_path(ref)
    try:
        record = unpack(data)
        if not isinstance(record, dict) or not isinstance(record.get("type"), str):
            raise InvalidNameError(f"expected a map with a 'type', got {brief(record)}")
        spec = _RECORDS.get(record["type"])
        if spec is None:
            return record  # a record type from a newer cas: kept in the backend, ignored here
        kind, required, optional = spec
        if kind != ref.kind:
            raise InvalidNameError(f"a {record['type']} record cannot be claimed under refs/{ref.kind}/")
        missing = required.keys() - record.keys()
        if missing:
            raise InvalidNameError(f"{sorted(missing)[0]!r} is missing")
        settled = _check_claim(record, ref)  # fields equal to the (validated) ref's parts
        for field, check in required.items():
            if field not in settled:
                _check_field(field, check, record[field])
        for field, check in optional.items():
            if field in record:
                _check_field(field, check, record[field])
    except InvalidNameError as e:
        raise CorruptRecordError(f"blake3:{hexdigest}", f"not a valid record for {ref.path}: {e}") from None
    return decode_pack_index(record, hexdigest, ref.owner) and record if record["type"] == PACK_TYPE else record


def _check_field(field: str, check: f.Check, value: Any) -> None:
    try:
        check(value)
    except InvalidNameError as e:
        raise InvalidNameError(f"{field!r}: {e}") from None


def _check_claim(record: dict[str, Any], ref: RefKey) -> dict[str, Any]:
    """The record says what its ref says; returns those fields (valid, as the ref is)."""
    if ref.kind == "runs":
        want = {"run_id": ref.owner, "seq": ref.number}
        if record["type"] == "run_start" and ref.number != 0:
            raise InvalidNameError("a run_start is seq 0 of its run (that is what makes run ids unique)")
    elif ref.kind == "aliases":
        want = {"name": ref.owner, "alias": ref.alias, "seq": ref.number}
    else:
        want = {"pack": ref.owner} if ref.kind == "packs" else {"name": ref.owner, "version": ref.number}
    for field, value in want.items():
        if type(record[field]) is not type(value) or record[field] != value:
            raise InvalidNameError(f"{field!r} is {brief(record[field])}, the ref says {value!r}")
    return want

"""Record codecs: the bytes of every record, of a ref's content and of a journal entry.

Every fact (a version, an alias move, a deletion, a run, a step, a pack index) is an immutable
msgpack record stored as a blob, claimed by a create-only ref (``cas.core.refs``) whose content
is its digest, and announced in the journal.  Everything read from a backend is untrusted
(invariant 12): these decoders (with ``cas.core.refs``, ``format``, ``tree``) are the one place
backend bytes become values, validated against docs/format.md or refused with
:class:`~cas.errors.CorruptRecordError` naming the blob or key.  Pure: no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, NamedTuple, TypedDict

import msgpack

from cas.core.digest import is_hex_digest
from cas.core.names import MAX_VERSION, check_alias, check_segment, parse_name
from cas.core.packs import PACK_TYPE, decode_pack_index
from cas.core.refs import RefKey, parse_ref_path
from cas.errors import CorruptRecordError, InvalidNameError, InvalidValueError

__all__ = [
    "END_STATUSES",
    "JournalEntry",
    "encode",
    "decode",
    "encode_journal_entry",
    "decode_record",
    "decode_journal_entry",
    "decode_ref",
    "check_json_map",
    "now_iso",
]

END_STATUSES = ("completed", "failed", "cancelled")


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
    """Raw msgpack, the inverse of :func:`encode`, for tools and tests (cas reads backends only through the decoders below)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def encode_journal_entry(ref: str, record_digest: str) -> bytes:
    return encode({"ref": ref, "record": record_digest})


# -- decoding: the one place backend bytes become values ---------------------------


class JournalEntry(NamedTuple):
    ref: RefKey
    record: str  # record digest, hex


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise InvalidNameError(f"not msgpack ({e})") from None


def decode_ref(data: bytes, key: str) -> str:
    """A ref's content: the hex digest of its record (a trailing newline is allowed)."""
    raw = data.decode("ascii", "replace").strip()
    if not is_hex_digest(raw):
        raise CorruptRecordError(key, f"not a ref: expected a record digest, got {raw[:64]!r}")
    return raw


def decode_journal_entry(data: bytes, key: str) -> JournalEntry:
    """``{"ref": <ref path>, "record": <hex digest>}``, or CorruptRecordError naming ``key``."""
    try:
        entry = _unpack(data)
        if not isinstance(entry, dict) or not {"ref", "record"} <= entry.keys():
            raise InvalidNameError(f"expected a map with 'ref' and 'record', got {_brief(entry)}")
        if not isinstance(entry["record"], str) or not is_hex_digest(entry["record"]):
            raise InvalidNameError(f"'record' is not a digest: {_brief(entry['record'])}")
    except InvalidNameError as e:
        raise CorruptRecordError(key, f"not a journal entry: {e}") from None
    try:
        ref = parse_ref_path(entry["ref"])
    except CorruptRecordError as e:
        raise CorruptRecordError(key, f"not a journal entry: 'ref' {e}") from None
    return JournalEntry(ref, entry["record"])


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# Field checkers: each returns normally or raises InvalidNameError saying what is wrong.
def _text(v: Any) -> None:
    if not isinstance(v, str):
        raise InvalidNameError(f"expected a string, got {_brief(v)}")


def _time(v: Any) -> None:
    _text(v)
    try:
        datetime.fromisoformat(v)
    except ValueError:
        raise InvalidNameError(f"not an ISO 8601 time: {_brief(v)}") from None


def _int(lowest: int, highest: int) -> Callable[[Any], None]:
    def check(v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not lowest <= v <= highest:
            raise InvalidNameError(f"expected an integer in [{lowest}, {highest}], got {_brief(v)}")

    return check


def _one_of(*choices: str) -> Callable[[Any], None]:
    def check(v: Any) -> None:
        if v not in choices:
            raise InvalidNameError(f"expected one of {', '.join(choices)}, got {_brief(v)}")

    return check


def _digest(v: Any) -> None:
    if not isinstance(v, str) or not is_hex_digest(v):
        raise InvalidNameError(f"not a digest: {_brief(v)}")


def _name(v: Any) -> None:
    _text(v)
    parse_name(v)


def _segment(v: Any) -> None:
    check_segment(v, "segment")


def _alias(v: Any) -> None:
    check_alias(v)


def _json(v: Any, depth: int = 0) -> None:
    """What the index stores as JSON: maps with string keys, lists, finite numbers, 64-bit ints."""
    if depth > 64:
        raise InvalidNameError("nested too deep")
    if isinstance(v, dict):
        for k, item in v.items():
            if not isinstance(k, str):
                raise InvalidNameError(f"map key {_brief(k)} is not a string")
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


def _map(v: Any) -> None:
    if not isinstance(v, dict):
        raise InvalidNameError(f"expected a map, got {_brief(v)}")
    _json(v)


def _inputs(v: Any) -> None:
    if not isinstance(v, list):
        raise InvalidNameError(f"expected a list of [name, version], got {_brief(v)}")
    for item in v:
        if not (isinstance(item, list) and len(item) == 2):
            raise InvalidNameError(f"an input is [name, version], got {_brief(item)}")
        _name(item[0])
        _int(1, MAX_VERSION)(item[1])


def _optional(check: Callable[[Any], None]) -> Callable[[Any], None]:
    def maybe(v: Any) -> None:
        if v is not None:
            check(v)

    return maybe


_SEQ = _int(0, MAX_VERSION)
_VERSION = _int(1, MAX_VERSION)
_ALIAS_TARGET = _int(0, MAX_VERSION)  # 0: the alias was removed (`cas alias --delete`)
_STATUS = _one_of(*END_STATUSES)
_ERROR = _optional(_text)
_RUN_EVENT = {"run_id": _segment, "seq": _SEQ}
_STEP_EVENT = {**_RUN_EVENT, "step_run_id": _segment, "step": _segment}

# type -> (ref kind it lives under, required fields, optional fields)
_RECORDS: dict[str, tuple[str, dict[str, Callable[[Any], None]], dict[str, Callable[[Any], None]]]] = {
    "version": (
        "versions",
        {"name": _name, "version": _VERSION, "digest": _digest, "kind": _one_of("blob", "tree"),
         "size": _int(0, 2**63 - 1), "created_at": _time},
        {"metadata": _optional(_map), "materializer": _optional(_text), "run_id": _optional(_segment),
         "step_run_id": _optional(_segment), "chunks": _optional(_digest)},
    ),
    "alias": ("aliases", {"name": _name, "alias": _alias, "version": _ALIAS_TARGET, "seq": _SEQ, "created_at": _time}, {}),
    "delete": ("deletions", {"name": _name, "version": _VERSION, "deleted_at": _time}, {}),
    "run_start": ("runs", {**_RUN_EVENT, "pipeline": _segment, "started_at": _time}, {"params": _optional(_map)}),
    "run_end": ("runs", {**_RUN_EVENT, "status": _STATUS, "ended_at": _time}, {"error": _ERROR}),
    "step_start": ("runs", {**_STEP_EVENT, "started_at": _time}, {"inputs": _optional(_inputs)}),
    "step_input": ("runs", {**_STEP_EVENT, "created_at": _time}, {"inputs": _optional(_inputs)}),
    "step_end": ("runs", {**_STEP_EVENT, "status": _STATUS, "ended_at": _time}, {"error": _ERROR}),
    PACK_TYPE: ("packs", {"pack": _digest, "seq": _int(0, 0)}, {}),
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
        record = _unpack(data)
        if not isinstance(record, dict) or not isinstance(record.get("type"), str):
            raise InvalidNameError(f"expected a map with a 'type', got {_brief(record)}")
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


def _check_field(field: str, check: Callable[[Any], None], value: Any) -> None:
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
            raise InvalidNameError(f"{field!r} is {_brief(record[field])}, the ref says {value!r}")
    return want


# -- builders: every record the store itself writes is made here -------------------------
# (run and step events are built by cas.lineage.record).  A claim adds the numbered
# field when it wins its ref: "version" of a version, "seq" of an alias move.

BLOB = "blob"  # a version's kind: one file
TREE = "tree"  # a version's kind: a manifest of files

#: ``version_record(materializer=NOT_RECORDED)``: no materializer field at all.  A link
#: of content already stored names none (golden tests pin those bytes).
NOT_RECORDED: Any = object()


class Lineage(TypedDict, total=False):
    """What a version record carries to name the step that produced it."""

    run_id: str
    step_run_id: str


class VersionRecord(TypedDict, total=False):
    type: str  # "version"
    name: str
    digest: str
    kind: str  # BLOB or TREE
    size: int
    created_at: str
    metadata: dict[str, Any]
    materializer: str | None
    run_id: str
    step_run_id: str
    chunks: str  # format 2: the chunk list of a chunked file (docs/format.md)
    version: int  # set by the claim


class AliasRecord(TypedDict, total=False):
    type: str  # "alias"
    name: str
    alias: str
    version: int  # 0: the alias was removed
    created_at: str
    seq: int  # set by the claim


class DeletionRecord(TypedDict):
    type: str  # "delete"
    name: str
    version: int
    deleted_at: str


def version_record(
    name: str,
    digest: str,
    kind: str,
    size: int,
    metadata: dict[str, Any],
    *,
    materializer: str | None = NOT_RECORDED,
    lineage: Lineage | None = None,
    chunks: str | None = None,
) -> VersionRecord:
    """A version of ``name`` bound to ``digest`` (``metadata`` checked; ``chunks``: format 2's chunk list)."""
    record: VersionRecord = {
        "type": "version",
        "name": name,
        "digest": digest,
        "kind": kind,
        "size": size,
        "created_at": now_iso(),
        "metadata": metadata,
    }
    if materializer is not NOT_RECORDED:
        record["materializer"] = materializer
    record.update(lineage or {})
    record.update({"chunks": chunks} if chunks is not None else {})  # type: ignore[typeddict-item]
    return record


def alias_record(name: str, alias: str, version: int) -> AliasRecord:
    """A move of ``alias`` of ``name`` to ``version`` (0: its removal)."""
    return {"type": "alias", "name": name, "alias": alias, "version": version, "created_at": now_iso()}


def deletion_record(name: str, version: int) -> DeletionRecord:
    """The deletion of ``name@version``."""
    return {"type": "delete", "name": name, "version": version, "deleted_at": now_iso()}

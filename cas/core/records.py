"""Records in the backend: the truth the SQLite index is derived from (invariant 3).

Every fact — a version, an alias move, a deletion, a run, a step — is an
immutable msgpack record stored as a blob, made reachable by a create-only
*ref* whose content is the record's digest, and announced in the *journal*
so other machines can catch up by reading only what is new.

    cas-format                                   JSON: format, hash, store id
    refs/versions/<p>/<s>/<a>/<N>                claim of version N
    refs/aliases/<p>/<s>/<a>/<alias>/<seq>       alias moves, highest seq wins
    refs/deletions/<p>/<s>/<a>/<N>               version N deleted
    refs/runs/<run id>/<seq>                     run and step-run events
    journal/<seq, 16 digits>                     {ref, record} in commit order

Everything read back from a backend is untrusted (DESIGN invariant 12): the
decoders here (and ``cas.core.tree.decode_manifest``) are the one place that turns
backend bytes and listed keys into values, and decoding means validating
against the grammar of docs/format.md.  Anything else raises
:class:`~cas.errors.CorruptRecordError` naming the blob or key; code after
the codec never re-checks raw strings.
"""

from __future__ import annotations

import functools
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

import msgpack

from cas.backends.base import Backend
from cas.core.digest import is_hex_digest
from cas.core.names import MAX_VERSION, check_alias, check_segment, parse_name
from cas.core.tree import decode_manifest
from cas.errors import (
    BackendError,
    BlobNotFoundError,
    CorruptRecordError,
    IntegrityError,
    InvalidNameError,
    UnsupportedFormatError,
)
from cas.storage.blobs import BlobStore

__all__ = [
    "FORMAT_FILE",
    "FORMAT_VERSION",
    "RecordStore",
    "RefKey",
    "JournalEntry",
    "encode",
    "decode",
    "decode_record",
    "decode_journal_entry",
    "decode_ref",
    "parse_ref_path",
    "parse_journal_key",
    "now_iso",
    "version_ref",
    "alias_ref",
    "deletion_ref",
]

FORMAT_FILE = "cas-format"
FORMAT_VERSION = 1
HASH_ALGORITHM = "blake3"
REFS = "refs"
JOURNAL = "journal"
_SEQ_WIDTH = 16
END_STATUSES = ("completed", "failed", "cancelled")
_STORE_ID_RE = re.compile(r"[0-9a-f]{32}\Z")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def encode(record: dict[str, Any]) -> bytes:
    """Canonical msgpack: keys sorted at every level, so equal records hash equal."""
    return msgpack.packb(_canonical(record), use_bin_type=True)


def check_json_map(value: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """A user-supplied map (metadata, params) as it will be stored, or InvalidNameError.

    Checked before any byte is written: JSON-able, no NaN, and integers that
    fit msgpack's 64 bits (JSON's ints are unbounded, the record's are not).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidNameError(f"{what} must be a dict")
    try:
        checked = json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InvalidNameError(f"{what} must be JSON-serialisable: {e}") from None
    try:
        encode({what: checked})
    except (OverflowError, ValueError, TypeError) as e:
        raise InvalidNameError(f"{what} cannot be stored: {e} (integers must fit in 64 bits)") from None
    return checked


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def decode(data: bytes) -> dict[str, Any]:
    """Raw msgpack, the inverse of :func:`encode`, for tools and tests; cas itself
    reads what a backend holds only through the validating decoders below."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def version_ref(name: str, version: int) -> str:
    return f"{REFS}/versions/{name}/{version}"


def alias_ref(name: str, alias: str, seq: int) -> str:
    return f"{REFS}/aliases/{name}/{alias}/{seq}"


def deletion_ref(name: str, version: int) -> str:
    return f"{REFS}/deletions/{name}/{version}"


def run_ref(run_id: str, seq: int) -> str:
    return f"{REFS}/runs/{run_id}/{seq}"


def ref_order(item: tuple[str, str]) -> tuple[int, str, int]:
    """Sort key for (ref, record digest): runs, then versions before the aliases
    and deletions that refer to them; numbered refs in numeric order."""
    key = parse_ref_path(item[0])
    rank = {"runs": 0, "versions": 1, "aliases": 2, "deletions": 3}[key.kind]
    return (rank, key.path.rpartition("/")[0], key.number)


def journal_path(seq: int) -> str:
    return f"{JOURNAL}/{seq:0{_SEQ_WIDTH}d}"


# -- decoding: the one place backend bytes and keys become values ------------------


@dataclass(frozen=True)
class RefKey:
    """A ref path that follows the layout above.

    ``owner`` is the artifact name (versions, aliases, deletions) or the run id
    (runs); ``number`` the version (versions, deletions) or the seq.
    """

    path: str
    kind: str
    owner: str
    number: int
    alias: str | None = None

    @property
    def name(self) -> str | None:
        """The artifact name the ref belongs to; None for run refs."""
        return None if self.kind == "runs" else self.owner

    @property
    def group(self) -> str:
        """Refs of one artifact name, or of one run, are claimed one after another."""
        return self.owner if self.kind != "runs" else f"{REFS}/runs/{self.owner}"


class JournalEntry(NamedTuple):
    ref: RefKey
    record: str  # record digest, hex


def _number(text: str, lowest: int) -> int:
    """A canonical decimal (no sign, no leading zero) in [lowest, MAX_VERSION]."""
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise InvalidNameError(f"{text!r} is not a number")
    n = int(text)
    if not lowest <= n <= MAX_VERSION:
        raise InvalidNameError(f"{n} is out of range")
    return n


def parse_ref_path(path: str) -> RefKey:
    """The ref a backend key (or a journal entry's ``ref``) names, or CorruptRecordError."""
    if not isinstance(path, str):
        raise CorruptRecordError(_show_key(path), f"not a ref path: expected a string, got {type(path).__name__}")
    return _parse_ref_path(path)


@functools.lru_cache(maxsize=1 << 16)  # a reindex or a sync parses each ref a few times
def _parse_ref_path(path: str) -> RefKey:
    shown = _show_key(path)
    try:
        parts = path.split("/")
        kind = parts[1] if len(parts) > 1 and parts[0] == REFS else ""
        if kind in ("versions", "deletions") and len(parts) == 6:
            return RefKey(path, kind, str(parse_name("/".join(parts[2:5]))), _number(parts[5], 1))
        if kind == "aliases" and len(parts) == 7:
            name = str(parse_name("/".join(parts[2:5])))
            return RefKey(path, kind, name, _number(parts[6], 0), check_alias(parts[5]))
        if kind == "runs" and len(parts) == 4:
            return RefKey(path, kind, check_segment(parts[2], "run id"), _number(parts[3], 0))
        raise InvalidNameError("not refs/versions|deletions/<name>/<N>, refs/aliases/<name>/<alias>/<seq> or refs/runs/<id>/<seq>")
    except InvalidNameError as e:
        raise CorruptRecordError(shown, f"not a ref path: {e}") from None


def parse_journal_key(path: str) -> int:
    """The seq of a listed ``journal/<16 digits>`` key, or CorruptRecordError."""
    head, _, tail = path.rpartition("/")
    if head != JOURNAL or len(tail) != _SEQ_WIDTH or not (tail.isascii() and tail.isdigit()):
        raise CorruptRecordError(_show_key(path), f"not a journal key: expected {JOURNAL}/<{_SEQ_WIDTH} digits>")
    return int(tail)


def _show_key(key: Any) -> str:
    """A key as it can be printed on one line: control characters escaped, long ones cut."""
    text = key if isinstance(key, str) and key.isprintable() else repr(key)
    return text if len(text) <= 200 else text[:197] + "..."


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
         "step_run_id": _optional(_segment)},
    ),
    "alias": ("aliases", {"name": _name, "alias": _alias, "version": _ALIAS_TARGET, "seq": _SEQ, "created_at": _time}, {}),
    "delete": ("deletions", {"name": _name, "version": _VERSION, "deleted_at": _time}, {}),
    "run_start": ("runs", {**_RUN_EVENT, "pipeline": _segment, "started_at": _time}, {"params": _optional(_map)}),
    "run_end": ("runs", {**_RUN_EVENT, "status": _STATUS, "ended_at": _time}, {"error": _ERROR}),
    "step_start": ("runs", {**_STEP_EVENT, "started_at": _time}, {"inputs": _optional(_inputs)}),
    "step_input": ("runs", {**_STEP_EVENT, "created_at": _time}, {"inputs": _optional(_inputs)}),
    "step_end": ("runs", {**_STEP_EVENT, "status": _STATUS, "ended_at": _time}, {"error": _ERROR}),
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
    return record


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
        want = {"name": ref.owner, "version": ref.number}
    for field, value in want.items():
        if type(record[field]) is not type(value) or record[field] != value:
            raise InvalidNameError(f"{field!r} is {_brief(record[field])}, the ref says {value!r}")
    return want


class RecordStore:
    def __init__(self, backend: Backend, blobs: BlobStore) -> None:
        self.backend = backend
        self.blobs = blobs

    # -- format --------------------------------------------------------------

    def read_format(self) -> dict[str, Any] | None:
        try:
            raw = self.backend.read_bytes(FORMAT_FILE)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise BackendError(f"cannot use {self.backend.url} as a store: it is a file, not a directory") from None
        try:
            fmt = json.loads(raw)
            version = int(fmt["format"])  # a dict, or TypeError
        except (ValueError, KeyError, TypeError):
            raise UnsupportedFormatError(f"{FORMAT_FILE} at {self.backend.url} is not a cas format file") from None
        if version > FORMAT_VERSION:
            raise UnsupportedFormatError(
                f"store at {self.backend.url} has format {version}; this cas reads up to {FORMAT_VERSION} - upgrade cas"
            )
        if fmt.get("hash") != HASH_ALGORITHM:
            raise UnsupportedFormatError(f"store uses hash {fmt.get('hash')!r}; cas supports {HASH_ALGORITHM}")
        if not isinstance(fmt.get("store_id"), str) or not _STORE_ID_RE.match(fmt["store_id"]):
            raise UnsupportedFormatError(f"{FORMAT_FILE} at {self.backend.url} has no valid store_id (32 hex)")
        return fmt

    def init_format(self) -> dict[str, Any]:
        fmt = {"format": FORMAT_VERSION, "hash": HASH_ALGORITHM, "store_id": uuid.uuid4().hex, "created_at": now_iso()}
        self.backend.create_bytes(FORMAT_FILE, (json.dumps(fmt, indent=2) + "\n").encode())
        # Another process may have won the race: its file is the truth.
        return self.read_format()  # type: ignore[return-value]

    # -- records and refs ----------------------------------------------------

    def put_record(self, record: dict[str, Any]) -> str:
        return self.blobs.put_bytes(encode(record)).digest

    def get_record(self, hexdigest: str, ref: RefKey | str) -> dict[str, Any]:
        """The validated record ``ref`` claims (CorruptRecordError if it is not one).

        A record blob that is missing or does not match its digest is as bad as
        a malformed one: the ref cannot be applied, so it is reported the same way.
        """
        try:
            data = self.blobs.read_bytes(hexdigest)
        except (BlobNotFoundError, IntegrityError) as e:
            raise CorruptRecordError(getattr(ref, "path", ref), f"its record cannot be read: {e}") from None
        return decode_record(data, hexdigest, ref)

    def get_manifest(self, hexdigest: str, ref: str) -> list[tuple[str, str, int]]:
        """The validated entries of the tree manifest a version ref needs."""
        try:
            data = self.blobs.read_bytes(hexdigest)
        except (BlobNotFoundError, IntegrityError) as e:
            raise CorruptRecordError(ref, f"its tree manifest cannot be read: {e}") from None
        try:
            return decode_manifest(data, hexdigest)
        except CorruptRecordError as e:
            raise CorruptRecordError(ref, f"its tree {e}") from None

    def claim(self, ref: str, record_digest: str) -> bool:
        """Create-only write of a ref; False if someone already holds it."""
        return self._create(ref, record_digest.encode("ascii"))

    def _create(self, rel: str, data: bytes) -> bool:
        """Create-only write; a symlink planted at that name in a local store holds
        the name (never followed): the caller moves on as for any taken name."""
        try:
            return self.backend.create_bytes(rel, data)
        except BackendError:
            if self.backend.is_local and self.backend.is_symlink(rel):  # type: ignore[attr-defined]
                return False
            raise

    def read_ref(self, ref: str) -> str:
        """The record digest a ref holds (CorruptRecordError if it holds anything else)."""
        return decode_ref(self._read_listed(ref), ref)

    def ref_exists(self, ref: str) -> bool:
        return self.backend.exists(ref)

    def list_refs(self, kind: str = "", on_invalid: Callable[[CorruptRecordError], None] | None = None) -> Iterator[str]:
        """The path of every valid ref under ``refs/<kind>`` (one listing; no ref is read).

        A listed key that breaks the grammar goes to ``on_invalid`` and is
        skipped (without one, it raises).
        """
        prefix = f"{REFS}/{kind}" if kind else REFS
        for entry in self.backend.list(prefix):
            try:
                path = parse_ref_path(entry.path).path
            except CorruptRecordError as e:
                if on_invalid is None:
                    raise
                on_invalid(e)
                continue
            yield path

    def iter_refs(
        self, kind: str = "", on_invalid: Callable[[CorruptRecordError], None] | None = None
    ) -> Iterator[tuple[str, str]]:
        """(ref path, record digest) for every valid ref under ``refs/<kind>``.

        A listed key or a ref content that breaks the grammar goes to
        ``on_invalid`` and is skipped (without one, it raises): one bad object
        never blocks the rest of the store.
        """
        for ref in self.list_refs(kind, on_invalid):
            try:
                digest = self.read_ref(ref)
            except FileNotFoundError:
                continue
            except CorruptRecordError as e:
                if on_invalid is None:
                    raise
                on_invalid(e)
                continue
            yield ref, digest

    def _read_listed(self, rel: str) -> bytes:
        """Bytes of a small metadata object; a symlink planted in a local store is
        a bad object (reported), not an I/O failure (which stops the command)."""
        try:
            return self.backend.read_bytes(rel)
        except BackendError:
            if self.backend.is_local and self.backend.is_symlink(rel):  # type: ignore[attr-defined]
                raise CorruptRecordError(rel, "a symlink, refused (not followed)") from None
            raise
        except IsADirectoryError:
            raise CorruptRecordError(rel, "a directory, not a file") from None

    def journalled_refs(self) -> tuple[set[str], int]:
        """Every ref the journal announces, and one past its last entry (reads the whole journal)."""
        refs: set[str] = set()
        seq = 0
        while True:
            try:
                entry = self.read_journal(seq)
            except CorruptRecordError:
                entry = False  # a bad entry announces nothing (refresh and verify report it)
            if entry is None:
                return refs, seq
            if entry:
                refs.add(entry.ref.path)
            seq += 1

    # -- journal -------------------------------------------------------------

    def append_journal(self, ref: str, record_digest: str, hint: int) -> int:
        """Claim the next free journal slot at or after ``hint``; returns its seq."""
        data = encode({"ref": ref, "record": record_digest})
        seq = max(hint, 0)
        while not self._create(journal_path(seq), data):
            seq += 1
        return seq

    def read_journal(self, seq: int) -> JournalEntry | None:
        """The entry at ``seq``; None if the slot is free; CorruptRecordError if it is garbage."""
        key = journal_path(seq)
        try:
            data = self._read_listed(key)
        except FileNotFoundError:
            return None
        return decode_journal_entry(data, key)

    def journal_end(self) -> int:
        """The first free journal slot (a listing: for reindex only)."""
        return self.scan_journal()[0]

    def scan_journal(self) -> tuple[int, list[CorruptRecordError]]:
        """(first free slot, listed keys that do not belong in the journal).

        The journal is dense: every writer claims the first free slot at or
        after one it knows is filled.  So the end is the first free slot, and a
        key beyond it (planted far ahead) never moves the end: if it did, a
        reindex would start reading there and miss every later entry.
        """
        seqs: dict[int, str] = {}
        bad: list[CorruptRecordError] = []
        for e in self.backend.list(JOURNAL):
            try:
                seqs[parse_journal_key(e.path)] = e.path
            except CorruptRecordError as err:
                bad.append(err)
        end = 0
        while end in seqs:
            end += 1
        free = journal_path(end)
        bad += [CorruptRecordError(path, f"beyond the end of the journal ({free} is free)")
                for seq, path in sorted(seqs.items()) if seq > end]
        return end, bad

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
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import msgpack

from .backend import Backend
from .blobs import BlobStore
from .digest import is_hex_digest
from .errors import BackendError, IntegrityError, InvalidNameError, UnsupportedFormatError

__all__ = [
    "FORMAT_FILE",
    "FORMAT_VERSION",
    "RecordStore",
    "encode",
    "decode",
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
    ref = item[0]
    kind = ref[len(REFS) + 1 :].split("/", 1)[0]
    rank = {"runs": 0, "versions": 1, "aliases": 2, "deletions": 3}.get(kind, 4)
    head, _, tail = ref.rpartition("/")
    return (rank, head, int(tail) if tail.isdigit() else -1)


def journal_path(seq: int) -> str:
    return f"{JOURNAL}/{seq:0{_SEQ_WIDTH}d}"


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
            version = int(fmt["format"])
        except (ValueError, KeyError, TypeError):
            raise UnsupportedFormatError(f"{FORMAT_FILE} at {self.backend.url} is not a cas format file") from None
        if version > FORMAT_VERSION:
            raise UnsupportedFormatError(
                f"store at {self.backend.url} has format {version}; this cas reads up to {FORMAT_VERSION} - upgrade cas"
            )
        if fmt.get("hash") != HASH_ALGORITHM:
            raise UnsupportedFormatError(f"store uses hash {fmt.get('hash')!r}; cas supports {HASH_ALGORITHM}")
        return fmt

    def init_format(self) -> dict[str, Any]:
        fmt = {"format": FORMAT_VERSION, "hash": HASH_ALGORITHM, "store_id": uuid.uuid4().hex, "created_at": now_iso()}
        self.backend.create_bytes(FORMAT_FILE, (json.dumps(fmt, indent=2) + "\n").encode())
        # Another process may have won the race: its file is the truth.
        return self.read_format()  # type: ignore[return-value]

    # -- records and refs ----------------------------------------------------

    def put_record(self, record: dict[str, Any]) -> str:
        return self.blobs.put_bytes(encode(record)).digest

    def get_record(self, hexdigest: str) -> dict[str, Any]:
        return decode(self.blobs.read_bytes(hexdigest))

    def claim(self, ref: str, record_digest: str) -> bool:
        """Create-only write of a ref; False if someone already holds it."""
        return self.backend.create_bytes(ref, record_digest.encode("ascii"))

    def read_ref(self, ref: str) -> str:
        raw = self.backend.read_bytes(ref).decode("ascii", "replace").strip()
        if not is_hex_digest(raw):
            raise IntegrityError("<record digest>", raw[:64], ref)
        return raw

    def ref_exists(self, ref: str) -> bool:
        return self.backend.exists(ref)

    def list_refs(self, kind: str = "") -> Iterator[str]:
        """The path of every ref under ``refs/<kind>`` (one listing; no ref is read)."""
        prefix = f"{REFS}/{kind}" if kind else REFS
        for entry in self.backend.list(prefix):
            yield entry.path

    def iter_refs(self, kind: str = "") -> Iterator[tuple[str, str]]:
        """(ref path, record digest) for every ref under ``refs/<kind>``."""
        for ref in self.list_refs(kind):
            try:
                yield ref, self.read_ref(ref)
            except FileNotFoundError:
                continue

    def journalled_refs(self) -> tuple[set[str], int]:
        """Every ref the journal announces, and one past its last entry (reads the whole journal)."""
        refs: set[str] = set()
        seq = 0
        while (entry := self.read_journal(seq)) is not None:
            refs.add(entry["ref"])
            seq += 1
        return refs, seq

    # -- journal -------------------------------------------------------------

    def append_journal(self, ref: str, record_digest: str, hint: int) -> int:
        """Claim the next free journal slot at or after ``hint``; returns its seq."""
        data = encode({"ref": ref, "record": record_digest})
        seq = max(hint, 0)
        while not self.backend.create_bytes(journal_path(seq), data):
            seq += 1
        return seq

    def read_journal(self, seq: int) -> dict[str, Any] | None:
        try:
            return decode(self.backend.read_bytes(journal_path(seq)))
        except FileNotFoundError:
            return None
        except (ValueError, msgpack.UnpackException) as e:
            raise BackendError(f"journal entry {seq} is unreadable: {e}") from None

    def journal_end(self) -> int:
        """One past the highest journal seq present (a listing: for reindex only)."""
        top = -1
        for e in self.backend.list(JOURNAL):
            tail = e.path.rsplit("/", 1)[-1]
            if tail.isdigit():
                top = max(top, int(tail))
        return top + 1

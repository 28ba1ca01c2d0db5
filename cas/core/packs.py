"""Packs and pack indexes (format 2): the codec, and the size classes that decide what is packed.

A pack is one object holding many small blobs back to back, after an 8-byte
magic, named by the BLAKE3 of its own bytes (``packs/<hex[:2]>/<hex[2:]>``,
built in :mod:`cas.storage.packs`).  Its pack index is a record
(``{"type": "pack", ...}``, claimed under ``refs/packs/<pack hex>``) listing
``[blob hex, offset, length]`` sorted by offset.  As in restic's design
(doc/design.rst: packs + index files), the index is what makes a blob findable
without listing; unlike restic's, it is announced through the journal, so
other machines learn it O(new).

An index entry is a hint, never trusted for content: every byte read from a
pack is checked against the blob's own digest, so a wrong entry can only
cause an IntegrityError or a miss (docs/format.md, Packs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cas.core.digest import is_hex_digest
from cas.errors import CorruptRecordError

__all__ = [
    "MAX_PACK_BLOBS",
    "MAX_PACK_SIZE",
    "MIN_PACK_BLOBS",
    "PACK_MAGIC",
    "PACK_THRESHOLD",
    "PACK_TYPE",
    "REPACK_BELOW",
    "PackEntry",
    "PackIndex",
    "decode_pack_index",
    "pack_index_record",
]

#: content smaller than this is packed (format 2); the chunk size classes live in cas.core.chunks
PACK_THRESHOLD = 512 << 10
#: a pack is closed once it holds this many bytes of blobs, or this many blobs
MAX_PACK_SIZE = 16 << 20
MAX_PACK_BLOBS = 8192
#: a save's last pack holding fewer blobs than this is not written: they go loose, as that writes
#: fewer objects than a pack, its index record, ref and journal entry (and, locally, no serial claims)
MIN_PACK_BLOBS = 4
#: every pack starts with these bytes (so a pack can never be mistaken for a blob it holds)
PACK_MAGIC = b"CASPACK1"
#: gc repacks a pack (old enough) whose live bytes are less than this share of its blob bytes
REPACK_BELOW = 0.5
#: the record type of a pack index
PACK_TYPE = "pack"
# A decoder bound: a pack index never lists more blobs than a writer may put in one pack,
# nor claims a pack larger than this (a crafted index must not make a reader allocate).
_MAX_SIZE = 2 * MAX_PACK_SIZE + PACK_THRESHOLD


@dataclass(frozen=True)
class PackEntry:
    """Where one blob lies in a pack: ``length`` bytes from ``offset``."""

    digest: str
    pack: str
    offset: int
    length: int


@dataclass(frozen=True)
class PackIndex:
    """A decoded, validated pack index."""

    pack: str
    size: int
    entries: tuple[PackEntry, ...]


def pack_index_record(pack: str, size: int, blobs: list[tuple[str, int, int]]) -> dict[str, Any]:
    """The record a writer publishes for a pack it stored: ``blobs`` as (digest, offset, length)."""
    return {
        "type": PACK_TYPE,
        "pack": pack,
        "seq": 0,  # the ref claims a pack's index once (Publisher.publish numbers it)
        "size": size,
        "blobs": [[d, o, n] for d, o, n in sorted(blobs, key=lambda b: b[1])],
    }


def decode_pack_index(record: Any, record_digest: str, pack: str | None = None) -> PackIndex:
    """A pack index record, validated: entries in range of the pack, sorted, never
    overlapping, one per blob; ``pack``: the pack its ref names.  Else CorruptRecordError."""
    key = f"blake3:{record_digest}"

    def bad(what: str) -> CorruptRecordError:
        return CorruptRecordError(key, f"not a valid pack index: {what}")

    if not isinstance(record, dict) or record.get("type") != PACK_TYPE:
        raise bad("expected a map of type 'pack'")
    name, size, listed = record.get("pack"), record.get("size"), record.get("blobs")
    if not isinstance(name, str) or not is_hex_digest(name):
        raise bad("'pack' is not a digest")
    if pack is not None and name != pack:
        raise bad(f"'pack' is {name}, the ref says {pack}")
    if type(size) is not int or not len(PACK_MAGIC) <= size <= _MAX_SIZE:
        raise bad("'size' is out of range")
    if not isinstance(listed, list) or len(listed) > MAX_PACK_BLOBS:
        raise bad(f"'blobs' is not a list of at most {MAX_PACK_BLOBS} entries")
    entries: list[PackEntry] = []
    seen: set[str] = set()
    end = len(PACK_MAGIC)
    for item in listed:
        if not (isinstance(item, list) and len(item) == 3):
            raise bad("an entry is not [digest, offset, length]")
        digest, offset, length = item
        if not isinstance(digest, str) or not is_hex_digest(digest):
            raise bad("an entry's digest is not 64 lowercase hex")
        if type(offset) is not int or type(length) is not int or length < 0:
            raise bad(f"entry {digest}: offset and length must be integers >= 0")
        if offset < end:
            raise bad(f"entry {digest}: overlaps the one before it (or the magic)")
        if offset + length > size:
            raise bad(f"entry {digest}: ends past the pack's size")
        if digest in seen:
            raise bad(f"entry {digest}: listed twice")
        seen.add(digest)
        end = offset + length
        entries.append(PackEntry(digest, name, offset, length))
    return PackIndex(name, size, tuple(entries))

"""The codec of a format-2 journal entry: the refs one save (or one sync) announces.

One entry is one object under ``journal2/`` (its key: ``cas.core.refs``)::

    {"refs": [[<ref path>, <record digest hex>], ...]}     canonical msgpack, in publish order

Decoding validates it (DESIGN invariant 12): a map with a ``refs`` list of 1 to
:data:`MAX_ENTRY_REFS` pairs, each a valid ref path (``parse_ref_path``) and a
64-hex digest, no ref twice.  Anything else is refused whole with
:class:`~cas.errors.CorruptRecordError` naming the key; other keys of the map
are ignored (room for a newer cas to add fields).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgpack

from cas.core.digest import is_hex_digest
from cas.core.records import JournalEntry, encode
from cas.core.refs import parse_ref_path
from cas.errors import CorruptRecordError, InvalidNameError

__all__ = ["MAX_ENTRY_BYTES", "MAX_ENTRY_REFS", "encode_entry", "decode_entry"]

#: refs in one entry at most (a bigger sync writes several entries): about 6 MB of msgpack
MAX_ENTRY_REFS = 50_000
#: bytes of one entry at most: MAX_ENTRY_REFS of the longest ref paths (an alias ref, ~540
#: bytes) fit; a larger listed object is refused unread, so a planted one costs no memory
MAX_ENTRY_BYTES = 32 << 20


def encode_entry(pairs: Iterable[tuple[str, str]]) -> bytes:
    """The bytes announcing ``(ref, record digest)`` pairs, in the order given."""
    refs = [[ref, digest] for ref, digest in pairs]
    if not 1 <= len(refs) <= MAX_ENTRY_REFS:
        raise ValueError(f"a journal entry holds 1 to {MAX_ENTRY_REFS} refs, not {len(refs)}")
    return encode({"refs": refs})


def decode_entry(data: bytes, key: str) -> tuple[JournalEntry, ...]:
    """The (ref, record) pairs of an entry, or CorruptRecordError naming ``key``."""
    try:
        try:
            entry = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            raise InvalidNameError(f"not msgpack ({e})") from None
        refs = entry.get("refs") if isinstance(entry, dict) else None
        if not isinstance(refs, list) or not 1 <= len(refs) <= MAX_ENTRY_REFS:
            raise InvalidNameError(f"expected a map with 'refs', a list of 1 to {MAX_ENTRY_REFS} pairs")
        out: list[JournalEntry] = []
        seen: set[str] = set()
        for pair in refs:
            out.append(_pair(pair))
            if out[-1].ref.path in seen:
                raise InvalidNameError(f"{out[-1].ref.path} is announced twice")
            seen.add(out[-1].ref.path)
    except (InvalidNameError, CorruptRecordError) as e:
        raise CorruptRecordError(key, f"not a journal entry: {e}") from None
    return tuple(out)


def _pair(pair: Any) -> JournalEntry:
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str) and is_hex_digest(pair[1])):
        raise InvalidNameError(f"expected [ref, record digest], got {str(pair)[:80]!r}")
    return JournalEntry(parse_ref_path(pair[0]), pair[1])

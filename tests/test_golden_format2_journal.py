"""Golden bytes of the format-2 journal: its keys, its listing prefixes and its entries.

Fixed values are encoded with the public codecs (``cas.core.refs``,
``cas.core.entries``) and compared with pinned keys, bytes and BLAKE3
digests, then decoded back.  If one of these fails, the format-2 journal
changed (docs/format.md, Journal (format 2)): that needs a new format
version, not a new literal.
"""

from __future__ import annotations

import blake3
import pytest

import cas
from cas.core.entries import decode_entry, encode_entry
from cas.core.refs import Journal2Key, journal2_key, journal2_prefixes, parse_journal2_key
from cas.errors import CorruptRecordError

STAMP = 1796131845123456  # 2026-12-01 13:30:45.123456 UTC
WRITER = "0123456789abcdef"
KEY = "journal2/20261201/1330/1796131845123456-0123456789abcdef-7"
EPOCH_KEY = "journal2/19700101/0000/0000000000000000-0000000000000000-0"

PAIRS = [("refs/versions/demo/ingest/raw/1", "ab" * 32), ("refs/aliases/demo/ingest/raw/prod/0", "cd" * 32)]
ENTRY_HEX = (
    "81a4726566739292bf726566732f76657273696f6e732f64656d6f2f696e676573742f7261772f31d940616261626162"
    "616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162"
    "6162616261626162616292d923726566732f616c69617365732f64656d6f2f696e676573742f7261772f70726f642f30"
    "d94063646364636463646364636463646364636463646364636463646364636463646364636463646364636463646364"
    "636463646364636463646364636463646364"
)
ENTRY_DIGEST = "8fa7a1dd62b2b81ad7adc228d9f0f376b285a4b1f2fa2610b7e56b1a363a5999"


def test_keys():
    assert journal2_key(STAMP, WRITER, 7) == KEY
    assert journal2_key(0, "0" * 16, 0) == EPOCH_KEY
    assert parse_journal2_key(KEY) == Journal2Key(KEY, STAMP, WRITER, 7)
    assert parse_journal2_key(EPOCH_KEY).stamp == 0


def test_listing_prefixes():
    minute = 60 * 1_000_000
    assert journal2_prefixes(STAMP, STAMP + 15 * minute) == ["journal2/20261201/1330", "journal2/20261201/1340"]
    assert journal2_prefixes(STAMP, STAMP + 50 * minute) == [
        "journal2/20261201/1330", "journal2/20261201/1340", "journal2/20261201/1350",
        "journal2/20261201/1400", "journal2/20261201/1410", "journal2/20261201/1420",
    ]  # fmt: skip
    # more than six slots of one day: the day is one prefix
    assert journal2_prefixes(STAMP, STAMP + 60 * minute) == ["journal2/20261201"]
    assert journal2_prefixes(STAMP, STAMP + 3 * 1440 * minute) == [
        "journal2/20261201", "journal2/20261202", "journal2/20261203", "journal2/20261204",
    ]  # fmt: skip


def test_entry():
    data = encode_entry(PAIRS)
    assert data.hex() == ENTRY_HEX
    assert blake3.blake3(data).hexdigest() == ENTRY_DIGEST
    assert [(e.ref.path, e.record) for e in decode_entry(data, KEY)] == PAIRS


@pytest.mark.parametrize(
    "key, why",
    [
        ("journal2/20261201/1340/1796131845123456-0123456789abcdef-7", "another day or slot"),
        ("journal2/20261202/1330/1796131845123456-0123456789abcdef-7", "another day or slot"),
        ("journal2/20261201/1330/1796131845123456-0123456789ABCDEF-7", "lowercase hex"),
        ("journal2/20261201/1330/1796131845123456-0123456789abcdef-07", "not a number"),
        ("journal2/20261201/1330/1796131845123456-0123456789abcdef--7", "expected"),
        ("journal2/20261201/1330/179613184512345-0123456789abcdef-7", "16 digits"),
        ("journal2/20261201/1330/x/1796131845123456-0123456789abcdef-7", "expected"),
        ("journal/20261201/1330/1796131845123456-0123456789abcdef-7", "expected"),
    ],
)
def test_bad_keys(key, why):
    with pytest.raises(CorruptRecordError, match=why) as e:
        parse_journal2_key(key)
    assert e.value.key == key


def test_format1_stores_are_untouched():
    assert cas.core.refs.journal_path(17) == "journal/0000000000000017"

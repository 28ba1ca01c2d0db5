"""The layout of refs and journal keys: built AND parsed here, and nowhere else.

    refs/versions/<p>/<s>/<a>/<N>                claim of version N
    refs/aliases/<p>/<s>/<a>/<alias>/<seq>       alias moves, highest seq wins
    refs/deletions/<p>/<s>/<a>/<N>               version N deleted
    refs/runs/<run id>/<seq>                     run and step-run events
    refs/packs/<pack hex>                        a pack's index (format 2, cas.core.packs)
    journal/<seq, 16 digits>                     {ref, record} in commit order
    journal2/<day>/<slot>/<stamp>-<writer>-<seq>  format 2: {refs: [[ref, record], ...]}

As restic's layout turns a handle into a path and a listed path back into a
handle in one interface, the builders and the parsers of these keys live
together, so the two can never disagree.  A listed key is untrusted (DESIGN
invariant 12): :func:`parse_ref_path`, :func:`parse_journal_key` and
:func:`parse_journal2_key` validate it against the grammar of docs/format.md or raise
:class:`~cas.errors.CorruptRecordError` naming it; callers never slice a key.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from cas.core.digest import is_hex_digest
from cas.core.names import MAX_VERSION, check_alias, check_segment, parse_name
from cas.errors import CorruptRecordError, InvalidNameError

__all__ = [
    "REFS",
    "JOURNAL",
    "RefKey",
    "version_ref",
    "alias_ref",
    "deletion_ref",
    "run_ref",
    "pack_ref",
    "refs_prefix",
    "journal_path",
    "parse_ref_path",
    "parse_journal_key",
    "ref_order",
    "JOURNAL2",
    "SLOT_SECONDS",
    "Journal2Key",
    "journal2_key",
    "journal2_prefixes",
    "parse_journal2_key",
]

REFS = "refs"
JOURNAL = "journal"
JOURNAL2 = "journal2"
#: format 2: journal entries are listed by time slot (a prefix each) of this many seconds
SLOT_SECONDS = 600
_SLOT_US = SLOT_SECONDS * 1_000_000
_STAMP_WIDTH = 16  # microseconds since the epoch: 16 digits until the year 2286
_WRITER_WIDTH = 16  # hex digits of a writer id (64 random bits)
#: a window wider than this many slots of one day is listed as the whole day (one prefix)
_SLOTS_PER_DAY_LISTING = 6
_SEQ_WIDTH = 16
# The order refs are published in: runs, then versions before the aliases and deletions that refer to them.
# Pack indexes first: the content they locate is read when the refs after them are applied.
_KIND_RANK = {"packs": -1, "runs": 0, "versions": 1, "aliases": 2, "deletions": 3}


def version_ref(name: str, version: int) -> str:
    return f"{REFS}/versions/{name}/{version}"


def alias_ref(name: str, alias: str, seq: int) -> str:
    return f"{REFS}/aliases/{name}/{alias}/{seq}"


def deletion_ref(name: str, version: int) -> str:
    return f"{REFS}/deletions/{name}/{version}"


def run_ref(run_id: str, seq: int) -> str:
    return f"{REFS}/runs/{run_id}/{seq}"


def pack_ref(pack: str) -> str:
    return f"{REFS}/packs/{pack}"


def refs_prefix(kind: str = "") -> str:
    """The listing prefix of every ref of ``kind`` (``versions``, ``runs``, ...), or of all refs."""
    return f"{REFS}/{kind}" if kind else REFS


def journal_path(seq: int) -> str:
    return f"{JOURNAL}/{seq:0{_SEQ_WIDTH}d}"


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
        """The artifact name the ref belongs to; None for run and pack refs."""
        return None if self.kind in ("runs", "packs") else self.owner

    @property
    def group(self) -> str:
        """Refs of one artifact name, or of one run, are claimed one after another."""
        return self.owner if self.kind not in ("runs", "packs") else f"{REFS}/{self.kind}/{self.owner}"


def ref_order(item: tuple[str, str]) -> tuple[int, str, int]:
    """Sort key for (ref, record digest): runs, then versions before the aliases
    and deletions that refer to them; numbered refs in numeric order."""
    key = parse_ref_path(item[0])
    return (_KIND_RANK[key.kind], key.path.rpartition("/")[0], key.number)


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
        if kind == "packs" and len(parts) == 3 and is_hex_digest(parts[2]):
            return RefKey(path, kind, parts[2], 0)
        if kind == "runs" and len(parts) == 4:
            return RefKey(path, kind, check_segment(parts[2], "run id"), _number(parts[3], 0))
        raise InvalidNameError("not refs/versions|deletions/<name>/<N>, refs/aliases/<name>/<alias>/<seq> refs/runs/<id>/<seq> or refs/packs/<hex>")
    except InvalidNameError as e:
        raise CorruptRecordError(shown, f"not a ref path: {e}") from None


def parse_journal_key(path: str) -> int:
    """The seq of a listed ``journal/<16 digits>`` key, or CorruptRecordError."""
    head, _, tail = path.rpartition("/")
    if head != JOURNAL or len(tail) != _SEQ_WIDTH or not (tail.isascii() and tail.isdigit()):
        raise CorruptRecordError(_show_key(path), f"not a journal key: expected {JOURNAL}/<{_SEQ_WIDTH} digits>")
    return int(tail)


# -- the format-2 journal: time-ordered keys, no shared counter ----------------------


@dataclass(frozen=True)
class Journal2Key:
    """A listed ``journal2/`` key: when it was named (``stamp``, microseconds since the
    epoch, by its writer's clock), by which writer, and that writer's local ``seq``."""

    path: str
    stamp: int
    writer: str
    seq: int


def _slot_dirs(stamp: int) -> tuple[str, str]:
    """(day, slot) directories of a stamp: ``YYYYMMDD`` and ``HHMM`` (UTC, MM a multiple of 10)."""
    t = time.gmtime((stamp // _SLOT_US) * SLOT_SECONDS)
    return time.strftime("%Y%m%d", t), time.strftime("%H%M", t)


def journal2_key(stamp: int, writer: str, seq: int) -> str:
    """The key of a format-2 journal entry named at ``stamp`` (us) by ``writer`` (16 hex)."""
    day, slot = _slot_dirs(stamp)
    return f"{JOURNAL2}/{day}/{slot}/{stamp:0{_STAMP_WIDTH}d}-{writer}-{seq}"


def journal2_prefixes(start: int, end: int) -> list[str]:
    """The listing prefixes that hold every key stamped in [start, end] (us), oldest first.

    One prefix per 10-minute slot; where the window covers more than an hour of
    one day, that day's prefix instead, so a reader that was away for a week
    lists about one prefix per day, not 1,000 slots.
    """
    by_day: dict[str, list[str]] = {}
    for slot in range(max(start, 0) // _SLOT_US, max(end, 0) // _SLOT_US + 1):
        day, hhmm = _slot_dirs(slot * _SLOT_US)
        by_day.setdefault(day, []).append(hhmm)
    out = []
    for day, slots in by_day.items():
        if len(slots) > _SLOTS_PER_DAY_LISTING:
            out.append(f"{JOURNAL2}/{day}")
        else:
            out.extend(f"{JOURNAL2}/{day}/{hhmm}" for hhmm in slots)
    return out


def parse_journal2_key(path: str) -> Journal2Key:
    """The parts of a listed ``journal2/`` key, or CorruptRecordError naming it.

    The day and slot directories must be the ones its stamp belongs in: a key
    filed under another slot would be missed by readers listing the right one.
    """
    shown = _show_key(path)
    if not isinstance(path, str):
        raise CorruptRecordError(shown, "not a journal key: expected a string")
    parts = path.split("/")
    name = parts[-1].split("-")
    try:
        if len(parts) != 4 or parts[0] != JOURNAL2 or len(name) != 3:
            raise InvalidNameError(f"expected {JOURNAL2}/<day>/<slot>/<stamp>-<writer>-<seq>")
        stamp_text, writer, seq_text = name
        if len(stamp_text) != _STAMP_WIDTH or not (stamp_text.isascii() and stamp_text.isdigit()):
            raise InvalidNameError(f"the stamp is not {_STAMP_WIDTH} digits")
        if len(writer) != _WRITER_WIDTH or not all(ch in "0123456789abcdef" for ch in writer):
            raise InvalidNameError(f"the writer is not {_WRITER_WIDTH} lowercase hex")
        seq = _number(seq_text, 0)
        stamp = int(stamp_text)
        if (parts[1], parts[2]) != _slot_dirs(stamp):
            raise InvalidNameError("filed under another day or slot than its stamp")
    except InvalidNameError as e:
        raise CorruptRecordError(shown, f"not a journal key: {e}") from None
    return Journal2Key(path, stamp, writer, seq)


def _show_key(key: Any) -> str:
    """A key as it can be printed on one line: control characters escaped, long ones cut."""
    text = key if isinstance(key, str) and key.isprintable() else repr(key)
    return text if len(text) <= 200 else text[:197] + "..."

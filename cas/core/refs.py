"""The layout of refs and journal keys: built AND parsed here, and nowhere else.

    refs/versions/<p>/<s>/<a>/<N>                claim of version N
    refs/aliases/<p>/<s>/<a>/<alias>/<seq>       alias moves, highest seq wins
    refs/deletions/<p>/<s>/<a>/<N>               version N deleted
    refs/runs/<run id>/<seq>                     run and step-run events
    refs/packs/<pack hex>                        a pack's index (format 2, cas.core.packs)
    journal/<seq, 16 digits>                     {ref, record} in commit order

As restic's layout turns a handle into a path and a listed path back into a
handle in one interface, the builders and the parsers of these keys live
together, so the two can never disagree.  A listed key is untrusted (DESIGN
invariant 12): :func:`parse_ref_path` and :func:`parse_journal_key` validate
it against the grammar of docs/format.md or raise
:class:`~cas.errors.CorruptRecordError` naming it; callers never slice a key.
"""

from __future__ import annotations

import functools
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
]

REFS = "refs"
JOURNAL = "journal"
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


def _show_key(key: Any) -> str:
    """A key as it can be printed on one line: control characters escaped, long ones cut."""
    text = key if isinstance(key, str) and key.isprintable() else repr(key)
    return text if len(text) <= 200 else text[:197] + "..."

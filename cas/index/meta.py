"""The index's ``meta`` table: the store id it was built for, and the journal cursors.

The format-1 cursor is two numbers kept as text under ``journal_hint`` and
``journal_next``.  The format-2 cursor is a horizon under ``journal2_horizon``
(microseconds: every entry stamped at or before it is applied) and one row
``journal2_seen:<entry key>`` per entry stamped after it that is already
applied, valued with its stamp (16 digits, so text order is time order).  That
is the on-disk format of the index; only this module reads or writes them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from cas.core.refs import Journal2Key

__all__ = ["Journal2Cursor", "JournalCursor", "MetaQueries"]

_HINT = "journal_hint"
_NEXT = "journal_next"
_HORIZON = "journal2_horizon"
_SEEN = "journal2_seen:"
_SEEN_END = "journal2_seen;"  # the first text after every _SEEN key (":" + 1)
_STAMP = "{:016d}"


@dataclass(frozen=True)
class Journal2Cursor:
    """Where this index stands in a format-2 journal.

    ``horizon`` (us): every entry stamped at or before it is applied; None if this
    index never read the format-2 journal (then it is listed whole, once).
    ``seen``: keys of the entries stamped after the horizon that are applied.
    """

    horizon: int | None
    seen: frozenset[str]


@dataclass(frozen=True)
class JournalCursor:
    """Where this index stands in the backend's journal.

    ``next``: every entry before it is applied, so refresh reads from here.
    ``hint``: where the next append starts probing for a free entry; never below ``next``.
    Both only move forward, whichever thread or process moves them.
    """

    hint: int
    next: int


class MetaQueries:
    """The ``meta`` table (part of :class:`cas.index.Index`)."""

    conn: sqlite3.Connection  # this thread's connection (cas.index.db)

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.conn).execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def journal_cursor(self) -> JournalCursor:
        """The cursor as this thread's connection sees it (inside a write: as of that transaction)."""
        return JournalCursor(hint=int(self.get_meta(_HINT, "0")), next=int(self.get_meta(_NEXT, "0")))

    def journal_appended(self, c: sqlite3.Connection, seq: int) -> None:
        """We appended journal entry ``seq`` (in the write transaction ``c``, before applying it)."""
        cursor = self.journal_cursor()
        if cursor.hint <= seq:
            self.set_meta(_HINT, str(seq + 1), c)
        if cursor.next == seq:
            # every entry before ours is applied: the next refresh can start after it
            self.set_meta(_NEXT, str(seq + 1), c)

    def journal_applied(self, c: sqlite3.Connection, seq: int) -> None:
        """Every journal entry before ``seq`` is applied (refresh read up to it)."""
        cursor = self.journal_cursor()
        # Only forward: another thread or process may have moved it further meanwhile.
        if cursor.next < seq:
            self.set_meta(_NEXT, str(seq), c)
        if cursor.hint < seq:
            self.set_meta(_HINT, str(seq), c)

    def journal_rebuilt(self, c: sqlite3.Connection, seq: int) -> None:
        """The index was rebuilt from the backend with every entry before ``seq`` (reindex)."""
        self.set_meta(_NEXT, str(seq), c)
        self.set_meta(_HINT, str(seq), c)

    def journal2_cursor(self) -> Journal2Cursor:
        horizon = self.get_meta(_HORIZON)
        rows = self.conn.execute("SELECT key FROM meta WHERE key >= ? AND key < ?", (_SEEN, _SEEN_END))
        return Journal2Cursor(None if horizon is None else int(horizon), frozenset(k[len(_SEEN):] for k, in rows))

    def journal2_seen(self, c: sqlite3.Connection, keys: Iterable[Journal2Key]) -> None:
        """These entries are applied (in the write transaction ``c``)."""
        horizon = self.get_meta(_HORIZON)
        c.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [(_SEEN + k.path, _STAMP.format(k.stamp)) for k in keys if horizon is None or k.stamp > int(horizon)],
        )

    def journal2_advanced(self, c: sqlite3.Connection, horizon: int) -> None:
        """Every entry stamped at or before ``horizon`` is applied: only forward (another
        thread or process may have moved it further), and forget the keys it covers."""
        current = self.get_meta(_HORIZON)
        if current is not None and int(current) >= horizon:
            return
        self.set_meta(_HORIZON, str(horizon), c)
        c.execute("DELETE FROM meta WHERE key >= ? AND key < ? AND value <= ?", (_SEEN, _SEEN_END, _STAMP.format(horizon)))

    def journal2_rebuilt(self, c: sqlite3.Connection, horizon: int, keys: Iterable[Journal2Key]) -> None:
        """The index was rebuilt with every entry up to ``horizon`` and ``keys`` (reindex)."""
        c.execute("DELETE FROM meta WHERE key >= ? AND key < ?", (_SEEN, _SEEN_END))
        self.set_meta(_HORIZON, str(horizon), c)
        self.journal2_seen(c, keys)

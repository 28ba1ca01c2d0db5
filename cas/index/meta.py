"""The index's ``meta`` table: the store id it was built for, and the journal cursor.

The cursor is two numbers kept as text under ``journal_hint`` and ``journal_next``
(the on-disk format of the index); only this module reads or writes them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["JournalCursor", "MetaQueries"]

_HINT = "journal_hint"
_NEXT = "journal_next"


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

"""Applied refs and rejected objects in the index: which records this index already shows.

``records`` maps every applied ref to its record's digest (refresh skips those,
``gc`` keeps their records); ``rejected`` remembers backend objects that were
refused, for ``verify`` (invariant 12).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

__all__ = ["RecordQueries"]


class RecordQueries:
    """The ``records`` and ``rejected`` tables (part of :class:`cas.index.Index`)."""

    conn: sqlite3.Connection  # this thread's connection (cas.index.db)

    def add_record(self, c: sqlite3.Connection, ref: str, digest: str) -> bool:
        """Remember a ref we have applied; False if it was already known."""
        return c.execute("INSERT OR IGNORE INTO records (ref, digest) VALUES (?, ?)", (ref, digest)).rowcount == 1

    def has_record(self, ref: str) -> bool:
        return self.conn.execute("SELECT 1 FROM records WHERE ref = ?", (ref,)).fetchone() is not None

    def record_digests(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT digest FROM records")}

    def iter_records(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        yield from self.conn.execute(
            "SELECT ref, digest FROM records WHERE ref >= ? AND ref < ? ORDER BY ref", (prefix, prefix + "\U0010ffff")
        )

    def max_ref_seq(self, prefix: str) -> int:
        """The highest numeric tail of an applied ref under ``prefix`` (ending in "/"); -1 if none."""
        rows = self.conn.execute("SELECT ref FROM records WHERE ref >= ? AND ref < ?", (prefix, prefix + "\U0010ffff"))
        top = -1
        for (ref,) in rows:
            tail = ref[len(prefix) :]
            if tail.isdigit():
                top = max(top, int(tail))
        return top

    def add_rejected(self, c: sqlite3.Connection, key: str, message: str) -> bool:
        """Remember a backend object that was refused; False if it was already known."""
        return c.execute("INSERT OR IGNORE INTO rejected (message, key) VALUES (?, ?)", (message, key)).rowcount == 1

    def rejected(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT message FROM rejected ORDER BY message")]

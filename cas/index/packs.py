"""The pack table (format 2): which pack holds which small blob, learned from pack index records.

Rows are hints, as the pack indexes they come from: a reader verifies every
byte it takes from a pack (cas.storage.packs), so a stale row (a pack gc
retired) costs a miss, never a wrong byte.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from cas.core.packs import PackEntry, PackIndex

__all__ = ["PackQueries"]

# Digests per query (each appears twice; SQLite before 3.32 allows 999 parameters).
_BATCH = 400


class PackQueries:
    """The ``pack_files`` and ``packed`` tables (part of :class:`cas.index.Index`)."""

    conn: sqlite3.Connection  # this thread's connection (cas.index.db)

    def insert_pack(self, c: sqlite3.Connection, index: PackIndex) -> None:
        c.execute("INSERT OR IGNORE INTO pack_files (pack, size) VALUES (?, ?)", (index.pack, index.size))
        c.executemany(
            "INSERT OR IGNORE INTO packed (digest, pack, offset, length) VALUES (?, ?, ?, ?)",
            ((e.digest, e.pack, e.offset, e.length) for e in index.entries),
        )

    def pack_locations(self, digest: str) -> list[PackEntry]:
        """Every known place of ``digest``, newest pack first."""
        rows = self.conn.execute(
            "SELECT p.pack, p.offset, p.length FROM packed p JOIN pack_files f ON f.pack = p.pack"
            " WHERE p.digest = ? ORDER BY f.id DESC",
            (digest,),
        )
        return [PackEntry(digest, pack, offset, length) for pack, offset, length in rows]

    def pack_holders(self, digests: list[str]) -> list[tuple[str, str, int]]:
        """(digest, pack, length) for every known place of each of ``digests``, newest pack
        first: one query for a batch (a tree's files), not one per blob."""
        marks = ", ".join("?" * len(digests))
        return self.conn.execute(
            "SELECT p.digest, p.pack, p.length FROM packed p JOIN pack_files f ON f.pack = p.pack"
            f" WHERE p.digest IN ({marks}) ORDER BY f.id DESC",
            digests,
        ).fetchall()

    def known_packs(self) -> dict[str, int]:
        """pack -> size, for every pack an index record announced."""
        return dict(self.conn.execute("SELECT pack, size FROM pack_files"))

    def content_digests(self, digests: Iterable[str]) -> set[str]:
        """Which of ``digests`` are file contents (of blob versions or tree entries): what
        format 2 packs, as opposed to records and manifests, which stay loose."""
        # Asked of both digest indexes, so the cost follows len(digests), not the store's size.
        wanted = list(dict.fromkeys(digests))
        content: set[str] = set()
        for start in range(0, len(wanted), _BATCH):
            part = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT digest FROM versions WHERE kind = 'blob' AND digest IN ({marks})"
                f" UNION SELECT digest FROM tree_entries WHERE digest IN ({marks})",
                part + part,
            )
            content.update(r[0] for r in rows)
        return content

    def pack_entries(self, pack: str) -> list[PackEntry]:
        rows = self.conn.execute(
            "SELECT digest, offset, length FROM packed WHERE pack = ? ORDER BY offset", (pack,)
        )
        return [PackEntry(digest, pack, offset, length) for digest, offset, length in rows]

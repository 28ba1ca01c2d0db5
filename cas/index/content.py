"""Tree entries and blobs in the index: which content the live versions need, and its size.

``gc`` keeps exactly :meth:`ContentQueries.needed_blobs`, ``verify`` checks exactly
those, and the ``cas://`` filesystem lists trees from ``tree_entries``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from cas.core.tree import ChunkedEntry

__all__ = ["ContentQueries"]

# Digests per query (each appears twice; SQLite before 3.32 allows 999 parameters).
_BATCH = 400


class ContentQueries:
    """The ``tree_entries`` and ``blobs`` tables (part of :class:`cas.index.Index`)."""

    conn: sqlite3.Connection  # this thread's connection (cas.index.db)

    def insert_tree_entries(self, c: sqlite3.Connection, tree: str, entries: list[tuple[str, str, int]]) -> None:
        c.executemany(
            "INSERT OR IGNORE INTO tree_entries (tree, path, digest, size) VALUES (?, ?, ?, ?)",
            ((tree, path, digest, size) for path, digest, size in entries),
        )
        c.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?)", ((d, s) for _, d, s in entries))
        self.add_chunk_lists(c, [(e[1], e.chunks) for e in entries if isinstance(e, ChunkedEntry)])

    def has_tree(self, tree: str) -> bool:
        return self.conn.execute("SELECT 1 FROM tree_entries WHERE tree = ? LIMIT 1", (tree,)).fetchone() is not None

    def tree_entries(self, tree: str, prefix: str = "") -> list[tuple[str, str, int]]:
        if prefix:
            rows = self.conn.execute(
                "SELECT path, digest, size FROM tree_entries WHERE tree = ? AND path >= ? AND path < ? ORDER BY path",
                (tree, prefix, prefix + "\U0010ffff"),
            )
        else:
            rows = self.conn.execute(
                "SELECT path, digest, size FROM tree_entries WHERE tree = ? ORDER BY path", (tree,)
            )
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def tree_entry(self, tree: str, path: str) -> tuple[str, int] | None:
        row = self.conn.execute(
            "SELECT digest, size FROM tree_entries WHERE tree = ? AND path = ?", (tree, path)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def tree_has_dir(self, tree: str, path: str) -> bool:
        """Is ``path`` a directory in the tree (some entry lies below it)?  One index probe."""
        prefix = f"{path}/"
        return (
            self.conn.execute(
                "SELECT 1 FROM tree_entries WHERE tree = ? AND path >= ? AND path < ? LIMIT 1",
                (tree, prefix, prefix + "\U0010ffff"),
            ).fetchone()
            is not None
        )

    def add_chunk_lists(self, c: sqlite3.Connection, pairs) -> None:
        """(whole-file digest, chunk list digest) of chunked files (format 2)."""
        c.executemany("INSERT OR IGNORE INTO chunk_lists (digest, list) VALUES (?, ?)", pairs)

    def chunk_list(self, digest: str) -> str | None:
        """The chunk list of content ``digest`` if it is a chunked file (None: a loose blob)."""
        row = self.conn.execute("SELECT list FROM chunk_lists WHERE digest = ?", (digest,)).fetchone()
        return row[0] if row else None

    def chunk_lists(self) -> dict[str, str]:
        """Every chunked file the index knows: whole-file digest -> chunk list digest."""
        return dict(self.conn.execute("SELECT digest, list FROM chunk_lists"))

    def live_blob_size(self, digest: str) -> int | None:
        """The size of ``digest`` if a live version (or a live tree's entry) uses it."""
        row = self.conn.execute(
            "SELECT size FROM versions WHERE digest = ? AND kind = 'blob' AND deleted_at IS NULL"
            " UNION ALL SELECT t.size FROM tree_entries t JOIN versions v ON v.digest = t.tree"
            " WHERE t.digest = ? AND v.deleted_at IS NULL LIMIT 1",
            (digest, digest),
        ).fetchone()
        return row[0] if row else None

    def live_digests(self) -> set[str]:
        """Every blob digest a live (not deleted) version needs, trees expanded."""
        live = {r[0] for r in self.conn.execute("SELECT digest FROM versions WHERE deleted_at IS NULL")}
        rows = self.conn.execute(
            "SELECT t.digest FROM tree_entries t JOIN versions v ON v.digest = t.tree WHERE v.deleted_at IS NULL"
        )
        live.update(r[0] for r in rows)
        return live

    def needed_blobs(self) -> dict[str, int | None]:
        """Every blob the store must keep, with its size where the index knows it.

        That is the content of live versions (trees expanded), every tree
        manifest (reindex reads them, deleted versions included) and every
        record.  ``gc`` keeps exactly these and ``verify`` checks exactly these.
        """
        needed: dict[str, int | None] = dict.fromkeys(r[0] for r in self.conn.execute("SELECT digest FROM records"))
        needed.update(dict.fromkeys(r[0] for r in self.conn.execute("SELECT digest FROM versions WHERE kind = 'tree'")))
        needed.update(dict.fromkeys(self.live_digests()))
        for digest, size in self.conn.execute("SELECT digest, size FROM blobs"):
            if digest in needed:
                needed[digest] = size
        return needed

    def kept_among(self, digests: Iterable[str]) -> set[str]:
        """Which of ``digests`` :meth:`needed_blobs` holds, asked of the digest indexes so the
        cost follows len(digests), not the store's size (sync asks this of a destination)."""
        kept = {r[0] for r in self.conn.execute("SELECT digest FROM records")}.intersection(digests)
        wanted = list(dict.fromkeys(digests))
        for start in range(0, len(wanted), _BATCH):
            part = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT digest FROM versions WHERE digest IN ({marks}) AND (kind = 'tree' OR deleted_at IS NULL)"
                " UNION SELECT t.digest FROM tree_entries t JOIN versions v ON v.digest = t.tree"
                f" WHERE t.digest IN ({marks}) AND v.deleted_at IS NULL",
                part + part,
            )
            kept.update(r[0] for r in rows)
        return kept

    def stats(self) -> dict[str, int]:
        versions, logical = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM versions WHERE deleted_at IS NULL"
        ).fetchone()
        artifacts = self.conn.execute(
            "SELECT COUNT(DISTINCT name) FROM versions WHERE deleted_at IS NULL"
        ).fetchone()[0]
        blobs, stored = self.conn.execute(
            "WITH live AS ("
            " SELECT digest FROM versions WHERE deleted_at IS NULL AND kind = 'blob'"
            " UNION SELECT t.digest FROM tree_entries t JOIN versions v ON v.digest = t.tree"
            " WHERE v.deleted_at IS NULL)"
            " SELECT COUNT(*), COALESCE(SUM(b.size), 0) FROM blobs b JOIN live USING (digest)"
        ).fetchone()
        return {
            "artifacts": artifacts,
            "versions": versions,
            "blobs": blobs,
            "logical_bytes": logical,
            "stored_bytes": stored,
        }

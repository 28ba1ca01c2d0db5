"""The stat cache: the digests this machine found for its own files, by their stat.

A save of a file or a directory looks each file up here by its absolute path:
when the file's size, mtime, ctime, inode and device are the ones recorded
with a digest, and the record is not *racy*, the digest is taken without
reading a byte (git's index and DVC's state do the same).  Anything else, or
``rehash``, reads the file; what was read is recorded for next time.

Racy (git's rule, ``Documentation/technical/racy-git.txt``): a file written
in the same timestamp tick as it was hashed may change again without its stat
changing.  An entry is trusted only if the file's mtime and ctime are older
than the moment its stat was taken (``recorded_ns``, read from the clock
*before* the stat) by more than the filesystem's timestamp resolution, so
any later write shows as a new mtime and ctime.  The resolution is guessed
from the timestamps themselves: one that is a whole multiple of 1 s (FAT,
HFS+, ext4 with small inodes) gets a margin of 2 s, others at least
``MIN_MARGIN_NS``.  docs/format.md ("Stat cache") says what can still be missed.

The cache is local and never leaves this index: it is not part of the store
format, reindex keeps it (it holds no fact about the backend) and a hit only
replaces hashing - the caller still checks that the store holds the blob.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import NamedTuple

__all__ = ["LOCAL_TABLES", "FileStat", "Looked", "StatCache", "StatCacheQueries", "observe", "trusted"]

# Tables that describe this machine's files, not the backend: reindex and a new store id keep them.
LOCAL_TABLES = ("stat_cache",)
MIN_MARGIN_NS = 100_000_000  # a fine-grained filesystem: ten times a 100 Hz kernel tick
MAX_ENTRIES = 500_000  # past this many paths, the ones recorded longest ago go first
_SECOND = 1_000_000_000
_INT64 = 1 << 63
_UINT64 = 1 << 64


class FileStat(NamedTuple):
    """What must be unchanged for a file's recorded digest to hold (the columns' order)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    dev: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        # inode and device numbers are unsigned 64-bit; SQLite's INTEGER is signed
        ino, dev = st.st_ino, st.st_dev
        return cls(
            st.st_size, st.st_mtime_ns, st.st_ctime_ns,
            ino - _UINT64 if ino >= _INT64 else ino, dev - _UINT64 if dev >= _INT64 else dev,
        )


class Looked(NamedTuple):
    """One file looked up: its stat, taken at ``recorded_ns``, and the digest the cache vouches for."""

    key: bytes  # the absolute path, as bytes (any file name fits)
    stat: FileStat
    recorded_ns: int
    digest: str | None  # None: read the file


def observe(path: str) -> tuple[int, FileStat]:
    """The clock, then the file's stat: a write after the stat is stamped no earlier than the clock
    reading minus one timestamp tick, which is what the racy rule relies on."""
    now = time.time_ns()
    return now, FileStat.of(os.stat(path))


def resolution_ns(*stamps: int) -> int:
    """The coarsest timestamp resolution these stamps admit: the largest power of ten (up to 1 s)
    dividing one of them.  A fine clock rarely gives a round number; a coarse one always does."""
    coarsest = 1
    for stamp in stamps:
        step = 10
        while step <= _SECOND and stamp % step == 0:
            step *= 10
        coarsest = max(coarsest, step // 10)
    return coarsest


def trusted(stat: FileStat, recorded_ns: int) -> bool:
    """Can a digest recorded for ``stat`` at ``recorded_ns`` be taken without reading the file?

    Twice the resolution: FAT's 2 s ticks look like 1 s ones."""
    newest = max(stat.mtime_ns, stat.ctime_ns)
    if newest >= recorded_ns - MIN_MARGIN_NS:
        return False
    if stat.mtime_ns % MIN_MARGIN_NS and stat.ctime_ns % MIN_MARGIN_NS:
        return True  # the common case: resolutions of at most MIN_MARGIN_NS / 10 (a power of ten)
    return newest < recorded_ns - max(MIN_MARGIN_NS, 2 * resolution_ns(stat.mtime_ns, stat.ctime_ns))


_NOTHING = Looked(b"", FileStat(0, 0, 0, 0, 0), 0, None)  # looked up with the cache off
_FS_ENCODING = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


class StatCache:
    """One save's use of the cache, for one file or the files below one directory.

    ``look`` a file before reading it, ``learn`` its digest once read; leaving the
    ``with`` block records what was learned in one transaction and forgets the paths
    below the directory that the save did not meet (the files are gone).
    ``use=False``: neither looks nor learns (scratch files of a materializer);
    ``rehash=True``: never trusts an entry, but records what it reads.
    """

    def __init__(self, index: StatCacheQueries, root: str, *, use: bool = True, rehash: bool = False) -> None:
        self._index = index
        self._use = use
        self._rehash = rehash
        self._root = os.fsencode(os.path.abspath(root))
        self._below = self._root.rstrip(b"/") + b"/"  # what every path below the root starts with
        self._started = time.time_ns()
        self._known: dict[bytes, tuple] = index.stat_entries(self._root) if use else {}
        self._seen: set[bytes] = set()
        self._learned: list[tuple] = []

    def __enter__(self) -> StatCache:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None and self._use:
            gone = [key for key, row in self._known.items() if key not in self._seen and row[6] < self._started]
            if self._learned or gone:
                self._index.record_stats(self._learned, gone, self._started)

    def look(self, path: str) -> Looked:
        """Stat ``path`` (the file being saved); its digest if the cache vouches for it."""
        if not self._use:
            return _NOTHING
        recorded_ns, stat = observe(path)
        return self._look(os.fsencode(os.path.abspath(path)), stat, recorded_ns)

    def look_below(self, rel: str, st: os.stat_result) -> Looked:
        """The file at tree path ``rel`` below the root, as the walk stat'ed it (after this
        cache was opened: its opening time is a clock reading from before the stat)."""
        if not self._use:
            return _NOTHING
        # os.fsencode's bytes, without its per-call cost (20,000 files a tree)
        return self._look(self._below + rel.encode(*_FS_ENCODING), FileStat.of(st), self._started)

    def look_tree(self, files: list[tuple[str, str, os.stat_result]]) -> list[Looked]:
        """:meth:`look_below` for every ``(rel, abspath, stat)`` of a walk, in one loop: a tree
        of 20,000 files pays as few calls per file as can be (the same checks as look_below)."""
        if not self._use:
            return [_NOTHING] * len(files)
        below, known, started, seen, vouched = self._below, self._known, self._started, self._seen, self._vouched
        encoding, errors = _FS_ENCODING
        of = FileStat.of
        out = []
        for rel, _, st in files:
            key = below + rel.encode(encoding, errors)
            stat = of(st)
            seen.add(key)
            out.append(Looked(key, stat, started, vouched(known.get(key), stat)))
        return out

    def _look(self, key: bytes, stat: FileStat, recorded_ns: int) -> Looked:
        self._seen.add(key)
        return Looked(key, stat, recorded_ns, self._vouched(self._known.get(key), stat))

    def _vouched(self, row: tuple | None, stat: FileStat) -> str | None:
        """The digest ``row`` vouches for a file of ``stat``, or None: the file must be read."""
        # a row recorded after this save began came from a clock ahead of ours (stepped back since):
        # the racy rule cannot judge it, so it is read again
        if row is not None and not self._rehash and row[:5] == stat and row[6] < self._started and trusted(stat, row[6]):
            return row[5].hex()
        return None

    def learn(self, looked: Looked, digest: str, size: int) -> None:
        """``looked``'s file was read and hashed to ``digest`` (``size`` bytes)."""
        if self._use and size == looked.stat.size:  # else it changed under the stat: nothing to vouch for
            self._learned.append((looked.key, *looked.stat, bytes.fromhex(digest), looked.recorded_ns))


class StatCacheQueries:
    """The ``stat_cache`` table (part of :class:`cas.index.Index`)."""

    conn: sqlite3.Connection  # this thread's connection (cas.index.db)
    write: Callable[[], AbstractContextManager[sqlite3.Connection]]  # one write transaction (cas.index.db)

    def stat_cache(self, root: str, *, use: bool = True, rehash: bool = False) -> StatCache:
        """A :class:`StatCache` for saving ``root`` (a file or a directory)."""
        return StatCache(self, root, use=use, rehash=rehash)

    def stat_entries(self, root: bytes) -> dict[bytes, tuple]:
        """Every entry for ``root`` and below it: path -> (FileStat fields..., digest, recorded_ns).

        One range scan of the primary key: below ``root`` is ``root/`` up to ``root0`` ('0' follows '/')."""
        rows = self.conn.execute(
            "SELECT path, size, mtime_ns, ctime_ns, inode, dev, digest, recorded_ns FROM stat_cache"
            " WHERE path = ? OR (path >= ? AND path < ?)",
            (root, root.rstrip(b"/") + b"/", root.rstrip(b"/") + b"0"),
        )
        return {row[0]: row[1:] for row in rows}

    def record_stats(self, learned: list[tuple], gone: list[bytes], started_ns: int) -> None:
        """Record what a save read (a newer entry for a path wins over an older one, whoever
        writes last) and forget ``gone`` paths unless someone recorded them after ``started_ns``."""
        with self.write() as c:
            c.executemany(
                "INSERT INTO stat_cache (path, size, mtime_ns, ctime_ns, inode, dev, digest, recorded_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET"
                " size = excluded.size, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,"
                " inode = excluded.inode, dev = excluded.dev, digest = excluded.digest,"
                " recorded_ns = excluded.recorded_ns WHERE excluded.recorded_ns >= stat_cache.recorded_ns",
                learned,
            )
            c.executemany(
                "DELETE FROM stat_cache WHERE path = ? AND recorded_ns < ?", ((key, started_ns) for key in gone)
            )
            if learned and c.execute("SELECT COUNT(*) FROM stat_cache").fetchone()[0] > MAX_ENTRIES:
                # Evict to 90 %, so the sort runs once per many saves, not once per save.
                c.execute(
                    "DELETE FROM stat_cache WHERE path IN"
                    " (SELECT path FROM stat_cache ORDER BY recorded_ns LIMIT"
                    " (SELECT COUNT(*) FROM stat_cache) - ?)",
                    (MAX_ENTRIES * 9 // 10,),
                )


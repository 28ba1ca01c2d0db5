"""The journal on a backend: ``journal/<seq>`` slots, each announcing one claimed ref.

Writers append to the first free slot at or after one they know is filled, so
the journal is dense and readers catch up by reading from their cursor until a
slot is free (docs/format.md, Journal).  Keys and entries are built and parsed
by ``cas.core.refs`` and ``cas.core.records``; this module only does the I/O.

Format 2 (:class:`Journal2`) has no shared counter: each writer names its
entries ``journal2/<day>/<slot>/<stamp>-<writer>-<seq>`` from its own clock,
random id and local sequence, so writers never contend; readers list the time
slots since their cursor (docs/format.md, Journal (format 2)).
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Sequence

from cas.backends.base import Backend
from cas.core.entries import MAX_ENTRY_BYTES, MAX_ENTRY_REFS, decode_entry, encode_entry
from cas.core.records import JournalEntry, decode_journal_entry, encode_journal_entry
from cas.core.refs import (
    JOURNAL,
    JOURNAL2,
    Journal2Key,
    journal2_key,
    journal2_prefixes,
    journal_path,
    parse_journal2_key,
    parse_journal_key,
)
from cas.errors import CorruptRecordError
from cas.storage.objects import create_object, read_object, refuse_linked

__all__ = ["Journal", "Journal2", "SKEW", "LATE", "WINDOW"]

#: clocks of machines sharing a bucket differ by less than this (the same bound gc's marks assume)
SKEW = 300.0
#: an entry whose write returns later than this after it was named is written again under a new name
LATE = 60.0
#: an entry named this long before a reader lists is surely there to be listed
WINDOW = SKEW + LATE


class Journal:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def append(self, ref: str, record_digest: str, hint: int) -> int:
        """Claim the next free journal slot at or after ``hint``; returns its seq."""
        data = encode_journal_entry(ref, record_digest)
        seq = max(hint, 0)
        while not create_object(self.backend, journal_path(seq), data):
            seq += 1
        return seq

    def read(self, seq: int) -> JournalEntry | None:
        """The entry at ``seq``; None if the slot is free; CorruptRecordError if it is garbage."""
        key = journal_path(seq)
        try:
            data = read_object(self.backend, key)
        except FileNotFoundError:
            return None
        return decode_journal_entry(data, key)

    def announced_refs(self) -> tuple[set[str], int]:
        """Every ref the journal announces, and one past its last entry (reads the whole journal)."""
        refs: set[str] = set()
        seq = 0
        while True:
            try:
                entry = self.read(seq)
            except CorruptRecordError:
                entry = False  # a bad entry announces nothing (refresh and verify report it)
            if entry is None:
                return refs, seq
            if entry:
                refs.add(entry.ref.path)
            seq += 1

    def end(self) -> int:
        """The first free journal slot (a listing: for reindex only)."""
        return self.scan()[0]

    def scan(self) -> tuple[int, list[CorruptRecordError]]:
        """(first free slot, listed keys that do not belong in the journal).

        The journal is dense: every writer claims the first free slot at or
        after one it knows is filled.  So the end is the first free slot, and a
        key beyond it (planted far ahead) never moves the end: if it did, a
        reindex would start reading there and miss every later entry.
        """
        seqs: dict[int, str] = {}
        bad: list[CorruptRecordError] = []
        for e in self.backend.list(JOURNAL):
            try:
                seqs[parse_journal_key(e.path)] = e.path
            except CorruptRecordError as err:
                bad.append(err)
        end = 0
        while end in seqs:
            end += 1
        free = journal_path(end)
        bad += [CorruptRecordError(path, f"beyond the end of the journal ({free} is free)")
                for seq, path in sorted(seqs.items()) if seq > end]
        return end, bad


def now_us() -> int:
    return time.time_ns() // 1000


class Journal2:
    """The format-2 journal: entries named by time, writer id and a local sequence.

    One instance is one writer (a random 64-bit id); it is safe to share between threads.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.writer = secrets.token_hex(8)
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def _name(self) -> str:
        with self._lock:
            seq = next(self._seq)
        return journal2_key(now_us(), self.writer, seq)

    def check_writable(self) -> None:
        """BackendError if an entry written now would be refused (a local store whose slot
        directory is a planted symlink): asked before a claim, not after it.  The slot of
        this moment (the clock read directly: no name is taken here)."""
        refuse_linked(self.backend, journal2_key(time.time_ns() // 1000, self.writer, 0))

    def append(self, pairs: Sequence[tuple[str, str]]) -> list[Journal2Key]:
        """Announce ``(ref, record digest)`` pairs: one object per :data:`MAX_ENTRY_REFS`.

        Returns every key written.  A write that returns more than :data:`LATE`
        seconds after its key was named (a paused or slow writer) may have landed
        where readers no longer look, so the entry is written again under a fresh
        name: announcing twice is harmless, missing an entry is not.
        """
        keys: list[Journal2Key] = []
        for start in range(0, len(pairs), MAX_ENTRY_REFS):
            data = encode_entry(pairs[start : start + MAX_ENTRY_REFS])
            while True:
                key = parse_journal2_key(self._name())
                if not create_object(self.backend, key.path, data):
                    continue  # only a writer id collision gets here: take the next name
                keys.append(key)
                if now_us() - key.stamp <= LATE * 1_000_000:
                    break
        return keys

    def listed(self, start: int | None, end: int, on_invalid: Callable[[CorruptRecordError], None]) -> list[Journal2Key]:
        """Valid keys stamped in [start, end] (us) or a little around them, oldest first;
        ``start`` None lists the whole journal.  Bad keys go to ``on_invalid``."""
        prefixes = [JOURNAL2] if start is None else journal2_prefixes(start, end)
        keys = []
        for prefix in prefixes:
            for e in self.backend.list(prefix):
                try:
                    key = parse_journal2_key(e.path)
                except CorruptRecordError as err:
                    on_invalid(err)
                    continue
                if e.size is not None and e.size > MAX_ENTRY_BYTES:  # refused unread (bounded memory)
                    on_invalid(CorruptRecordError(e.path, f"not a journal entry: {e.size} bytes, more than any entry"))
                    continue
                keys.append(key)
        return sorted(keys, key=lambda k: (k.stamp, k.writer, k.seq))

    def read(self, key: Journal2Key) -> tuple[JournalEntry, ...]:
        """The pairs an entry announces; CorruptRecordError if it is garbage (or vanished)."""
        try:
            data = read_object(self.backend, key.path)
        except FileNotFoundError:
            raise CorruptRecordError(key.path, "listed, then missing") from None
        return decode_entry(data, key.path)

    def announced_refs(self, on_invalid: Callable[[CorruptRecordError], None]) -> set[str]:
        """Every ref any entry announces (reads the whole journal: for reindex only)."""
        refs: set[str] = set()
        for key in self.listed(None, 0, on_invalid):
            try:
                refs.update(entry.ref.path for entry in self.read(key))
            except CorruptRecordError as e:
                on_invalid(e)
        return refs

"""The journal on a backend: ``journal/<seq>`` slots, each announcing one claimed ref.

Writers append to the first free slot at or after one they know is filled, so
the journal is dense and readers catch up by reading from their cursor until a
slot is free (docs/format.md, Journal).  Keys and entries are built and parsed
by ``cas.core.refs`` and ``cas.core.records``; this module only does the I/O.
"""

from __future__ import annotations

from cas.backends.base import Backend
from cas.core.records import JournalEntry, decode_journal_entry, encode_journal_entry
from cas.core.refs import JOURNAL, journal_path, parse_journal_key
from cas.errors import CorruptRecordError
from cas.storage.objects import create_object, read_object

__all__ = ["Journal"]


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

"""RecordStore: the store's records, refs and format file on a backend (invariant 3).

Records are blobs (through the BlobStore); a ref is a create-only object whose
content is its record's digest; the journal announcing them is
``cas.storage.journal``.  Everything read back is decoded, so validated, by
``cas.core.records``, ``cas.core.refs`` and ``cas.core.tree`` before it is returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from cas.backends.base import Backend
from cas.core.format import FORMAT_FILE, decode_format, encode_format, encode_upgrade_step, upgrade_step_path
from cas.core.records import JournalEntry, decode_record, decode_ref, encode, now_iso
from cas.core.refs import RefKey, parse_ref_path, refs_prefix
from cas.core.tree import decode_manifest
from cas.errors import BackendError, BlobNotFoundError, CorruptRecordError, IntegrityError
from cas.storage.blobs import BlobStore
from cas.storage.journal import Journal
from cas.storage.objects import create_object, read_object

__all__ = ["RecordStore"]


class RecordStore:
    def __init__(self, backend: Backend, blobs: BlobStore) -> None:
        self.backend = backend
        self.blobs = blobs
        self.journal = Journal(backend)

    # -- format --------------------------------------------------------------

    def read_format(self) -> dict[str, Any] | None:
        try:
            raw = self.backend.read_bytes(FORMAT_FILE)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise BackendError(f"cannot use {self.backend.url} as a store: it is a file, not a directory") from None
        return decode_format(raw, self.backend.url)

    def init_format(self, version: int) -> dict[str, Any]:
        self.backend.create_bytes(FORMAT_FILE, encode_format(uuid.uuid4().hex, now_iso(), version))
        # Another process may have won the race: its file is the truth.
        return self.read_format()  # type: ignore[return-value]

    def rewrite_format(self, version: int) -> dict[str, Any]:
        """Replace ``cas-format`` by the same store's file at ``version`` (an upgrade's
        last step): the store id and creation time stay, so two upgraders write the
        same bytes.  The one object cas ever replaces (``Backend.replace_bytes``)."""
        fmt = self.read_format()
        if fmt is None:
            raise BackendError(f"{FORMAT_FILE} vanished from {self.backend.url}")
        self.backend.replace_bytes(FORMAT_FILE, encode_format(fmt["store_id"], fmt.get("created_at") or now_iso(), version))
        return self.read_format()  # type: ignore[return-value]

    # -- upgrade progress: one create-only marker per step done (docs/format.md, Upgrading) --

    def upgrade_step_done(self, target: int, step: str) -> bool:
        return self.backend.exists(upgrade_step_path(target, step))

    def mark_upgrade_step(self, target: int, step: str) -> None:
        create_object(self.backend, upgrade_step_path(target, step), encode_upgrade_step(target, step, now_iso()))

    # -- records and refs ----------------------------------------------------

    def put_record(self, record: dict[str, Any]) -> str:
        return self.blobs.put_bytes(encode(record)).digest

    def get_record(self, hexdigest: str, ref: RefKey | str) -> dict[str, Any]:
        """The validated record ``ref`` claims (CorruptRecordError if it is not one).

        A record blob that is missing or does not match its digest is as bad as
        a malformed one: the ref cannot be applied, so it is reported the same way.
        """
        try:
            data = self.blobs.read_bytes(hexdigest)
        except (BlobNotFoundError, IntegrityError) as e:
            raise CorruptRecordError(getattr(ref, "path", ref), f"its record cannot be read: {e}") from None
        return decode_record(data, hexdigest, ref)

    def get_manifest(self, hexdigest: str, ref: str) -> list[tuple[str, str, int]]:
        """The validated entries of the tree manifest a version ref needs."""
        try:
            data = self.blobs.read_bytes(hexdigest)
        except (BlobNotFoundError, IntegrityError) as e:
            raise CorruptRecordError(ref, f"its tree manifest cannot be read: {e}") from None
        try:
            return decode_manifest(data, hexdigest)
        except CorruptRecordError as e:
            raise CorruptRecordError(ref, f"its tree {e}") from None

    def claim(self, ref: str, record_digest: str) -> bool:
        """Create-only write of a ref; False if someone already holds it."""
        return create_object(self.backend, ref, record_digest.encode("ascii"))

    def read_ref(self, ref: str) -> str:
        """The record digest a ref holds (CorruptRecordError if it holds anything else)."""
        return decode_ref(read_object(self.backend, ref), ref)

    def ref_exists(self, ref: str) -> bool:
        return self.backend.exists(ref)

    def list_refs(self, kind: str = "", on_invalid: Callable[[CorruptRecordError], None] | None = None) -> Iterator[str]:
        """The path of every valid ref under ``refs/<kind>`` (one listing; no ref is read).

        A listed key that breaks the grammar goes to ``on_invalid`` and is
        skipped (without one, it raises).
        """
        for entry in self.backend.list(refs_prefix(kind)):
            try:
                path = parse_ref_path(entry.path).path
            except CorruptRecordError as e:
                if on_invalid is None:
                    raise
                on_invalid(e)
                continue
            yield path

    def iter_refs(
        self, kind: str = "", on_invalid: Callable[[CorruptRecordError], None] | None = None
    ) -> Iterator[tuple[str, str]]:
        """(ref path, record digest) for every valid ref under ``refs/<kind>``.

        A listed key or a ref content that breaks the grammar goes to
        ``on_invalid`` and is skipped (without one, it raises): one bad object
        never blocks the rest of the store.
        """
        for ref in self.list_refs(kind, on_invalid):
            try:
                digest = self.read_ref(ref)
            except FileNotFoundError:
                continue
            except CorruptRecordError as e:
                if on_invalid is None:
                    raise
                on_invalid(e)
                continue
            yield ref, digest

    # -- the journal, as the publish path knows it (cas.storage.journal does the work) --

    def append_journal(self, ref: str, record_digest: str, hint: int) -> int:
        return self.journal.append(ref, record_digest, hint)

    def read_journal(self, seq: int) -> JournalEntry | None:
        return self.journal.read(seq)

    def journalled_refs(self) -> tuple[set[str], int]:
        return self.journal.announced_refs()

    def journal_end(self) -> int:
        return self.journal.end()

    def scan_journal(self) -> tuple[int, list[CorruptRecordError]]:
        return self.journal.scan()

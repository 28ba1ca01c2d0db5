"""A filesystem's view of its store's drafts: ``(name, version) -> Draft``.

Every ``cas://`` instance on a store sees the same drafts, because they are
rows of the store's draft book (:mod:`cas.fs.book`), never state of one
instance.  Making a view also arranges for the drafts this process writes to
be finished when it ends (:mod:`cas.fs.finish`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from cas.fs import finish
from cas.fs.book import DraftBook, Key
from cas.fs.draft import Draft

if TYPE_CHECKING:
    from cas.store.facade import Store
    from cas.version import ArtifactVersion

__all__ = ["DraftMap"]


class DraftMap(Mapping):
    """The open drafts of one store.

    The book is opened on the first write; until its file exists, reads
    answer "no drafts" without creating anything.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        finish.watch(store)  # when this process ends, it finishes the drafts it wrote
        finish.open_book(store)  # an existing book is opened now: it warns of drafts nothing will commit

    @property
    def book(self) -> DraftBook:
        return finish.book_for(self.store)

    def __getitem__(self, key: Key) -> Draft:
        if key not in self:
            raise KeyError(key)
        return Draft(self.book, *key)

    def __delitem__(self, key: Key) -> None:
        if key not in self:
            raise KeyError(key)
        self.book.drop(key)

    def __contains__(self, key: object) -> bool:
        book = finish.open_book(self.store)
        return book is not None and isinstance(key, tuple) and book.has(key)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Key]:
        book = finish.open_book(self.store)
        return iter(book.keys() if book is not None else [])

    def __len__(self) -> int:
        book = finish.open_book(self.store)
        return book.count() if book is not None else 0

    def create(self, name: str, version: int) -> Draft:
        book = self.book
        book.create((name, version))
        return Draft(book, name, version)

    def mine(self) -> list[Draft]:
        """The open drafts this process wrote to."""
        book = self.book
        return [Draft(book, *k) for k in book.mine() if book.has(k)]

    def drop(self, key: Key) -> None:
        """Drop a draft; a move waiting for it is cancelled, so its sources stay."""
        self.book.drop(key)

    def writers(self, key: Key) -> list[str]:
        return self.book.writers(key)

    def mark_broken(self, key: Key, why: str) -> None:
        self.book.mark_broken(key, why)

    def add_move(self, deletes: list[Key], into: set[Key]) -> None:
        self.book.add_move(deletes, into)

    def commit(self, draft: Draft) -> ArtifactVersion | None:
        """Commit one draft as one version (None if it had no file); see :func:`cas.fs.finish.commit_draft`."""
        return finish.commit_draft(self.store, self.book, draft)

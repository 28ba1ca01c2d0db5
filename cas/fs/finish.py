"""The drafts of this process: one book per store, committed when the writing ends.

This module owns the process-wide state of drafts: the open book of each
store (:func:`book_for`), the stores to finish at exit (:func:`watch`), and
committing one draft (:func:`commit_draft`), which the filesystem calls too.

Directory writers (pandas ``partition_cols``, pyarrow datasets, dask, zarr)
write many files below ``cas://p/s/a/N/`` and never call ``commit``.  So a
draft is committed when the writing ends: when the last process that wrote
to it ends cleanly (``atexit`` in a main process; multiprocessing's exit
finalizers in a worker, which skips ``atexit``).

A process that ends on an unhandled exception marks its drafts *broken*; so
does a failed file write into a draft, and a writer that vanished without
leaving (killed, or terminated by its pool: it may have had more to write).  A broken or abandoned draft is never committed behind
anyone's back: it stays in the draft book, each process that opens the store
warns about it (:class:`UncommittedDraftWarning`), and a person commits
(``fs.commit(path)``) or discards it.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing.util
import os
import sqlite3
import sys
import threading
import warnings
import weakref
from collections.abc import Callable

from cas.backends.base import Backend
from cas.errors import ArtifactNotFoundError, VersionDeletedError, VersionExistsError
from cas.fs.book import DraftBook, Key, book_path
from cas.fs.draft import Draft
from cas.fs.procs import process_alive, process_token
from cas.store.facade import Store
from cas.version import BLOB, ArtifactVersion

__all__ = ["UncommittedDraftWarning", "book_for", "commit_draft", "finish_process", "open_book", "watch"]


class UncommittedDraftWarning(UserWarning):
    """Files written through ``cas://`` are not a committed version, and nothing will commit them on its own."""


# One book per Store object; Stores sharing an index file share its book's file.
_BOOKS: weakref.WeakKeyDictionary[Store, DraftBook] = weakref.WeakKeyDictionary()
_BOOKS_LOCK = threading.Lock()
# Every store a cas:// filesystem was opened on in this process, by its draft book's
# path: how to reach the book and, to commit, the store (reopened if it was closed).
_WATCHED: dict[str, tuple[Backend, str, weakref.ref[Store]]] = {}
_LOCK = threading.Lock()
_FINISHED_PID = 0
_HOOKED_PID = 0
_WARNED: set[str] = set()

_HINT = "Its files are kept as a draft: `cas draft commit PATH` (or fs.commit(path)) keeps it, `cas draft discard PATH` drops it"


def book_for(store: Store) -> DraftBook:
    """The drafts book of ``store`` (opened once per Store, and again in a forked child)."""
    with _BOOKS_LOCK:
        book = _BOOKS.get(store)
        if book is not None and book.pid == os.getpid():
            return book
        book = _BOOKS[store] = DraftBook(book_path(store.index.path))
    _warn_stale(book)  # drafts nothing will commit: say so to whoever opens the store
    return book


def open_book(store: Store) -> DraftBook | None:
    """The book of ``store`` if it exists, without creating its file."""
    book = _BOOKS.get(store)
    if book is not None and book.pid == os.getpid():
        return book
    path = book_path(store.index.path)
    return book_for(store) if path == ":memory:" or os.path.exists(path) else None


def commit_draft(store: Store, book: DraftBook, draft: Draft) -> ArtifactVersion | None:
    """Commit one draft as one version (a draft with no file commits nothing) and drop it.

    Decided inside the book's write lock, so two processes never commit one draft twice.
    """
    with book.write() as c:
        return _link(c, store, book, draft)


def _link(c: sqlite3.Connection, store: Store, book: DraftBook, draft: Draft) -> ArtifactVersion | None:
    """Inside a book transaction: link the draft's version and drop the draft.  A process killed
    here rolls the book back, so whoever finishes next sees the draft (and commits it again)."""
    if not c.execute("SELECT 1 FROM drafts WHERE name = ? AND version = ?", draft.key).fetchone():
        return None  # another process committed or discarded it meanwhile
    blob = draft.blob
    entries = [("", blob.digest, blob.size)] if blob is not None else draft.entries()
    try:
        if blob is not None:
            av = store.link(draft.name, blob.digest, BLOB, version=draft.version)
        elif entries:
            av = store.link_tree(draft.name, entries, version=draft.version)
        else:
            av = None
    except VersionExistsError:
        # a writer killed after linking, before its book transaction committed: the same version is in
        av = store.get_artifact_version(draft.name, draft.version)
        if sorted((p, d.hex, n) for p, d, n in av.files()) != sorted(entries):
            raise
    for name, number in book.settle_moves(c, draft.key):  # a mv into this draft: its source goes now
        with contextlib.suppress(VersionDeletedError, ArtifactNotFoundError):
            store.delete_version(name, number)
    book.delete(c, draft.key)
    return av


def watch(store: Store) -> None:
    """A cas:// filesystem on ``store`` exists in this process: finish its drafts when the process ends."""
    global _HOOKED_PID
    path = book_path(store.index.path)
    if path == ":memory:":
        path = f":memory:{id(store)}"
    with _LOCK:
        _WATCHED[path] = (store.backend, store.index.path, weakref.ref(store))
        if _HOOKED_PID != os.getpid():
            _HOOKED_PID = os.getpid()
            atexit.register(finish_process)
            # A multiprocessing worker leaves through os._exit, which skips atexit but runs these.
            multiprocessing.util.Finalize(None, finish_process, exitpriority=50)


def _forget_parent_state() -> None:
    _WATCHED.clear()  # a forked child finishes what it opens itself, not its parent's stores


os.register_at_fork(after_in_child=_forget_parent_state)


def _ended_with_error() -> bool:
    return getattr(sys, "last_exc", None) is not None or getattr(sys, "last_value", None) is not None


def finish_process() -> None:
    """At the end of a process: finish every draft it wrote to (once per process)."""
    global _FINISHED_PID
    if _FINISHED_PID == os.getpid():
        return
    _FINISHED_PID = os.getpid()
    clean = not _ended_with_error()
    for path, (backend, index_path, ref) in list(_WATCHED.items()):
        store = ref()
        book = _BOOKS.get(store) if store is not None else None
        opened = None
        if book is None or book.pid != os.getpid():
            if path.startswith(":memory:") or not os.path.exists(path):
                continue
            book = opened = DraftBook(path)
        try:
            finish_book(book, lambda s=store, b=backend, i=index_path: _usable(s, b, i), clean=clean)
        except Exception as e:  # the interpreter is going away: say it, never swallow it
            _warn(f"drafts in {path} were not finished: {e}")
        finally:
            if opened is not None:
                opened.close()


def _usable(store: Store | None, backend: Backend, index_path: str) -> Store:
    """``store``, or a fresh handle on its backend if it was closed or collected before the end."""
    if store is not None and not store.index.closed:
        return store
    return Store(backend, index=index_path)


def finish_book(book: DraftBook, get_store: Callable[[], Store], *, clean: bool) -> None:
    for key in book.mine():
        label = f"cas://{key[0]}/{key[1]}"
        try:
            with book.write() as c:
                why = _verdict(c, key, clean)
                if why == _WAIT:
                    continue
                if why is not None:
                    c.execute("UPDATE drafts SET broken = ? WHERE name = ? AND version = ?", (why, *key))
                    _warn(f"{label} was not committed: {why}. {_HINT}")
                    continue
                c.execute("DELETE FROM draft_writers WHERE name = ? AND version = ?", key)
                _link(c, get_store(), book, Draft(book, *key))
        except Exception as e:
            book.mark_broken(key, f"committing it failed: {e}")
            _warn(f"{label} was not committed: committing it failed: {e}. {_HINT}")


_WAIT = "wait"


def _verdict(c: sqlite3.Connection, key: Key, clean: bool) -> str | None:
    """This process is leaving draft ``key``: None to commit it now, _WAIT to leave it to
    another writer, or why it must not be committed on its own."""
    me = process_token()
    c.execute("DELETE FROM draft_writers WHERE name = ? AND version = ? AND process = ?", (*key, me))
    row = c.execute("SELECT broken FROM drafts WHERE name = ? AND version = ?", key).fetchone()
    if row is None:
        return _WAIT  # committed or discarded meanwhile
    if row[0] is not None:
        return row[0]
    if not clean:
        return f"process {os.getpid()} ended with an exception while it or its workers wrote it"
    others = [r[0] for r in c.execute("SELECT process FROM draft_writers WHERE name = ? AND version = ?", key)]
    if any(process_alive(p) for p in others):
        return _WAIT  # another writer is still at work: the last one to end finishes it
    if others:  # gone without leaving: killed, or terminated by its pool, maybe mid-dataset
        return f"process {others[0].split(':')[0]}, which wrote to it, ended without finishing"
    return None


def _warn(message: str) -> None:
    warnings.warn(message, UncommittedDraftWarning, stacklevel=2)


def _warn_stale(book: DraftBook) -> None:
    """Once per process and book: say which drafts nothing will commit on its own."""
    if book.path in _WARNED:
        return
    _WARNED.add(book.path)
    stale = []
    mine = set(book.mine())  # this process finishes those itself when it ends
    for name, version, broken in book.query("SELECT name, version, broken FROM drafts ORDER BY name, version"):
        writers = book.writers((name, version))
        if broken is not None or ((name, version) not in mine and not any(process_alive(w) for w in writers)):
            stale.append(f"cas://{name}/{version} ({broken or 'its writers ended without finishing'})")
    if stale:
        _warn(f"{len(stale)} uncommitted draft(s) in this store: {'; '.join(stale)}. {_HINT}")

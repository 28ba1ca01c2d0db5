"""The end of the writing: committing the drafts a process leaves open.

Directory writers (pandas ``partition_cols``, pyarrow datasets, dask, zarr)
write many files below ``cas://p/s/a/N/`` and never call ``commit``.  So a
draft is committed when the writing ends: when the last process that wrote
to it ends cleanly (``atexit`` in a main process, multiprocessing's exit
finalizers in a worker, which skips ``atexit``).  A process that ends on an
unhandled exception marks its drafts *broken* instead; a writer that
vanished (killed) blocks the commit too.  A broken or abandoned draft is
never committed behind anyone's back: it stays in the draft book, each
process that opens the store warns about it (:class:`UncommittedDraftWarning`),
and a person commits (``fs.commit(path)``) or discards it.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
import sqlite3
import sys
import threading
import warnings

from .fs_drafts import Draft, DraftBook, process_alive, process_token
from .store import Store
from .version import BLOB, ArtifactVersion

__all__ = ["UncommittedDraftWarning", "commit_draft", "finish_process", "track", "warn_stale"]


class UncommittedDraftWarning(UserWarning):
    """Files written through ``cas://`` are not a committed version, and nothing will commit them on its own."""


# Books this process wrote drafts in, with their stores: kept alive until the end.
_TRACKED: dict[int, tuple[DraftBook, Store]] = {}
_LOCK = threading.Lock()
_FINISHED_PID = 0
_HOOKED_PID = 0
_WARNED: set[str] = set()


def commit_draft(store: Store, book: DraftBook, draft: Draft) -> ArtifactVersion | None:
    """Commit one draft as one version (a draft with no file commits nothing) and drop it.

    Decided inside the book's write lock, so two processes never commit one draft twice.
    """
    with book.write() as c:
        if not c.execute("SELECT 1 FROM drafts WHERE name = ? AND version = ?", draft.key).fetchone():
            return None  # another process committed or discarded it meanwhile
        blob = draft.blob
        if blob is not None:
            av = store.link(draft.name, blob.digest, BLOB, version=draft.version)
        elif draft.has_files():
            av = store.link_tree(draft.name, draft.entries(), version=draft.version)
        else:
            av = None
        book.delete(c, draft.key)
    return av


def track(book: DraftBook) -> None:
    """``book`` holds drafts this process wrote: finish them when the process ends."""
    global _HOOKED_PID
    store = book.store
    if store is None:
        return
    with _LOCK:
        _TRACKED[id(book)] = (book, store)
        if _HOOKED_PID != os.getpid():
            _HOOKED_PID = os.getpid()
            atexit.register(finish_process)
            # A multiprocessing worker leaves through os._exit, which skips atexit but runs these.
            multiprocessing.util.Finalize(None, finish_process, exitpriority=50)


def _ended_with_error() -> bool:
    return getattr(sys, "last_exc", None) is not None or getattr(sys, "last_value", None) is not None


def finish_process() -> None:
    """At the end of a process: finish every draft it wrote to (once per process)."""
    global _FINISHED_PID
    if _FINISHED_PID == os.getpid():
        return
    _FINISHED_PID = os.getpid()
    clean = not _ended_with_error()
    for book, store in list(_TRACKED.values()):
        try:
            finish_book(book, store, clean=clean)
        except Exception as e:  # the interpreter is going away: say it, never swallow it
            _warn(f"drafts in {book.path} were not finished: {e}")


def _usable(store: Store) -> Store:
    """``store``, or a fresh handle on its backend if it was closed before the end."""
    try:
        store.index.conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return Store(store.backend, index=store.index.path)
    return store


def finish_book(book: DraftBook, store: Store, *, clean: bool) -> None:
    me = process_token()
    for key in book.mine():
        label = f"cas://{key[0]}/{key[1]}"
        with book.write() as c:
            c.execute("DELETE FROM draft_writers WHERE name = ? AND version = ? AND process = ?", (*key, me))
            row = c.execute("SELECT broken FROM drafts WHERE name = ? AND version = ?", key).fetchone()
            if row is None:
                continue
            others = [r[0] for r in c.execute("SELECT process FROM draft_writers WHERE name = ? AND version = ?", key)]
            if not clean:
                why = f"process {os.getpid()} ended with an exception while writing it"
                c.execute("UPDATE drafts SET broken = ? WHERE name = ? AND version = ?", (row[0] or why, *key))
                _warn(f"{label} was not committed: {why}. {_HINT}")
                continue
            if row[0] is not None:
                _warn(f"{label} was not committed: {row[0]}. {_HINT}")
                continue
            if any(process_alive(o) for o in others):
                continue  # another writer is still at work: the last one to end commits
            if others:
                why = f"process {others[0].split(':')[0]} that wrote to it ended without finishing"
                c.execute("UPDATE drafts SET broken = ? WHERE name = ? AND version = ?", (why, *key))
                _warn(f"{label} was not committed: {why}. {_HINT}")
                continue
        try:
            store = _usable(store)
            commit_draft(store, book, Draft(book, *key))
        except Exception as e:
            book.mark_broken(key, f"committing it failed: {e}")
            _warn(f"{label} was not committed: committing it failed: {e}. {_HINT}")
    _TRACKED.pop(id(book), None)


_HINT = "Its files are kept as a draft: commit it with CasFileSystem.commit(path) or discard it with discard(path)"


def _warn(message: str) -> None:
    warnings.warn(message, UncommittedDraftWarning, stacklevel=2)


def warn_stale(book: DraftBook) -> None:
    """Once per process and book: say which drafts nothing will commit on its own."""
    if book.path in _WARNED:
        return
    _WARNED.add(book.path)
    stale = []
    for name, version, broken in book.query("SELECT name, version, broken FROM drafts ORDER BY name, version"):
        writers = book.writers((name, version))
        if broken is not None or not any(process_alive(w) for w in writers):
            stale.append(f"cas://{name}/{version} ({broken or 'its writers ended without finishing'})")
    if stale:
        _warn(f"{len(stale)} uncommitted draft(s) in this store: {'; '.join(stale)}. {_HINT}")

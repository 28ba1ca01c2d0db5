"""OpenLineage events while runs execute, through openlineage-python's own transports.

Only when the client's standard configuration is present (``OPENLINEAGE_URL``,
``OPENLINEAGE__TRANSPORT__*`` variables, or an ``openlineage.yml`` where the
client looks for one) and ``OPENLINEAGE_DISABLED`` is not ``true``: then every
run start and end, and every step start and end, recorded in this process is
emitted as the same RunEvent ``cas lineage --format openlineage`` exports
(START, then COMPLETE / FAIL / ABORT).  Without that configuration nothing is
imported and nothing is sent.

Emission never fails nor stalls a pipeline: events are built when they
happen and sent, in order, by one background thread (the client's HTTP
transport retries a failing receiver for seconds per event); any error
(package missing, receiver down, bad config) is logged once per process as a
warning and the run goes on.  At exit, cas waits up to ``EXIT_WAIT`` seconds
for events still queued; :func:`flush` waits for them on demand.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from cas.lineage.export import openlineage_event
from cas.lineage.query import live_events

if TYPE_CHECKING:
    from cas.store.facade import Store

__all__ = ["configured", "emit_run", "emit_step", "flush", "EXIT_WAIT"]

EXIT_WAIT = 10.0
log = logging.getLogger(__name__)
_CLIENTS: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()
_WARNED: set[str] = set()
_QUEUE: queue.Queue[tuple[tuple[Any, ...], dict[str, Any]]] = queue.Queue()
_SENDER: list[threading.Thread] = []


def _config_key() -> tuple[Any, ...] | None:
    """What decides the client's configuration; None when there is none (or it is disabled)."""
    env = os.environ
    if env.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    variables = tuple(sorted((k, v) for k, v in env.items() if k == "OPENLINEAGE_URL" or k.startswith("OPENLINEAGE__")))
    # The files openlineage-python reads, in its order (OpenLineageClient._find_yaml_config_path).
    files = (env.get("OPENLINEAGE_CONFIG"), os.path.join(os.getcwd(), "openlineage.yml"))
    files += (os.path.join(os.path.expanduser("~/.openlineage"), "openlineage.yml"),)
    found = next((f for f in files if f and os.path.isfile(f)), None)
    if not variables and found is None:
        return None
    return (variables, found, env.get("OPENLINEAGE_CONFIG"))


def configured() -> bool:
    """True when openlineage-python's standard configuration is present."""
    return _config_key() is not None


def _client(key: tuple[Any, ...]) -> Any:
    with _LOCK:
        if key not in _CLIENTS:
            from openlineage.client import OpenLineageClient

            _CLIENTS[key] = OpenLineageClient()
        return _CLIENTS[key]


def _send(store: Store, events: list[dict[str, Any]]) -> None:
    key = _config_key()
    if key is None or not events:
        return
    with _LOCK:
        if not _SENDER or not _SENDER[0].is_alive():
            _SENDER[:] = [threading.Thread(target=_sender, name="cas-openlineage", daemon=True)]
            _SENDER[0].start()
    for event in events:
        _QUEUE.put((key, event))


def _sender() -> None:
    while True:
        key, event = _QUEUE.get()
        try:
            _client(key).emit(openlineage_event(event))
        except Exception as e:  # lineage is a side channel: it never fails the run
            _warn_once(f"{type(e).__name__}: {e}")
        finally:
            _QUEUE.task_done()


def _warn_once(text: str) -> None:
    if text not in _WARNED:
        _WARNED.add(text)
        log.warning("cas: could not emit an OpenLineage event (%s); the run goes on", text)


def flush(timeout: float | None = None) -> bool:
    """Wait until every event emitted so far was handed to the transport; False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with _QUEUE.all_tasks_done:
        while _QUEUE.unfinished_tasks:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            _QUEUE.all_tasks_done.wait(remaining)
    return True


@atexit.register
def _flush_at_exit() -> None:
    if _QUEUE.unfinished_tasks and not flush(EXIT_WAIT):
        log.warning("cas: %d OpenLineage events not sent within %ss of exit", _QUEUE.unfinished_tasks, EXIT_WAIT)


def _after_fork() -> None:  # a child has no sender thread and must not replay the parent's queue
    global _QUEUE
    _QUEUE = queue.Queue()
    _SENDER.clear()


os.register_at_fork(after_in_child=_after_fork)


def emit_run(store: Store, run_id: str, phase: str) -> None:
    """The START (``phase="start"``) or end event of pipeline run ``run_id``."""
    _emit(store, run_id, None, phase)


def emit_step(store: Store, run_id: str, step_run_id: str, phase: str) -> None:
    """The START or end event of one step run, with its input and output datasets."""
    _emit(store, run_id, step_run_id, phase)


def _emit(store: Store, run_id: str, step_run_id: str | None, phase: str) -> None:
    if _config_key() is None:
        return
    try:
        events = live_events(store, run_id, step_run_id, phase)
    except Exception as e:
        events = []
        what = f"step {step_run_id}" if step_run_id else f"run {run_id}"
        log.warning("cas: could not build an OpenLineage event for %s: %s", what, e)
    _send(store, events)

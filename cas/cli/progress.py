"""Progress bars for the ``cas`` command: tqdm on stderr, in IEC units like every
summary cas prints, drawn only on a terminal unless ``--progress`` asks for them.

A bar takes the store's progress calls, ``update(nbytes, items=0)``, from any
thread; items (files of a tree, blobs, refs) are shown next to the bytes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from cas.core.units import human_bytes

__all__ = ["progress_bar", "IecBar", "REFRESH_SECONDS"]

#: the bar is redrawn at most this often, and at least this often while bytes flow
REFRESH_SECONDS = 0.2


class IecBar(tqdm):
    """tqdm counting bytes, printed as ``190.7 MiB`` (tqdm's own scaling is SI or
    unit-less), with a count of items done beside them."""

    def __init__(self, *args: Any, items_total: int | None = None, item_unit: str = "files", **kwargs: Any) -> None:
        self.items = 0
        self.items_total = items_total
        self.item_unit = item_unit
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self) -> dict[str, Any]:
        d = super().format_dict
        rate = d.get("rate")
        items = ""
        if self.items or self.items_total:
            of = f"/{self.items_total}" if self.items_total is not None else ""
            items = f", {self.items}{of} {self.item_unit}"
        d.update(
            n_iec=human_bytes(int(d["n"])),
            total_iec=human_bytes(int(d["total"])) if d.get("total") is not None else "?",
            rate_iec=f"{human_bytes(int(rate))}/s" if rate else "? B/s",
            items_iec=items,
            items_only=items[2:] or f"0 {self.item_unit}",
        )
        return d


_WITH_TOTAL = "{desc}: {percentage:3.0f}%|{bar}| {n_iec}/{total_iec}{items_iec} [{elapsed}<{remaining}, {rate_iec}]"
_WITHOUT_TOTAL = "{desc}: {n_iec}{items_iec} [{elapsed}, {rate_iec}]"
_ITEMS_ONLY = "{desc}: {items_only} [{elapsed}]"


@contextmanager
def progress_bar(
    mode: str | None,
    total: int | None,
    desc: str,
    *,
    items_total: int | None = None,
    item_unit: str = "files",
    count_bytes: bool = True,
) -> Iterator[Callable[..., None]]:
    """Yields ``update(nbytes, items=0)``.

    ``mode``: ``"never"`` (``--quiet``, ``--json``), ``"always"`` (``--progress``)
    or ``None``: only when stderr is a terminal.
    """
    if mode == "never" or (mode is None and not _is_tty(sys.stderr)):
        yield _ignore
        return
    lock = threading.Lock()
    bar = IecBar(
        total=total,
        desc=desc,
        file=sys.stderr,
        leave=False,
        mininterval=REFRESH_SECONDS,
        miniters=1,  # tqdm would otherwise learn to skip updates and stall on a slow stream
        bar_format=(_WITH_TOTAL if total else _WITHOUT_TOTAL) if count_bytes else _ITEMS_ONLY,
        items_total=items_total,
        item_unit=item_unit,
        dynamic_ncols=True,
    )

    last = [0.0]

    def update(nbytes: int, items: int = 0) -> None:
        with lock:  # sync calls this from its worker threads
            bar.items += items
            if nbytes:
                bar.update(nbytes)  # tqdm redraws when REFRESH_SECONDS have passed
            elif items and (now := time.monotonic()) - last[0] >= REFRESH_SECONDS:
                last[0] = now
                bar.refresh()

    try:
        yield update
    finally:
        # the final counts are drawn once even when the work beat tqdm's first redraw
        bar.refresh()
        bar.close()


def _ignore(nbytes: int, items: int = 0) -> None:
    pass


def _is_tty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

"""The bar the ``cas`` command draws: tqdm on stderr, in IEC units like every summary cas
prints.  Imported only when a bar is drawn (see :mod:`cas.cli.progress`): tqdm and fsspec
cost a command that draws none more than its work.

A bar is an fsspec ``Callback`` (the protocol of :mod:`cas.core.progress`): bytes
by ``relative_update``, finished items (files of a tree, blobs, refs) by the
``item`` hook, both from any thread; items are shown next to the bytes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fsspec.callbacks import Callback
from tqdm import tqdm

from cas.core.progress import ITEM
from cas.core.units import human_bytes

__all__ = ["drawn_bar", "BarCallback", "IecBar", "REFRESH_SECONDS"]

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


class BarCallback(Callback):
    """Draws the store's progress on an :class:`IecBar`; safe to call from the
    worker threads sync and downloads report from."""

    def __init__(self, bar: IecBar) -> None:
        super().__init__(size=bar.total, hooks={ITEM: self._item})
        self.bar = bar
        self._lock = threading.Lock()
        self._drawn = 0.0

    def set_size(self, size: int) -> None:
        """The total arrives once the work knows it (a tree's walk): the bar gains its percentage."""
        with self._lock:
            self.size = size
            if self.bar.bar_format == _WITHOUT_TOTAL and size:
                self.bar.total = size
                self.bar.bar_format = _WITH_TOTAL
                self.bar.refresh()

    def relative_update(self, inc: int = 1) -> None:
        with self._lock:
            self.value += inc
            if inc:
                self.bar.update(inc)  # tqdm redraws when REFRESH_SECONDS have passed

    def _item(self, size: int | None, value: int, n: int = 0, **kwargs: Any) -> None:
        if not n:
            return
        with self._lock:
            self.bar.items += n
            if (now := time.monotonic()) - self._drawn >= REFRESH_SECONDS:  # items alone move no bytes
                self._drawn = now
                self.bar.refresh()

    def close(self) -> None:
        # the final counts are drawn once even when the work beat tqdm's first redraw
        self.bar.refresh()
        self.bar.close()


_WITH_TOTAL = "{desc}: {percentage:3.0f}%|{bar}| {n_iec}/{total_iec}{items_iec} [{elapsed}<{remaining}, {rate_iec}]"
_WITHOUT_TOTAL = "{desc}: {n_iec}{items_iec} [{elapsed}, {rate_iec}]"
_ITEMS_ONLY = "{desc}: {items_only} [{elapsed}]"


@contextmanager
def drawn_bar(
    total: int | None, desc: str, *, items_total: int | None, item_unit: str, count_bytes: bool
) -> Iterator[Callback]:
    """The Callback drawing a bar on stderr, closed (and its last counts drawn) at the end."""
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
    with BarCallback(bar) as callback:
        yield callback

"""Progress bars for the ``cas`` command: drawn only on a terminal unless ``--progress``
asks for them, never with ``--quiet``.

Deciding costs nothing: the bar itself (:mod:`cas.cli.bars`, tqdm and fsspec) is imported
only when one is drawn, so ``cas put -q`` on a local store loads neither.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cas.core.lazy import lazy_exports
from cas.core.progress import as_callback

if TYPE_CHECKING:
    from cas.cli.bars import REFRESH_SECONDS, BarCallback, IecBar
    from cas.core.progress import Callback

__all__ = ["progress_bar", "BarCallback", "IecBar", "REFRESH_SECONDS"]

# the bar's names, imported from cas.cli.bars on first use (PEP 562)
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(("BarCallback", "IecBar", "REFRESH_SECONDS"), "cas.cli.bars"))


@contextmanager
def progress_bar(
    mode: str | None,
    total: int | None,
    desc: str,
    *,
    items_total: int | None = None,
    item_unit: str = "files",
    count_bytes: bool = True,
) -> Iterator[Callback]:
    """Yields the Callback to hand to the store (a no-op one when nothing is drawn).

    ``mode``: ``"never"`` (``--quiet``, ``--json``), ``"always"`` (``--progress``)
    or ``None``: only when stderr is a terminal.
    """
    if mode == "never" or (mode is None and not _is_tty(sys.stderr)):
        yield as_callback(None)
        return
    from cas.cli.bars import drawn_bar

    with drawn_bar(total, desc, items_total=items_total, item_unit=item_unit, count_bytes=count_bytes) as callback:
        yield callback


def _is_tty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

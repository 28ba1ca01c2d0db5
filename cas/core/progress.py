"""Progress reporting: fsspec's ``Callback``, the protocol fsspec's own transfers use.

Long work (save, download, sync, verify, reindex) takes ``progress``, a
:class:`fsspec.callbacks.Callback`: bytes are reported with
``relative_update(nbytes)`` (from any thread, so a callback that draws must
lock), and each finished item (a file of a tree, a blob, a ref) calls the
callback's ``"item"`` hook, if it has one, with ``n=1``.  fsspec also calls
every hook, that one included, on each byte update, without ``n``: an item
hook is written ``def item(size, value, n=0, **kwargs)``.  ``set_size`` is
called when the total is known up front.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["ITEM", "Callback", "as_callback", "item_done"]

#: the hook called once per finished item: ``hooks["item"](size, value, n=1)``
ITEM = "item"


def as_callback(progress: Callback | None) -> Callback:
    """``progress`` itself, or fsspec's no-op callback for None."""
    # fsspec is imported here, not above: importing it costs more than a quick
    # command like `cas show` takes, and only work that reports progress needs it.
    from fsspec.callbacks import DEFAULT_CALLBACK, Callback

    if progress is None:
        return DEFAULT_CALLBACK
    if isinstance(progress, Callback):
        return progress
    if callable(progress):
        warnings.warn(
            "progress as a function progress(nbytes, items=0) is deprecated: pass an fsspec.callbacks.Callback",
            DeprecationWarning,
            stacklevel=3,
        )
        return _function_callback(progress)
    raise TypeError(f"progress must be an fsspec.callbacks.Callback, not {type(progress).__name__}")


def _function_callback(fn: Any) -> Callback:
    """cas 0.1's ``progress(nbytes, items=0)`` as a Callback, kept one release."""
    from fsspec.callbacks import Callback

    class FunctionCallback(Callback):
        def relative_update(self, inc: int = 1) -> None:
            fn(inc)

        def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
            if hook_name == ITEM:
                fn(0, kwargs.get("n", 1))

    return FunctionCallback()


def item_done(progress: Callback, n: int = 1) -> None:
    """Report ``n`` finished items (files, blobs, refs)."""
    progress.call(ITEM, n=n)


def __getattr__(name: str) -> Any:
    # ``from cas.core.progress import Callback`` is fsspec's class, imported on first use
    if name == "Callback":
        from fsspec.callbacks import Callback

        return Callback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

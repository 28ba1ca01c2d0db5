"""Progress reporting: fsspec's ``Callback``, the protocol fsspec's own transfers use.

Long work (save, download, sync, verify, reindex) takes ``progress``, a
:class:`fsspec.callbacks.Callback`: bytes are reported with
``relative_update(nbytes)`` (from any thread, so a callback that draws must
lock), and each finished item (a file of a tree, a blob, a ref) calls the
callback's ``"item"`` hook, if it has one, with ``n=1``.  fsspec also calls
every hook, that one included, on each byte update, without ``n``: an item
hook is written ``def item(size, value, n=0, **kwargs)``.  ``set_size`` is
called when the total is known up front.

No progress (``None``) costs no fsspec import: a local store's ``cas put -q`` has
no other use for fsspec, and importing it takes longer than many a command's work.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

__all__ = ["ITEM", "Callback", "NoProgress", "as_callback", "item_done"]

#: the hook called once per finished item: ``hooks["item"](size, value, n=1)``
ITEM = "item"


class NoProgress:
    """What ``as_callback(None)`` gives while fsspec is not imported: fsspec's
    ``NoOpCallback`` without fsspec, method for method (``size`` and ``value`` are
    kept as fsspec keeps them; no hook is ever called)."""

    def __init__(self, size: int | None = None, value: int = 0, hooks: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.size = size
        self.value = value
        self.hooks = hooks or {}  # kept, never called: NoOpCallback.call ignores them too
        self.kw = kwargs

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc_args: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def branched(self, path_1: str, path_2: str, **kwargs: Any) -> Any:
        # a child transfer gets the callback its caller passed, else no progress either
        return kwargs.pop("callback", self)

    def set_size(self, size: int) -> None:
        self.size = size

    def absolute_update(self, value: int) -> None:
        self.value = value

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc

    def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
        return None

    def wrap(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.relative_update()
            yield item

    def no_op(self, *_: Any, **__: Any) -> None:
        pass

    def __getattr__(self, item: str) -> Any:
        # as fsspec's Callback: any other method called on it does nothing
        if item.startswith("__"):
            raise AttributeError(item)
        return self.no_op


#: the one no-op progress (like fsspec's DEFAULT_CALLBACK, shared by every caller)
NO_PROGRESS = NoProgress()


def as_callback(progress: Callback | None) -> Callback:
    """``progress`` itself, or a no-op callback for None: fsspec's ``DEFAULT_CALLBACK``
    once fsspec is imported (so what reaches an fsspec API is fsspec's), else :data:`NO_PROGRESS`."""
    # fsspec is never imported here for None: only a bar, a user's Callback (whose class
    # means fsspec is loaded already) or a remote store has a use for it.
    callbacks = sys.modules.get("fsspec.callbacks")
    if progress is None or isinstance(progress, NoProgress):
        return NO_PROGRESS if callbacks is None else callbacks.DEFAULT_CALLBACK  # type: ignore[return-value]
    if callbacks is not None and isinstance(progress, callbacks.Callback):
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

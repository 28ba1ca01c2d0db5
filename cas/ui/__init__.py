"""``cas ui``: a read-only, server-rendered page to browse a store.

Needs the ``ui`` extra (``pip install 'cas-store[ui]'``): Starlette for the
routes, Jinja2 for the templates, uvicorn to serve them.  Everything shown
comes from the public Store API; nothing here writes to the store.

This package imports none of them until asked, so ``cas --help`` works
without the extra: ``from cas.ui import create_app, serve``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from cas.ui.app import create_app

        return create_app
    if name == "serve":
        from cas.ui.serve import serve

        return serve
    raise AttributeError(name)

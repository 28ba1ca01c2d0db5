"""The Starlette application: routes, the store's worker thread, error pages.

Every request that touches the store runs on one worker thread, so the Store
(its SQLite connection and backend handles) is only ever used by one thread
at a time, and the event loop never blocks on a disk or network read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cas.core.units import human_bytes
from cas.errors import (
    ArtifactNotFoundError,
    BackendError,
    BlobNotFoundError,
    CasError,
    IntegrityError,
    InvalidNameError,
    PathNotFoundError,
    RunError,
)
from cas.store.facade import Store
from cas.ui import pages

__all__ = ["create_app", "StoreWorker", "LOCAL_HOSTS"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

# Headers on every page: nothing loads from elsewhere, no framing, no sniffing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class StoreWorker:
    """Runs store calls on one thread, refreshing the index from the backend
    at most every ``refresh`` seconds so others' new versions show up."""

    def __init__(self, store: Store, refresh: float = 1.0) -> None:
        self.store = store
        self.refresh = refresh
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cas-ui-store")
        self._last_refresh = time.monotonic()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(store, *args)`` on the worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, self.store, *args))

    def catch_up(self) -> None:
        """Refresh the index from the backend if the last refresh is old enough (worker thread only)."""
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh:
            self.store.refresh()
            pages.forget(self.store)  # others (this machine's writers too) may have changed it
            self._last_refresh = now

    async def stream(self, chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
        """Pull ``chunks`` (a generator reading the store) on the worker thread."""
        loop = asyncio.get_running_loop()
        done = object()
        try:
            while (block := await loop.run_in_executor(self._pool, next, chunks, done)) is not done:
                yield block
        finally:
            await loop.run_in_executor(self._pool, chunks.close)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cas.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = lambda n: "" if n is None else human_bytes(n)
    env.filters["when"] = pages.when
    env.globals["url"] = pages.url
    return env


def _status_for(exc: BaseException) -> int:
    if isinstance(exc, InvalidNameError):
        return 400
    if isinstance(exc, IntegrityError | BlobNotFoundError):
        return 500  # the store is damaged: say so, never serve other bytes
    if isinstance(exc, ArtifactNotFoundError | PathNotFoundError | FileNotFoundError | RunError | KeyError):
        return 404
    if isinstance(exc, IsADirectoryError | NotADirectoryError):
        return 404
    if isinstance(exc, BackendError):
        return 503
    return 500


def create_app(store: Store, *, refresh: float = 1.0, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ``cas ui`` application over an open ``store`` (which it never writes).

    ``allowed_hosts``: Host header values accepted (default: the loopback names),
    so a web page elsewhere cannot reach this server through DNS rebinding.
    """
    env = _environment()
    worker = StoreWorker(store, refresh)

    def render(template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        html = env.get_template(template).render(store_url=pages.store_label(store), **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error_page(exc: BaseException) -> HTMLResponse:
        status = _status_for(exc)
        if type(exc) is IntegrityError:  # the digest mismatch itself, not the rest of its group
            title = "Integrity error"
            detail = f"{exc} - the stored bytes do not match their digest; nothing was served. Run `cas verify`."
        elif isinstance(exc, BlobNotFoundError):
            title, detail = "Missing blob", f"{exc} - the store is damaged; run `cas verify`."
        else:
            title = {400: "Bad request", 404: "Not found", 503: "Backend unavailable"}.get(status, "Error")
            detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return render("error.html", {"title": title, "detail": detail, "status": status}, status)

    def page(fn: Callable[..., pages.Page | Response]) -> Callable[[Request], Any]:
        """An endpoint whose work (store reads and rendering) runs on the worker."""

        def work(store: Store, request: Request) -> Response:
            try:
                worker.catch_up()
                result = fn(store, request.path_params, request.query_params)
            except (CasError, OSError, KeyError, ValueError) as e:
                return error_page(e)
            if isinstance(result, pages.Page):
                return render(result.template, result.context)
            return result  # a redirect, or a Stream whose body the endpoint pulls

        async def endpoint(request: Request) -> Response:
            response = await worker.call(work, request)
            if isinstance(response, pages.Stream):
                return StreamingResponse(
                    worker.stream(response.chunks),
                    media_type=response.media_type,
                    headers={**SECURITY_HEADERS, **response.headers, "Content-Security-Policy": "sandbox"},
                )
            return response

        return endpoint

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        title = "Not found" if status == 404 else "Method not allowed" if status == 405 else "Error"
        html = env.get_template("error.html").render(
            store_url=pages.store_label(store), title=title, detail=request.url.path, status=status
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    name = "/{pipeline}/{step}/{artifact}"
    ver = name + "/{version}"
    routes = [
        Route("/", page(pages.artifacts), name="artifacts"),
        Route("/a" + name, page(pages.versions), name="versions"),
        Route("/v" + ver, page(pages.version), name="version"),
        Route("/v" + ver + "/files", page(pages.files), name="files_root"),
        Route("/v" + ver + "/files/{path:path}", page(pages.files), name="files"),
        Route("/v" + ver + "/raw", page(pages.raw), name="raw"),
        Route("/v" + ver + "/raw/{path:path}", page(pages.raw), name="raw_file"),
        Route("/v" + ver + "/lineage", page(pages.lineage), name="lineage"),
        Route("/diff" + name, page(pages.diff), name="diff"),
        Route("/runs", page(pages.runs), name="runs"),
        Route("/runs/{run_id}", page(pages.run), name="run"),
        Mount("/static", StaticFiles(packages=[("cas.ui", "static")]), name="static"),
    ]
    hosts = list(allowed_hosts) if allowed_hosts is not None else list(LOCAL_HOSTS)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
        exception_handlers={404: not_found, 405: not_found},
    )
    app.state.worker = worker
    return app

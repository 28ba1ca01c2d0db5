"""Serve the UI with uvicorn on a socket bound here, so ``--port 0`` can print its real port."""

from __future__ import annotations

import ipaddress
import socket
import threading
import webbrowser
from collections.abc import Callable

from cas.errors import InvalidValueError
from cas.store.facade import Store
from cas.ui.app import LOCAL_HOSTS, create_app

__all__ = ["serve", "is_loopback"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    allow_remote: bool = False,
    open_browser: bool = False,
    refresh: float = 1.0,
    say: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> None:
    """Serve ``store`` read-only until interrupted.

    Only loopback addresses unless ``allow_remote``: the page has no
    authentication, so anyone who can reach it can read every artifact.
    """
    import uvicorn

    remote = not is_loopback(host)
    if remote and not allow_remote:
        raise InvalidValueError(
            f"refusing to serve on {host}: the UI has no authentication; pass --allow-remote to serve beyond this machine"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a response sent as headers, then
    # body, waits out the client's delayed ACK (40 ms a page on Linux).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{bound}/"
    if remote:
        warn(f"cas ui: WARNING: serving on {host}, reachable from other machines, with no authentication")
    app = create_app(store, refresh=refresh, allowed_hosts=["*"] if remote else [*LOCAL_HOSTS, host])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", ws="none")
    server = uvicorn.Server(config)
    try:
        say(f"cas ui: serving {store!r} read-only at {url}  (Ctrl-C to stop)")
        if open_browser:
            threading.Timer(0.5, webbrowser.open, args=(url,)).start()
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # Ctrl-C, also before uvicorn's own handler is in place (it re-raises the one it handled)
    finally:
        app.state.worker.close()
        sock.close()
    say("cas ui: stopped")

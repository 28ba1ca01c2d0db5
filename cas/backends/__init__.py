"""Where bytes live: the Backend contract with its declared capabilities, and its implementations.

Local disk, any fsspec URL, and server-enforced create-only writes for S3, GCS and Azure, with retries.
The names below are imported on first use (cas.core.lazy): a local store never loads fsspec's backends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cas.core.lazy import lazy_exports

if TYPE_CHECKING:
    from cas.backends.base import Backend, Capabilities, Entry
    from cas.backends.factory import open_backend
    from cas.backends.fsspec import FsspecBackend
    from cas.backends.local import LocalBackend
    from cas.backends.secrets import redact_url

__all__ = ["Backend", "Capabilities", "Entry", "FsspecBackend", "LocalBackend", "open_backend", "redact_url"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Backend": "cas.backends.base",
    "Capabilities": "cas.backends.base",
    "Entry": "cas.backends.base",
    "FsspecBackend": "cas.backends.fsspec",
    "LocalBackend": "cas.backends.local",
    "open_backend": "cas.backends.factory",
    "redact_url": "cas.backends.secrets",
})

"""Where bytes live: the Backend contract with its declared capabilities, and its implementations.

Local disk, any fsspec URL, and server-enforced create-only writes for S3, GCS and Azure, with retries."""

from cas.backends.base import Backend, Capabilities, Entry
from cas.backends.factory import open_backend
from cas.backends.fsspec import FsspecBackend
from cas.backends.local import LocalBackend
from cas.backends.secrets import redact_url

__all__ = ["Backend", "Capabilities", "Entry", "FsspecBackend", "LocalBackend", "open_backend", "redact_url"]

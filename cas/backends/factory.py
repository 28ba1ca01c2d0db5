"""Which backend a URL gets: :func:`open_backend`.

Plain paths and ``file://`` are local (:mod:`cas.backends.local`); S3, GCS and
Azure get server-enforced create-only writes (:mod:`cas.backends.cloud`);
every other fsspec URL the generic :mod:`cas.backends.fsspec` backend.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cas.backends.local import LocalBackend
from cas.backends.secrets import Scrubber, redact_url, secrets_of
from cas.errors import BackendError

if TYPE_CHECKING:
    from cas.backends.base import Backend

__all__ = ["open_backend"]


def open_backend(url: str, **storage_options) -> Backend:
    """A backend for a path or URL.  Plain paths and ``file://`` are local."""
    if "://" not in url or url.startswith("file://"):
        path = url[len("file://") :] if url.startswith("file://") else url
        return LocalBackend(os.path.expanduser(path))
    # only for non-local stores: fsspec and the cloud backends cost a local command more than it needs
    import fsspec

    from cas.backends.cloud import cloud_backend, cloud_options
    from cas.backends.fsspec import FsspecBackend

    storage_options = cloud_options(url, storage_options)
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
    except (ImportError, ValueError) as e:
        detail = Scrubber(secrets_of(storage_options))(str(e))  # invariant 11: no secret in errors
        raise BackendError(f"cannot open {redact_url(url)}: {detail}") from None
    return cloud_backend(fs, root, url, storage_options) or FsspecBackend(fs, root, url)

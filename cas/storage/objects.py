"""Small metadata objects on a backend (the format file, refs, journal entries):
create-only writes and reads that never follow a symlink planted in a local store."""

from __future__ import annotations

from cas.backends.base import Backend
from cas.errors import BackendError, CorruptRecordError

__all__ = ["create_object", "read_object", "refuse_linked"]


def create_object(backend: Backend, rel: str, data: bytes) -> bool:
    """Create-only write; False if the name is taken.  A symlink planted at that
    name in a local store holds the name (never followed): the caller moves on
    as for any taken name."""
    try:
        return backend.create_bytes(rel, data)
    except BackendError:
        if backend.is_symlink(rel):
            return False
        raise


def refuse_linked(backend: Backend, rel: str) -> None:
    """BackendError if a directory above ``rel`` in a local store is a planted symlink (a
    write there would be refused): asked before a claim whose entry goes there, so the
    refusal leaves no claimed ref unannounced.  Cheap: each clean directory is asked once."""
    linked = backend.symlinked_dir(rel)
    if linked is not None:
        raise BackendError(f"refusing to follow a symlink inside the store: {linked}", linked)


def read_object(backend: Backend, rel: str) -> bytes:
    """Bytes of a small metadata object; a symlink (or FIFO, socket, device) planted in a
    local store is a bad object (reported), not an I/O failure (which stops the command)."""
    linked = backend.symlinked_dir(rel)
    if linked is not None:
        raise CorruptRecordError(rel, f"under a symlink ({linked}), refused (not followed)")
    try:
        return backend.read_bytes(rel)
    except BackendError:
        planted = backend.planted(rel)
        if planted is not None:
            raise CorruptRecordError(rel, planted) from None
        raise
    except IsADirectoryError:
        raise CorruptRecordError(rel, "a directory, not a file") from None

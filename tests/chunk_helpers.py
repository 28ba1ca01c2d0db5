"""Helpers for the chunk-list tests: small chunker parameters, format-2 stores, stored-blob accounting.

The chunker's parameters are module constants of ``cas.core.chunks`` read at each
call (the documented knob): tests shrink them so a few KiB are cut into many chunks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import cas
import cas.core.chunks as chunks

#: files above 8 KiB are chunked into ~1.25 KiB chunks (256 B .. 4 KiB): pyfastcdc's smallest
SMALL = {"CHUNK_THRESHOLD": 8 << 10, "CHUNK_MIN": 256, "CHUNK_AVG": 1024, "CHUNK_MAX": 4096}


@contextlib.contextmanager
def small_chunks() -> Iterator[None]:
    with mock.patch.multiple(chunks, **SMALL):
        yield


def open_format2(url: str) -> cas.Store:
    return cas.open_store(url, format=2)


def stored(store: cas.Store) -> dict[str, int]:
    """digest -> size of every blob in the backend."""
    return {d: size for d, _, size, _ in store.blobs.iter_digests() if d is not None}


def chunk_list_of(store: cas.Store, version: cas.ArtifactVersion):
    """The decoded chunk list of a chunked version (asserts it is chunked)."""
    from cas.storage.chunked import read_chunk_list

    list_digest = store.index.chunk_list(version.digest.hex)
    assert list_digest is not None, f"{version.ref} is not chunked"
    return list_digest, read_chunk_list(store.blobs, list_digest, version.size)

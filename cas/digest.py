"""BLAKE3-256 digests: the value type and streaming hashers.

Large inputs hash on every core (``max_threads=AUTO``); files are hashed
through mmap so the kernel hands pages straight to BLAKE3 with no copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, Iterable

import blake3

from .errors import InvalidNameError

__all__ = ["Digest", "hash_bytes", "hash_file", "hash_stream", "Hasher", "CHUNK", "is_hex_digest"]

CHUNK = 1 << 20
ALGORITHM = "blake3"
_HEX = frozenset("0123456789abcdef")
# Below this size one thread is faster than spinning up the pool.
_THREADED_MIN = 4 << 20


def is_hex_digest(text: str) -> bool:
    return isinstance(text, str) and len(text) == 64 and _HEX.issuperset(text)


@dataclass(frozen=True, order=True)
class Digest:
    """A BLAKE3-256 digest: 64 lowercase hex, printed ``blake3:<hex>``."""

    hex: str

    def __post_init__(self) -> None:
        if not is_hex_digest(self.hex):
            raise InvalidNameError(f"not a BLAKE3 digest: {self.hex!r}")

    @classmethod
    def parse(cls, text: str) -> "Digest":
        """Accept ``blake3:<hex>`` or bare hex."""
        if isinstance(text, Digest):
            return text
        if isinstance(text, str) and text.startswith(ALGORITHM + ":"):
            text = text[len(ALGORITHM) + 1 :]
        return cls(text)

    @property
    def short(self) -> str:
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{ALGORITHM}:{self.hex}"


class Hasher:
    """Incremental hasher that also counts bytes."""

    def __init__(self, threaded: bool = False) -> None:
        self._h = blake3.blake3(max_threads=blake3.blake3.AUTO if threaded else 1)
        self.size = 0

    def update(self, data) -> None:
        self._h.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    threads = blake3.blake3.AUTO if len(data) >= _THREADED_MIN else 1
    return blake3.blake3(data, max_threads=threads).hexdigest()


def hash_file(path: str | os.PathLike) -> tuple[str, int]:
    """Hex digest and size of a local file, read through mmap."""
    size = os.path.getsize(path)
    if size == 0:
        return blake3.blake3().hexdigest(), 0
    threads = blake3.blake3.AUTO if size >= _THREADED_MIN else 1
    h = blake3.blake3(max_threads=threads)
    h.update_mmap(os.fspath(path))
    return h.hexdigest(), size


def hash_stream(stream: BinaryIO | Iterable[bytes], chunk: int = CHUNK) -> tuple[str, int]:
    h = Hasher(threaded=True)
    if hasattr(stream, "readinto"):
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := stream.readinto(view):
            h.update(view[:n])
    elif hasattr(stream, "read"):
        while block := stream.read(chunk):
            h.update(block)
    else:
        for block in stream:
            h.update(block)
    return h.hexdigest(), h.size

"""Chunk lists (format 2): how a large file is cut, and the codec of the list that names its chunks.

A file above :data:`CHUNK_THRESHOLD` is cut by FastCDC (content-defined: an edit in the
middle moves the boundaries around it only, so a re-save shares every other chunk with
the stored file) into chunks of about :data:`CHUNK_AVG` bytes.  Each chunk is a blob by
its BLAKE3 digest; the *chunk list*, canonical msgpack ``[[digest hex, size], ...]`` in
file order, is itself a blob.  Its digest is carried by the version record (``chunks``)
or the tree manifest entry, so a range read is verified chunk by chunk down from a
trusted ref.  The whole-file digest stays the BLAKE3 of the whole content.

The parameters are part of the format only in that they decide which chunks a writer
makes (and so how well saves dedupe); a reader follows any valid list.  Tests shrink
them by monkeypatching these module constants (read at each call).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, NamedTuple

import msgpack

from cas.core.digest import is_hex_digest
from cas.errors import CorruptRecordError

if TYPE_CHECKING:
    from pyfastcdc import FastCDC

__all__ = [
    "CHUNK_THRESHOLD",
    "CHUNK_MIN",
    "CHUNK_AVG",
    "CHUNK_MAX",
    "MAX_LISTED_CHUNK",
    "ChunkRef",
    "ChunkList",
    "chunker",
    "encode_chunk_list",
    "decode_chunk_list",
    "wants_chunks",
]

#: files strictly larger than this are chunked (format 2)
CHUNK_THRESHOLD = 4 << 20
#: FastCDC parameters.  FastCDC never looks for a cut in a chunk's first CHUNK_MIN bytes,
#: so a large minimum is what makes cutting fast: measured on 256 MiB (benchmarks/bench_chunks.py),
#: 768 KiB / 768 KiB cuts at about BLAKE3's single-thread speed with a mean chunk of ~1.2 MiB,
#: where 256 KiB / 1 MiB is ~4x slower, for the same ~2.8 MiB stored after a 1 MiB edit.
CHUNK_MIN = 768 << 10
CHUNK_AVG = 768 << 10
CHUNK_MAX = 4 << 20
#: a reader holds one chunk in memory: a list naming a larger one is refused
MAX_LISTED_CHUNK = 16 << 20
_NORMALIZATION = 1  # FastCDC's NC level (fastcdc-rs' default)


def wants_chunks(fmt: int, size: int) -> bool:
    """Is content of ``size`` bytes chunked in a store of format ``fmt``?"""
    return fmt >= 2 and size > CHUNK_THRESHOLD


def chunker() -> FastCDC:
    """A FastCDC chunker with the current parameters (not thread-safe: one per cut)."""
    # imported by the first cut, not with the store: small files are never cut, and importing
    # pyfastcdc (it pulls in typing_extensions) costs more than a small put's whole work
    from pyfastcdc import FastCDC

    return FastCDC(CHUNK_AVG, min_size=CHUNK_MIN, max_size=CHUNK_MAX, normalized_chunking=_NORMALIZATION, seed=0)


class ChunkRef(NamedTuple):
    digest: str  # hex
    size: int


class ChunkList:
    """A decoded chunk list: the chunks in order, and where each one starts."""

    __slots__ = ("chunks", "starts", "size")

    def __init__(self, chunks: Sequence[ChunkRef]) -> None:
        self.chunks = list(chunks)
        self.starts = [0, *accumulate(c.size for c in self.chunks)][:-1]
        self.size = sum(c.size for c in self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    def index_at(self, offset: int) -> int:
        """The chunk holding byte ``offset`` (0 <= offset < size)."""
        return bisect.bisect_right(self.starts, offset) - 1

    def overlapping(self, start: int, end: int) -> range:
        """Indexes of the chunks that hold bytes [start, end) (empty when start >= end)."""
        start, end = max(start, 0), min(end, self.size)
        if start >= end:
            return range(0)
        return range(self.index_at(start), self.index_at(end - 1) + 1)


def encode_chunk_list(chunks: Iterable[ChunkRef | tuple[str, int]]) -> bytes:
    """Canonical msgpack ``[[digest hex, size], ...]``, in file order."""
    return msgpack.packb([[d, s] for d, s in chunks], use_bin_type=True)


def decode_chunk_list(data: bytes, hexdigest: str, size: int | None = None) -> ChunkList:
    """The chunk list stored as blob ``hexdigest``, validated, or CorruptRecordError naming it.

    Every entry is ``[64 hex, size]`` with 1 <= size <= MAX_LISTED_CHUNK; the list is
    not empty, is byte-identical to what :func:`encode_chunk_list` writes for it, and
    (``size`` given: the version's or manifest entry's size) its sizes add up to it.
    """
    def bad(why: str) -> CorruptRecordError:
        return CorruptRecordError(f"blake3:{hexdigest}", f"not a chunk list: {why}")

    try:
        raw = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise bad(f"not msgpack ({e})") from None
    if not isinstance(raw, list) or not raw:
        raise bad("expected a non-empty list of [digest, size]")
    chunks = []
    for entry in raw:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise bad(f"an entry is [digest, size], got {entry!r}"[:200])
        digest, n = entry
        if not (isinstance(digest, str) and is_hex_digest(digest)):
            raise bad(f"bad chunk digest {digest!r}"[:200])
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LISTED_CHUNK:
            raise bad(f"chunk size {n!r} is not in [1, {MAX_LISTED_CHUNK}]"[:200])
        chunks.append(ChunkRef(digest, n))
    if encode_chunk_list(chunks) != data:
        raise bad("not in canonical form (as cas writes it)")
    listed = ChunkList(chunks)
    if size is not None and listed.size != size:
        raise bad(f"its chunks add up to {listed.size} bytes, the version says {size}")
    return listed

"""Directory artifacts as Merkle trees.

A tree manifest is canonical msgpack: ``[[relative path, digest hex, size], ...]``
sorted by path, with "/" separators.  It is itself a blob; its digest names the
whole directory.  Format 2: a chunked file's entry has a 4th field, the digest of its
chunk list (``cas.core.chunks``); such an entry is a :class:`ChunkedEntry`.
"""

from __future__ import annotations

import os
import stat as statmod
from collections import Counter
from collections.abc import Collection, Iterator

import msgpack

from cas.core.digest import Digest, is_hex_digest
from cas.errors import CorruptRecordError, InvalidNameError, InvalidValueError

__all__ = ["ChunkedEntry", "chunks_of", "encode_manifest", "decode_manifest", "check_entries", "walk_files", "check_tree_path"]

_MAX_SIZE = 2**63 - 1


class ChunkedEntry(tuple):
    """``(path, digest, size)`` of a chunked file in a tree (format 2), with ``chunks``, the
    digest of its chunk list.  It unpacks and compares as the plain 3-tuple, so code that
    reads tree entries needs no change; what follows chunk lists asks ``chunks_of``."""

    chunks: str

    def __new__(cls, path: str, digest: str, size: int, chunks: str) -> ChunkedEntry:
        entry = super().__new__(cls, (path, digest, size))
        entry.chunks = chunks
        return entry


def chunks_of(entry: tuple) -> str | None:
    """The chunk list digest of a tree entry (None: a loose blob)."""
    return entry.chunks if isinstance(entry, ChunkedEntry) else None


def encode_manifest(entries: list[tuple[str, str, int]]) -> bytes:
    rows = [[*e, e.chunks] if isinstance(e, ChunkedEntry) else list(e) for e in sorted(entries)]
    return msgpack.packb(rows, use_bin_type=True)


def decode_manifest(data: bytes, hexdigest: str) -> list[tuple[str, str, int]]:
    """The entries of manifest blob ``hexdigest``, validated (CorruptRecordError naming it).

    Every path passes :func:`check_tree_path` (so none can leave a download's
    destination), every digest is hex, every size an int; no path is there
    twice or both a file and a directory; and the bytes are exactly what
    :func:`encode_manifest` writes for them (sorted, canonical).
    """
    try:
        try:
            raw = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            raise InvalidNameError(f"not msgpack ({e})") from None
        if not isinstance(raw, list):
            raise InvalidNameError("expected a list of [path, digest, size]")
        entries = []
        for entry in raw:
            if not (isinstance(entry, list) and len(entry) in (3, 4)):
                raise InvalidNameError(f"an entry is [path, digest, size] (+ chunk list), got {entry!r}"[:200])
            path, digest, size = entry[:3]
            if not isinstance(path, str):
                raise InvalidNameError(f"a path must be a string, got {path!r}"[:200])
            check_tree_path(path)
            if not (isinstance(digest, str) and is_hex_digest(digest)):
                raise InvalidNameError(f"bad digest {digest!r} for {path!r}"[:200])
            if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
                raise InvalidNameError(f"invalid size {size!r} for {path!r}")
            if len(entry) == 4:  # format 2: a chunked file's chunk list
                if not (isinstance(entry[3], str) and is_hex_digest(entry[3])):
                    raise InvalidNameError(f"bad chunk list digest {entry[3]!r} for {path!r}"[:200])
                entries.append(ChunkedEntry(path, digest, size, entry[3]))
            else:
                entries.append((path, digest, size))
        if encode_manifest(entries) != data:
            raise InvalidNameError("not in canonical form (sorted by path, as cas writes it)")
        _check_layout([p for p, _, _ in entries])
    except InvalidNameError as e:
        raise CorruptRecordError(f"blake3:{hexdigest}", f"not a tree manifest: {e}") from None
    return entries


def check_entries(entries) -> list[tuple[str, str, int]]:
    """Tree entries given by a caller, validated and sorted: good paths, digests and
    sizes; no path twice, none both a file and a directory (InvalidNameError)."""
    entries = list(entries)
    clean: dict[str, tuple[str, str, int]] = {}
    for entry in entries:
        try:
            path, digest, size = entry
        except (TypeError, ValueError):
            raise InvalidValueError(f"a tree entry is (path, digest, size), got {entry!r}") from None
        if not isinstance(path, str):
            raise InvalidNameError(f"a path inside a tree must be a string, got {path!r}")
        check_tree_path(path)
        hexdigest = Digest.parse(digest).hex
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
            raise InvalidValueError(f"invalid size {size!r} for {path!r}")
        clean[path] = (path, hexdigest, size)
    if len(clean) != len(entries):
        _check_layout([p for p, _, _ in entries])  # names the path given twice
    _check_layout(list(clean))
    return sorted(clean.values())


def _check_layout(paths: list[str]) -> None:
    """No path twice, and none both a file and a directory."""
    files = set(paths)
    if len(files) != len(paths):
        twice = next(p for p, n in Counter(paths).items() if n > 1)
        raise InvalidValueError(f"{twice!r} appears twice in the tree")
    dirs = {p.rsplit("/", 1)[0] for p in files if "/" in p}
    dirs |= {d.rsplit("/", i)[0] for d in dirs for i in range(1, d.count("/") + 1)}
    clash = sorted(dirs & files)
    if clash:
        raise InvalidValueError(f"{clash[0]!r} is both a file and a directory in the tree")


def check_tree_path(path: str) -> str:
    """A path inside a tree: relative, "/"-separated, no "." or ".." parts."""
    if (
        path.isascii()
        and path.replace("/", "").replace(".", "").replace("_", "").replace("-", "").isalnum()
        and not path.startswith(("/", "./"))
        and not path.endswith(("/", "/."))
        and "//" not in path
        and "/./" not in path
        and ".." not in path
        and path != "."
    ):
        return path  # the common case, decided without splitting
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(ord(ch) < 32 or ch == "\x7f" for ch in path)
        or any(part in ("", ".", "..") for part in path.split("/"))
        or not _is_utf8(path)
    ):
        raise InvalidNameError(f"invalid path inside a tree: {path!r}")
    return path


def _is_utf8(path: str) -> bool:
    """False for file names that are not UTF-8 on disk (they arrive as lone surrogates)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def walk_files(root: str, exclude: Collection[tuple[int, int]] = ()) -> Iterator[tuple[str, str]]:
    """(relative "/" path, absolute path) of every regular file below ``root``.

    Symlinks are refused rather than followed: a tree must not quietly pull in
    bytes from outside the directory being saved.  Directories and files whose
    ``(st_dev, st_ino)`` is in ``exclude`` are skipped (the store being saved
    into, its live index).
    """
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        with os.scandir(abs_dir) as it:
            for e in it:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                st = e.stat(follow_symlinks=False)
                if exclude and (st.st_dev, st.st_ino) in exclude:
                    continue
                if statmod.S_ISDIR(st.st_mode):
                    stack.append(rel)
                elif statmod.S_ISREG(st.st_mode):
                    yield check_tree_path(rel), e.path
                elif statmod.S_ISLNK(st.st_mode):
                    raise InvalidValueError(f"refusing to save symlink {e.path!r} inside a directory artifact")

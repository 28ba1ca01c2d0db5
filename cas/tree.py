"""Directory artifacts as Merkle trees.

A tree manifest is canonical msgpack: ``[[relative path, digest hex, size], ...]``
sorted by path, with "/" separators.  It is itself a blob; its digest names the
whole directory.
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Collection, Iterator

import msgpack

from .errors import InvalidNameError

__all__ = ["encode_manifest", "decode_manifest", "walk_files", "check_tree_path"]


def encode_manifest(entries: list[tuple[str, str, int]]) -> bytes:
    return msgpack.packb([list(e) for e in sorted(entries)], use_bin_type=True)


def decode_manifest(data: bytes) -> list[tuple[str, str, int]]:
    return [(p, d, int(s)) for p, d, s in msgpack.unpackb(data, raw=False)]


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
                    raise InvalidNameError(f"refusing to save symlink {e.path!r} inside a directory artifact")

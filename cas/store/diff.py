"""What differs between two versions, or a version and a local file or directory.

Versions are compared from the index alone (digests, sizes, tree entries,
metadata): no content blob is read.  A local path is hashed, never stored.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from cas.core.digest import hash_bytes, hash_file
from cas.core.tree import encode_manifest, walk_files
from cas.version import BLOB, TREE, ArtifactVersion

__all__ = ["Side", "side_of_version", "side_of_path", "diff_sides", "diff_files"]


@dataclass(frozen=True)
class Side:
    """One side of a comparison: what a version or a local path holds."""

    label: str
    kind: str  # "blob" or "tree"
    digest: str  # hex
    size: int
    metadata: dict[str, Any] | None = None  # None for a local path
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # tree: path -> (digest hex, size)


def side_of_version(v: ArtifactVersion) -> Side:
    """A version's side of a comparison, from the index (no content read)."""
    files = {p: (d.hex, s) for p, d, s in v.files()} if v.kind == TREE else {}
    return Side(v.ref, v.kind, v.digest.hex, v.size, dict(v.metadata), files)


def side_of_path(path: str | os.PathLike, exclude: Collection[tuple[int, int]] = ()) -> Side:
    """Hash a local file or directory as ``Store.save`` would (same tree digest)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        entries = []
        for rel, abspath in walk_files(path, exclude=exclude):
            digest, size = hash_file(abspath)
            entries.append((rel, digest, size))
        digest = hash_bytes(encode_manifest(entries))
        files = {rel: (d, s) for rel, d, s in entries}
        return Side(path, TREE, digest, sum(s for _, s in files.values()), None, files)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file or directory: {path}")
    digest, size = hash_file(path)
    return Side(path, BLOB, digest, size)


def diff_sides(a: Side, b: Side) -> dict[str, Any]:
    """A JSON-ready description of what changed from ``a`` to ``b``.

    Always: ``same``, ``a``, ``b``, ``kind`` (``[a kind, b kind]``), ``digest``
    and ``size`` (``[old, new]``).  Two trees: ``added``, ``removed``,
    ``changed`` (lists of files with sizes) and ``unchanged`` (a count), as
    :func:`diff_files` gives them.  When
    both sides are versions: ``metadata`` (``added``, ``removed``, ``changed``).
    """
    out: dict[str, Any] = {
        "a": a.label,
        "b": b.label,
        "same": a.kind == b.kind and a.digest == b.digest,
        "kind": [a.kind, b.kind],
        "digest": [f"blake3:{a.digest}", f"blake3:{b.digest}"],
        "size": [a.size, b.size],
    }
    if a.kind == TREE and b.kind == TREE:
        out.update(diff_files(a, b))
    if a.metadata is not None and b.metadata is not None:
        keys = set(a.metadata) | set(b.metadata)
        out["metadata"] = {
            "added": {k: b.metadata[k] for k in sorted(keys) if k not in a.metadata},
            "removed": {k: a.metadata[k] for k in sorted(keys) if k not in b.metadata},
            "changed": {
                k: [a.metadata[k], b.metadata[k]]
                for k in sorted(keys)
                if k in a.metadata and k in b.metadata and a.metadata[k] != b.metadata[k]
            },
        }
        out["same"] = out["same"] and not any(out["metadata"].values())
    return out


def diff_files(a: Side, b: Side) -> dict[str, Any]:
    """The files ``added``, ``removed`` and ``changed`` (by digest) from ``a`` to
    ``b``, with sizes, and the ``unchanged`` count.

    A blob side counts as one file at path ``""``, as ``ArtifactVersion.files()``
    lists it, so any two sides compare file by file.
    """
    af, bf = _files(a), _files(b)
    added = sorted(set(bf) - set(af))
    removed = sorted(set(af) - set(bf))
    both = sorted(set(af) & set(bf))
    changed = [p for p in both if af[p][0] != bf[p][0]]
    return {
        "added": [{"path": p, "size": bf[p][1], "digest": f"blake3:{bf[p][0]}"} for p in added],
        "removed": [{"path": p, "size": af[p][1], "digest": f"blake3:{af[p][0]}"} for p in removed],
        "changed": [
            {"path": p, "size": [af[p][1], bf[p][1]], "digest": [f"blake3:{af[p][0]}", f"blake3:{bf[p][0]}"]}
            for p in changed
        ],
        "unchanged": len(both) - len(changed),
    }


def _files(side: Side) -> dict[str, tuple[str, int]]:
    return side.files if side.kind == TREE else {"": (side.digest, side.size)}

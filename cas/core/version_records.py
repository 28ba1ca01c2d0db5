"""The version family of records: versions, alias moves and deletions (docs/format.md, Records).

Their builders (every such record the store itself writes is made here) and
their schemas, which ``cas.core.records`` decodes them against.  A claim adds
the numbered field when it wins its ref: ``version`` of a version, ``seq`` of
an alias move.  Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, TypedDict

from cas.core import fields as f
from cas.core.codec import now_iso
from cas.core.names import MAX_VERSION

__all__ = [
    "BLOB", "NOT_RECORDED", "SCHEMAS", "TREE", "AliasRecord", "DeletionRecord", "Lineage", "VersionRecord",
    "alias_record", "deletion_record", "version_record",
]

BLOB = "blob"  # a version's kind: one file
TREE = "tree"  # a version's kind: a manifest of files

_VERSION = f.integer(1, MAX_VERSION)

#: type -> (ref kind it lives under, required fields, optional fields)
SCHEMAS: dict[str, tuple[str, dict[str, f.Check], dict[str, f.Check]]] = {
    "version": (
        "versions",
        {"name": f.name, "version": _VERSION, "digest": f.digest, "kind": f.one_of(BLOB, TREE),
         "size": f.integer(0, 2**63 - 1), "created_at": f.time},
        {"metadata": f.optional(f.json_map), "materializer": f.optional(f.text), "run_id": f.optional(f.segment),
         "step_run_id": f.optional(f.segment), "chunks": f.optional(f.digest)},
    ),
    # version 0: the alias was removed (`cas alias --delete`)
    "alias": ("aliases", {"name": f.name, "alias": f.alias, "version": f.integer(0, MAX_VERSION),
                          "seq": f.integer(0, MAX_VERSION), "created_at": f.time}, {}),
    "delete": ("deletions", {"name": f.name, "version": _VERSION, "deleted_at": f.time}, {}),
}

#: ``version_record(materializer=NOT_RECORDED)``: no materializer field at all.  A link
#: of content already stored names none (golden tests pin those bytes).
NOT_RECORDED: Any = object()


class Lineage(TypedDict, total=False):
    """What a version record carries to name the step that produced it."""

    run_id: str
    step_run_id: str


class VersionRecord(TypedDict, total=False):
    type: str  # "version"
    name: str
    digest: str
    kind: str  # BLOB or TREE
    size: int
    created_at: str
    metadata: dict[str, Any]
    materializer: str | None
    run_id: str
    step_run_id: str
    chunks: str  # format 2: the chunk list of a chunked file (docs/format.md)
    version: int  # set by the claim


class AliasRecord(TypedDict, total=False):
    type: str  # "alias"
    name: str
    alias: str
    version: int  # 0: the alias was removed
    created_at: str
    seq: int  # set by the claim


class DeletionRecord(TypedDict):
    type: str  # "delete"
    name: str
    version: int
    deleted_at: str


def version_record(
    name: str,
    digest: str,
    kind: str,
    size: int,
    metadata: dict[str, Any],
    *,
    materializer: str | None = NOT_RECORDED,
    lineage: Lineage | None = None,
    chunks: str | None = None,
) -> VersionRecord:
    """A version of ``name`` bound to ``digest`` (``metadata`` checked; ``chunks``: format 2's chunk list)."""
    record: VersionRecord = {
        "type": "version",
        "name": name,
        "digest": digest,
        "kind": kind,
        "size": size,
        "created_at": now_iso(),
        "metadata": metadata,
    }
    if materializer is not NOT_RECORDED:
        record["materializer"] = materializer
    record.update(lineage or {})
    record.update({"chunks": chunks} if chunks is not None else {})  # type: ignore[typeddict-item]
    return record


def alias_record(name: str, alias: str, version: int) -> AliasRecord:
    """A move of ``alias`` of ``name`` to ``version`` (0: its removal)."""
    return {"type": "alias", "name": name, "alias": alias, "version": version, "created_at": now_iso()}


def deletion_record(name: str, version: int) -> DeletionRecord:
    """The deletion of ``name@version``."""
    return {"type": "delete", "name": name, "version": version, "deleted_at": now_iso()}

"""``cas diff`` and ``cas status``: what differs between versions, or between a
version and a local file or directory (cas.store.diff), answered from the index."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from cas.cli.common import emit, open_cli_store
from cas.core.units import human_bytes
from cas.store.diff import Side, diff_sides, side_of_path, side_of_version

__all__ = ["diff_cmd", "status_cmd"]


def _side(ctx: click.Context, arg: str) -> Side:
    """An argument with an "@", or one that is not on disk, is a version; else a local path."""
    store = open_cli_store(ctx)
    if "@" not in arg and os.path.exists(arg):
        return side_of_path(arg, exclude=store._own_files())
    return side_of_version(store.get_artifact_version(arg))


def _short(digest: str) -> str:
    return digest[7:19]


def diff_text(d: dict[str, Any]) -> str:
    lines = [f"{d['a']} -> {d['b']}"]
    if d["kind"][0] != d["kind"][1]:
        lines.append(f"kind    {d['kind'][0]} -> {d['kind'][1]}")
    if "added" in d:
        lines += [f"+ {f['path']}  {human_bytes(f['size'])}" for f in d["added"]]
        lines += [f"- {f['path']}  {human_bytes(f['size'])}" for f in d["removed"]]
        lines += [
            f"M {f['path']}  {human_bytes(f['size'][0])} -> {human_bytes(f['size'][1])}" for f in d["changed"]
        ]
        lines.append(
            f"{len(d['added'])} added, {len(d['removed'])} removed, {len(d['changed'])} changed, {d['unchanged']} unchanged"
        )
    elif d["digest"][0] != d["digest"][1]:
        lines.append(f"digest  {_short(d['digest'][0])} -> {_short(d['digest'][1])}")
        lines.append(f"size    {human_bytes(d['size'][0])} -> {human_bytes(d['size'][1])}")
    meta = d.get("metadata") or {}
    for k, v in meta.get("added", {}).items():
        lines.append(f"meta +  {k}={json.dumps(v)}")
    for k, v in meta.get("removed", {}).items():
        lines.append(f"meta -  {k}={json.dumps(v)}")
    for k, (old, new) in meta.get("changed", {}).items():
        lines.append(f"meta M  {k}: {json.dumps(old)} -> {json.dumps(new)}")
    if d["same"]:
        lines.append("no differences")
    return "\n".join(lines)


@click.command(name="diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def diff_cmd(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """What changed from A to B: two versions (NAME@VERSION), or a version and a local path.

    For directories: files added, removed and changed, with sizes.  For files:
    digest and size.  For two versions: metadata too.  Versions are compared
    from the index, reading no content; a local path is hashed, not stored.

    \b
    Examples:
      cas diff churn/train/model@1 churn/train/model@2
      cas diff churn/prep/data@latest ./data --json
    """
    d = diff_sides(_side(ctx, a), _side(ctx, b))
    emit(ctx, as_json, d, diff_text(d))


@click.command(name="status")
@click.argument("path", type=click.Path(exists=True))
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, path: str, name: str, as_json: bool) -> None:
    """Is PATH (a file or directory) the same as NAME@latest, and if not, what differs.

    \b
    Examples:
      cas status ./data churn/prep/data
      cas status model.pkl churn/train/model --json
    """
    store = open_cli_store(ctx)
    latest = store.get_artifact_version(name if "@" in name else f"{name}@latest")
    d = diff_sides(side_of_version(latest), side_of_path(path, exclude=store._own_files()))
    d["same"] = d["kind"][0] == d["kind"][1] and d["digest"][0] == d["digest"][1]
    text = f"{path}: same as {latest.ref}" if d["same"] else f"{path}: differs from {latest.ref}\n" + diff_text(d)
    emit(ctx, as_json, d, text)

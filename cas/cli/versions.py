"""``cas log``, ``show``, ``alias`` and ``rm``: the versions of a name and what points at them."""

from __future__ import annotations

import json

import click

from cas.cli.common import (
    complete_ref,
    created_second,
    emit,
    json_option,
    open_cli_store,
    parse_duration,
    row_dict,
    version_dict,
)
from cas.core.names import parse_name
from cas.core.units import human_bytes

__all__ = ["log", "show", "alias", "rm"]


@click.command()
@click.argument("name", shell_complete=complete_ref)
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted versions.")
@click.option("-n", "--max-count", type=click.IntRange(min=1), default=None, metavar="N", help="Only the N newest versions.")
@json_option
@click.pass_context
def log(ctx: click.Context, name: str, include_deleted: bool, max_count: int | None, as_json: bool) -> None:
    """Show the versions of NAME, newest first.

    \b
    Examples:
      cas log churn/train/model
      cas log churn/train/model -n 10
      cas log churn/train/model --all --json
    """
    store = open_cli_store(ctx)
    # index rows, newest first and only as many as are printed: no version object per line
    if as_json:
        versions = store.versions.rows(name, include_deleted=include_deleted, newest_first=True, limit=max_count)
    else:
        versions = store.versions.history(name, include_deleted=include_deleted, limit=max_count)
        name = str(parse_name(name))  # as the index spells it
    by_version: dict[int, list[str]] = {}
    for alias, number in store.aliases(name).items():
        by_version.setdefault(number, []).append(alias)
    if as_json:
        emit(ctx, True, [row_dict(v) | {"aliases": sorted(by_version.get(v.version, []))} for v in versions])
        return
    lines = []
    for v in versions:
        tags = ", ".join(sorted(by_version.get(v.version, []))) + (" deleted" if v.deleted_at is not None else "")
        lines.append(
            f"{name}@{v.version}  {v.digest[:12]}  {v.kind}  {human_bytes(v.size)}  {created_second(v)}"
            + (f"  ({tags.strip()})" if tags.strip() else "")
        )
    emit(ctx, False, None, "\n".join(lines))


@click.command()
@click.argument("ref", metavar="NAME[@VERSION]", shell_complete=complete_ref)
@json_option
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show one version: digest, size, metadata, and the files of a directory.

    \b
    Examples:
      cas show churn/train/model@production
      cas show churn/prep/data@3 --json
    """
    v = open_cli_store(ctx).get_artifact_version(ref)
    data = version_dict(v)
    if v.kind == "tree":
        data["files"] = [{"path": p, "digest": str(d), "size": s} for p, d, s in v.files()]
    lines = [f"{k}: {data[k]}" for k in ("ref", "digest", "kind", "size", "created_at")]
    if v.metadata:
        lines.append("metadata: " + json.dumps(v.metadata, sort_keys=True))
    for f in data.get("files", []):
        lines.append(f"  {f['path']}  {f['digest'][7:19]}  {human_bytes(f['size'])}")
    emit(ctx, as_json, data, "\n".join(lines))


@click.command()
@click.argument("ref", metavar="NAME@VERSION", shell_complete=complete_ref)
@click.argument("alias")
@click.option("--delete", "delete", is_flag=True, help="Remove ALIAS from the artifact NAME instead.")
@json_option
@click.pass_context
def alias(ctx: click.Context, ref: str, alias: str, delete: bool, as_json: bool) -> None:
    """Point ALIAS (e.g. production) at a version of an artifact, or --delete it.

    \b
    Examples:
      cas alias churn/train/model@3 production
      cas alias --delete churn/train/model candidate
    """
    if delete:
        name = ref.split("@", 1)[0]
        was = open_cli_store(ctx).delete_alias(name, alias)
        data = {"name": name, "alias": alias, "version": None, "was": was, "deleted": True}
        emit(ctx, as_json, data, f"removed {name}@{alias} (was {was})")
        return
    v = open_cli_store(ctx).set_alias(ref, None, alias)
    emit(ctx, as_json, {"name": v.name, "alias": alias, "version": v.version}, f"{v.name}@{alias} -> {v.version}")


@click.command()
@click.argument("ref", metavar="NAME@VERSION | NAME-OR-PREFIX", shell_complete=complete_ref)
@click.option("--keep-last", type=click.IntRange(min=0), default=None, metavar="N", help="Keep the N newest versions of each name.")
@click.option("--older-than", default=None, metavar="DURATION", help="Delete only versions older than this (30m, 12h, 30d).")
@click.option("--keep-alias/--no-keep-alias", default=True, show_default=True, help="Keep versions an alias points at.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@json_option
@click.pass_context
def rm(
    ctx: click.Context, ref: str, keep_last: int | None, older_than: str | None, keep_alias: bool, dry_run: bool, as_json: bool
) -> None:
    """Delete a version, or apply a retention rule to a name or prefix (recorded; bytes go only with `cas gc`).

    \b
    Examples:
      cas rm churn/train/model@1
      cas rm churn/ --keep-last 5 --dry-run
      cas rm churn/train/model --older-than 30d --no-keep-alias
    """
    from cas.store.retention import names_matching, select_expired

    rule = keep_last is not None or older_than is not None
    if "@" not in ref and not rule:
        raise click.BadParameter("name the version to delete (NAME@VERSION), or give --keep-last/--older-than", param_hint="REF")
    if "@" in ref and rule:
        raise click.BadParameter("a retention rule takes a name or prefix, not NAME@VERSION", param_hint="REF")
    store = open_cli_store(ctx)
    if not rule:
        targets = [store.get_artifact_version(ref)]
    else:
        age = parse_duration(older_than) if older_than is not None else None
        names = names_matching(store, ref)
        if not names:
            raise click.BadParameter(f"no artifact named or under {ref!r}", param_hint="REF")
        targets = select_expired(store, names, keep_last=keep_last, older_than=age, keep_aliased=keep_alias)
    if not dry_run:
        for v in targets:
            store.delete_version(v.name, v.version)
    if not rule and not dry_run:
        v = targets[0]
        emit(ctx, as_json, {"name": v.name, "version": v.version, "deleted": True}, f"deleted {v.ref}")
        return
    verb = "would delete" if dry_run else "deleted"
    data = {"deleted": [v.ref for v in targets], "dry_run": dry_run}
    emit(ctx, as_json, data, "\n".join(f"{verb} {v.ref}" for v in targets) or "nothing to delete")

"""``cas sync``: copy versions, aliases and lineage between stores (cas.store.sync)."""

from __future__ import annotations

import os
from typing import Any

import click

from cas.cli.common import EXIT_ERROR, emit, fail, json_option, progress_bar, storage_options
from cas.core.units import human_bytes
from cas.store.facade import open_store

__all__ = ["sync_cmd"]


@click.command(name="sync")
@click.argument("src")
@click.argument("dst")
@click.argument("names", nargs=-1, metavar="[NAME-PATTERN]...")
@click.option("--dry-run", is_flag=True, help="Report what would be sent; send nothing.")
@click.option("-j", "--jobs", default=8, show_default=True, type=click.IntRange(1, 64), help="Parallel transfers.")
@click.option("--src-option", "src_options", multiple=True, metavar="KEY=VALUE", help="fsspec storage option for SRC (repeatable).")
@click.option("--dst-option", "dst_options", multiple=True, metavar="KEY=VALUE", help="fsspec storage option for DST (repeatable).")
@json_option
@click.pass_context
def sync_cmd(
    ctx: click.Context,
    src: str,
    dst: str,
    names: tuple[str, ...],
    dry_run: bool,
    jobs: int,
    src_options: tuple[str, ...],
    dst_options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Copy versions, aliases and lineage from SRC to DST, sending only the blobs DST lacks.

    SRC and DST are store paths or fsspec URLs (./.cas, s3://bucket/cas,
    gs://..., az://container/cas).  NAME-PATTERNs (globs or prefixes such as
    'churn/train/*' or 'churn') limit what is copied.  Safe to interrupt and
    rerun.  Credentials come from each cloud's usual environment variables,
    FSSPEC_<PROTOCOL>_<KEY> variables, or --src-option/--dst-option.
    Exits 1 if some artifact's history differs in DST (nothing of it is copied).

    \b
    Examples:
      cas sync ./.cas s3://bucket/cas 'churn/*'
      cas sync . team --dry-run --json
      cas sync team ./.cas
    """
    import uuid

    from cas.errors import StoreNotFoundError
    from cas.store.sync import status, transfer
    from cas.store.sync import sync as run_sync

    src, src_config = _sync_end(ctx, src)
    dst, dst_config = _sync_end(ctx, dst)
    source = open_store(src, create=False, **(src_config | storage_options(src_options, "--src-option")))
    ctx.call_on_close(source.close)
    try:
        target = open_store(dst, create=not dry_run, **(dst_config | storage_options(dst_options, "--dst-option")))
        target_url = target.url
    except StoreNotFoundError:
        # --dry-run writes nothing, not even a new store's format file: compare against an empty one.
        target = open_store(f"memory://cas-dry-run-{uuid.uuid4().hex}")
        target_url = _shown_url(dst)
    ctx.call_on_close(target.close)
    if dry_run:
        result = run_sync(source, target, names, jobs=jobs, dry_run=True)
    else:
        plan = status(source, target, names, jobs=jobs)
        with progress_bar(ctx, plan.bytes_missing, "syncing", as_json=as_json, items_total=len(plan.blobs), item_unit="blobs") as progress:
            result = transfer(source, target, plan, jobs=jobs, progress=progress)
    verb = "would send" if dry_run else "sent"
    text = (
        f"{verb} {result.blobs_sent} blobs ({human_bytes(result.bytes_sent)}), "
        f"skipped {result.blobs_skipped} already there ({human_bytes(result.bytes_skipped)}); "
        f"{verb} {result.refs_sent} refs, {result.refs_skipped} already there"
    )
    emit(ctx, as_json, result.as_dict() | {"src": source.url, "dst": target_url}, text)
    if result.conflicts:
        fail(
            ctx,
            f"{len(result.conflicts)} artifact(s) have a different history in {target_url} "
            f"and were not copied: {', '.join(result.conflicts)}",
            "SyncConflict",
            EXIT_ERROR,
        )


def _sync_end(ctx: click.Context, arg: str) -> tuple[str, dict[str, Any]]:
    """A sync end: "." is the store cas would use here; a remote's name is its URL."""
    from cas.store.config import resolve_store

    if arg == ".":
        return resolve_store(ctx.find_root().obj.get("store"))
    return resolve_store(arg)


def _shown_url(url: str) -> str:
    """The URL a store at ``url`` would report, without opening it (nothing is created)."""
    from cas.backends.base import redact_url

    if "://" not in url or url.startswith("file://"):
        path = url[len("file://") :] if url.startswith("file://") else url
        return "file://" + os.path.abspath(os.path.expanduser(path))
    return redact_url(url)

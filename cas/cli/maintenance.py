"""``cas init``, ``verify``, ``gc``, ``stats``, ``reindex`` and ``refresh``: the store's upkeep."""

from __future__ import annotations

import click

from cas.cli.common import EXIT_VERIFY_FAILED, emit, json_option, open_cli_store, parse_duration, progress_bar
from cas.core.units import human_bytes
from cas.store.facade import DEFAULT_GC_GRACE

__all__ = ["init", "verify", "gc", "stats", "reindex", "refresh"]


@click.command()
@click.option("--format", "format_", type=click.IntRange(1, 2), default=None,
              help="The format of a new store (docs/format.md; default 2; 1 for stores older cas must read).")
@json_option
@click.pass_context
def init(ctx: click.Context, format_: int | None, as_json: bool) -> None:
    """Create a store; if one is already there, say so and change nothing.

    \b
    Examples:
      cas init
      cas init --format 1
      cas --store s3://bucket/cas init --json
    """
    from cas.errors import StoreNotFoundError

    try:
        store = open_cli_store(ctx, here=True)
        created = False
    except StoreNotFoundError:
        store = open_cli_store(ctx, create=True, here=True, format=format_)
        created = True
    data = {"store": store.url, "store_id": store.store_id, "format": store.format, "created": created}
    verb = "initialised cas store at" if created else "a cas store already exists at"
    emit(ctx, as_json, data, f"{verb} {store.url}")


@click.command()
@click.option("--deep", is_flag=True, help="Rehash every blob (reads all bytes).")
@json_option
@click.pass_context
def verify(ctx: click.Context, deep: bool, as_json: bool) -> None:
    """Check the store: missing, corrupt, truncated and foreign blobs, invalid records.  Exit 2 if any.

    \b
    Examples:
      cas verify
      cas verify --deep --json
    """
    store = open_cli_store(ctx)
    # no total: --deep rehashes every stored blob, which the index's byte counts do not cover
    with progress_bar(ctx, None, "verifying", as_json=as_json, item_unit="blobs", count_bytes=deep) as progress:
        report = store.verify(deep=deep, progress=progress)
    counted = "stored" if deep else "needed"
    data = {"ok": report.ok, "checked": report.checked, "blobs_counted": counted, "missing": report.missing,
            "corrupt": report.corrupt, "foreign": report.foreign, "invalid": report.invalid,
            "orphans": report.orphans, "dangling": report.dangling}
    lines = [f"rehashed {report.checked} stored blobs (deep)" if deep else f"checked {report.checked} needed blobs"]
    lines += [f"missing  {d}" for d in report.missing] + [f"corrupt  {d}" for d in report.corrupt]
    lines += [f"foreign  {p}" for p in report.foreign] + [f"invalid  {text}" for text in report.invalid]
    lines += [f"dangling {r}" for r in report.dangling] + [f"orphan   {r} (journalled now)" for r in report.orphans]
    lines.append("ok" if report.ok else "PROBLEMS FOUND")
    emit(ctx, as_json, data, "\n".join(lines))
    if not report.ok:
        ctx.exit(EXIT_VERIFY_FAILED)


@click.command()
@click.option("--dry-run", is_flag=True, help="Report what would be removed, remove nothing.")
@click.option("--grace", default=f"{int(DEFAULT_GC_GRACE // 3600)}h", show_default=True, help="Keep unreferenced blobs younger than this (30m, 12h, 7d).")
@json_option
@click.pass_context
def gc(ctx: click.Context, dry_run: bool, grace: str, as_json: bool) -> None:
    """Remove blobs that no live version needs.

    \b
    Examples:
      cas gc --dry-run
      cas gc --grace 7d
    """
    report = open_cli_store(ctx).gc(grace=parse_duration(grace), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    data = {"removed": report.removed, "removed_bytes": report.removed_bytes, "kept": report.kept, "dry_run": dry_run,
            "blobs_counted": "stored"}
    emit(ctx, as_json, data, f"{verb} {report.removed} blobs ({human_bytes(report.removed_bytes)}), kept {report.kept} (stored blobs)")


@click.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Logical bytes, stored bytes and the dedupe ratio.

    \b
    Examples:
      cas stats
      cas --store s3://bucket/cas stats --json
    """
    s = open_cli_store(ctx).stats()
    data = {
        "artifacts": s.artifacts,
        "versions": s.versions,
        "blobs": s.blobs,
        "logical_bytes": s.logical_bytes,
        "stored_bytes": s.stored_bytes,
        "dedupe_ratio": round(s.dedupe_ratio, 3),
        "blobs_counted": "content",
    }
    text = (
        f"artifacts {s.artifacts}, versions {s.versions}, content blobs {s.blobs}\n"
        f"logical {human_bytes(s.logical_bytes)}, stored {human_bytes(s.stored_bytes)}, dedupe {s.dedupe_ratio:.2f}x"
    )
    emit(ctx, as_json, data, text)


@click.command()
@json_option
@click.pass_context
def reindex(ctx: click.Context, as_json: bool) -> None:
    """Rebuild the index from the records in the backend.

    \b
    Examples:
      cas reindex
      cas --store team reindex --json
    """
    store = open_cli_store(ctx)
    with progress_bar(ctx, None, "reindexing", as_json=as_json, item_unit="refs", count_bytes=False) as progress:
        n = store.reindex(progress=progress)
    emit(ctx, as_json, {"refs": n}, f"reindexed {n} refs from {store.url}")


@click.command()
@json_option
@click.pass_context
def refresh(ctx: click.Context, as_json: bool) -> None:
    """Catch up with what other machines wrote to the same backend.

    \b
    Examples:
      cas refresh
      cas --store team refresh --json
    """
    store = open_cli_store(ctx)
    n = store.refresh()
    emit(ctx, as_json, {"applied": n}, f"{n} new records")

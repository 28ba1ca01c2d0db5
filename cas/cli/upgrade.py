"""``cas upgrade``: convert a store in place to the newest format (cas.store.upgrade)."""

from __future__ import annotations

import click

from cas.cli.common import emit, json_option, open_cli_store, progress_bar

__all__ = ["upgrade"]


@click.command()
@click.option("--dry-run", is_flag=True, help="Say what would change, change nothing.")
@json_option
@click.pass_context
def upgrade(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Convert the store in place to the newest format (format 1 -> 2).

    Every version stays readable while it runs; cas-format is rewritten last,
    and from then on a cas that knows only format 1 refuses the store, so
    upgrade cas on every machine first.  Killed, it resumes where it stopped
    when run again.  A store already at the newest format is left alone.

    \b
    Examples:
      cas upgrade --dry-run
      cas upgrade
      cas --store s3://bucket/cas upgrade --json
    """
    store = open_cli_store(ctx)
    with progress_bar(ctx, None, "upgrading", as_json=as_json, item_unit="steps", count_bytes=False) as progress:
        report = store.upgrade(dry_run=dry_run, progress=progress)
    data = {
        "store": report.url, "from_format": report.from_format, "to_format": report.to_format,
        "dry_run": dry_run, "upgraded": report.upgraded, "nothing_to_do": report.nothing_to_do,
        "steps": [{"name": s.name, "does": s.does, "status": s.status, "detail": s.detail} for s in report.steps],
    }
    if report.nothing_to_do:
        text = f"{report.url} is already format {report.from_format}: nothing to do"
    else:
        verb = "would upgrade" if dry_run else "upgraded"
        lines = [f"{verb} {report.url} from format {report.from_format} to {report.to_format}"]
        for s in report.steps:
            # a dry run says what each step changes; a run says what it did
            said = f"{s.does} ({s.detail})" if dry_run and s.detail else s.detail or s.does
            lines.append(f"  {s.status:<12} {s.name}: {said}")
        text = "\n".join(lines)
    emit(ctx, as_json, data, text)

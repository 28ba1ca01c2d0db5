"""``cas run list|show`` and ``cas lineage``: pipeline runs and the lineage they recorded."""

from __future__ import annotations

import json
from typing import Any

import click

from cas.cli.common import complete_ref, emit, json_option, open_cli_store

__all__ = ["run_group", "lineage"]


def _run_line(r: Any) -> str:
    duration = f"{r.duration:.2f}s" if r.duration is not None else "-"
    started = r.started_at.isoformat(timespec="seconds") if r.started_at else "-"
    return f"{r.id}  {r.pipeline:<16} {r.status:<9}  {len(r.steps):>2} steps  {duration:>8}  {started}"


@click.group(name="run")
def run_group() -> None:
    """Pipeline runs: each step, what it consumed and what it produced.

    \b
    Examples:
      cas run list
      cas run show RUN_ID
    """


@run_group.command(name="list")
@click.option("--pipeline", default=None, metavar="NAME", help="Only runs of this pipeline.")
@click.option(
    "--status", type=click.Choice(["running", "completed", "failed", "cancelled"]), default=None, help="Only runs with this status."
)
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Show at most this many runs.")
@json_option
@click.pass_context
def run_list(ctx: click.Context, pipeline: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first.

    \b
    Examples:
      cas run list
      cas run list --pipeline churn --status failed --json
    """
    runs = open_cli_store(ctx).list_runs(pipeline, status=status, limit=limit)
    emit(ctx, as_json, [r.to_dict() for r in runs], "\n".join(_run_line(r) for r in runs) or "(no runs)")


@run_group.command(name="show")
@click.argument("run_id")
@json_option
@click.pass_context
def run_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run: its params and each step's status, inputs and outputs.

    \b
    Examples:
      cas run list --limit 1
      cas run show RUN_ID --json
    """
    r = open_cli_store(ctx).get_run(run_id)
    lines = [f"run {r.id}", f"pipeline  {r.pipeline}", f"status    {r.status}" + (f"  ({r.error})" if r.error else "")]
    lines.append(f"started   {r.started_at.isoformat() if r.started_at else '-'}")
    lines.append(f"ended     {r.ended_at.isoformat() if r.ended_at else '-'}")
    lines.append("params    " + json.dumps(r.params, sort_keys=True))
    lines.append("steps")
    for s in r.steps:
        lines.append(f"  {s.step:<20} {s.status}" + (f"  ({s.error})" if s.error else ""))
        for ref in [v.ref for v in s.inputs] + list(s.unknown_inputs):
            lines.append(f"      in   {ref}")
        for v in s.outputs:
            lines.append(f"      out  {v.ref}" + ("  [deleted]" if v.deleted else ""))
    emit(ctx, as_json, r.to_dict(), "\n".join(lines))


@click.command()
@click.argument("ref", metavar="NAME[@VERSION]", shell_complete=complete_ref)
@click.option("--down", is_flag=True, help="Trace what was derived from the version (default: where it came from).")
@click.option("--depth", type=click.IntRange(min=0), default=None, metavar="N", help="Follow at most N steps (default: all).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "dot", "mermaid", "openlineage"]),
    default="text",
    show_default=True,
    help="text: a tree; json: nodes and edges; dot: Graphviz; mermaid: a flowchart; openlineage: run events.",
)
@json_option
@click.pass_context
def lineage(ctx: click.Context, ref: str, down: bool, depth: int | None, fmt: str, as_json: bool) -> None:
    """Trace a version's lineage: up to its inputs, or --down to what was derived from it.

    \b
    Examples:
      cas lineage churn/train/model
      cas lineage churn/ingest/raw@1 --down --format mermaid
    """
    graph = open_cli_store(ctx).lineage(ref, "down" if down else "up", depth)
    click.echo(graph.export("json" if as_json else fmt))

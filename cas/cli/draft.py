"""``cas draft list|commit|discard``: files written below cas://p/s/a/N/ not yet committed."""

from __future__ import annotations

from typing import Any

import click

from cas.cli.common import emit, json_option, open_cli_store, version_dict
from cas.core.units import human_bytes

__all__ = ["draft_group"]


def _draft_fs(ctx: click.Context) -> Any:
    import warnings

    from cas.fs.filesystem import CasFileSystem
    from cas.fs.finish import UncommittedDraftWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncommittedDraftWarning)  # `cas draft list` reports them itself
        return CasFileSystem(store=open_cli_store(ctx), skip_instance_cache=True)


def _draft_path(path: str) -> str:
    return path[len("cas://") :] if path.startswith("cas://") else path


@click.group(name="draft")
def draft_group() -> None:
    """Drafts: files written below cas://p/s/a/N/ that are not a committed version yet.

    \b
    Examples:
      cas draft list
      cas draft commit churn/prep/parts/1
    """


@draft_group.command(name="list")
@json_option
@click.pass_context
def draft_list(ctx: click.Context, as_json: bool) -> None:
    """List open drafts: their files, writers still at work, and why one is not committed.

    \b
    Examples:
      cas draft list
      cas draft list --json
    """
    rows = _draft_fs(ctx).draft_status()
    lines = []
    for r in rows:
        if r["broken"]:
            state = f"not committed: {r['broken']}"
        elif r["writing"]:
            state = "being written by pid " + ", ".join(map(str, r["writing"]))
        else:
            state = "its writers ended without finishing: commit or discard it"
        lines.append(f"{r['path']}  {r['files']} files  {human_bytes(r['size'])}  {state}")
    emit(ctx, as_json, rows, "\n".join(lines) or "(no drafts)")


@draft_group.command(name="commit")
@click.argument("path", metavar="PATH")
@json_option
@click.pass_context
def draft_commit(ctx: click.Context, path: str, as_json: bool) -> None:
    """Commit the drafts at or below PATH (p/s/a/N or a prefix), each as one version.

    \b
    Examples:
      cas draft commit churn/prep/parts/1
      cas draft commit cas://churn/prep --json
    """
    versions = _draft_fs(ctx).commit(_draft_path(path))
    emit(ctx, as_json, [version_dict(v) for v in versions], "\n".join(f"committed {v.ref}" for v in versions))


@draft_group.command(name="discard")
@click.argument("path", metavar="PATH")
@json_option
@click.pass_context
def draft_discard(ctx: click.Context, path: str, as_json: bool) -> None:
    """Drop the drafts at or below PATH; their blobs are left for gc.

    \b
    Examples:
      cas draft discard churn/prep/parts/1
      cas draft discard churn/prep --json
    """
    fs = _draft_fs(ctx)
    dropped = [d for d in fs.drafts() if f"{d}/".startswith(f"{_draft_path(path)}/")]
    fs.discard(_draft_path(path))
    emit(ctx, as_json, dropped, "\n".join(f"discarded {d}" for d in dropped))

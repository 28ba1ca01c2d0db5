"""What every ``cas`` command module shares: exit codes, the store the user named,
``--json`` output and errors, progress bars, and option parsers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from cas.core.digest import ALGORITHM

if TYPE_CHECKING:
    from cas.core.progress import Callback
    from cas.index import VersionRow
    from cas.index.versions import HistoryRow
    from cas.store.facade import Store
    from cas.version import ArtifactVersion

__all__ = [
    "EXIT_ERROR",
    "EXIT_VERIFY_FAILED",
    "EXIT_INTERNAL",
    "EXIT_BROKEN_PIPE",
    "wants_json",
    "json_error",
    "fail",
    "open_cli_store",
    "emit",
    "progress_bar",
    "version_dict",
    "row_dict",
    "created_at",
    "created_second",
    "parse_duration",
    "storage_options",
    "complete_ref",
    "json_option",
]

EXIT_ERROR = 1
EXIT_VERIFY_FAILED = 2
EXIT_INTERNAL = 3
EXIT_BROKEN_PIPE = 141


def wants_json(ctx: click.Context) -> bool:
    return bool((ctx.find_root().obj or {}).get("json"))


def json_error(message: str, kind: str, code: int) -> None:
    """Under --json an error is one JSON object on stderr, with the same exit code."""
    click.echo(json.dumps({"error": message, "type": kind, "exit_code": code}), err=True)


def fail(ctx: click.Context, message: str, kind: str, code: int) -> None:
    """One error line (or JSON object) on stderr, then exit ``code``."""
    if wants_json(ctx):
        json_error(message, kind, code)
    else:
        click.echo(f"cas: error: {message}", err=True)
    ctx.exit(code)


def open_cli_store(ctx: click.Context, create: bool = False, here: bool = False, format: int | None = None) -> Store:
    """The store the user named (a path, URL or remote name), else the nearest
    ``.cas`` at or above the current directory, else ``./.cas`` (``here``: always
    ``./.cas``, as ``cas init`` wants)."""
    from cas.store.config import DEFAULT_DIR, resolve_store
    from cas.store.facade import open_store

    named = ctx.find_root().obj.get("store")
    url, options = (DEFAULT_DIR, {}) if named is None and here else resolve_store(named)
    store = open_store(url, create=create, format=format, **options)
    ctx.call_on_close(store.close)
    return store


def emit(ctx: click.Context, as_json: bool, data: Any, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif text is not None:
        click.echo(text)


@contextmanager
def progress_bar(ctx: click.Context, total: int | None, desc: str, *, as_json: bool = False, **kw: Any) -> Iterator[Callback]:
    """A live bar on stderr (see cas.cli.progress): on a terminal only, never with
    --quiet, not with --json unless --progress asks for it."""
    from cas.cli.progress import progress_bar as bar

    obj = ctx.find_root().obj or {}
    mode = "never" if obj.get("quiet") else "always" if obj.get("progress") else "never" if as_json else None
    with bar(mode, total, desc, **kw) as callback:
        yield callback


def version_dict(v: ArtifactVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "ref": v.ref,
        "digest": str(v.digest),
        "kind": v.kind,
        "size": v.size,
        "created_at": v.created_at.isoformat(),
        "metadata": v.metadata,
        "materializer": v.materializer,
        "run_id": v.run_id,
        "deleted": v.deleted,
    }


def row_dict(row: VersionRow) -> dict[str, Any]:
    """:func:`version_dict` of an index row, without building the version: ``cas log`` and
    ``cas ls`` print thousands of them.  Equal to ``version_dict(ArtifactVersion.from_row(...))``."""
    return {
        "name": row.name,
        "version": row.version,
        "ref": f"{row.name}@{row.version}",
        "digest": f"{ALGORITHM}:{row.digest}",  # index rows hold digests checked when their record was decoded
        "kind": row.kind,
        "size": row.size,
        "created_at": created_at(row),
        "metadata": json.loads(row.metadata),
        "materializer": row.materializer,
        "run_id": row.run_id,
        "deleted": row.deleted_at is not None,
    }


def created_at(row: VersionRow | HistoryRow) -> str:
    """A row's time as :func:`version_dict` prints it (normalised through ``datetime``)."""
    return datetime.fromisoformat(row.created_at).isoformat()


_TO_THE_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", re.ASCII)


def created_second(row: VersionRow | HistoryRow) -> str:
    """``created_at(row)[:19]``, as ``cas log`` prints it: the stored text itself when it already
    starts that way (the record decoder checked that it parses), else normalised."""
    text = row.created_at
    return text[:19] if _TO_THE_SECOND.match(text) else created_at(row)[:19]


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d``, ``1w`` -> seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r} is not a duration like 30m, 12h or 7d")
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return float(m.group(1)) * scale


def storage_options(items: tuple[str, ...], hint: str) -> dict[str, Any]:
    """KEY=VALUE pairs; a VALUE that parses as JSON (numbers, true, {...}) is taken as JSON."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {key or item!r}", param_hint=hint)  # never echo a value
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def complete_ref(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion: artifact names from the index, then @versions and @aliases."""
    from cas.cli.completion import complete_ref as complete

    return complete(ctx, incomplete)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")

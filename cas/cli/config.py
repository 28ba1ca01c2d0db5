"""``cas remote`` and ``cas config``: named remotes in TOML (cas.store.config)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cas.cli.common import emit, storage_options
from cas.store.config import add_remote, find_store, load_config, remove_remote, store_config_path, user_config_path

__all__ = ["remote_group", "config_cmd"]


def _config_file(ctx: click.Context, user: bool) -> Path:
    """The store's config file (the local store in use), or the user's."""
    if not user:
        named = ctx.find_root().obj.get("store")
        if named is None:
            local = find_store()
            if local is not None:
                return store_config_path(local)
        elif "://" not in named or named.startswith("file://"):
            path = Path(named[len("file://"):] if named.startswith("file://") else named)
            if path.is_dir():
                return store_config_path(path)
    return user_config_path()


_user_option = click.option("--user", is_flag=True, help="Use the per-user config file, not the store's.")


@click.group(name="remote")
def remote_group() -> None:
    """Named remotes: `cas sync . team`, `cas --store team ls`.

    \b
    Examples:
      cas remote add team s3://bucket/cas --option endpoint_url=http://127.0.0.1:9000
      cas remote list
    """


@remote_group.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="fsspec storage option (repeatable); never a secret.")
@_user_option
@click.pass_context
def remote_add(ctx: click.Context, name: str, url: str, options: tuple[str, ...], user: bool) -> None:
    """Add (or replace) remote NAME at URL, in the store's config (or --user's).

    \b
    Examples:
      cas remote add team s3://bucket/cas
      cas remote add backup /mnt/nas/cas --user
    """
    path = _config_file(ctx, user)
    add_remote(path, name, url, storage_options(options, "--option"))
    click.echo(f"remote {name} -> {url}  ({path})")


@remote_group.command(name="remove")
@click.argument("name")
@_user_option
@click.pass_context
def remote_remove(ctx: click.Context, name: str, user: bool) -> None:
    """Remove remote NAME from the store's config (or --user's).

    \b
    Examples:
      cas remote remove team
      cas remote remove backup --user
    """
    path = _config_file(ctx, user)
    remove_remote(path, name)
    click.echo(f"removed remote {name}  ({path})")


@remote_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def remote_list(ctx: click.Context, as_json: bool) -> None:
    """The remotes this store and user know, store's first.

    \b
    Examples:
      cas remote list
      cas remote list --json
    """
    remotes = load_config(find_store()).get("remote", {})
    rows = {name: r for name, r in sorted(remotes.items())}
    emit(ctx, as_json, rows, "\n".join(f"{n}  {r.get('url')}" for n, r in rows.items()) or "(no remotes)")


@click.command(name="config")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def config_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show the configuration in effect and the files it comes from.

    \b
    Examples:
      cas config
      cas config --json
    """
    local = find_store()
    files = [str(user_config_path())] + ([str(store_config_path(local))] if local is not None else [])
    data = {"files": files, "store": str(local) if local is not None else None, "config": load_config(local)}
    text = "\n".join([f"# {f}" for f in files] + [json.dumps(data["config"], indent=2, sort_keys=True)])
    emit(ctx, as_json, data, text)

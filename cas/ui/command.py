"""The ``cas ui`` command (click only: the server stack loads when it runs)."""

from __future__ import annotations

import click

__all__ = ["ui_command"]


@click.command(name="ui")
@click.option("--store", "ui_store", default=None, metavar="URL", help="Store to browse (default: cas --store, $CAS_STORE, else ./.cas).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8470, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one; the URL is printed).")
@click.option("--allow-remote", is_flag=True, help="Allow a --host other than this machine (there is no authentication).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--refresh", default=1.0, show_default=True, type=click.FloatRange(min=0), metavar="SECONDS",
    help="Catch up with the backend (others' new versions) at most this often.",
)
@click.pass_context
def ui_command(
    ctx: click.Context, ui_store: str | None, host: str, port: int, allow_remote: bool, open_browser: bool, refresh: float
) -> None:
    """Browse artifacts, versions, lineage and runs in a web page (read-only).

    \b
    Examples:
      cas ui --open
      cas ui --store s3://bucket/cas --port 0
    """
    try:
        from cas.ui.serve import serve
    except ImportError as e:
        raise click.ClickException(f"cas ui needs the ui extra: pip install 'cas-store[ui]' ({e})") from None
    from cas.store.facade import open_store

    store = open_store(ui_store or ctx.find_root().obj.get("store"), create=False)
    ctx.call_on_close(store.close)

    def say(line: str) -> None:
        click.echo(line)

    serve(
        store, host, port, allow_remote=allow_remote, open_browser=open_browser, refresh=refresh,
        say=say, warn=lambda line: click.echo(line, err=True),
    )

"""``cas completion bash|zsh|fish``: click's own shell completion, with artifact
names and ``@versions`` completed from the index."""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

__all__ = ["completion_cmd", "complete_ref"]

SHELLS = ("bash", "zsh", "fish")


def complete_ref(ctx: click.Context, incomplete: str) -> list[Any]:
    """``churn/t`` -> names under it; ``churn/train/model@`` -> its versions and aliases.

    Completion must never fail or create anything: any error offers nothing.
    """
    from cas.store.config import resolve_store
    from cas.store.facade import open_store

    try:
        url, options = resolve_store(ctx.find_root().params.get("store"))
        store = open_store(url, create=False, **options)
    except Exception:
        return []
    try:
        name, at, _ = incomplete.partition("@")
        if at:
            versions = [str(v.version) for v in reversed(store.list_versions(name))]
            offers = [f"{name}@{x}" for x in ["latest", *sorted(store.aliases(name)), *versions]]
            return [CompletionItem(o) for o in offers if o.startswith(incomplete)]
        return [CompletionItem(n) for n in store.list_artifacts(incomplete)]
    except Exception:
        return []
    finally:
        store.close()


@click.command(name="completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_cmd(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    Completes commands, options, artifact names and NAME@versions.

    \b
    Examples:
      eval "$(cas completion bash)"        # in ~/.bashrc
      cas completion zsh > ~/.zfunc/_cas
      cas completion fish > ~/.config/fish/completions/cas.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    root = ctx.find_root()
    click.echo(cls(root.command, {}, root.info_name or "cas", "_CAS_COMPLETE").source())

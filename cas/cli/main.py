"""The ``cas`` command: a thin click layer over :class:`cas.Store`.

Every query command takes ``--json``; every error is one line on stderr and a
non-zero exit, never a traceback.  The commands live in one module per group
(listed in :data:`COMMANDS`) and each is imported only when it runs, so a
quick command does not pay for loading every other one.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import click

from cas.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_VERIFY_FAILED,
    fail,
    json_error,
    wants_json,
)
from cas.core.about import __version__
from cas.errors import CasError

__all__ = ["cli", "main", "COMMANDS", "LazyCommands", "EXIT_ERROR", "EXIT_VERIFY_FAILED"]

#: command name -> "module:attribute" of its click command, imported on first use
COMMANDS = {
    "init": "cas.cli.maintenance:init",
    "put": "cas.cli.content:put",
    "get": "cas.cli.content:get",
    "cat": "cas.cli.content:cat",
    "ls": "cas.cli.content:ls_cmd",
    "log": "cas.cli.versions:log",
    "show": "cas.cli.versions:show",
    "alias": "cas.cli.versions:alias",
    "rm": "cas.cli.versions:rm",
    "verify": "cas.cli.maintenance:verify",
    "gc": "cas.cli.maintenance:gc",
    "stats": "cas.cli.maintenance:stats",
    "reindex": "cas.cli.maintenance:reindex",
    "refresh": "cas.cli.maintenance:refresh",
    "upgrade": "cas.cli.upgrade:upgrade",
    "sync": "cas.cli.sync:sync_cmd",
    "run": "cas.cli.runs:run_group",
    "draft": "cas.cli.draft:draft_group",
    "lineage": "cas.cli.runs:lineage",
    "demo": "cas.cli.demo:demo",
    "diff": "cas.cli.diff:diff_cmd",
    "status": "cas.cli.diff:status_cmd",
    "remote": "cas.cli.config:remote_group",
    "completion": "cas.cli.completion:completion_cmd",
    "config": "cas.cli.config:config_cmd",
    "ui": "cas.ui.command:ui_command",  # click only: the server stack loads when it runs
}


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line (click's own shows usage and a hint over three)."""

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        if self.ctx is not None and wants_json(self.ctx):
            json_error(f"{self.format_message()}{hint}", "UsageError", self.exit_code)
            return
        click.echo(f"cas: error: {self.format_message()}{hint}", err=True)


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's command table (``Group.commands``) that imports a command's module
    the first time the command is looked up: click's lazy-loading pattern, kept as
    the mapping so ``cli.commands[name]`` and ``--help`` work unchanged."""

    def __init__(self, paths: dict[str, str]) -> None:
        self._entries: dict[str, str | click.Command] = dict(paths)

    def __getitem__(self, name: str) -> click.Command:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return entry

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class CasGroup(click.Group):
    """Turns cas errors (and the OS errors they wrap) into one clear line.

    Anything else that escapes a command is a bug in cas, but still gets one
    line and a non-zero exit; ``CAS_DEBUG=1`` shows the traceback instead.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as e:
            raise _one_line(e) from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # --json anywhere before "--" makes errors JSON too, even those raised while
        # the subcommand's own arguments are parsed.
        if "--json" in (args[: args.index("--")] if "--" in args else args):
            ctx.ensure_object(dict)["json"] = True
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.UsageError as e:
            raise _one_line(e) from None
        except click.ClickException:
            raise
        except BrokenPipeError:
            # `cas cat x | head`: the reader left; end quietly as `cat` would (128 + SIGPIPE),
            # and keep Python from complaining when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
        except (CasError, OSError, ValueError, TypeError, KeyError) as e:
            message = str(e) if not isinstance(e, KeyError) or isinstance(e, CasError) else f"not found: {e}"
            fail(ctx, message, type(e).__name__, EXIT_ERROR)
        except Exception as e:
            if os.environ.get("CAS_DEBUG"):
                raise
            if wants_json(ctx):
                json_error(f"internal error: {type(e).__name__}: {e}", "InternalError", EXIT_INTERNAL)
                ctx.exit(EXIT_INTERNAL)
            click.echo(f"cas: internal error: {type(e).__name__}: {e} (set CAS_DEBUG=1 for a traceback)", err=True)
            ctx.exit(EXIT_INTERNAL)


# `cas` alone shows the help (click >= 8.2 raises this usage error for it): keep it whole
_NO_ARGS_IS_HELP: tuple[type, ...] = tuple(filter(None, [getattr(click.exceptions, "NoArgsIsHelpError", None)]))


def _one_line(e: click.UsageError) -> click.UsageError:
    if isinstance(e, (OneLineUsageError, *_NO_ARGS_IS_HELP)):
        return e
    return OneLineUsageError(e.format_message(), e.ctx)


@click.group(cls=CasGroup, commands=LazyCommands(COMMANDS), context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    envvar="CAS_STORE",
    default=None,
    metavar="URL",
    help="Store location: a path or fsspec URL (default: $CAS_STORE, else ./.cas).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("--progress", "show_progress", is_flag=True, help="Progress bars on stderr even when it is not a terminal.")
@click.version_option(__version__, prog_name="cas")
@click.pass_context
def cli(ctx: click.Context, store: str | None, quiet: bool, show_progress: bool) -> None:
    """cas: a content-addressed, versioned artifact store for ML pipelines.

    Names are PIPELINE/STEP/ARTIFACT; a version is written NAME@N, NAME@latest
    or NAME@ALIAS.

    \b
    Examples:
      cas put model.pkl churn/train/model --alias candidate
      cas log churn/train/model
      cas --store team ls churn/
    """
    ctx.ensure_object(dict)
    ctx.obj["store"] = store
    ctx.obj["quiet"] = quiet
    ctx.obj["progress"] = show_progress


def main() -> None:
    cli(prog_name="cas")


if __name__ == "__main__":
    main()

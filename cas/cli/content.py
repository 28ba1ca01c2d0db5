"""``cas put``, ``get``, ``cat`` and ``ls``: content into and out of the store."""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cas.cli.common import complete_ref, emit, json_option, open_cli_store, progress_bar, row_dict, version_dict
from cas.core.names import check_alias, parse_name
from cas.core.units import human_bytes
from cas.errors import DestinationExistsError
from cas.store.stats import new_bytes as stored_only_here

if TYPE_CHECKING:
    from cas.core.progress import Callback
    from cas.version import ArtifactVersion

__all__ = ["put", "get", "cat", "ls_cmd", "download_target", "replace_with_download"]


@click.command()
@click.argument("source", metavar="PATH", type=click.Path())
@click.argument("name", shell_complete=complete_ref)
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Also point ALIAS at the new version (repeatable).")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Attach metadata (repeatable).")
@click.option("--if-changed", is_flag=True, help="Create no version if the content equals the latest version's.")
@click.option("--rehash", is_flag=True, help="Read every file, even one unchanged since this machine last hashed it.")
@json_option
@click.pass_context
def put(
    ctx: click.Context, source: str, name: str, aliases: tuple[str, ...], meta: tuple[str, ...], if_changed: bool,
    rehash: bool, as_json: bool,
) -> None:
    """Save a file or directory (PATH, or - for stdin) as the next version of NAME.

    \b
    Examples:
      cas put model.pkl churn/train/model --alias candidate --meta auc=0.91
      cas put ./data churn/prep/data --if-changed
      tar c logs/ | cas put - churn/train/logs
    """
    metadata = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
        metadata[key] = value
    # Check what can be checked before the store is opened: a failed put creates no store.
    parse_name(name)
    for a in aliases:
        check_alias(a)
    path = Path(source)
    if source != "-" and not path.exists():
        raise FileNotFoundError(f"no such file or directory: {source}")
    store = open_cli_store(ctx, create=True)
    # one indexed MAX, not a version object per stored version (deleted ones count: a new
    # version's number is above them too, and --if-changed returns one at or below it)
    latest_before = store.next_version(name) - 1
    # the command stores what it reads as it is, named: choosing among installed plugins would
    # cost every put the scan of the entry points (importlib.metadata) for no other outcome
    if source == "-":
        with progress_bar(ctx, None, f"saving {name}", as_json=as_json) as progress:
            v = store.save(
                sys.stdin.buffer, name, materializer="bytes", metadata=metadata, aliases=aliases, progress=progress,
                if_changed=if_changed,
            )
    else:
        # A directory's bar gets its total from the walk the save does (Callback.set_size).
        total = None if path.is_dir() else path.stat().st_size
        with progress_bar(ctx, total, f"saving {name}", as_json=as_json) as progress:
            v = store.save(
                path, name, materializer="path", metadata=metadata, aliases=aliases, progress=progress,
                if_changed=if_changed, rehash=rehash,
            )
    unchanged = v.version <= latest_before
    # the bytes only this version's blobs hold (not two sums over the whole store around the save)
    new_bytes = 0 if unchanged else stored_only_here(store.index, v.id)
    data = version_dict(v) | {"new_bytes": new_bytes, "unchanged": unchanged}
    if unchanged:
        emit(ctx, as_json, data, f"{v.ref}  {v.digest.short}  unchanged: no new version")
        return
    emit(ctx, as_json, data, f"{v.ref}  {v.digest.short}  {human_bytes(v.size)}  ({human_bytes(new_bytes)} new)")


@click.command()
@click.argument("ref", metavar="NAME[@VERSION]", shell_complete=complete_ref)
@click.argument("dest", required=False, type=click.Path())
@click.option("--path", "paths", multiple=True, metavar="PATH", help="Only this file or directory inside a tree (repeatable).")
@click.option("--force", is_flag=True, help="Replace a file or directory already at the destination.")
@json_option
@click.pass_context
def get(ctx: click.Context, ref: str, dest: str | None, paths: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Download a version to DEST (default: the artifact name in the current directory).

    A DEST that ends with / or is an existing directory receives the artifact
    inside it, under its artifact name.  Nothing already there is replaced
    unless --force is given.  --path fetches part of a tree, each path at
    its place below DEST.

    \b
    Examples:
      cas get churn/train/model@production ./deploy/
      cas get churn/prep/data@3 ./data --path parts/0.csv --path README
      cas get churn/train/model ./deploy/ --force
    """
    v = open_cli_store(ctx).get_artifact_version(ref)
    selected = v.select(paths) if paths and v.kind == "tree" else None  # a bad --path fails before any write
    target = download_target(dest, v.name.rsplit("/", 1)[-1])
    size = sum(s for _, _, s in selected) if selected is not None else v.size
    count = len(selected) if selected is not None else _file_count(v)
    with progress_bar(ctx, size, f"getting {v.ref}", as_json=as_json, items_total=count) as progress:
        if os.path.lexists(target):
            if not force:
                raise DestinationExistsError(str(target))
            replace_with_download(v, target, progress, paths or None)
        else:
            v.download(target, paths=paths or None, progress=progress)
    emit(ctx, as_json, version_dict(v) | {"path": str(target)}, f"{v.ref} -> {target}")


def download_target(dest: str | None, basename: str) -> Path:
    """Where ``cas get`` writes: DEST itself, or BASENAME inside DEST when DEST is
    omitted, ends with a slash, or is an existing directory (as cp and rsync do)."""
    if dest is None:
        return Path(basename)
    if dest.endswith(("/", os.sep)) or os.path.isdir(dest):
        return Path(dest) / basename
    return Path(dest)


def _file_count(v: ArtifactVersion) -> int | None:
    return len(v.files()) if v.kind == "tree" else None


def replace_with_download(v: ArtifactVersion, target: Path, progress: Callback | None = None, paths: Any = None) -> None:
    """--force: the new content is assembled beside ``target`` and swapped in, so a
    failed download leaves the old one as it was."""
    if v.kind == "blob" and target.is_dir() and not target.is_symlink():
        raise IsADirectoryError(errno.EISDIR, f"{target} is a directory; a file version cannot replace it")
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.cas-", dir=target.parent))
    try:
        fresh = v.download(scratch / "new", paths=paths, progress=progress)
        if target.is_dir() and not target.is_symlink():
            old = scratch / "old"
            os.replace(target, old)
        os.replace(fresh, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@click.command()
@click.argument("ref", metavar="NAME[@VERSION]", shell_complete=complete_ref)
@click.argument("path", required=False)
@click.option("--path", "path_option", default=None, metavar="PATH", help="The file inside a directory version (same as PATH).")
@click.pass_context
def cat(ctx: click.Context, ref: str, path: str | None, path_option: str | None) -> None:
    """Write a version's bytes (or PATH inside a directory version) to stdout.

    \b
    Examples:
      cas cat churn/ingest/raw@1 | head
      cas cat churn/train/model --path metrics.json
    """
    if path is not None and path_option is not None and path != path_option:
        raise click.BadParameter("give the path once: PATH or --path", param_hint="--path")
    path = path if path is not None else path_option
    v = open_cli_store(ctx).get_artifact_version(ref)
    out = sys.stdout.buffer
    size = v.size if path is None else next((s for p, _, s in v.files(path) if p == path), None)
    with progress_bar(ctx, size, f"reading {v.ref}") as progress:
        if size is not None and size <= _VERIFY_FIRST:
            data = v.read_bytes(path)  # verified whole before a byte is written
            _write_all(out, memoryview(data))
            progress.relative_update(len(data))
        else:
            _stream(v, path, out, progress)
    out.flush()


# What cat writes before it is verified (docs/cli.md, "cas cat"): a file of up to this size
# is read and verified whole before its first byte is written; a chunked file (format 2)
# streams chunk by chunk, each chunk verified before any of it is written; only a larger
# whole blob (format 1) streams through a fixed buffer and is verified at its end, since
# holding it would break bounded memory (a mismatch then exits non-zero).
_VERIFY_FIRST = 64 << 20


def _stream(v: ArtifactVersion, path: str | None, out, progress: Callback) -> None:
    for block in v.blocks(path):
        _write_all(out, block)
        progress.relative_update(len(block))


def _write_all(out, view: memoryview) -> None:
    """All of ``view`` or an error: a large ``BufferedWriter.write`` to a pipe whose
    reader left can stop after one partial write without raising (seen with 8 MiB)."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stdout (click's test runner)
        out.write(view)
        return
    out.flush()
    while view:
        view = view[os.write(fd, view) :]  # EPIPE raises BrokenPipeError: `| head` left


@click.command(name="ls")
@click.argument("prefix", default="")
@json_option
@click.pass_context
def ls_cmd(ctx: click.Context, prefix: str, as_json: bool) -> None:
    """List artifacts (optionally under PREFIX) with their latest version.

    \b
    Examples:
      cas ls
      cas ls churn/train/ --json
    """
    # one query for every name's latest version, not a lookup per name
    rows = [row_dict(r) for r in open_cli_store(ctx).versions.latest_rows(prefix)]
    text = "\n".join(f"{r['name']}  v{r['version']}  {r['kind']}  {human_bytes(r['size'])}" for r in rows)
    emit(ctx, as_json, rows, text or "(no artifacts)")

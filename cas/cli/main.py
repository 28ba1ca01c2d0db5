"""The ``cas`` command: a thin click layer over :class:`cas.Store`.

Every query command takes ``--json``; every error is one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from cas import __version__
from cas.cli.completion import completion_cmd
from cas.cli.config import config_cmd, remote_group
from cas.cli.diff import diff_cmd, status_cmd
from cas.core.names import check_alias, parse_name
from cas.core.units import human_bytes
from cas.errors import CasError, DestinationExistsError
from cas.store.facade import DEFAULT_GC_GRACE, Store, open_store
from cas.ui.command import ui_command
from cas.version import ArtifactVersion

EXIT_ERROR = 1
EXIT_VERIFY_FAILED = 2
EXIT_INTERNAL = 3
EXIT_BROKEN_PIPE = 141


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line (click's own shows usage and a hint over three)."""

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        if self.ctx is not None and _wants_json(self.ctx):
            _json_error(f"{self.format_message()}{hint}", "UsageError", self.exit_code)
            return
        click.echo(f"cas: error: {self.format_message()}{hint}", err=True)


def _wants_json(ctx: click.Context) -> bool:
    return bool((ctx.find_root().obj or {}).get("json"))


def _json_error(message: str, kind: str, code: int) -> None:
    """Under --json an error is one JSON object on stderr, with the same exit code."""
    click.echo(json.dumps({"error": message, "type": kind, "exit_code": code}), err=True)


def _error(ctx: click.Context, message: str, kind: str, code: int) -> None:
    if _wants_json(ctx):
        _json_error(message, kind, code)
    else:
        click.echo(f"cas: error: {message}", err=True)
    ctx.exit(code)


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
            _error(ctx, message, type(e).__name__, EXIT_ERROR)
        except Exception as e:
            if os.environ.get("CAS_DEBUG"):
                raise
            if _wants_json(ctx):
                _json_error(f"internal error: {type(e).__name__}: {e}", "InternalError", EXIT_INTERNAL)
                ctx.exit(EXIT_INTERNAL)
            click.echo(f"cas: internal error: {type(e).__name__}: {e} (set CAS_DEBUG=1 for a traceback)", err=True)
            ctx.exit(EXIT_INTERNAL)


# `cas` alone shows the help (click >= 8.2 raises this usage error for it): keep it whole
_NO_ARGS_IS_HELP: tuple[type, ...] = tuple(filter(None, [getattr(click.exceptions, "NoArgsIsHelpError", None)]))


def _one_line(e: click.UsageError) -> click.UsageError:
    if isinstance(e, (OneLineUsageError, *_NO_ARGS_IS_HELP)):
        return e
    return OneLineUsageError(e.format_message(), e.ctx)


def _store(ctx: click.Context, create: bool = False, here: bool = False) -> Store:
    """The store the user named (a path, URL or remote name), else the nearest
    ``.cas`` at or above the current directory, else ``./.cas`` (``here``: always
    ``./.cas``, as ``cas init`` wants)."""
    from cas.store.config import DEFAULT_DIR, resolve_store

    named = ctx.find_root().obj.get("store")
    url, options = (DEFAULT_DIR, {}) if named is None and here else resolve_store(named)
    store = open_store(url, create=create, **options)
    ctx.call_on_close(store.close)
    return store


def _emit(ctx: click.Context, as_json: bool, data: Any, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif text is not None:
        click.echo(text)


@contextmanager
def progress_bar(ctx: click.Context, total: int | None, desc: str, *, as_json: bool = False, **kw: Any) -> Iterator[Any]:
    """A live bar on stderr (see cas.cli.progress): on a terminal only, never with
    --quiet, not with --json unless --progress asks for it."""
    from cas.cli.progress import progress_bar as bar

    obj = ctx.find_root().obj or {}
    mode = "never" if obj.get("quiet") else "always" if obj.get("progress") else "never" if as_json else None
    with bar(mode, total, desc, **kw) as update:
        yield update


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




_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d``, ``1w`` -> seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r} is not a duration like 30m, 12h or 7d")
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return float(m.group(1)) * scale


def complete_ref(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion: artifact names from the index, then @versions and @aliases."""
    from cas.cli.completion import complete_ref as complete

    return complete(ctx, incomplete)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@click.group(cls=CasGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


@cli.command()
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create a store; if one is already there, say so and change nothing.

    \b
    Examples:
      cas init
      cas --store s3://bucket/cas init --json
    """
    from cas.errors import StoreNotFoundError

    try:
        store = _store(ctx, here=True)
        created = False
    except StoreNotFoundError:
        store = _store(ctx, create=True, here=True)
        created = True
    data = {"store": store.url, "store_id": store.store_id, "created": created}
    verb = "initialised cas store at" if created else "a cas store already exists at"
    _emit(ctx, as_json, data, f"{verb} {store.url}")


@cli.command()
@click.argument("source", metavar="PATH", type=click.Path())
@click.argument("name", shell_complete=complete_ref)
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Also point ALIAS at the new version (repeatable).")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Attach metadata (repeatable).")
@click.option("--if-changed", is_flag=True, help="Create no version if the content equals the latest version's.")
@json_option
@click.pass_context
def put(
    ctx: click.Context, source: str, name: str, aliases: tuple[str, ...], meta: tuple[str, ...], if_changed: bool, as_json: bool
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
    store = _store(ctx, create=True)
    before = store.stats().stored_bytes
    latest_before = max((v.version for v in store.list_versions(name)), default=0) if store.list_artifacts(name) else 0
    if source == "-":
        with progress_bar(ctx, None, f"saving {name}", as_json=as_json) as update:
            v = store.save(sys.stdin.buffer, name, metadata=metadata, aliases=aliases, progress=update, if_changed=if_changed)
    else:
        total, count = _local_size(path)
        with progress_bar(ctx, total, f"saving {name}", as_json=as_json, items_total=count) as update:
            v = store.save(path, name, metadata=metadata, aliases=aliases, progress=update, if_changed=if_changed)
    new_bytes = store.stats().stored_bytes - before
    unchanged = v.version <= latest_before
    data = version_dict(v) | {"new_bytes": max(new_bytes, 0), "unchanged": unchanged}
    if unchanged:
        _emit(ctx, as_json, data, f"{v.ref}  {v.digest.short}  unchanged: no new version")
        return
    _emit(ctx, as_json, data, f"{v.ref}  {v.digest.short}  {human_bytes(v.size)}  ({human_bytes(max(new_bytes, 0))} new)")


@cli.command()
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
    v = _store(ctx).get_artifact_version(ref)
    selected = v._selected(paths) if paths and v.kind == "tree" else None  # a bad --path fails before any write
    target = download_target(dest, v.name.rsplit("/", 1)[-1])
    size = sum(s for _, _, s in selected) if selected is not None else v.size
    count = len(selected) if selected is not None else _file_count(v)
    with progress_bar(ctx, size, f"getting {v.ref}", as_json=as_json, items_total=count) as update:
        if os.path.lexists(target):
            if not force:
                raise DestinationExistsError(str(target))
            replace_with_download(v, target, update, paths or None)
        else:
            v.download(target, paths=paths or None, progress=update)
    _emit(ctx, as_json, version_dict(v) | {"path": str(target)}, f"{v.ref} -> {target}")


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


def _local_size(path: Path) -> tuple[int, int | None]:
    """(bytes, files) of what `cas put` is about to read, for its bar."""
    if not path.is_dir():
        return path.stat().st_size, None
    sizes = [p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(sizes), len(sizes)


def replace_with_download(v: ArtifactVersion, target: Path, progress: Any = None, paths: Any = None) -> None:
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


@cli.command()
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
    v = _store(ctx).get_artifact_version(ref)
    out = sys.stdout.buffer
    size = v.size if path is None else next((s for p, _, s in v.files(path) if p == path), None)
    with v.open(path) as f, progress_bar(ctx, size, f"reading {v.ref}") as update:
        while block := f.read(1 << 20):
            out.write(block)
            update(len(block))
    out.flush()


@cli.command(name="ls")
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
    store = _store(ctx)
    rows = []
    for name in store.list_artifacts(prefix):
        v = store.get_artifact_version(name)
        rows.append(version_dict(v))
    text = "\n".join(f"{r['name']}  v{r['version']}  {r['kind']}  {human_bytes(r['size'])}" for r in rows)
    _emit(ctx, as_json, rows, text or "(no artifacts)")


@cli.command()
@click.argument("name", shell_complete=complete_ref)
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted versions.")
@json_option
@click.pass_context
def log(ctx: click.Context, name: str, include_deleted: bool, as_json: bool) -> None:
    """Show the versions of NAME, newest first.

    \b
    Examples:
      cas log churn/train/model
      cas log churn/train/model --all --json
    """
    store = _store(ctx)
    versions = store.list_versions(name, include_deleted=include_deleted)
    aliases = store.aliases(name)
    by_version: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(number, []).append(alias)
    rows = [version_dict(v) | {"aliases": sorted(by_version.get(v.version, []))} for v in reversed(versions)]
    lines = []
    for r in rows:
        tags = ", ".join(r["aliases"]) + (" deleted" if r["deleted"] else "")
        lines.append(
            f"{r['ref']}  {r['digest'][7:19]}  {r['kind']}  {human_bytes(r['size'])}  {r['created_at'][:19]}"
            + (f"  ({tags.strip()})" if tags.strip() else "")
        )
    _emit(ctx, as_json, rows, "\n".join(lines))


@cli.command()
@click.argument("ref", metavar="NAME[@VERSION]", shell_complete=complete_ref)
@json_option
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show one version: digest, size, metadata, and the files of a directory.

    \b
    Examples:
      cas show churn/train/model@production
      cas show churn/prep/data@3 --json
    """
    v = _store(ctx).get_artifact_version(ref)
    data = version_dict(v)
    if v.kind == "tree":
        data["files"] = [{"path": p, "digest": str(d), "size": s} for p, d, s in v.files()]
    lines = [f"{k}: {data[k]}" for k in ("ref", "digest", "kind", "size", "created_at")]
    if v.metadata:
        lines.append("metadata: " + json.dumps(v.metadata, sort_keys=True))
    for f in data.get("files", []):
        lines.append(f"  {f['path']}  {f['digest'][7:19]}  {human_bytes(f['size'])}")
    _emit(ctx, as_json, data, "\n".join(lines))


@cli.command()
@click.argument("ref", metavar="NAME@VERSION", shell_complete=complete_ref)
@click.argument("alias")
@click.option("--delete", "delete", is_flag=True, help="Remove ALIAS from the artifact NAME instead.")
@json_option
@click.pass_context
def alias(ctx: click.Context, ref: str, alias: str, delete: bool, as_json: bool) -> None:
    """Point ALIAS (e.g. production) at a version of an artifact, or --delete it.

    \b
    Examples:
      cas alias churn/train/model@3 production
      cas alias --delete churn/train/model candidate
    """
    if delete:
        name = ref.split("@", 1)[0]
        was = _store(ctx).delete_alias(name, alias)
        data = {"name": name, "alias": alias, "version": None, "was": was, "deleted": True}
        _emit(ctx, as_json, data, f"removed {name}@{alias} (was {was})")
        return
    v = _store(ctx).set_alias(ref, None, alias)
    _emit(ctx, as_json, {"name": v.name, "alias": alias, "version": v.version}, f"{v.name}@{alias} -> {v.version}")


@cli.command()
@click.argument("ref", metavar="NAME@VERSION | NAME-OR-PREFIX", shell_complete=complete_ref)
@click.option("--keep-last", type=click.IntRange(min=0), default=None, metavar="N", help="Keep the N newest versions of each name.")
@click.option("--older-than", default=None, metavar="DURATION", help="Delete only versions older than this (30m, 12h, 30d).")
@click.option("--keep-alias/--no-keep-alias", default=True, show_default=True, help="Keep versions an alias points at.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@json_option
@click.pass_context
def rm(
    ctx: click.Context, ref: str, keep_last: int | None, older_than: str | None, keep_alias: bool, dry_run: bool, as_json: bool
) -> None:
    """Delete a version, or apply a retention rule to a name or prefix (recorded; bytes go only with `cas gc`).

    \b
    Examples:
      cas rm churn/train/model@1
      cas rm churn/ --keep-last 5 --dry-run
      cas rm churn/train/model --older-than 30d --no-keep-alias
    """
    from cas.store.retention import names_matching, select_expired

    rule = keep_last is not None or older_than is not None
    if "@" not in ref and not rule:
        raise click.BadParameter("name the version to delete (NAME@VERSION), or give --keep-last/--older-than", param_hint="REF")
    if "@" in ref and rule:
        raise click.BadParameter("a retention rule takes a name or prefix, not NAME@VERSION", param_hint="REF")
    store = _store(ctx)
    if not rule:
        targets = [store.get_artifact_version(ref)]
    else:
        age = parse_duration(older_than) if older_than is not None else None
        names = names_matching(store, ref)
        if not names:
            raise click.BadParameter(f"no artifact named or under {ref!r}", param_hint="REF")
        targets = select_expired(store, names, keep_last=keep_last, older_than=age, keep_aliased=keep_alias)
    if not dry_run:
        for v in targets:
            store.delete_version(v.name, v.version)
    if not rule and not dry_run:
        v = targets[0]
        _emit(ctx, as_json, {"name": v.name, "version": v.version, "deleted": True}, f"deleted {v.ref}")
        return
    verb = "would delete" if dry_run else "deleted"
    data = {"deleted": [v.ref for v in targets], "dry_run": dry_run}
    _emit(ctx, as_json, data, "\n".join(f"{verb} {v.ref}" for v in targets) or "nothing to delete")


@cli.command()
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
    store = _store(ctx)
    # no total: --deep rehashes every stored blob, which the index's byte counts do not cover
    with progress_bar(ctx, None, "verifying", as_json=as_json, item_unit="blobs", count_bytes=deep) as update:
        report = store.verify(deep=deep, progress=update)
    counted = "stored" if deep else "needed"
    data = {"ok": report.ok, "checked": report.checked, "blobs_counted": counted, "missing": report.missing,
            "corrupt": report.corrupt, "foreign": report.foreign, "invalid": report.invalid,
            "orphans": report.orphans, "dangling": report.dangling}
    lines = [f"rehashed {report.checked} stored blobs (deep)" if deep else f"checked {report.checked} needed blobs"]
    lines += [f"missing  {d}" for d in report.missing] + [f"corrupt  {d}" for d in report.corrupt]
    lines += [f"foreign  {p}" for p in report.foreign] + [f"invalid  {text}" for text in report.invalid]
    lines += [f"dangling {r}" for r in report.dangling] + [f"orphan   {r} (journalled now)" for r in report.orphans]
    lines.append("ok" if report.ok else "PROBLEMS FOUND")
    _emit(ctx, as_json, data, "\n".join(lines))
    if not report.ok:
        ctx.exit(EXIT_VERIFY_FAILED)


@cli.command()
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
    report = _store(ctx).gc(grace=parse_duration(grace), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    data = {"removed": report.removed, "removed_bytes": report.removed_bytes, "kept": report.kept, "dry_run": dry_run,
            "blobs_counted": "stored"}
    _emit(ctx, as_json, data, f"{verb} {report.removed} blobs ({human_bytes(report.removed_bytes)}), kept {report.kept} (stored blobs)")


@cli.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Logical bytes, stored bytes and the dedupe ratio.

    \b
    Examples:
      cas stats
      cas --store s3://bucket/cas stats --json
    """
    s = _store(ctx).stats()
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
    _emit(ctx, as_json, data, text)


@cli.command()
@json_option
@click.pass_context
def reindex(ctx: click.Context, as_json: bool) -> None:
    """Rebuild the index from the records in the backend.

    \b
    Examples:
      cas reindex
      cas --store team reindex --json
    """
    store = _store(ctx)
    with progress_bar(ctx, None, "reindexing", as_json=as_json, item_unit="refs", count_bytes=False) as update:
        n = store.reindex(progress=update)
    _emit(ctx, as_json, {"refs": n}, f"reindexed {n} refs from {store.url}")


@cli.command()
@json_option
@click.pass_context
def refresh(ctx: click.Context, as_json: bool) -> None:
    """Catch up with what other machines wrote to the same backend.

    \b
    Examples:
      cas refresh
      cas --store team refresh --json
    """
    store = _store(ctx)
    n = store.refresh()
    _emit(ctx, as_json, {"applied": n}, f"{n} new records")


# -- sync: copy between stores (cas.store.sync) ------------------------------------------------


def _storage_options(items: tuple[str, ...], hint: str) -> dict[str, Any]:
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


@cli.command(name="sync")
@click.argument("src")
@click.argument("dst")
@click.argument("names", nargs=-1, metavar="[NAME-PATTERN]...")
@click.option("--dry-run", is_flag=True, help="Report what would be sent; send nothing.")
@click.option("-j", "--jobs", default=8, show_default=True, type=click.IntRange(1, 64), help="Parallel transfers.")
@click.option("--src-option", "src_options", multiple=True, metavar="KEY=VALUE", help="fsspec storage option for SRC (repeatable).")
@click.option("--dst-option", "dst_options", multiple=True, metavar="KEY=VALUE", help="fsspec storage option for DST (repeatable).")
@json_option
@click.pass_context
def sync_cmd(
    ctx: click.Context,
    src: str,
    dst: str,
    names: tuple[str, ...],
    dry_run: bool,
    jobs: int,
    src_options: tuple[str, ...],
    dst_options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Copy versions, aliases and lineage from SRC to DST, sending only the blobs DST lacks.

    SRC and DST are store paths or fsspec URLs (./.cas, s3://bucket/cas,
    gs://..., az://container/cas).  NAME-PATTERNs (globs or prefixes such as
    'churn/train/*' or 'churn') limit what is copied.  Safe to interrupt and
    rerun.  Credentials come from each cloud's usual environment variables,
    FSSPEC_<PROTOCOL>_<KEY> variables, or --src-option/--dst-option.
    Exits 1 if some artifact's history differs in DST (nothing of it is copied).

    \b
    Examples:
      cas sync ./.cas s3://bucket/cas 'churn/*'
      cas sync . team --dry-run --json
      cas sync team ./.cas
    """
    import uuid

    from cas.errors import StoreNotFoundError
    from cas.store.sync import status, transfer
    from cas.store.sync import sync as run_sync

    src, src_config = _sync_end(ctx, src)
    dst, dst_config = _sync_end(ctx, dst)
    source = open_store(src, create=False, **(src_config | _storage_options(src_options, "--src-option")))
    ctx.call_on_close(source.close)
    try:
        target = open_store(dst, create=not dry_run, **(dst_config | _storage_options(dst_options, "--dst-option")))
        target_url = target.url
    except StoreNotFoundError:
        # --dry-run writes nothing, not even a new store's format file: compare against an empty one.
        target = open_store(f"memory://cas-dry-run-{uuid.uuid4().hex}")
        target_url = _shown_url(dst)
    ctx.call_on_close(target.close)
    if dry_run:
        result = run_sync(source, target, names, jobs=jobs, dry_run=True)
    else:
        plan = status(source, target, names, jobs=jobs)
        with progress_bar(ctx, plan.bytes_missing, "syncing", as_json=as_json, items_total=len(plan.blobs), item_unit="blobs") as update:
            result = transfer(source, target, plan, jobs=jobs, progress=update)
    verb = "would send" if dry_run else "sent"
    text = (
        f"{verb} {result.blobs_sent} blobs ({human_bytes(result.bytes_sent)}), "
        f"skipped {result.blobs_skipped} already there ({human_bytes(result.bytes_skipped)}); "
        f"{verb} {result.refs_sent} refs, {result.refs_skipped} already there"
    )
    _emit(ctx, as_json, result.as_dict() | {"src": source.url, "dst": target_url}, text)
    if result.conflicts:
        _error(
            ctx,
            f"{len(result.conflicts)} artifact(s) have a different history in {target_url} "
            f"and were not copied: {', '.join(result.conflicts)}",
            "SyncConflict",
            EXIT_ERROR,
        )


def _sync_end(ctx: click.Context, arg: str) -> tuple[str, dict[str, Any]]:
    """A sync end: "." is the store cas would use here; a remote's name is its URL."""
    from cas.store.config import resolve_store

    if arg == ".":
        return resolve_store(ctx.find_root().obj.get("store"))
    return resolve_store(arg)


def _shown_url(url: str) -> str:
    """The URL a store at ``url`` would report, without opening it (nothing is created)."""
    from cas.backends.secrets import redact_url

    if "://" not in url or url.startswith("file://"):
        path = url[len("file://") :] if url.startswith("file://") else url
        return "file://" + os.path.abspath(os.path.expanduser(path))
    return redact_url(url)


# -- runs, lineage and the demo (cas.lineage.record, cas.lineage, cas.cli.demo) ------------------------


def _run_line(r: Any) -> str:
    duration = f"{r.duration:.2f}s" if r.duration is not None else "-"
    started = r.started_at.isoformat(timespec="seconds") if r.started_at else "-"
    return f"{r.id}  {r.pipeline:<16} {r.status:<9}  {len(r.steps):>2} steps  {duration:>8}  {started}"


@cli.group(name="run")
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
    runs = _store(ctx).list_runs(pipeline, status=status, limit=limit)
    _emit(ctx, as_json, [r.to_dict() for r in runs], "\n".join(_run_line(r) for r in runs) or "(no runs)")


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
    r = _store(ctx).get_run(run_id)
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
    _emit(ctx, as_json, r.to_dict(), "\n".join(lines))


def _draft_fs(ctx: click.Context) -> Any:
    import warnings

    from cas.fs.filesystem import CasFileSystem
    from cas.fs.finish import UncommittedDraftWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncommittedDraftWarning)  # `cas draft list` reports them itself
        return CasFileSystem(store=_store(ctx), skip_instance_cache=True)


def _draft_path(path: str) -> str:
    return path[len("cas://") :] if path.startswith("cas://") else path


@cli.group(name="draft")
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
    _emit(ctx, as_json, rows, "\n".join(lines) or "(no drafts)")


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
    _emit(ctx, as_json, [version_dict(v) for v in versions], "\n".join(f"committed {v.ref}" for v in versions))


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
    _emit(ctx, as_json, dropped, "\n".join(f"discarded {d}" for d in dropped))


@cli.command()
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
    graph = _store(ctx).lineage(ref, "down" if down else "up", depth)
    click.echo(graph.export("json" if as_json else fmt))


@cli.command()
@click.option(
    "--store",
    "demo_store",
    default=None,
    metavar="URL",
    help="Store to run the demo in (default: a fresh temporary directory, kept afterwards).",
)
@click.pass_context
def demo(ctx: click.Context, demo_store: str | None) -> None:
    """Run a small pipeline twice and show versions, dedupe, lineage and runs.

    \b
    Examples:
      cas demo
      cas demo --store /tmp/cas-demo
    """
    import tempfile

    from cas.cli.demo import run_demo

    root = ctx.find_root()
    if demo_store is None and root.get_parameter_source("store") == click.core.ParameterSource.COMMANDLINE:
        demo_store = root.params.get("store")  # `cas --store X demo` is as explicit as `cas demo --store X`
    location = demo_store or tempfile.mkdtemp(prefix="cas-demo-")
    store = open_store(location, create=True)
    ctx.call_on_close(store.close)
    click.echo(f"cas demo: store at {store.url}\n")
    run_demo(store, say=click.echo)
    click.echo(f"\nexplore it:  cas --store {location} lineage churn/train/model --format mermaid")


cli.add_command(diff_cmd)
cli.add_command(status_cmd)
cli.add_command(remote_group)
cli.add_command(completion_cmd)
cli.add_command(config_cmd)
cli.add_command(ui_command)  # cas/ui/command.py; the server stack loads only when it runs


def main() -> None:
    cli(prog_name="cas")


if __name__ == "__main__":
    main()

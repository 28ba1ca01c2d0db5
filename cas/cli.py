"""The ``cas`` command: a thin click layer over :class:`cas.Store`.

Every query command takes ``--json``; every error is one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import CasError
from .store import DEFAULT_GC_GRACE, Store, open_store
from .ui.command import ui_command
from .units import human_bytes
from .version import ArtifactVersion

EXIT_ERROR = 1
EXIT_VERIFY_FAILED = 2
EXIT_INTERNAL = 3
EXIT_BROKEN_PIPE = 141


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line (click's own shows usage and a hint over three)."""

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"cas: error: {self.format_message()}{hint}", err=True)


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
            click.echo(f"cas: error: {message}", err=True)
            ctx.exit(EXIT_ERROR)
        except Exception as e:
            if os.environ.get("CAS_DEBUG"):
                raise
            click.echo(f"cas: internal error: {type(e).__name__}: {e} (set CAS_DEBUG=1 for a traceback)", err=True)
            ctx.exit(EXIT_INTERNAL)


# `cas` alone shows the help (click >= 8.2 raises this usage error for it): keep it whole
_NO_ARGS_IS_HELP: tuple[type, ...] = tuple(filter(None, [getattr(click.exceptions, "NoArgsIsHelpError", None)]))


def _one_line(e: click.UsageError) -> click.UsageError:
    if isinstance(e, (OneLineUsageError, *_NO_ARGS_IS_HELP)):
        return e
    return OneLineUsageError(e.format_message(), e.ctx)


def _store(ctx: click.Context, create: bool = False) -> Store:
    url = ctx.obj.get("store")
    store = open_store(url, create=create)
    ctx.call_on_close(store.close)
    return store


def _emit(ctx: click.Context, as_json: bool, data: Any, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif text is not None:
        click.echo(text)


@contextmanager
def progress_bar(total: int | None, desc: str, unit: str = "B", quiet: bool = False) -> Iterator[Any]:
    """A tqdm bar on stderr; silent when stderr is not a terminal or output is --json."""
    from tqdm import tqdm

    disable = True if quiet else None  # None: tqdm hides itself when not a tty
    with tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", disable=disable, file=sys.stderr, leave=False) as bar:
        yield bar.update


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


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@click.group(cls=CasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    envvar="CAS_STORE",
    default=None,
    metavar="URL",
    help="Store location: a path or fsspec URL (default: $CAS_STORE, else ./.cas).",
)
@click.version_option(__version__, prog_name="cas")
@click.pass_context
def cli(ctx: click.Context, store: str | None) -> None:
    """cas: a content-addressed, versioned artifact store for ML pipelines.

    Names are PIPELINE/STEP/ARTIFACT; a version is written NAME@N, NAME@latest
    or NAME@ALIAS.
    """
    ctx.ensure_object(dict)
    ctx.obj["store"] = store


@cli.command()
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create a store (nothing happens if one is already there)."""
    store = _store(ctx, create=True)
    _emit(ctx, as_json, {"store": store.url, "store_id": store.store_id}, f"initialised cas store at {store.url}")


@cli.command()
@click.argument("source", metavar="PATH")
@click.argument("name")
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Also point ALIAS at the new version (repeatable).")
@click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="Attach metadata (repeatable).")
@json_option
@click.pass_context
def put(ctx: click.Context, source: str, name: str, aliases: tuple[str, ...], meta: tuple[str, ...], as_json: bool) -> None:
    """Save a file or directory (PATH, or - for stdin) as the next version of NAME."""
    metadata = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
        metadata[key] = value
    store = _store(ctx, create=True)
    before = store.stats().stored_bytes
    if source == "-":
        v = store.save(sys.stdin.buffer, name, metadata=metadata, aliases=aliases)
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {source}")
        total = sum(1 for _ in path.rglob("*") if _.is_file()) if path.is_dir() else path.stat().st_size
        with progress_bar(total, f"saving {name}", "file" if path.is_dir() else "B", quiet=as_json) as update:
            v = store.save(path, name, metadata=metadata, aliases=aliases, progress=update)
    new_bytes = store.stats().stored_bytes - before
    data = version_dict(v) | {"new_bytes": max(new_bytes, 0)}
    _emit(ctx, as_json, data, f"{v.ref}  {v.digest.short}  {human_bytes(v.size)}  ({human_bytes(max(new_bytes, 0))} new)")


@cli.command()
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("dest", required=False, type=click.Path())
@json_option
@click.pass_context
def get(ctx: click.Context, ref: str, dest: str | None, as_json: bool) -> None:
    """Download a version to DEST (default: the artifact name in the current directory)."""
    v = _store(ctx).get_artifact_version(ref)
    target = v.download(dest or ".")
    _emit(ctx, as_json, version_dict(v) | {"path": str(target)}, f"{v.ref} -> {target}")


@cli.command()
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("path", required=False)
@click.pass_context
def cat(ctx: click.Context, ref: str, path: str | None) -> None:
    """Write a version's bytes (or PATH inside a directory version) to stdout."""
    v = _store(ctx).get_artifact_version(ref)
    out = sys.stdout.buffer
    with v.open(path) as f:
        while block := f.read(1 << 20):
            out.write(block)
    out.flush()


@cli.command(name="ls")
@click.argument("prefix", default="")
@json_option
@click.pass_context
def ls_cmd(ctx: click.Context, prefix: str, as_json: bool) -> None:
    """List artifacts (optionally under PREFIX) with their latest version."""
    store = _store(ctx)
    rows = []
    for name in store.list_artifacts(prefix):
        v = store.get_artifact_version(name)
        rows.append(version_dict(v))
    text = "\n".join(f"{r['name']}  v{r['version']}  {r['kind']}  {human_bytes(r['size'])}" for r in rows)
    _emit(ctx, as_json, rows, text or "(no artifacts)")


@cli.command()
@click.argument("name")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted versions.")
@json_option
@click.pass_context
def log(ctx: click.Context, name: str, include_deleted: bool, as_json: bool) -> None:
    """Show the versions of NAME, newest first."""
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
@click.argument("ref", metavar="NAME[@VERSION]")
@json_option
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show one version: digest, size, metadata, and the files of a directory."""
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
@click.argument("ref", metavar="NAME@VERSION")
@click.argument("alias")
@json_option
@click.pass_context
def alias(ctx: click.Context, ref: str, alias: str, as_json: bool) -> None:
    """Point ALIAS (e.g. production) at a version of an artifact."""
    v = _store(ctx).set_alias(ref, None, alias)
    _emit(ctx, as_json, {"name": v.name, "alias": alias, "version": v.version}, f"{v.name}@{alias} -> {v.version}")


@cli.command()
@click.argument("ref", metavar="NAME@VERSION")
@json_option
@click.pass_context
def rm(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Delete a version (recorded; its bytes go only with `cas gc`)."""
    if "@" not in ref:
        raise click.BadParameter("name the version to delete: NAME@VERSION", param_hint="REF")
    v = _store(ctx).delete_version(ref, None)
    _emit(ctx, as_json, {"name": v.name, "version": v.version, "deleted": True}, f"deleted {v.ref}")


@cli.command()
@click.option("--deep", is_flag=True, help="Rehash every blob (reads all bytes).")
@json_option
@click.pass_context
def verify(ctx: click.Context, deep: bool, as_json: bool) -> None:
    """Check the store: missing, corrupt, truncated and foreign blobs.  Exit 2 if any."""
    store = _store(ctx)
    with progress_bar(None, "verifying", quiet=as_json) as update:
        report = store.verify(deep=deep, progress=update)
    data = {"ok": report.ok, "checked": report.checked, "missing": report.missing, "corrupt": report.corrupt, "foreign": report.foreign}
    data.update(orphans=report.orphans, dangling=report.dangling)
    lines = [f"checked {report.checked} blobs" + (" (deep)" if deep else "")]
    lines += [f"missing  {d}" for d in report.missing] + [f"corrupt  {d}" for d in report.corrupt]
    lines += [f"foreign  {p}" for p in report.foreign]
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
    """Remove blobs that no live version needs."""
    report = _store(ctx).gc(grace=parse_duration(grace), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    data = {"removed": report.removed, "removed_bytes": report.removed_bytes, "kept": report.kept, "dry_run": dry_run}
    _emit(ctx, as_json, data, f"{verb} {report.removed} blobs ({human_bytes(report.removed_bytes)}), kept {report.kept}")


@cli.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Logical bytes, stored bytes and the dedupe ratio."""
    s = _store(ctx).stats()
    data = {
        "artifacts": s.artifacts,
        "versions": s.versions,
        "blobs": s.blobs,
        "logical_bytes": s.logical_bytes,
        "stored_bytes": s.stored_bytes,
        "dedupe_ratio": round(s.dedupe_ratio, 3),
    }
    text = (
        f"artifacts {s.artifacts}, versions {s.versions}, blobs {s.blobs}\n"
        f"logical {human_bytes(s.logical_bytes)}, stored {human_bytes(s.stored_bytes)}, dedupe {s.dedupe_ratio:.2f}x"
    )
    _emit(ctx, as_json, data, text)


@cli.command()
@json_option
@click.pass_context
def reindex(ctx: click.Context, as_json: bool) -> None:
    """Rebuild the index from the records in the backend."""
    store = _store(ctx)
    with progress_bar(None, "reindexing", "ref", quiet=as_json) as update:
        n = store.reindex(progress=update)
    _emit(ctx, as_json, {"refs": n}, f"reindexed {n} refs from {store.url}")


@cli.command()
@json_option
@click.pass_context
def refresh(ctx: click.Context, as_json: bool) -> None:
    """Catch up with what other machines wrote to the same backend."""
    store = _store(ctx)
    n = store.refresh()
    _emit(ctx, as_json, {"applied": n}, f"{n} new records")


# -- sync: copy between stores (cas.sync) ------------------------------------------------


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
    """
    import uuid

    from .errors import StoreNotFoundError
    from .sync import status, transfer
    from .sync import sync as run_sync

    source = open_store(src, create=False, **_storage_options(src_options, "--src-option"))
    ctx.call_on_close(source.close)
    try:
        target = open_store(dst, create=not dry_run, **_storage_options(dst_options, "--dst-option"))
    except StoreNotFoundError:
        # --dry-run writes nothing, not even a new store's format file: compare against an empty one.
        target = open_store(f"memory://cas-dry-run-{uuid.uuid4().hex}")
    ctx.call_on_close(target.close)
    if dry_run:
        result = run_sync(source, target, names, jobs=jobs, dry_run=True)
    else:
        plan = status(source, target, names, jobs=jobs)
        with progress_bar(plan.bytes_missing, "syncing", quiet=as_json) as update:
            result = transfer(source, target, plan, jobs=jobs, progress=update)
    verb = "would send" if dry_run else "sent"
    text = (
        f"{verb} {result.blobs_sent} blobs ({human_bytes(result.bytes_sent)}), "
        f"skipped {result.blobs_skipped} already there ({human_bytes(result.bytes_skipped)}); "
        f"{verb} {result.refs_sent} refs, {result.refs_skipped} already there"
    )
    _emit(ctx, as_json, result.as_dict() | {"src": source.url, "dst": target.url}, text)
    if result.conflicts:
        click.echo(
            f"cas: error: {len(result.conflicts)} artifact(s) have a different history in {target.url} "
            f"and were not copied: {', '.join(result.conflicts)}",
            err=True,
        )
        ctx.exit(EXIT_ERROR)


# -- runs, lineage and the demo (cas.runs, cas.lineage, cas.demo) ------------------------


def _run_line(r: Any) -> str:
    duration = f"{r.duration:.2f}s" if r.duration is not None else "-"
    started = r.started_at.isoformat(timespec="seconds") if r.started_at else "-"
    return f"{r.id}  {r.pipeline:<16} {r.status:<9}  {len(r.steps):>2} steps  {duration:>8}  {started}"


@cli.group(name="run")
def run_group() -> None:
    """Pipeline runs: each step, what it consumed and what it produced."""


@run_group.command(name="list")
@click.option("--pipeline", default=None, metavar="NAME", help="Only runs of this pipeline.")
@click.option(
    "--status", type=click.Choice(["running", "completed", "failed", "cancelled"]), default=None, help="Only runs with this status."
)
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Show at most this many runs.")
@json_option
@click.pass_context
def run_list(ctx: click.Context, pipeline: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    runs = _store(ctx).list_runs(pipeline, status=status, limit=limit)
    _emit(ctx, as_json, [r.to_dict() for r in runs], "\n".join(_run_line(r) for r in runs) or "(no runs)")


@run_group.command(name="show")
@click.argument("run_id")
@json_option
@click.pass_context
def run_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run: its params and each step's status, inputs and outputs."""
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


@cli.command()
@click.argument("ref", metavar="NAME[@VERSION]")
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
    """Trace a version's lineage: up to its inputs, or --down to what was derived from it."""
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
    """Run a small pipeline twice and show versions, dedupe, lineage and runs."""
    import tempfile

    from .demo import run_demo

    root = ctx.find_root()
    if demo_store is None and root.get_parameter_source("store") == click.core.ParameterSource.COMMANDLINE:
        demo_store = root.params.get("store")  # `cas --store X demo` is as explicit as `cas demo --store X`
    location = demo_store or tempfile.mkdtemp(prefix="cas-demo-")
    store = open_store(location, create=True)
    ctx.call_on_close(store.close)
    click.echo(f"cas demo: store at {store.url}\n")
    run_demo(store, say=click.echo)
    click.echo(f"\nexplore it:  cas --store {location} lineage churn/train/model --format mermaid")


cli.add_command(ui_command)  # cas/ui/command.py; the server stack loads only when it runs


def main() -> None:
    cli(prog_name="cas")


if __name__ == "__main__":
    main()

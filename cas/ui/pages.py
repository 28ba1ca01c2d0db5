"""What each page shows, built from the public Store API.

Each page function takes the store, the route's path parameters and the query
string, and returns a :class:`Page` (a template and its context), a
:class:`Stream` (verified content) or a redirect.  Nothing here writes.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.responses import RedirectResponse

from cas.backends.base import redact_url
from cas.core.names import parse_name, parse_version
from cas.core.tree import check_tree_path
from cas.errors import InvalidNameError, RunError, VersionDeletedError
from cas.store.diff import diff_files, side_of_version
from cas.store.facade import Store
from cas.ui import content, graph
from cas.ui.content import Stream
from cas.version import TREE, ArtifactVersion

__all__ = ["Page", "Stream", "url", "when", "store_label", "forget"]

PAGE_SIZE = 100  # rows per page of artifacts or versions
RUNS_LIMIT = 100
DEFAULT_DEPTH = 3
MAX_DEPTH = 1000
MAX_NODES = 1500  # past this the lineage picture is drawn at a smaller depth


@dataclass
class Page:
    template: str
    context: dict[str, Any]


# -- links (one place builds every URL the pages show) -----------------------------------


def url(kind: str, *args: Any, **query: Any) -> str:
    if kind == "artifacts":
        path = "/"
    elif kind == "versions":
        path = f"/a/{args[0]}"
    elif kind == "version":
        path = f"/v/{args[0]}/{args[1]}"
    elif kind in ("files", "raw"):
        path = f"/v/{args[0]}/{args[1]}/{kind}"
        if len(args) > 2 and args[2]:
            path += "/" + quote(args[2], safe="/")
    elif kind == "lineage":
        path = f"/v/{args[0]}/{args[1]}/lineage"
    elif kind == "diff":
        path = f"/diff/{args[0]}"
    elif kind == "runs":
        path = "/runs"
    elif kind == "run":
        path = f"/runs/{quote(args[0], safe='')}"
    else:
        raise ValueError(f"no page {kind!r}")
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return path + ("?" + urlencode(query) if query else "")


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def store_label(store: Store) -> str:
    return redact_url(store.url)


# -- helpers ----------------------------------------------------------------------------


def _name(params: Mapping[str, str]) -> str:
    return str(parse_name(f"{params['pipeline']}/{params['step']}/{params['artifact']}"))


def _version(store: Store, name: str, spec: str) -> ArtifactVersion:
    """The version ``spec`` names; a deleted one too (shown greyed, its bytes may be gone)."""
    number = parse_version(int(spec) if spec.isdigit() else spec)
    try:
        return store.get_artifact_version(name, number)
    except VersionDeletedError as e:
        for v in store.list_versions(name, include_deleted=True):
            if v.version == e.version:
                return v
        raise


def _canonical(
    store: Store, params: Mapping[str, str], query: Any, kind: str, *extra: str
) -> tuple[ArtifactVersion, Any]:
    """Resolve the version; an alias or ``latest`` redirects to the numbered URL (stable to share)."""
    name = _name(params)
    v = _version(store, name, params["version"])
    if params["version"] != str(v.version):
        target = url(kind, name, v.version, *extra)
        if query:
            target += "?" + urlencode(list(query.multi_items()))
        return v, RedirectResponse(target, status_code=307)
    return v, None


def _int(query: Mapping[str, str], key: str, default: int, low: int = 1, high: int | None = None) -> int:
    text = query.get(key)
    if text in (None, ""):
        return default
    if not text.isdigit():
        raise InvalidNameError(f"{key} must be a number, not {text!r}")
    value = int(text)
    if value < low or (high is not None and value > high):
        raise InvalidNameError(f"{key} must be between {low} and {high}" if high else f"{key} must be >= {low}")
    return value


def _pages(total: int, page: int) -> dict[str, int]:
    last = max(1, -(-total // PAGE_SIZE))
    if page > last:
        raise InvalidNameError(f"page {page} is past the last page ({last})")
    return {"page": page, "last": last, "total": total}


def _aliases_by_version(store: Store, name: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for alias, number in store.aliases(name).items():
        out.setdefault(number, []).append(alias)
    return out


# -- artifacts ----------------------------------------------------------------------------


# What search looks at, per store: built on the first search after each refresh
# (cas.ui.app.StoreWorker calls forget()), so typing queries costs a scan of
# tuples, not a query per artifact.
_SEARCH: weakref.WeakKeyDictionary[Store, list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]]]
_SEARCH = weakref.WeakKeyDictionary()


def forget(store: Store) -> None:
    _SEARCH.pop(store, None)


def _search_rows(store: Store) -> list[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]]:
    rows = _SEARCH.get(store)
    if rows is None:
        rows = []
        for name in store.list_artifacts():
            aliases = tuple(a.lower() for a in store.aliases(name))
            meta = tuple(
                (k.lower(), (val if isinstance(val, str) else json.dumps(val)).lower())
                for k, val in store.get_artifact_version(name).metadata.items()
            )
            rows.append((name, aliases, meta))
        _SEARCH[store] = rows
    return rows


def _search(store: Store, term: str) -> list[str]:
    """Artifacts whose name or an alias contains ``term``, or whose latest version's
    metadata has a key or value containing it, or exactly ``key=value``.  (Older
    versions' metadata is not searched: that would read every version.)"""
    key, sep, value = term.partition("=")
    found = []
    for name, aliases, meta in _search_rows(store):
        if (
            term in name.lower()
            or any(term in a for a in aliases)
            or any((sep and k == key and v == value) or (term in k or term in v) for k, v in meta)
        ):
            found.append(name)
    return found


def artifacts(store: Store, params: Mapping[str, str], query: Mapping[str, str]) -> Page:
    term = query.get("q", "").strip()
    names = _search(store, term.lower()) if term else store.list_artifacts()
    pager = _pages(len(names), _int(query, "page", 1))
    start = (pager["page"] - 1) * PAGE_SIZE
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in names[start : start + PAGE_SIZE]:
        latest = store.get_artifact_version(name)
        pipeline, step, artifact = name.split("/")
        groups.setdefault(pipeline, {}).setdefault(step, []).append(
            {"name": name, "artifact": artifact, "latest": latest, "aliases": sorted(store.aliases(name))}
        )
    return Page("artifacts.html", {"groups": groups, "q": term, "pager": pager, "count": len(names)})


# -- versions of an artifact ----------------------------------------------------------------


def versions(store: Store, params: Mapping[str, str], query: Mapping[str, str]) -> Page:
    name = _name(params)
    every = store.list_versions(name, include_deleted=True)
    every.reverse()  # newest first
    pager = _pages(len(every), _int(query, "page", 1))
    start = (pager["page"] - 1) * PAGE_SIZE
    shown = every[start : start + PAGE_SIZE]
    aliases = _aliases_by_version(store, name)
    producers: dict[str, Any] = {}
    rows = []
    for v in shown:
        step = None
        if v.step_run_id:
            if v.step_run_id not in producers:
                producers[v.step_run_id] = store.lineage(v, "up", 1).producer(v.ref)
            step = producers[v.step_run_id]
        rows.append({"v": v, "aliases": aliases.get(v.version, []), "step": step})
    live = [v for v in every if not v.deleted]
    return Page(
        "versions.html",
        {
            "name": name,
            "rows": rows,
            "pager": pager,
            "is_tree": any(v.kind == TREE for v in live),
            "choices": sorted(v.version for v in live),
        },
    )


# -- one version ------------------------------------------------------------------------------


def version(store: Store, params: Mapping[str, str], query: Mapping[str, str]) -> Page | Any:
    v, redirect = _canonical(store, params, query, "version")
    if redirect is not None:
        return redirect
    down = store.lineage(v, "down", 1)
    downstream = [
        {"step": s, "outputs": down.outputs_of(s.id)} for s in down.consumers(v.ref)
    ]
    up = store.lineage(v, "up", 1)
    ctx: dict[str, Any] = {
        "v": v,
        "aliases": _aliases_by_version(store, v.name).get(v.version, []),
        "producer": up.producer(v.ref),
        "inputs": [up.versions[e.source] for e in up.edges if e.kind == "input"],
        "downstream": downstream,
        "metadata": {k: val if isinstance(val, str) else json.dumps(val) for k, val in v.metadata.items()},
        "listing": None,
        "preview": None,
        "previous": _previous(store, v),
    }
    if not v.deleted:
        if v.kind == TREE:
            ctx["listing"] = content.listing(v.files(), "")
        else:
            ctx["preview"] = content.preview(v, None, v.size, v.name.rsplit("/", 1)[-1])
    return Page("version.html", ctx)


def _previous(store: Store, v: ArtifactVersion) -> int | None:
    earlier = [o.version for o in store.list_versions(v.name) if o.version < v.version]
    return earlier[-1] if earlier else None


def files(store: Store, params: Mapping[str, str], query: Mapping[str, str]) -> Page | Any:
    path = params.get("path", "").rstrip("/")
    if path:
        check_tree_path(path)
    v, redirect = _canonical(store, params, query, "files", path)
    if redirect is not None:
        return redirect
    if v.deleted:
        raise FileNotFoundError(f"{v.ref} was deleted; its files are no longer served")
    if v.kind != TREE:
        raise NotADirectoryError(f"{v.ref} is a single file, not a directory")
    crumbs = _crumbs(path)
    entries = v.files(path)  # a prefix match: the file itself, or everything below the directory
    if path:
        for p, digest, size in entries:
            if p == path:
                preview = content.preview(v, path, size, path.rsplit("/", 1)[-1])
                ctx = {"v": v, "path": path, "crumbs": crumbs, "size": size, "file_digest": digest, "preview": preview}
                return Page("file.html", ctx)
        entries = [e for e in entries if e[0].startswith(path + "/")]
        if not entries:
            raise FileNotFoundError(f"{v.ref} has no file or directory {path!r}")
    return Page("files.html", {"v": v, "path": path, "crumbs": crumbs, "listing": content.listing(entries, path)})


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = path.split("/") if path else []
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def raw(store: Store, params: Mapping[str, str], query: Mapping[str, str]) -> Stream:
    path = params.get("path") or None
    if path:
        check_tree_path(path)
    v = _version(store, _name(params), params["version"])
    if v.deleted:
        raise FileNotFoundError(f"{v.ref} was deleted; its bytes are no longer served")
    if v.kind == TREE and path is None:
        return content.archive(v)
    filename = (path or v.name).rsplit("/", 1)[-1]
    return content.stream(v, path, filename, download=query.get("download") == "1")


# -- lineage ------------------------------------------------------------------------------------


def lineage(store: Store, params: Mapping[str, str], query: Mapping[str, str]) -> Page | Any:
    v, redirect = _canonical(store, params, query, "lineage")
    if redirect is not None:
        return redirect
    direction = query.get("direction", "both")
    if direction not in ("up", "down", "both"):
        raise InvalidNameError(f"direction must be up, down or both, not {direction!r}")
    depth_text = query.get("depth", str(DEFAULT_DEPTH))
    depth = None if depth_text == "all" else _int(query, "depth", DEFAULT_DEPTH, 1, MAX_DEPTH)
    shown = depth
    while True:
        up = store.lineage(v, "up", shown) if direction in ("up", "both") else None
        down = store.lineage(v, "down", shown) if direction in ("down", "both") else None
        nodes = sum(len(g.versions) + len(g.steps) for g in (up, down) if g is not None)
        if nodes <= MAX_NODES or shown == 1:
            break
        shown = 64 if shown is None else max(1, shown // 2)  # a picture that big helps no one: come closer
    drawing = graph.layout(v.ref, up, down, version_href=_lineage_href, step_href=_step_href)
    ctx = {
        "v": v,
        "graph": drawing,
        "direction": direction,
        "depth": "all" if depth is None else str(depth),
        "reduced": shown if shown != depth else None,
    }
    return Page("lineage.html", ctx)


def _lineage_href(node: Any) -> str:
    return url("version", node.name, node.version)


def _step_href(node: Any) -> str:
    return url("run", node.run_id) + f"#step-{node.id}"


# -- runs ----------------------------------------------------------------------------------------


def runs(store: Store, params: Mapping[str, str], query: Mapping[str, str]) -> Page:
    pipeline = query.get("pipeline") or None
    status = query.get("status") or None
    limit = _int(query, "limit", RUNS_LIMIT, 1, 10_000)
    found = store.list_runs(pipeline, status=status, limit=limit)
    return Page("runs.html", {"runs": found, "pipeline": pipeline or "", "status": status or "", "limit": limit})


def run(store: Store, params: Mapping[str, str], query: Mapping[str, str]) -> Page:
    run_id = params["run_id"]
    try:
        found = store.get_run(run_id)
    except RunError:
        raise FileNotFoundError(f"no run {run_id!r}") from None
    return Page("run.html", {"run": found, "params": {k: json.dumps(v) for k, v in found.params.items()}})


# -- diff -------------------------------------------------------------------------------------------


def diff(store: Store, params: Mapping[str, str], query: Mapping[str, str]) -> Page:
    name = _name(params)
    live = store.list_versions(name)
    choices = [v.version for v in live]
    if not live:
        raise FileNotFoundError(f"{name} has no live versions")
    to_spec = query.get("to") or str(live[-1].version)
    new = _version(store, name, to_spec)
    older = [v.version for v in live if v.version < new.version]
    from_spec = query.get("from") or (str(older[-1]) if older else str(new.version))
    old = _version(store, name, from_spec)
    if old.deleted or new.deleted:
        raise FileNotFoundError("a deleted version cannot be compared: its files may be gone")
    result = diff_files(side_of_version(old), side_of_version(new))
    return Page("diff.html", {"name": name, "old": old, "new": new, "diff": result, "choices": choices})

"""Configuration: named remotes, in TOML, per store and per user.

Two files are read, the store's over the user's:

* ``<store>/config.toml`` for a local store (``./.cas/config.toml``);
* ``$XDG_CONFIG_HOME/cas/config.toml`` (default ``~/.config/cas/config.toml``),
  or ``$CAS_CONFIG`` if set.

A remote is a table ``[remote.NAME]`` with a ``url`` and optional
``options`` (fsspec storage options such as ``endpoint_url``).  Secrets
never go in a config file: credentials stay in the environment or the
cloud's own credential chain, and an option that looks like one is refused.

Without ``--store`` or ``$CAS_STORE``, ``cas`` uses the nearest ``.cas``
store in the current directory or above it, as git and dvc find theirs.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from cas.core.format import FORMAT_FILE
from cas.errors import InvalidNameError, InvalidValueError, RemoteNotFoundError

__all__ = [
    "CONFIG_FILE",
    "user_config_path",
    "store_config_path",
    "load_config",
    "find_store",
    "resolve_store",
    "add_remote",
    "remove_remote",
]

CONFIG_FILE = "config.toml"
DEFAULT_DIR = ".cas"
REMOTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
# Keys of storage options that carry credentials: refused in a config file.
_SECRET = re.compile(r"(secret|password|passwd|token|credential|account_key|sas|connection_string|private|key$)", re.I)


def user_config_path() -> Path:
    """The per-user config file: ``$CAS_CONFIG``, else ``$XDG_CONFIG_HOME/cas/config.toml`` (default ``~/.config``)."""
    if os.environ.get("CAS_CONFIG"):
        return Path(os.environ["CAS_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cas" / CONFIG_FILE


def store_config_path(store_dir: str | os.PathLike) -> Path:
    """A local store's own config file, ``<store>/config.toml``."""
    return Path(store_dir) / CONFIG_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return {}
    # the TOML parser only once there is a file: most commands never read one
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    with f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise InvalidValueError(f"{path}: not valid TOML: {e}") from None


def load_config(store_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The user's config with the store's laid over it (remote by remote)."""
    merged = _read(user_config_path())
    if store_dir is not None:
        local = _read(store_config_path(store_dir))
        remotes = {**merged.get("remote", {}), **local.get("remote", {})}
        merged = {**merged, **local}
        if remotes:
            merged["remote"] = remotes
    return merged


def find_store(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest ``.cas`` store (a directory holding the format file) at or above ``start``."""
    here = Path(start or os.getcwd()).resolve()
    # $CAS_CEILING_DIRECTORIES, as git's GIT_CEILING_DIRECTORIES: the search stops below these
    ceilings = {Path(p).resolve() for p in os.environ.get("CAS_CEILING_DIRECTORIES", "").split(os.pathsep) if p}
    for d in (here, *here.parents):
        if d in ceilings:
            break
        if (d / DEFAULT_DIR / FORMAT_FILE).is_file():
            return d / DEFAULT_DIR
    return None


def resolve_store(arg: str | None, *, start: str | os.PathLike | None = None) -> tuple[str, dict[str, Any]]:
    """(URL, storage options) for what the user named: a remote's name, a path
    or URL, or nothing (the nearest ``.cas`` above the current directory, else
    ``./.cas``)."""
    local = find_store(start)
    if arg is None:
        return (str(local) if local is not None else DEFAULT_DIR), {}
    if REMOTE_NAME.match(arg) and not os.path.exists(arg):
        remotes = load_config(local).get("remote", {})
        if arg in remotes:
            remote = remotes[arg]
            if not isinstance(remote, dict) or not isinstance(remote.get("url"), str):
                raise InvalidValueError(f"remote {arg!r} has no url in the config")
            options = remote.get("options", {})
            _refuse_secrets(options)
            return remote["url"], dict(options)
    return arg, {}


def _refuse_secrets(options: dict[str, Any]) -> None:
    for key in options:
        if _SECRET.search(key):
            raise InvalidValueError(
                f"option {key!r} looks like a credential: keep secrets in the environment or the cloud's "
                "credential chain, never in a cas config file"
            )


def _write(path: Path, data: dict[str, Any]) -> None:
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        tomli_w.dump(data, f)
    os.replace(tmp, path)  # a reader never sees half a file


def add_remote(path: Path, name: str, url: str, options: dict[str, Any] | None = None) -> None:
    """Add (or replace) ``[remote.NAME]`` in the config file at ``path``."""
    if not REMOTE_NAME.match(name):
        raise InvalidNameError(f"invalid remote name {name!r}: a letter, then up to 63 of A-Z a-z 0-9 _ -")
    options = dict(options or {})
    _refuse_secrets(options)
    data = _read(path)
    entry: dict[str, Any] = {"url": url}
    if options:
        entry["options"] = options
    data.setdefault("remote", {})[name] = entry
    _write(path, data)


def remove_remote(path: Path, name: str) -> None:
    """Remove ``[remote.NAME]`` from the config file at ``path``; an error if it is not there."""
    data = _read(path)
    if name not in data.get("remote", {}):
        raise RemoteNotFoundError(f"no remote named {name!r} in {path}")
    del data["remote"][name]
    _write(path, data)

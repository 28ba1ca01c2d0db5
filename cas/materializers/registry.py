"""Which materializer saves an object, and which one loads a version.

Built-in materializers are registered on import; third-party ones come from
the ``cas.materializers`` entry-point group, loaded once, the first time a
lookup needs them::

    # pyproject.toml of a plugin
    [project.entry-points."cas.materializers"]
    torch = "cas_torch:TorchMaterializer"

The entry point's name must equal the materializer's ``name``.  A plugin that
fails to import does not break other saves; asking for it by name raises
:class:`~cas.errors.MaterializerNotFoundError` with the reason.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas.core.names import SEGMENT_RE
from cas.errors import (
    InvalidNameError,
    InvalidValueError,
    MaterializerNotFoundError,
    UnsafeLoadError,
    UnsupportedDataError,
)
from cas.materializers.base import Materializer, Payload
from cas.materializers.builtin import (
    BytesMaterializer,
    JsonMaterializer,
    MsgpackMaterializer,
    PathMaterializer,
    PickleMaterializer,
    TextMaterializer,
)
from cas.materializers.dataframe import ArrowMaterializer, NumpyMaterializer, PandasMaterializer

if TYPE_CHECKING:
    from cas.version import ArtifactVersion

__all__ = [
    "ENTRY_POINT_GROUP",
    "register",
    "unregister",
    "reload_plugins",
    "get",
    "select",
    "available",
    "materialize",
    "load_version",
]

ENTRY_POINT_GROUP = "cas.materializers"

_lock = threading.RLock()
_registry: dict[str, Materializer] = {}
_order: list[str] = []  # registration order breaks priority ties
_plugin_errors: dict[str, str] = {}
_plugins_loaded = False


def register(materializer: type[Materializer] | Materializer, *, replace: bool = False) -> Materializer:
    """Register a materializer class (or instance) under its ``name``; returns the instance."""
    instance = materializer() if isinstance(materializer, type) else materializer
    if not isinstance(instance, Materializer):
        raise TypeError(f"{materializer!r} is not a cas Materializer")
    name = instance.name
    if not isinstance(name, str) or not SEGMENT_RE.match(name):
        raise InvalidNameError(f"invalid materializer name {name!r}")
    with _lock:
        current = _registry.get(name)
        if current is not None and not replace and type(current) is not type(instance):
            raise InvalidNameError(f"a materializer named {name!r} is already registered ({type(current).__qualname__})")
        _registry[name] = instance
        if name not in _order:
            _order.append(name)
    return instance


def unregister(name: str) -> None:
    with _lock:
        _registry.pop(name, None)
        if name in _order:
            _order.remove(name)


def _load_plugins() -> None:
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        from importlib.metadata import entry_points  # only once a plugin is looked for: it imports the email package

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
                instance = register(obj)
                if instance.name != ep.name:
                    unregister(instance.name)
                    raise InvalidValueError(f"entry point {ep.name!r} names a materializer called {instance.name!r}")
            except Exception as e:  # a broken plugin must not break every save
                _plugin_errors[ep.name] = f"{type(e).__name__}: {e}"


def reload_plugins() -> None:
    """Scan the entry points again (after installing a plugin in a running process)."""
    global _plugins_loaded
    with _lock:
        _plugins_loaded = False
        _plugin_errors.clear()
    _load_plugins()


def get(name: str) -> Materializer:
    """The materializer registered as ``name``."""
    with _lock:
        found = _registry.get(name)
    if found is None:
        # only then the entry points: no plugin can take a registered name (see register), so
        # `cas put` and every load of a built-in kind never pay for importlib.metadata's scan
        _load_plugins()
        with _lock:
            found = _registry.get(name)
    if found is not None:
        return found
    if name in _plugin_errors:
        raise MaterializerNotFoundError(f"materializer {name!r} failed to load: {_plugin_errors[name]}")
    raise MaterializerNotFoundError(
        f"no materializer named {name!r} is installed (known: {', '.join(sorted(_registry))})"
    )


def available() -> list[str]:
    _load_plugins()
    with _lock:
        return sorted(_registry)


def select(obj: Any, name: str | None = None) -> Materializer:
    """The materializer for ``obj``: the one named, else the highest-priority one that accepts it."""
    if name is not None:
        if not isinstance(name, str):
            raise InvalidNameError(f"materializer must be a name, not {type(name).__name__}")
        return get(name)
    _load_plugins()
    with _lock:
        candidates = [_registry[n] for n in _order if _registry[n].auto]
    candidates.sort(key=lambda m: -m.priority)  # stable: registration order breaks ties
    for m in candidates:
        if m.can_save(obj):
            return m
    raise UnsupportedDataError(
        f"cannot save a {type(obj).__module__}.{type(obj).__qualname__}: no materializer handles it. "
        "Pass bytes, str, a pathlib.Path, a file object, plain JSON/msgpack data, a numpy array, "
        "a pandas DataFrame or an Arrow table; register a materializer; or, for code you trust, "
        "pass materializer='pickle'"
    )


@contextlib.contextmanager
def materialize(materializer: Materializer, obj: Any) -> Iterator[Payload]:
    """The content to store for ``obj``; scratch files live until the block ends."""
    if materializer.passthrough:  # bytes, str, paths, files: stored as given, no scratch needed
        yield obj
        return
    scratch = Path(tempfile.mkdtemp(prefix="cas-mat-"))
    try:
        yield materializer.save(obj, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_version(version: ArtifactVersion, *, allow_pickle: bool = False) -> Any:
    """Rebuild the object stored in ``version`` with the materializer its record names.

    A version saved without one (raw bytes from an older cas or another tool)
    loads as bytes, or as a directory path for a tree.
    """
    name = version.materializer or ("path" if version.kind == "tree" else "bytes")
    materializer = get(name)
    if not materializer.safe and not allow_pickle:
        raise UnsafeLoadError(
            f"{version.ref} was saved with the {name!r} materializer; loading it can run arbitrary code. "
            "Pass allow_pickle=True only if you trust whoever wrote this store"
        )
    return materializer.load(version)


for _cls in (
    BytesMaterializer,
    TextMaterializer,
    PathMaterializer,
    NumpyMaterializer,
    PandasMaterializer,
    ArrowMaterializer,
    JsonMaterializer,
    MsgpackMaterializer,
    PickleMaterializer,
):
    register(_cls)

"""Package attributes imported on first use (PEP 562), so importing a package costs only what is read.

A package's ``__init__`` names each public attribute's module; the module is imported the first
time the attribute is read, and the value is then stored in the package like an eager import.
``from package import *`` and ``dir(package)`` see every name.  The short ``cas`` commands are
what this is for: ``cas show`` should not pay for lineage export, sync or the cloud backends.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``table`` maps a name to the module defining it."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later reads are plain attribute lookups
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__

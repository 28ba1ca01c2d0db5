"""Materializers: Python objects to bytes or trees and back, chosen by type, safe by default.

See :mod:`cas.materializers.base` for the contract and
:mod:`cas.materializers.registry` for how one is chosen and how plugins
register through the ``cas.materializers`` entry-point group.
"""

from cas.materializers.base import Materializer, Payload
from cas.materializers.registry import (
    ENTRY_POINT_GROUP,
    available,
    get,
    load_version,
    materialize,
    register,
    reload_plugins,
    select,
    unregister,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Materializer",
    "Payload",
    "available",
    "get",
    "load_version",
    "materialize",
    "register",
    "reload_plugins",
    "select",
    "unregister",
]

"""Where ZenML's paths land in cas (no ZenML import: testable without it).

The artifact store's ``path`` is ``cas://<namespace>``; the namespace is the
``<pipeline>`` segment of every cas name it writes.  Below it, ZenML writes
``<a>/<b>/<ids...>/<file path>``, and::

    <a>/<b>/<id>[/<id>]/<file path>   ->  name  <namespace>/<a>/<b>
                                          alias zenml.<id>[.<id>]  (the folder)
                                          path  <file path> inside its tree
    <a>/<b>/<file path>               ->  same name, alias ``zenml``

where an id is a UUID or 8+ lowercase hex digits (at most two are taken).
So a step output ``<step>/<output>/<step run id>/<8 hex>/data.json`` is
``<namespace>/<step>/<output>`` with one version per run, and a step log
``logs/<log id>/<timestamp>.log`` is ``<namespace>/logs/<log id>``.
Components that are not valid segments are escaped (:mod:`.._segments`).
"""

from __future__ import annotations

from cas.core.names import check_segment
from cas.errors import InvalidNameError
from cas.integrations._shared.folders import FolderKey
from cas.integrations._shared.segments import decode, encode, is_id

__all__ = ["ZenMLLayout", "ALIAS"]

ALIAS = "zenml"
MAX_IDS = 2


class ZenMLLayout:
    alias_prefix = ALIAS

    def __init__(self, root: tuple[str, ...]) -> None:
        if len(root) != 1:
            raise InvalidNameError(
                f"a cas artifact store path is cas://<namespace> (one name segment), got cas://{'/'.join(root)}"
            )
        self.root = root
        self.namespace = check_segment(root[0], "namespace")

    def _rel(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        if parts[: len(self.root)] != self.root:
            raise InvalidNameError(f"cas://{'/'.join(parts)} is outside this artifact store (cas://{self.namespace})")
        return parts[len(self.root) :]

    def locate(self, parts: tuple[str, ...]) -> tuple[FolderKey, str] | None:
        rel = self._rel(parts)
        if len(rel) < 2:
            return None
        name = f"{self.namespace}/{encode(rel[0])}/{encode(rel[1])}"
        i = 2
        while i < len(rel) and i - 2 < MAX_IDS and is_id(rel[i]):
            i += 1
        alias = ".".join((ALIAS,) + rel[2:i])
        return FolderKey(name, alias), "/".join(rel[i:])

    def root_of(self, key: FolderKey) -> tuple[str, ...] | None:
        ns, a, b = key.name.split("/")
        if ns != self.namespace:
            return None
        if key.alias == ALIAS:
            ids: tuple[str, ...] = ()
        elif key.alias.startswith(ALIAS + "."):
            ids = tuple(key.alias[len(ALIAS) + 1 :].split("."))
        else:
            return None
        try:
            return self.root + (decode(a), decode(b)) + ids
        except InvalidNameError:
            return None  # a name no ZenML path maps to (crafted): not part of this store

    def name_prefix(self, parts: tuple[str, ...]) -> str:
        rel = self._rel(parts)
        if len(rel) >= 2:
            return f"{self.namespace}/{encode(rel[0])}/{encode(rel[1])}"
        if len(rel) == 1:
            return f"{self.namespace}/{encode(rel[0])}/"
        return f"{self.namespace}/"

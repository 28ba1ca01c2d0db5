"""Where MLflow's paths land in cas (no MLflow import: testable without it).

An experiment's ``artifact_location`` is ``cas://<pipeline>/<step>``.  MLflow
then writes a run's artifacts under ``<location>/<run id>/artifacts/`` and
(MLflow 3) a logged model's files under ``<location>/models/<model id>/artifacts/``::

    <p>/<s>/<run id>/artifacts/<top>[/<path>]  ->  name  <p>/<s>/<top>
                                                  alias mlflow.run.<run id>
                                                  a file at <top> is a blob version,
                                                  a directory a tree (<path> inside)
    <p>/<s>/<kind>/<id>/artifacts/<path>        ->  name  <p>/<s>/<kind>   (kind: models, traces, ...)
                                                  alias mlflow.<kind>.<id>, a tree

So ``cas log churn/train/model`` lists the ``model`` directory of every run,
and ``cas log churn/train/models`` every logged model, one version each.
"""

from __future__ import annotations

import re

from ...errors import InvalidNameError
from .._folders import FolderKey
from .._segments import decode, encode

__all__ = ["MlflowLayout", "ALIAS"]

ALIAS = "mlflow"
ARTIFACTS = "artifacts"
RUN = "run"
_RUN_ID = re.compile(r"[0-9a-f]{32}\Z")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,40}\Z")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,80}\Z")


class MlflowLayout:
    alias_prefix = ALIAS + "."
    root: tuple[str, ...] = ()

    def locate(self, parts: tuple[str, ...]) -> tuple[FolderKey, str] | None:
        if len(parts) < 3:
            return None
        p, s = encode(parts[0]), encode(parts[1])
        if _RUN_ID.match(parts[1]) and len(parts) > 2 and parts[2] == ARTIFACTS:
            raise InvalidNameError(
                f"cas://{'/'.join(parts)}: an MLflow artifact location on cas is cas://<pipeline>/<step>"
            )
        if _RUN_ID.match(parts[2]):
            kind, ident, j = RUN, parts[2], 3
        else:
            if len(parts) == 3:
                return None
            kind, ident, j = parts[2], parts[3], 4
            if not _WORD.match(kind) or kind == RUN:
                raise InvalidNameError(f"cas://{'/'.join(parts)}: {kind!r} is not a run id or an MLflow kind")
        if not _ID.match(ident):
            raise InvalidNameError(f"cas://{'/'.join(parts)}: {ident!r} is not an MLflow id")
        if len(parts) == j:
            return None
        if parts[j] != ARTIFACTS:
            raise InvalidNameError(f"cas://{'/'.join(parts)}: MLflow writes only below .../{ARTIFACTS}/")
        alias = f"{ALIAS}.{kind}.{ident}"
        if kind == RUN:
            if len(parts) == j + 1:
                return None
            return FolderKey(f"{p}/{s}/{encode(parts[j + 1])}", alias), "/".join(parts[j + 2 :])
        return FolderKey(f"{p}/{s}/{encode(kind)}", alias), "/".join(parts[j + 1 :])

    def root_of(self, key: FolderKey) -> tuple[str, ...] | None:
        head, sep, rest = key.alias.partition(".")
        kind, sep2, ident = rest.partition(".")
        if head != ALIAS or not sep or not sep2:
            return None
        try:
            p, s, a = (decode(x) for x in key.name.split("/"))
        except InvalidNameError:
            return None  # a name no MLflow path maps to (crafted): not part of this store
        if kind == RUN:
            return (p, s, ident, ARTIFACTS, a)
        if a != kind:
            return None
        return (p, s, kind, ident, ARTIFACTS)

    def name_prefix(self, parts: tuple[str, ...]) -> str:
        if len(parts) >= 2:
            return f"{encode(parts[0])}/{encode(parts[1])}/"
        if len(parts) == 1:
            return f"{encode(parts[0])}/"
        return ""

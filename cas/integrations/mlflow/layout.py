"""Where MLflow's paths land in cas (no MLflow import: testable without it).

MLflow writes a run's artifacts under ``<location>/<run id>/artifacts/`` and
(MLflow 3) a logged model's files under ``<location>/models/<model id>/artifacts/``.
The location is one of two shapes:

* ``cas://<pipeline>/<step>``: an experiment's ``artifact_location`` named by
  hand (client side).  Names are ``<pipeline>/<step>/<top>`` for what a run
  logs, ``<pipeline>/<step>/<kind>`` for models (and other MLflow entities).
* ``<prefix…>/<experiment id>``: what MLflow makes itself, below the server's
  ``--default-artifact-root`` or ``--artifacts-destination`` (a prefix of any
  depth, even none).  The experiment's *name* is the pipeline (made a valid
  segment: ``churn model`` -> ``churn-model``): names are
  ``<experiment>/run/<top>`` for what a run logs and ``<experiment>/models/<model
  name>`` for logged models (``<experiment>/<kind>/artifacts`` for other entities).

::

    <location>/<run id>/artifacts/<top>[/<path>]  ->  name  <p>/<s>/<top>, alias mlflow[.<exp id>].run.<run id>
                                                     a file at <top> is a blob version,
                                                     a directory a tree (<path> inside)
    <location>/<kind>/<id>/artifacts/<path>       ->  name  <p>/<s>/<kind> or <exp>/<kind>/<model name>,
                                                     alias mlflow[.<exp id>].<kind>.<id>, a tree

The experiment id in the alias lets a listing find its way back to the path
(``root_of``); the names come from a resolver (the repository asks MLflow).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cas.errors import InvalidNameError
from cas.integrations._shared.folders import FolderKey
from cas.integrations._shared.segments import decode, encode

__all__ = ["MlflowLayout", "ALIAS", "RUN"]

ALIAS = "mlflow"
ARTIFACTS = "artifacts"
RUN = "run"
MODELS = "models"
_RUN_ID = re.compile(r"[0-9a-f]{32}\Z")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,40}\Z")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,80}\Z")
_EXPERIMENT = re.compile(r"[0-9]{1,40}\Z")

#: (what, id) -> a display name: ("experiment", "1") -> "churn", ("models", "m-…") -> "model"
Resolver = Callable[[str, str], str]


def _no_names(what: str, ident: str) -> str:
    return ident


def _anchor(parts: tuple[str, ...]) -> tuple[int, str, str, int] | None:
    """(where the location ends, kind, id, index of ``artifacts``) of the first
    ``<run id>/artifacts`` or ``<kind>/<id>/artifacts`` in ``parts``."""
    for i in range(len(parts) - 1):
        if _RUN_ID.match(parts[i]) and parts[i + 1] == ARTIFACTS:
            return i, RUN, parts[i], i + 1
        if i + 2 < len(parts) and parts[i + 2] == ARTIFACTS and _WORD.match(parts[i]) and _ID.match(parts[i + 1]):
            # <step>/<run id>/artifacts is a run's, even when the step is named like a kind
            if parts[i] not in (RUN, ARTIFACTS) and not _RUN_ID.match(parts[i + 1]):
                return i, parts[i], parts[i + 1], i + 2
    return None


def readable(name: str, fallback: str) -> str:
    """A name segment a person can read: ``churn model`` -> ``churn-model``.  Not
    reversible, and needs not be: the path comes back from the alias's ids."""
    segment = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:128].rstrip("-._")
    return segment or fallback


def _explicit(location: tuple[str, ...]) -> bool:
    return len(location) == 2 and not _EXPERIMENT.match(location[1])


class MlflowLayout:
    alias_prefix = ALIAS + "."

    def __init__(self, root: tuple[str, ...] = (), names: Resolver = _no_names) -> None:
        """``root``: the repository's URI; ``names``: experiment and model names by id."""
        self.names = names
        found = _anchor(root)
        location = root[: found[0]] if found else root
        if found and not _explicit(location) and not (location and _EXPERIMENT.match(location[-1])):
            raise InvalidNameError(_bad_location(location))
        # Where experiment folders sit: the root itself unless it names one.
        self.prefix = location[:-1] if location and _EXPERIMENT.match(location[-1]) else location
        self.root = self.prefix

    def locate(self, parts: tuple[str, ...]) -> tuple[FolderKey, str] | None:
        found = _anchor(parts)
        if found is None:
            if len(parts) > len(self.prefix) + 2:
                raise InvalidNameError(f"cas://{'/'.join(parts)}: MLflow writes only below .../{ARTIFACTS}/")
            return None
        i, kind, ident, j = found
        location = parts[:i]
        if kind == RUN and len(parts) == j + 1:
            return None  # a run's artifact root: a directory above its folders
        if _explicit(location):
            p, s = encode(location[0]), encode(location[1])
            alias = f"{ALIAS}.{kind}.{ident}"
            if kind == RUN:
                return FolderKey(f"{p}/{s}/{encode(parts[j + 1])}", alias), "/".join(parts[j + 2 :])
            return FolderKey(f"{p}/{s}/{encode(kind)}", alias), "/".join(parts[j + 1 :])
        if not location or not _EXPERIMENT.match(location[-1]):
            raise InvalidNameError(_bad_location(location))
        experiment = location[-1]
        pipeline = readable(self.names("experiment", experiment), f"experiment-{experiment}")
        alias = f"{ALIAS}.{experiment}.{kind}.{ident}"
        if kind == RUN:
            return FolderKey(f"{pipeline}/{RUN}/{encode(parts[j + 1])}", alias), "/".join(parts[j + 2 :])
        artifact = readable(self.names(kind, ident), kind) if kind == MODELS else ARTIFACTS
        return FolderKey(f"{pipeline}/{encode(kind)}/{artifact}", alias), "/".join(parts[j + 1 :])

    def root_of(self, key: FolderKey) -> tuple[str, ...] | None:
        bits = key.alias.split(".", 3)
        if bits[0] != ALIAS or len(bits) < 3:
            return None
        p, s, a = key.name.split("/")
        hand_named = len(bits) == 3 or not _EXPERIMENT.match(bits[1])
        try:
            a = decode(a)
            if hand_named:
                p, s = decode(p), decode(s)  # a hand-named location (an experiment's name is not decoded)
        except InvalidNameError:
            return None  # a name no MLflow path maps to (crafted): not part of this store
        if hand_named:
            kind, ident = bits[1], key.alias.split(".", 2)[2]
            if kind == RUN:
                return (p, s, ident, ARTIFACTS, a)
            return (p, s, kind, ident, ARTIFACTS) if a == kind else None
        experiment, kind, ident = bits[1], bits[2], bits[3]
        if kind == RUN:
            return self.prefix + (experiment, ident, ARTIFACTS, a)
        return self.prefix + (experiment, kind, ident, ARTIFACTS) if s == kind else None

    def name_prefix(self, parts: tuple[str, ...]) -> str:
        n = len(self.prefix)
        if parts[:n] == self.prefix and len(parts) > n and _EXPERIMENT.match(parts[n]):
            return f"{readable(self.names('experiment', parts[n]), f'experiment-{parts[n]}')}/"
        if parts == self.prefix[: len(parts)]:
            return ""  # at or above the experiment folders: any name may sit below
        if len(parts) >= 2 and _explicit(parts[:2]):
            return f"{encode(parts[0])}/{encode(parts[1])}/"
        return f"{encode(parts[0])}/" if len(parts) == 1 else ""


def _bad_location(location: tuple[str, ...]) -> str:
    return (
        f"cas://{'/'.join(location)}: an MLflow artifact location on cas is cas://<pipeline>/<step>, "
        "or a prefix MLflow adds experiment ids to (the server's --default-artifact-root / --artifacts-destination)"
    )

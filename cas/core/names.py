"""Artifact names are data, never paths (DESIGN invariant 8).

A name is ``<pipeline>/<step>/<artifact>``; each segment matches
``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``.  A version is a positive integer,
``latest``, or an alias; an alias starts with a letter so it never reads as
a number.  Everything is checked here, before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cas.errors import InvalidNameError

__all__ = [
    "ArtifactName",
    "parse_name",
    "parse_ref",
    "parse_version",
    "check_alias",
    "check_segment",
    "LATEST",
]

LATEST = "latest"
SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,127}\Z")
MAX_VERSION = 2**53  # stays exact in JSON and msgpack alike


def _show(text: object) -> str:
    """repr() keeps control characters and NULs visible in the message."""
    return repr(text)


def check_segment(segment: str, what: str = "segment") -> str:
    if not isinstance(segment, str):
        raise InvalidNameError(f"{what} must be a string, got {type(segment).__name__}")
    if not SEGMENT_RE.match(segment):
        raise InvalidNameError(
            f"invalid {what} {_show(segment)}: use 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    return segment


@dataclass(frozen=True, order=True)
class ArtifactName:
    pipeline: str
    step: str
    artifact: str

    def __str__(self) -> str:
        return f"{self.pipeline}/{self.step}/{self.artifact}"

    @property
    def parts(self) -> tuple[str, str, str]:
        return (self.pipeline, self.step, self.artifact)


def parse_name(name: str | ArtifactName) -> ArtifactName:
    """Validate ``pipeline/step/artifact`` and return it as a value."""
    if isinstance(name, ArtifactName):
        return name
    if not isinstance(name, str):
        raise InvalidNameError(f"artifact name must be a string, got {type(name).__name__}")
    parts = name.split("/")
    if len(parts) != 3:
        raise InvalidNameError(
            f"invalid artifact name {_show(name)}: expected <pipeline>/<step>/<artifact>"
        )
    for what, part in zip(("pipeline", "step", "artifact"), parts, strict=True):
        check_segment(part, what)
    return ArtifactName(*parts)


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        raise InvalidNameError(
            f"invalid alias {_show(alias)}: use 1-128 of A-Z a-z 0-9 . _ -, starting with a letter"
        )
    if alias == LATEST:
        raise InvalidNameError("'latest' is maintained by cas and cannot be set by hand")
    return alias


def parse_version(version: int | str | None) -> int | str:
    """An int >= 1, ``"latest"``, or an alias.  Digit strings become ints."""
    if version is None:
        return LATEST
    if isinstance(version, bool):
        raise InvalidNameError(f"invalid version {version!r}")
    if isinstance(version, int):
        if not 1 <= version <= MAX_VERSION:
            raise InvalidNameError(f"invalid version {version}: versions start at 1")
        return version
    if isinstance(version, str):
        if version.isascii() and version.isdigit():
            return parse_version(int(version))
        if version == LATEST:
            return LATEST
        if ALIAS_RE.match(version):
            return version
    raise InvalidNameError(f"invalid version {_show(version)}: expected a number, 'latest' or an alias")


def parse_ref(ref: str, version: int | str | None = None) -> tuple[ArtifactName, int | str]:
    """Parse ``pipeline/step/artifact[@version]``; an explicit ``version`` wins over none."""
    if not isinstance(ref, str):
        raise InvalidNameError(f"artifact name must be a string, got {type(ref).__name__}")
    if "@" in ref:
        name, _, at = ref.partition("@")
        if version is not None:
            raise InvalidNameError(f"{ref!r} names a version and version={version!r} was also given")
        return parse_name(name), parse_version(at)
    return parse_name(ref), parse_version(version)

"""``cas://`` paths: ``<pipeline>/<step>/<artifact>/<version>[/<path in a tree>]``.

Names are data, never paths (invariant 8): every segment is checked here,
before the filesystem looks anything up or writes anything.  ``.``/``..``,
empty segments (``a//b``, which is how an absolute path sneaks in), leading
slashes, backslashes, control characters and percent-encoded forms of any of
these (``%2e%2e``, ``%2f``, double-encoded ``%252e``) are refused with
:class:`~cas.errors.InvalidNameError`.  Paths are literal: ``%41`` is never
decoded to ``A``; it is only refused when decoding would change its meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from cas.core.names import check_segment, parse_version
from cas.core.tree import check_tree_path
from cas.errors import InvalidNameError

__all__ = ["CasPath", "parse_path", "LEVELS"]

#: what each namespace level is called, by number of segments
LEVELS = ("store root", "pipeline", "step", "artifact", "version")
_SEGMENT_KINDS = ("pipeline", "step", "artifact")


@dataclass(frozen=True)
class CasPath:
    """A parsed, validated path (without protocol) into the view."""

    path: str  # as given, without protocol or trailing slash; "" is the root
    segments: tuple[str, ...]  # the namespace part, at most 4 segments
    inner: str = ""  # path inside a tree version, "" when none
    spec: int | str | None = None  # the version segment parsed: int, "latest" or an alias

    @property
    def level(self) -> int:
        """0 root, 1 pipeline, 2 step, 3 artifact, 4 version (or a path inside one)."""
        return len(self.segments)

    @property
    def name(self) -> str:
        """``pipeline/step/artifact``; only for level >= 3."""
        return "/".join(self.segments[:3])

    @property
    def version_path(self) -> str:
        """The version directory this path is in: ``p/s/a/<version>``."""
        return "/".join(self.segments[:4])

    @property
    def what(self) -> str:
        if self.inner:
            return "path inside a version"
        return LEVELS[self.level]

    def join(self, child: str) -> str:
        return f"{self.path}/{child}" if self.path else child


def _check_encoded(part: str, full: str) -> None:
    """Refuse percent-encoded forms that would decode into a separator or a dot segment."""
    decoded, previous = part, None
    while "%" in decoded and decoded != previous:  # double encoding: %252e -> %2e -> .
        previous, decoded = decoded, unquote(decoded)
    if decoded == part:
        return
    if (
        decoded in (".", "..")
        or "/" in decoded
        or "\\" in decoded
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in decoded)
    ):
        raise InvalidNameError(
            f"invalid cas path {full!r}: percent-encoded {part!r} decodes to {decoded!r}, which would escape the namespace"
        )


def parse_path(path: str) -> CasPath:
    """Validate a protocol-less path; InvalidNameError says what is wrong and where."""
    if not isinstance(path, str):
        raise InvalidNameError(f"cas path must be a string, got {type(path).__name__}")
    if path == "":
        return CasPath("", ())
    if path.startswith("/"):
        raise InvalidNameError(
            f"invalid cas path {path!r}: paths are relative to the store, like cas://pipeline/step/artifact/1"
        )
    if "\x00" in path or "\\" in path:
        raise InvalidNameError(f"invalid cas path {path!r}: NUL and backslashes are not allowed")
    parts = path.split("/")
    for part in parts:
        if part == "":
            raise InvalidNameError(f"invalid cas path {path!r}: empty segment ('//' or an absolute path inside it)")
        if part in (".", ".."):
            raise InvalidNameError(f"invalid cas path {path!r}: {part!r} segments would escape the namespace")
        if "%" in part:
            _check_encoded(part, path)
    for kind, part in zip(_SEGMENT_KINDS, parts[:3], strict=False):
        check_segment(part, kind)
    if len(parts) < 4:
        return CasPath(path, tuple(parts))
    spec = parse_version(parts[3])
    inner = "/".join(parts[4:])
    if inner:
        check_tree_path(inner)
    return CasPath(path, tuple(parts[:4]), inner, spec)

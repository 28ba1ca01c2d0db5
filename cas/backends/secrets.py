"""Keeping credentials out of everything cas writes or shows (invariant 11).

``redact_url`` drops a URL's ``user:password@``; ``secrets_of`` finds every
credential in storage options and a ``Scrubber`` removes those strings from a
text (an exception message, a log line) before it goes anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["redact_url", "secrets_of", "Scrubber"]

_SECRET_KEY = re.compile(r"key|secret|token|password|passwd|credential|sas|connection_string|signature", re.I)
_CONN_SECRET = re.compile(r"(?:AccountKey|SharedAccessSignature|SharedAccessKey)=([^;]+)", re.I)
# Shorter values ("anon", "true") are not credentials, and scrubbing them would garble messages.
_MIN_SECRET_LEN = 6


def secrets_of(options: Any) -> set[str]:
    """Every string in ``options`` that could be a credential (recursively)."""
    found: set[str] = set()

    def visit(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                visit(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v, key)
        elif isinstance(value, str) and _SECRET_KEY.search(key):
            found.add(value)
            found.update(m.group(1) for m in _CONN_SECRET.finditer(value))

    visit(options)
    return {s for s in found if len(s) >= _MIN_SECRET_LEN}


class Scrubber:
    """Removes known secret strings from text before it goes anywhere."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a connection string goes before the key inside it.
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text


def redact_url(url: str) -> str:
    """Drop any user:password@ part so credentials never reach logs or reprs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    if "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}://{host}{slash}{path}"

"""Retrying transient backend failures: one dropped connection must not fail a save or a sync.

Only calls that are safe to repeat are retried, and only for failures that
say nothing about the request itself: a reset or refused connection, a
timeout, a truncated response, a 5xx answer or throttling (429, ``SlowDown``).
"Not found", "already exists", "permission denied" and every cas error are
answers, never retried.  A create-only write that is retried may find its own
earlier attempt: :mod:`cas.backends.cloud` compares content to tell (see
``ObjectStoreBackend.create_bytes``).

Backoff is exponential with jitter (tenacity): ``attempts`` tries in all,
waits from ``initial`` seconds doubling up to ``maximum``, so a call gives up
after a bounded time (about 1.5 s of waiting with the defaults, plus the
attempts themselves).  ``CAS_RETRIES`` sets how many retries follow the first
attempt (default 4; 0 turns retrying off).  The client libraries (botocore,
s3fs, gcsfs, the Azure SDK) have their own retries below these; cas's cover
what they give up on or do not retry, and the calls they do not know are
create-only.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cas.errors import CasError, InvalidValueError

__all__ = ["RetryPolicy", "is_transient"]

T = TypeVar("T")

DEFAULT_RETRIES = 4

# (top-level package, class name) anywhere in an exception's MRO: matched by
# name so that no optional client library has to be imported to classify.
_TRANSIENT_CLASSES = {
    ("botocore", "HTTPClientError"),  # connection closed, read timeouts
    ("botocore", "ConnectionError"),  # could not connect, connect timeout
    ("botocore", "IncompleteReadError"),
    ("botocore", "ResponseStreamingError"),
    ("aiohttp", "ClientConnectionError"),  # server disconnected, connection reset
    ("aiohttp", "ClientPayloadError"),  # a response cut short
    ("aiohttp", "ServerTimeoutError"),
    ("fsspec", "FSTimeoutError"),
    ("azure", "ServiceRequestError"),  # the request never got an answer
    ("azure", "ServiceResponseError"),
    ("azure", "IncompleteReadError"),
    ("requests", "ConnectionError"),
    ("requests", "Timeout"),
    ("urllib3", "ProtocolError"),
    ("google", "TransportError"),
    ("http", "IncompleteRead"),
}
_TRANSIENT_ERRNOS = {
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EPIPE,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EAGAIN,
}
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TooManyRequests",
    "RequestLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "ServerBusy",
    "OperationTimedOut",
}
# Answers about the request, never retried, wherever they appear.
_ANSWERS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError, CasError)


def is_transient(exc: BaseException) -> bool:
    """Would the same call, repeated, plausibly succeed?  Follows ``__cause__``/``__context__``,
    because fsspec clients re-raise a library error as an ``OSError`` from it."""
    if isinstance(exc, _ANSWERS):
        return False
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if _transient_one(current):
            return True
        seen += 1
        current = current.__cause__ or current.__context__
    return False


def _transient_one(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    for cls in type(exc).__mro__:
        if (cls.__module__.partition(".")[0], cls.__name__) in _TRANSIENT_CLASSES:
            return True
    status, code = _status_of(exc)
    return status in _TRANSIENT_STATUS or code in _TRANSIENT_CODES


def _status_of(exc: BaseException) -> tuple[int | None, str | None]:
    """(HTTP status, service error code) where a client library's error carries them."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        error = response.get("Error") or {}
        meta = response.get("ResponseMetadata") or {}
        return _int(meta.get("HTTPStatusCode")), error.get("Code")
    for attr in ("status_code", "status", "code"):  # azure HttpResponseError, aiohttp, gcsfs HttpError
        status = _int(getattr(exc, attr, None))
        if status is not None:
            return status, getattr(exc, "error_code", None)
    return None, None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a backend call is retried."""

    attempts: int = DEFAULT_RETRIES + 1  # tries in all; 1 never retries
    initial: float = 0.1  # seconds before the first retry
    maximum: float = 2.0  # no wait is longer than this

    @classmethod
    def from_env(cls) -> RetryPolicy:
        raw = os.environ.get("CAS_RETRIES", "").strip()
        if not raw:
            return cls()
        if not raw.isdigit():
            raise InvalidValueError(f"CAS_RETRIES must be a whole number of retries, not {raw!r}")
        return cls(attempts=int(raw) + 1)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, repeated while it fails transiently; the last failure is re-raised as it was."""
        if self.attempts <= 1:
            return fn()
        import tenacity  # here: opening a memory:// store imports this module too, and never retries

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            # 0.1, 0.2, 0.4 ... s, capped, plus jitter so retrying threads and machines spread out
            wait=tenacity.wait_exponential(multiplier=self.initial, max=self.maximum) + tenacity.wait_random(0, self.initial),
            retry=tenacity.retry_if_exception(is_transient),
            reraise=True,
        )
        return retrying(fn)

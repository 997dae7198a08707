"""Secrets out of what cachebridge prints and logs.

Endpoint URLs can carry credentials: ``redis://:PASSWORD@host:6379`` and
``rediss://USER:PASSWORD@host`` (redis-py's URL forms, also ``?password=``), or
``https://USER:PASSWORD@proxy:8443`` in ``AWS_ENDPOINT_URL`` or ``--endpoint-url``. Such a URL
can reach an error message (botocore names the endpoint it could not reach), a log line or a
drill report. ``redact`` replaces the password, keeping the rest readable::

    >>> redact("cannot reach rediss://app:s3cret@cache.example.com:6379/0")
    'cannot reach rediss://app:***@cache.example.com:6379/0'

It is applied by the log formatter (``logs.JsonFormatter``) and, through
``redacted_output``, to everything a CLI command prints (errors, reports, the drill's
timeline). It over-redacts rather than under-redacts: a password holding an unescaped
``@`` or ``/`` is still hidden whole. Standard library only (the Lambda imports it).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["MASK", "redact", "RedactingStream", "redacted_output"]

MASK = "***"

# scheme://USERINFO@ : USERINFO runs to the last "@" before whitespace or a quote, so a
# password with a raw "@" or "/" in it is hidden whole rather than cut at its first "@".
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]{0,31}://)(?P<userinfo>[^\s\"'<>`]*)@")
# Query parameters that carry a secret (redis-py reads ?password=).
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pass|pwd|secret|token|auth|access_token|X-Amz-Signature|X-Amz-Security-Token)=)"
    r"(?P<value>[^&#\s\"'<>`]*)",
    re.IGNORECASE,
)
# Schemes whose user part alone is a secret: redis://SECRET@host is a password to some clients.
_PASSWORD_ONLY_SCHEMES = ("redis://", "rediss://", "valkey://", "valkeys://", "unix://")


def _userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match["scheme"], match["userinfo"]
    user, colon, _password = userinfo.partition(":")
    if colon:
        return f"{scheme}{user}:{MASK}@"
    if scheme.lower() in _PASSWORD_ONLY_SCHEMES and userinfo:
        return f"{scheme}{MASK}@"
    return match.group(0)


def redact(text: str) -> str:
    """``text`` with every URL password replaced by ``***``."""
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(_userinfo, text)
    return _QUERY_SECRET.sub(lambda m: m["key"] + MASK, text)


class RedactingStream:
    """A text stream that redacts what is written, then writes it to ``inner``.

    It exposes no ``buffer``, so nothing can write around it; writing bytes raises
    ``TypeError`` (click probes streams that way to tell text from binary)."""

    def __init__(self, inner: IO[str]) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._inner.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._inner, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:
        return getattr(self._inner, "errors", None)

    @property
    def inner(self) -> IO[str]:
        return self._inner


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """Redact everything written to ``sys.stdout`` and ``sys.stderr`` inside the block."""
    saved = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(saved[0])  # type: ignore[assignment]
    sys.stderr = RedactingStream(saved[1])  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved

"""Secrets out of what cachebridge prints and logs.

Endpoint URLs can carry credentials: ``redis://:PASSWORD@host:6379`` and
``rediss://USER:PASSWORD@host`` (redis-py's URL forms, also ``?password=``), or
``https://USER:PASSWORD@proxy:8443`` in ``AWS_ENDPOINT_URL`` or ``--endpoint-url``. Such a URL
can reach an error message (botocore names the endpoint it could not reach), a log line or a
drill report. ``redact`` replaces the password, keeping the rest readable::

    >>> redact("cannot reach rediss://app:s3cret@cache.example.com:6379/0")
    'cannot reach rediss://app:***@cache.example.com:6379/0'

It is applied by the log formatter (``logs.JsonFormatter``), the CLI's error output and the
drill's report. It over-redacts rather than under-redacts: a password holding an unescaped
``@`` or ``/`` is still hidden whole. Standard library only (the Lambda imports it).
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact"]

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

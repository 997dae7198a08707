"""Exceptions raised by cachebridge.

Every error the project raises on purpose derives from ``CacheBridgeError``::

    CacheBridgeError
    ├── ConfigError                  bad config file, env var or flag (CLI exit 2)
    ├── SourceError                  the source could not say where traffic should go
    │   ├── SourceTimeout            no nameserver / API answered in time
    │   ├── SourceNotFound           NXDOMAIN, unknown replication group
    │   ├── SourceUnsupported        e.g. cluster mode enabled
    │   └── EmptySource              the source answered, but with no address
    ├── NlbError                     the Elastic Load Balancing API refused or failed
    │   ├── TargetGroupNotFound
    │   ├── Throttled                still throttled after botocore's adaptive retries
    │   └── AccessDenied
    └── EventError                   a Lambda event that cachebridge cannot read

A source error never leads to a deregistration: the planner sees a failed source and
plans nothing for that binding (see ``planner.plan``).
"""

from __future__ import annotations

__all__ = [
    "CacheBridgeError",
    "ConfigError",
    "SourceError",
    "SourceTimeout",
    "SourceNotFound",
    "SourceUnsupported",
    "EmptySource",
    "NlbError",
    "TargetGroupNotFound",
    "Throttled",
    "AccessDenied",
    "EventError",
]


class CacheBridgeError(Exception):
    """Base of every error cachebridge raises on purpose."""


class ConfigError(CacheBridgeError):
    """Invalid configuration. ``field`` names the offending setting."""

    def __init__(self, field: str, problem: str, accepted: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.accepted = accepted
        message = f"{field}: {problem}"
        if accepted:
            message += f" (accepted: {accepted})"
        super().__init__(message)


class SourceError(CacheBridgeError):
    """The source could not tell where traffic should go."""


class SourceTimeout(SourceError):
    pass


class SourceNotFound(SourceError):
    pass


class SourceUnsupported(SourceError):
    pass


class EmptySource(SourceError):
    pass


class NlbError(CacheBridgeError):
    """An Elastic Load Balancing (or EC2 look-up) call failed."""

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class TargetGroupNotFound(NlbError):
    pass


class Throttled(NlbError):
    pass


class AccessDenied(NlbError):
    pass


class EventError(CacheBridgeError):
    """A Lambda event that is not one cachebridge understands."""

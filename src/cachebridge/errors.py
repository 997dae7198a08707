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
    ├── LeaseError                   the write lease of a target group (``lease``)
    │   ├── LeaseBusy                another controller holds it: nothing written
    │   └── LeaseUnavailable         the lock table failed: register only, never deregister
    ├── EventError                   a Lambda event that cachebridge cannot read
    ├── SyncFailed                   a pass ended with at least one binding in error
    │                                (raised after every binding was handled and reported)
    └── DeployError                  a stack could not be created, updated or deleted
                                     (names each failing resource and CloudFormation's reason)

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
    "PacingBudgetSpent",
    "LeaseError",
    "LeaseBusy",
    "LeaseUnavailable",
    "EventError",
    "SyncFailed",
    "DeployError",
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


class PacingBudgetSpent(NlbError):
    """An ELB call paced client-side (``pacing``) would have waited past the run's deadline:
    it was not made."""


class LeaseError(CacheBridgeError):
    """The write lease of a target group could not be used."""


class LeaseBusy(LeaseError):
    pass


class LeaseUnavailable(LeaseError):
    pass


class EventError(CacheBridgeError):
    """A Lambda event that is not one cachebridge understands."""


class SyncFailed(CacheBridgeError):
    """At least one binding ended in error. Raised once every binding was handled and
    reported, so that Lambda counts an error (and retries an asynchronous event).

    ``failed`` names the bindings in error; ``report`` is the whole ``SyncReport``."""

    def __init__(self, message: str, failed: tuple[str, ...] = (), report: object | None = None) -> None:
        self.failed = tuple(failed)
        self.report = report
        super().__init__(message)


class DeployError(CacheBridgeError):
    """CloudFormation (or a call ``deploy``/``destroy`` makes around it) failed.

    ``failures`` holds one entry per failing resource (``deploy.stack.ResourceFailure``:
    logical id, type, status and CloudFormation's reason), first failure first;
    ``stack_status`` is the stack's final status when there is a stack."""

    def __init__(self, message: str, failures: tuple[object, ...] = (), stack_status: str | None = None) -> None:
        self.failures = tuple(failures)
        self.stack_status = stack_status
        super().__init__(message)

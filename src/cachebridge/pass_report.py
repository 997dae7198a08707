"""What a pass is asked and what it answers: the ``Trigger`` that starts it, the
bindings a trigger concerns (``select_bindings``: an event names a replication group or one
of its nodes), and the per-binding ``BindingResult`` gathered in a ``SyncReport``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import Binding, Config, ElastiCacheSourceSpec
from .targets import Target

__all__ = ["Status", "Trigger", "BindingResult", "SyncReport", "select_bindings"]

Status = Literal["in_sync", "changed", "error", "skipped", "dry_run"]


@dataclass(frozen=True)
class Trigger:
    """Why a pass runs. ``wait_for_change`` asks for the bounded re-read loop."""

    kind: Literal["manual", "schedule", "event", "invoke"] = "manual"
    replication_group: str | None = None
    event: str | None = None
    wait_for_change: bool = False


@dataclass
class BindingResult:
    name: str
    source: str
    target_group: str
    port: int
    status: Status = "in_sync"
    desired: tuple[Target, ...] = ()
    registered_before: tuple[Target, ...] = ()
    register: tuple[Target, ...] = ()
    deregister: tuple[Target, ...] = ()
    registered_after: tuple[Target, ...] = ()
    deferred: tuple[Target, ...] = ()
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    target_group_arn: str | None = None
    health: dict[str, str] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    drift: int = 0
    source_error: bool = False
    ttl: int | None = None
    polls: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("in_sync", "changed", "dry_run")

    @property
    def changes(self) -> int:
        return 0 if self.status == "dry_run" else len(self.register) + len(self.deregister)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "target_group": self.target_group,
            "port": self.port,
            "desired": [str(t) for t in self.desired],
            "registered_before": [str(t) for t in self.registered_before],
            "register": [str(t) for t in self.register],
            "deregister": [str(t) for t in self.deregister],
            "registered_after": [str(t) for t in self.registered_after],
            "status": self.status,
            "error": self.error,
            "warnings": list(self.warnings),
            "duration_ms": round(self.duration_ms, 1),
            "target_group_arn": self.target_group_arn,
            "health": dict(self.health),
            "deferred": [str(t) for t in self.deferred],
            "drift": self.drift,
            "ttl": self.ttl,
            "layout": "retarget",
        }


@dataclass
class SyncReport:
    bindings: list[BindingResult]
    trigger: Trigger = Trigger()

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.bindings)

    @property
    def failed(self) -> list[BindingResult]:
        return [b for b in self.bindings if not b.ok]

    def to_json(self) -> dict[str, Any]:
        return {"bindings": [b.to_json() for b in self.bindings]}


def select_bindings(config: Config, trigger: Trigger) -> tuple[Binding, ...]:
    """The bindings an event concerns, in configuration order: elasticache sources reading
    the named replication group, and dns sources whose ElastiCache hostname names it."""
    if trigger.replication_group is None:
        return config.bindings
    named = trigger.replication_group.lower()
    return tuple(
        b for b in config.bindings
        if (_names_group(named, b.source.replication_group_id) if isinstance(b.source, ElastiCacheSourceSpec)
            else _dns_names_group(named, b.source.host))
    )


# Member clusters are named <group>-NNN (cluster mode disabled) or <group>-NNNN-NNN.
_MEMBER_SUFFIX = r"(?:-\d{3,4}){1,2}"


def _is_member(cluster_id: str, rg_id: str) -> bool:
    return re.fullmatch(re.escape(rg_id) + _MEMBER_SUFFIX, cluster_id) is not None


def _names_group(named: str, rg_id: str) -> bool:
    # Events name the group ("orders") or one of its nodes ("orders-002", "orders-0001-002");
    # a different group that merely shares the prefix ("orders-archive") is not named.
    return named == rg_id or _is_member(named, rg_id)


def _dns_names_group(named: str, host: str) -> bool:
    # ElastiCache endpoints embed the group id: master.<rg>.<hash>.<region>.cache.amazonaws.com
    # (and <rg>.<hash>.ng.0001.<region>... for older ones); node endpoints start with the
    # node id (<rg>-001.<hash>.<region>...), which an event naming the group also concerns.
    if "cache.amazonaws.com" not in host:
        return False
    labels = host.split(".")[:2]
    return any(_names_group(named, label) or _is_member(label, named) for label in labels)

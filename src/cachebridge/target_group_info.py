"""What the NLB adapter reads: a target group (``TargetGroupInfo``) and a listener
(``ListenerInfo``), the tags a deployed stack puts on its target group, and which target
group settings slow down or break following a failover (``risky_settings``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LOCK_TABLE_TAG",
    "MAX_SAFE_DEREGISTRATION_DELAY_S",
    "OWNER_TAG",
    "SLOW_HEALTH_CHECK_S",
    "ListenerInfo",
    "TargetGroupInfo",
    "forward_target",
    "risky_settings",
]

MAX_SAFE_DEREGISTRATION_DELAY_S = 30
# Worst-case seconds for a new target to turn healthy above which we warn:
# AWS's TCP defaults (interval 30 s x healthy threshold 5) give 150 s.
SLOW_HEALTH_CHECK_S = 60

# Which controller owns a target group (a deployed stack's name), and the DynamoDB table of
# its write lease; set by the template on the stack's target group.
OWNER_TAG = "cachebridge:owner"
LOCK_TABLE_TAG = "cachebridge:lock-table"


@dataclass(frozen=True)
class TargetGroupInfo:
    arn: str
    name: str
    port: int | None
    protocol: str | None
    target_type: str
    vpc_id: str | None
    vpc_cidrs: tuple[str, ...]
    health_check_interval_s: int | None
    healthy_threshold: int | None
    attributes: dict[str, str] = field(default_factory=dict)
    ip_address_type: str = "ipv4"
    tags: dict[str, str] = field(default_factory=dict)
    # Optional reads that failed (attributes, VPC CIDRs, tags): said once, never fatal.
    warnings: tuple[str, ...] = ()
    vpc_known: bool = True
    # Whether attributes and tags were read (``info(details=False)`` leaves them to
    # ``with_details``, for a pass that turns out to have something to write).
    details_known: bool = True
    # Why the tags (owner, lock table) could not be read, when they could not: a write
    # needs them, so ``sync`` writes nothing rather than take "no tags" for an answer.
    tags_error: str | None = None

    @property
    def owner(self) -> str | None:
        return self.tags.get(OWNER_TAG) or None

    @property
    def lock_table(self) -> str | None:
        return self.tags.get(LOCK_TABLE_TAG) or None

    @property
    def families(self) -> tuple[int, ...]:
        """The IP versions this target group accepts: an IPv4 group rejects a whole
        RegisterTargets call that carries one IPv6 address."""
        return {"ipv4": (4,), "ipv6": (6,)}.get(self.ip_address_type, (4, 6))

    def in_vpc(self, ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in self.vpc_cidrs)


@dataclass(frozen=True)
class ListenerInfo:
    arn: str
    port: int | None
    protocol: str | None
    load_balancer_arn: str | None
    forward: str | None


def forward_target(actions: Sequence[dict[str, Any]]) -> str | None:
    """The target group of a default action that forwards to exactly one group."""
    for action in actions:
        if action.get("Type") != "forward":
            continue
        groups = [g["TargetGroupArn"] for g in (action.get("ForwardConfig") or {}).get("TargetGroups", []) if g.get("TargetGroupArn")]
        if action.get("TargetGroupArn"):
            groups = [action["TargetGroupArn"], *groups]
        unique = set(groups)
        return groups[0] if len(unique) == 1 else None
    return None


def risky_settings(info: TargetGroupInfo) -> list[str]:
    """Target group settings that slow down or break following a failover."""
    warnings: list[str] = []
    attrs = info.attributes
    delay = attrs.get("deregistration_delay.timeout_seconds")
    if delay is not None and delay.isdigit() and int(delay) > MAX_SAFE_DEREGISTRATION_DELAY_S:
        warnings.append(
            f"deregistration_delay.timeout_seconds is {delay}: the demoted primary keeps connections "
            f"(and answers writes with READONLY) that long; use {MAX_SAFE_DEREGISTRATION_DELAY_S} or less"
        )
    if attrs.get("deregistration_delay.connection_termination.enabled", "false").lower() != "true":
        warnings.append(
            "deregistration_delay.connection_termination.enabled is off: clients stay connected to the "
            "demoted primary after failover; turn it on so they reconnect to the new one"
        )
    if info.health_check_interval_s and info.healthy_threshold:
        worst = info.health_check_interval_s * info.healthy_threshold
        if worst > SLOW_HEALTH_CHECK_S:
            warnings.append(
                f"health checks are slow: interval {info.health_check_interval_s}s x healthy threshold "
                f"{info.healthy_threshold} = {worst}s before a new primary takes traffic; "
                "try interval 10 and threshold 2"
            )
    if info.protocol not in (None, "TCP", "TLS", "TCP_UDP"):
        warnings.append(f"target group protocol is {info.protocol}; Redis needs TCP (or TLS)")
    return warnings

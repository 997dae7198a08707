"""elbv2 target groups: (IP, port) identity, recorded ``AvailabilityZone``, pluggable health
and draining targets.

moto 5.2.1 differs from AWS in three ways that cachebridge's tests and sandbox must not
lean on:

1. Identity. ``FakeTargetGroup.targets`` is keyed by ``Id``: registering 10.0.0.1:6380
   overwrites 10.0.0.1:6379, and ``DeregisterTargets`` ignores the port. On AWS a
   target is (Id, Port) and a port left out means the target group's port, so a
   deregister with the wrong port leaves the target registered.
2. AvailabilityZone. moto drops it. AWS needs ``AvailabilityZone=all`` for IP targets
   outside the VPC; recording it lets tests check what was sent, and
   ``DescribeTargetHealth`` echoes it back as AWS does.
3. Health. moto reports every registered target ``healthy``. A pluggable provider
   decides the state instead (the sandbox can run real TCP checks; tests can make a
   target ``initial``, ``unhealthy`` or ``draining``). Without a provider the state
   stays moto's ``healthy``.

And two behaviours made to match AWS: deregistering a target that is not registered is
not an error (moto raises ``InvalidTarget``; AWS accepts the call and does nothing), and
asking for the health of a target that was never registered gives ``unused`` /
``Target.NotRegistered`` (moto says ``unavailable`` for IP targets).

Draining: the sandbox's NLB stand-in (``sandbox.nlb_dataplane``) keeps a deregistered
target ``draining`` for the deregistration delay, as AWS does; moto forgets it at once. A
draining provider lists those targets so ``DescribeTargetHealth`` (without ``Targets``)
reports them, which is what the controller's "draining counts as absent" rule and the
drill's retarget measurement read.

Only the four FakeTargetGroup methods that touch ``targets`` are replaced, plus
``ELBv2Backend.describe_target_health`` for draining targets; the response layer
(elbv2/responses.py) passes ``Targets`` through unchanged and serialises
``FakeHealthStatus.target``, so a subclass that adds ``AvailabilityZone`` there is all
the response side needs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from moto.elbv2 import models as _elbv2_models
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

__all__ = [
    "HealthReport",
    "HealthProvider",
    "DrainingProvider",
    "TargetKey",
    "set_health_provider",
    "health_provider",
    "set_draining_provider",
    "MembershipObserver",
    "set_membership_observer",
    "registered_targets",
    "install",
    "installed",
]

_MARK = "_cachebridge_moto_ext"
_DRAINING_MARK = "_cachebridge_sandbox_ext"

TargetKey = tuple[str, int]


class HealthReport:
    """What a health provider says about one registered target."""

    __slots__ = ("state", "reason", "description")

    def __init__(self, state: str, reason: str | None = None, description: str | None = None) -> None:
        self.state = state
        self.reason = reason
        self.description = description

    def __repr__(self) -> str:
        return f"HealthReport({self.state!r}, {self.reason!r}, {self.description!r})"


# (target group ARN, IP, port) -> a report, a bare state string, or None for moto's default.
HealthProvider = Callable[[str, str, int], "HealthReport | str | None"]

_provider_lock = threading.Lock()
_health_provider: HealthProvider | None = None


def set_health_provider(provider: HealthProvider | None) -> HealthProvider | None:
    """Use ``provider`` for every registered target's state (``None``: always healthy).
    Returns the previous provider. Process-wide, like moto's backends."""
    global _health_provider
    with _provider_lock:
        previous, _health_provider = _health_provider, provider
    return previous


@contextlib.contextmanager
def health_provider(provider: HealthProvider | None) -> Iterator[None]:
    """``set_health_provider`` for the duration of a ``with`` block."""
    previous = set_health_provider(provider)
    try:
        yield
    finally:
        set_health_provider(previous)


def registered_targets(target_group_arn: str) -> dict[TargetKey, dict[str, Any]]:
    """The target records moto holds for a target group: ``{(ip, port): {"Id", "Port",
    "AvailabilityZone"?}}``. For tests that check what was actually sent."""
    parts = target_group_arn.split(":")
    region, account = parts[3], parts[4]
    group = _elbv2_models.elbv2_backends[account][region].target_groups[target_group_arn]
    return {key: dict(record) for key, record in group.targets.items()}


class _HealthStatus(FakeHealthStatus):
    """moto's status, plus the target's ``AvailabilityZone`` in the ``Target`` it returns."""

    def __init__(self, record: dict[str, Any], health_port: str | None, state: str, reason: str | None = None, description: str | None = None) -> None:
        super().__init__(record["Id"], record["Port"], health_port, state, reason, description)
        self.availability_zone = record.get("AvailabilityZone")

    @property
    def target(self) -> dict[str, Any]:  # type: ignore[override]
        out: dict[str, Any] = {"Id": self.instance_id, "Port": self.port}
        if self.availability_zone:
            out["AvailabilityZone"] = self.availability_zone
        return out


def _key(group: FakeTargetGroup, target: dict[str, Any]) -> TargetKey:
    # A description without a port means the target group's port, as on AWS.
    port = target.get("Port")
    return (target["Id"], int(port if port is not None else group.port))


def _rekey(group: FakeTargetGroup) -> None:
    # Target groups created before install() hold Id-keyed records; convert them once.
    for name in ("targets", "deregistered_targets", "terminated_targets"):
        table = getattr(group, name)
        if any(not isinstance(k, tuple) for k in table):
            setattr(group, name, type(table)((k if isinstance(k, tuple) else _key(group, v), v) for k, v in table.items()))


def _register(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    _rekey(self)
    for target in targets:
        if instance := self.ec2_backend.get_instance_by_id(target["Id"]):
            if instance.state != "running":
                raise _elbv2_models.TargetNotRunning(instance_id=target["Id"])
        key = _key(self, target)
        record: dict[str, Any] = {"Id": key[0], "Port": key[1]}
        if target.get("AvailabilityZone"):
            record["AvailabilityZone"] = target["AvailabilityZone"]
        self.targets[key] = record
        self.deregistered_targets.pop(key, None)
        _observe(self.arn, "register", key)


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    _rekey(self)
    for target in targets:
        key = _key(self, target)
        record = self.targets.pop(key, None)
        if record is not None:  # not registered: AWS accepts the call and does nothing
            self.deregistered_targets[key] = record
            _observe(self.arn, "deregister", key)


def _deregister_terminated_instances(self: FakeTargetGroup, instance_ids: list[str]) -> None:
    _rekey(self)
    for key in [k for k in self.targets if k[0] in instance_ids]:
        self.terminated_targets[key] = self.targets.pop(key)


# (state, reason, description) as AWS reports them.
_NOT_REGISTERED = ("unused", "Target.NotRegistered", "Target is not registered to the target group")
_DRAINING = ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
_STOPPED = ("unused", "Target.InvalidState", "Target is in the stopped state")


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
    _rekey(self)
    key = _key(self, target)
    record = self.targets.get(key)
    if record is None:
        asked = {"Id": key[0], "Port": key[1]}
        if key in self.terminated_targets and key not in self.deregistered_targets:
            return _HealthStatus(asked, self.health_check_port, *_DRAINING)
        return _HealthStatus(asked, self.health_check_port, *_NOT_REGISTERED)
    if record["Id"].startswith("i-"):
        instance = ec2_backend.get_instance_by_id(record["Id"])
        if instance and instance.state == "stopped":
            return _HealthStatus(record, self.health_check_port, *_STOPPED)
    provider = _health_provider
    report = provider(self.arn, record["Id"], record["Port"]) if provider is not None else None
    if report is None:
        return _HealthStatus(record, self.health_check_port, "healthy")
    if isinstance(report, str):
        return _HealthStatus(record, self.health_check_port, report)
    return _HealthStatus(record, self.health_check_port, report.state, report.reason, report.description)


DrainingProvider = Callable[[str], "list[tuple[str, int]]"]

_draining_provider: DrainingProvider | None = None


def set_draining_provider(provider: DrainingProvider | None) -> DrainingProvider | None:
    """``provider(target_group_arn)`` lists the (ip, port) targets still draining."""
    global _draining_provider
    with _provider_lock:
        previous, _draining_provider = _draining_provider, provider
    return previous


def _describe_target_health_with_draining(original: Callable[..., Any]) -> Callable[..., Any]:
    def describe_target_health(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> list[Any]:
        described = original(self, target_group_arn, targets)
        provider = _draining_provider
        if targets or provider is None:
            return described
        group = self.target_groups[target_group_arn]
        listed = {(d.target["Id"], int(d.target["Port"])) for d in described}
        for ip, port in provider(target_group_arn):
            if (ip, port) not in listed:
                described.append(_HealthStatus({"Id": ip, "Port": port}, group.health_check_port, *_DRAINING))
        return described

    return describe_target_health


# (target group ARN, "register" | "deregister", (ip, port)), called as each call lands. The
# sandbox's data plane times registration and deregistration from these calls: polling
# moto would miss a deregister followed at once by a register (the switch layout's cut).
MembershipObserver = Callable[[str, str, TargetKey], None]

_membership_observer: MembershipObserver | None = None


def set_membership_observer(observer: MembershipObserver | None) -> MembershipObserver | None:
    """Call ``observer`` for every target registered or deregistered. Returns the previous one."""
    global _membership_observer
    with _provider_lock:
        previous, _membership_observer = _membership_observer, observer
    return previous


def _observe(arn: str, change: str, key: TargetKey) -> None:
    observer = _membership_observer
    if observer is not None:
        observer(arn, change, key)


def install() -> None:
    if not getattr(FakeTargetGroup, _MARK, False):
        FakeTargetGroup.register = _register  # type: ignore[method-assign]
        FakeTargetGroup.deregister = _deregister  # type: ignore[method-assign]
        FakeTargetGroup.deregister_terminated_instances = _deregister_terminated_instances  # type: ignore[method-assign]
        FakeTargetGroup.health_for = _health_for  # type: ignore[method-assign]
        setattr(FakeTargetGroup, _MARK, True)
    if not getattr(ELBv2Backend, _DRAINING_MARK, False):
        ELBv2Backend.describe_target_health = _describe_target_health_with_draining(ELBv2Backend.describe_target_health)  # type: ignore[method-assign]
        setattr(ELBv2Backend, _DRAINING_MARK, True)


def installed() -> bool:
    return bool(getattr(FakeTargetGroup, _MARK, False) and getattr(ELBv2Backend, _DRAINING_MARK, False))

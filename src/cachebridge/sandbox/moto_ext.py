"""cachebridge's extensions to moto's backends: the one place where moto is patched.

Tests install them in-process (``mock_aws``); the sandbox installs them in the process that
runs moto server. Each section below patches one service, says which moto gap it closes and
why cachebridge needs it closed. ``install()`` applies every section and is idempotent.

Sections:

- elbv2 target groups: (IP, port) identity, recorded ``AvailabilityZone``, pluggable health.
- elasticache replication groups: ``failover_replication_group`` swaps ``CurrentRole`` (a verb
  on backend state, not a patch; nothing for ``install()`` to do).
- cloudformation: what ``cachebridge deploy`` needs to create, update and delete its stack
  (NLB ``Type``, target group attributes, resource events, failures with reasons, rollback,
  deletes that remove everything, SNS subscriptions and CloudWatch alarms).
- elasticache for deploy: member clusters with security groups and notification topic,
  ``ModifyReplicationGroup`` for the notification topic.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from moto.elbv2 import models as _elbv2_models
from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

__all__ = [
    "install",
    "installed",
    "HealthReport",
    "HealthProvider",
    "set_health_provider",
    "health_provider",
    "registered_targets",
]

_install_lock = threading.Lock()


def install() -> None:
    """Apply every extension in this module. Safe to call any number of times."""
    with _install_lock:
        _install_elbv2()
        _install_cloudformation()
        _install_elasticache_deploy()
        _install_sandbox()


def installed() -> bool:
    return bool(getattr(FakeTargetGroup, _ELBV2_MARK, False))


# =====================================================================================
# elbv2: target groups
# =====================================================================================
#
# moto 5.2.1 differs from AWS in three ways that cachebridge's tests and sandbox must not
# lean on:
#
# 1. Identity. ``FakeTargetGroup.targets`` is keyed by ``Id``: registering 10.0.0.1:6380
#    overwrites 10.0.0.1:6379, and ``DeregisterTargets`` ignores the port. On AWS a
#    target is (Id, Port) and a port left out means the target group's port, so a
#    deregister with the wrong port leaves the target registered.
# 2. AvailabilityZone. moto drops it. AWS needs ``AvailabilityZone=all`` for IP targets
#    outside the VPC; recording it lets tests check what was sent, and
#    ``DescribeTargetHealth`` echoes it back as AWS does.
# 3. Health. moto reports every registered target ``healthy``. A pluggable provider
#    decides the state instead (the sandbox can run real TCP checks; tests can make a
#    target ``initial``, ``unhealthy`` or ``draining``). Without a provider the state
#    stays moto's ``healthy``.
#
# And two behaviours made to match AWS: deregistering a target that is not registered is
# not an error (moto raises ``InvalidTarget``; AWS accepts the call and does nothing), and
# asking for the health of a target that was never registered gives ``unused`` /
# ``Target.NotRegistered`` (moto says ``unavailable`` for IP targets).
#
# Only the four FakeTargetGroup methods that touch ``targets`` are replaced; the response
# layer (elbv2/responses.py) passes ``Targets`` through unchanged and serialises
# ``FakeHealthStatus.target``, so a subclass that adds ``AvailabilityZone`` there is all
# the response side needs.

_ELBV2_MARK = "_cachebridge_moto_ext"

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


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    _rekey(self)
    for target in targets:
        key = _key(self, target)
        record = self.targets.pop(key, None)
        if record is not None:  # not registered: AWS accepts the call and does nothing
            self.deregistered_targets[key] = record


def _deregister_terminated_instances(self: FakeTargetGroup, instance_ids: list[str]) -> None:
    _rekey(self)
    for key in [k for k in self.targets if k[0] in instance_ids]:
        self.terminated_targets[key] = self.targets.pop(key)


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
    _rekey(self)
    key = _key(self, target)
    record = self.targets.get(key)
    if record is None:
        asked = {"Id": key[0], "Port": key[1]}
        if key in self.deregistered_targets:
            return _HealthStatus(asked, self.health_check_port, "unused", "Target.NotRegistered", "Target is not registered to the target group")
        if key in self.terminated_targets:
            return _HealthStatus(asked, self.health_check_port, "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
        return _HealthStatus(asked, self.health_check_port, "unused", "Target.NotRegistered", "Target is not registered to the target group")
    if record["Id"].startswith("i-"):
        instance = ec2_backend.get_instance_by_id(record["Id"])
        if instance and instance.state == "stopped":
            return _HealthStatus(record, self.health_check_port, "unused", "Target.InvalidState", "Target is in the stopped state")
    provider = _health_provider
    report = provider(self.arn, record["Id"], record["Port"]) if provider is not None else None
    if report is None:
        return _HealthStatus(record, self.health_check_port, "healthy")
    if isinstance(report, str):
        return _HealthStatus(record, self.health_check_port, report)
    return _HealthStatus(record, self.health_check_port, report.state, report.reason, report.description)


def _install_elbv2() -> None:
    if getattr(FakeTargetGroup, _ELBV2_MARK, False):
        return
    FakeTargetGroup.register = _register  # type: ignore[method-assign]
    FakeTargetGroup.deregister = _deregister  # type: ignore[method-assign]
    FakeTargetGroup.deregister_terminated_instances = _deregister_terminated_instances  # type: ignore[method-assign]
    FakeTargetGroup.health_for = _health_for  # type: ignore[method-assign]
    setattr(FakeTargetGroup, _ELBV2_MARK, True)


# =====================================================================================
# elasticache: failover of a cluster-mode-disabled replication group
# =====================================================================================
#
# moto 5.2.1 models neither ``TestFailover`` nor the promotion of a replica: the member
# created as ``<rg>-001`` reports ``CurrentRole: primary`` for ever. The elasticache://
# source follows ``CurrentRole`` (DESIGN.md: DescribeReplicationGroups gives each member's
# role), so tests and drills need a way to swap roles. This is a verb on moto's in-process
# backend state, not a patch: ``install()`` has nothing to apply for it. Node names
# (``ReadEndpoint.Address``) keep their values, as on AWS; which address a name resolves to
# is the DNS zone's business (``sandbox.dns``).

__all__ += ["failover_replication_group"]


def failover_replication_group(account_id: str, region: str, rg_id: str, new_primary_cluster_id: str) -> tuple[str, ...]:
    """Make member ``new_primary_cluster_id`` the primary of replication group ``rg_id``
    (cluster mode disabled) and every other member a replica, as a completed failover
    leaves it. Returns the cluster ids that were primary before.

    The member list is replaced in one assignment, so a concurrent DescribeReplicationGroups
    (moto server serves requests on threads) sees the old roles or the new ones, never a mix.
    Raises ``ValueError`` for an unknown group or member, or a cluster-mode-enabled group.
    """
    from moto.elasticache.models import elasticache_backends

    backend = elasticache_backends[account_id][region]
    group = backend.replication_groups.get(rg_id)
    if group is None:
        raise ValueError(f"no replication group {rg_id!r} in moto's elasticache backend ({account_id}, {region})")
    if getattr(group, "cluster_mode", "disabled") == "enabled":
        raise ValueError(f"replication group {rg_id!r} has cluster mode enabled; only cluster-mode-disabled failover is modelled")
    node_groups = group.node_groups
    members = [m for ng in node_groups for m in ng["node_group_members"]]
    ids = [m["cache_cluster_id"] for m in members]
    if new_primary_cluster_id not in ids:
        raise ValueError(f"replication group {rg_id!r} has no member {new_primary_cluster_id!r} (members: {', '.join(ids)})")
    previous = tuple(m["cache_cluster_id"] for m in members if m.get("current_role") == "primary")
    for ng in node_groups:
        ng["node_group_members"] = [
            {**m, "current_role": "primary" if m["cache_cluster_id"] == new_primary_cluster_id else "replica"}
            for m in ng["node_group_members"]
        ]
    return previous


# =====================================================================================
# cloudformation: deploying a stack the way ``cachebridge deploy`` does
# =====================================================================================
#
# ``cachebridge deploy`` creates or updates one stack of deploy/template.py through a
# change set, follows its events, reads its outputs, and ``destroy`` deletes it. moto
# 5.2.1's CloudFormation gets that wrong in ways the template must not be bent around:
#
# 1. ``AWS::ElasticLoadBalancingV2::LoadBalancer`` ignores ``Type`` (every load balancer
#    is an ALB, so a TCP listener fails), ``IpAddressType``, ``SubnetMappings`` and
#    ``LoadBalancerAttributes``, and has no ``LoadBalancerFullName``.
# 2. ``AWS::ElasticLoadBalancingV2::TargetGroup`` ignores ``TargetGroupAttributes``
#    (deregistration delay, connection termination) and ``HealthCheckEnabled``, has no
#    ``Fn::GetAtt`` at all (``TargetGroupFullName``), no update and no delete. Listeners,
#    ``AWS::EC2::SecurityGroupIngress`` rules and ``AWS::Lambda::Permission`` have no
#    delete either (and ingress rules no update), so a deleted stack leaves them behind (an ingress rule on the cache's
#    security group, from a security group that no longer exists).
# 3. ``AWS::EC2::SecurityGroup`` ignores ``SecurityGroupEgress`` and rule descriptions, is
#    deleted while other groups' rules or a load balancer still name it (AWS says
#    DependencyViolation, and CloudFormation deletes the dependents first), and
#    ``Ref: AWS::NoValue`` inside a list (a conditional rule) leaves ``None`` in the list
#    instead of removing the entry.
# 4. ``AWS::SNS::Subscription`` and ``AWS::CloudWatch::Alarm`` are not modelled: moto
#    skips them with a warning and the stack "succeeds" without them.
# 5. ``AWS::Events::Rule`` with a ``Name`` that another rule already has overwrites that
#    rule; on AWS the stack fails ("already exists"), which is what keeps two stacks from
#    sharing a schedule rule.
# 6. An update touches every resource that names a changed parameter with ``Ref`` (not
#    with ``Fn::Sub``; the change set does not list them at all), ignoring its
#    ``Condition`` (a resource whose condition turned true is never created, one whose
#    condition turned false never deleted), and stores ``None`` for a resource it cannot
#    update, forgetting it.
# 7. Executing a change set writes no resource events, keeps the outputs and parameters of
#    the stack's previous template (none at all after a CREATE change set), keeps the
#    executed change set listed (AWS removes a stack's change sets once one is executed),
#    and a failing resource becomes an HTTP 500 rather than ``CREATE_FAILED`` with a reason
#    and a rollback. Deleting a stack that cannot be deleted loses the stack the same way.
#
# The patches follow AWS's documented behaviour for these resource types, not
# cachebridge's template. A resource type moto does not model at all now fails the stack
# (``CREATE_FAILED``, "not modelled") instead of being skipped, and one moto cannot
# delete is reported ``DELETE_SKIPPED`` ("left behind") instead of silently kept, so a
# test sees what the emulator did not do.

__all__ += ["stack_events_recorded"]

_CFN_MARK = "_cachebridge_cfn_ext"


def stack_events_recorded(stack_name: str, account_id: str, region: str) -> list[tuple[str, str, str | None]]:
    """``(logical id, status, reason)`` of every event of a stack, oldest first. For tests
    that look at moto's side of a deployment."""
    from moto.cloudformation.models import cloudformation_backends

    stack = cloudformation_backends[account_id][region].get_stack(stack_name)
    return [(e.logical_resource_id, e.resource_status, e.resource_status_reason) for e in stack.events]


def _reason(exc: BaseException) -> str:
    code = next(
        (value for value in (getattr(exc, "error_type", None), getattr(exc, "code", None)) if isinstance(value, str) and value),
        type(exc).__name__,
    )
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, KeyError):
        message = f"no value for {exc.args[0]!r}" if exc.args else message
    return f"{message} (Error Code: {code})" if code not in message else message


def _physical_id(resource: Any) -> str:
    try:
        value = resource.physical_resource_id
    except Exception:  # some moto models have no physical id (Lambda permissions)
        return ""
    return value if isinstance(value, str) else ""


class _StackEvents:
    """Resource events of one stack operation, written as moto's own ``Event`` objects so
    DescribeStackEvents returns them. Active for the thread that runs the operation."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.failed: list[str] = []  # logical ids whose own creation/update failed, in order
        self.deleting: set[str] = set()
        self.delete_errors: dict[str, tuple[str, str, str]] = {}  # logical id -> (type, physical id, reason)

    def add(self, logical_id: str, resource_type: str, status: str, physical_id: str = "", reason: str | None = None) -> None:
        from moto.cloudformation.models import Event

        self.stack.events.append(
            Event(
                stack_id=self.stack.stack_id,
                stack_name=self.stack.name,
                logical_resource_id=logical_id,
                physical_resource_id=physical_id,
                resource_type=resource_type,
                resource_status=status,
                resource_status_reason=reason,
                resource_properties=None,
            )
        )

    def operation_failed(self, logical_id: str, resource_type: str, status: str, exc: BaseException) -> None:
        # Resources created on demand as a dependency of another run inside that one's
        # creation: the first failure is the cause; the ones waiting on it are cancelled.
        reason = f"Resource {status.split('_')[0].lower()} cancelled" if self.failed else _reason(exc)
        if logical_id not in self.failed:
            self.failed.append(logical_id)
            self.add(logical_id, resource_type, status, reason=reason)


_stack_events: contextvars.ContextVar[_StackEvents | None] = contextvars.ContextVar("cachebridge_stack_events", default=None)


@contextlib.contextmanager
def _recording(stack: Any) -> Iterator[_StackEvents]:
    events = _StackEvents(stack)
    token = _stack_events.set(events)
    try:
        yield events
    finally:
        _stack_events.reset(token)


def _install_cloudformation() -> None:
    from moto.cloudformation import models as cfn_models
    from moto.cloudformation import parsing

    if getattr(parsing, _CFN_MARK, False):
        return
    _patch_template_functions(parsing)
    _patch_stack_operations(parsing, cfn_models)
    _patch_elbv2_resources()
    _patch_ec2_resources()
    _patch_lambda_permission()
    _patch_events_rule()
    _define_missing_resources()
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    setattr(parsing, _CFN_MARK, True)


# -- template functions ---------------------------------------------------------------------


def _patch_template_functions(parsing: Any) -> None:
    original_clean_json = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        # ``Ref: AWS::NoValue`` (None) in a list removes that entry, as on AWS.
        if isinstance(resource_json, list):
            cleaned = [clean_json(item, resources_map) for item in resource_json]
            return [item for item in cleaned if item is not None]
        return original_clean_json(resource_json, resources_map)

    parsing.clean_json = clean_json

    def get_references_from_template(template: Any) -> list[str]:
        # moto sees a parameter only in ``Ref``; ``Fn::Sub`` names them as ``${Name}``.
        references: list[str] = []
        if isinstance(template, dict):
            for key, value in template.items():
                if key == "Ref":
                    references.append(value)
                elif key == "Fn::Sub":
                    text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})
                    references.extend(re.findall(r"\$\{([^!.}][^.}]*)\}", text))
                    references.extend(get_references_from_template(variables))
                else:
                    references.extend(get_references_from_template(value))
        elif isinstance(template, list):
            for item in template:
                references.extend(get_references_from_template(item))
        return references

    parsing.get_references_from_template = get_references_from_template


# -- stack operations: events, failures, rollback, outputs ----------------------------------


def _patch_stack_operations(parsing: Any, cfn_models: Any) -> None:
    original_create = parsing.parse_and_create_resource
    original_update = parsing.parse_and_update_resource
    original_delete_resource = parsing.ResourceMap._delete_resource

    def parse_and_create_resource(logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str) -> Any:
        events = _stack_events.get()
        resource_type = resource_json.get("Type", "")
        condition = resource_json.get("Condition")
        if condition and not resources_map.lazy_condition_map[condition]:
            return None
        if events is None:
            return original_create(logical_id, resource_json, resources_map, account_id, region_name)
        try:
            if resource_type not in parsing.NULL_MODELS and parsing.resource_class_from_type(resource_type) is None:
                raise NotImplementedError(f"moto does not model {resource_type}")
            resource = original_create(logical_id, resource_json, resources_map, account_id, region_name)
        except Exception as exc:
            events.operation_failed(logical_id, resource_type, "CREATE_FAILED", exc)
            raise
        if resource is not None:
            events.add(logical_id, resource_type, "CREATE_IN_PROGRESS")
            events.add(logical_id, resource_type, "CREATE_COMPLETE", _physical_id(resource))
        return resource

    def parse_and_update_resource(logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str) -> Any:
        events = _stack_events.get()
        resource_type = resource_json.get("Type", "")
        resource_class = parsing.resource_class_from_type(resource_type)
        existing = resources_map._parsed_resources.get(logical_id)
        condition = resource_json.get("Condition")
        # moto updates every resource whose properties name a changed parameter, whatever
        # its Condition says. On AWS a resource whose condition turned false is deleted,
        # one whose condition turned true is created, and one that stays false is absent.
        if condition and not resources_map.lazy_condition_map[condition]:
            if existing is not None:
                resources_map._delete_resource(existing, resource_json)
            return None
        if existing is None:
            resources_map._parsed_resources.pop(logical_id, None)
            return resources_map[logical_id]
        try:
            if resource_class is None or hasattr(resource_class.update_from_cloudformation_json, "__isabstractmethod__"):
                # moto would store None for the resource and forget it; refuse instead.
                raise NotImplementedError(f"moto cannot update {resource_type} in place")
            resource = original_update(logical_id, resource_json, resources_map, account_id, region_name)
        except Exception as exc:
            if events is not None:
                events.operation_failed(logical_id, resource_type, "UPDATE_FAILED", exc)
            raise
        if events is not None:
            events.add(logical_id, resource_type, "UPDATE_IN_PROGRESS")
            events.add(logical_id, resource_type, "UPDATE_COMPLETE", _physical_id(resource))
        return resource

    def _delete_resource(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
        events = _stack_events.get()
        logical_id = getattr(parsed_resource, "logical_resource_id", "") or ""
        resource_type = resource_json.get("Type", "")
        physical_id = _physical_id(parsed_resource)
        resource_class = parsing.resource_class_from_type(resource_type)
        deletable = callable(getattr(parsed_resource, "delete", None)) or (
            resource_class is not None and not hasattr(resource_class.delete_from_cloudformation_json, "__isabstractmethod__")
        )
        if not deletable:
            if events is not None:
                events.add(logical_id, resource_type, "DELETE_SKIPPED", physical_id, f"moto cannot delete {resource_type}; it is left behind")
            return
        if events is not None and logical_id not in events.deleting:
            events.deleting.add(logical_id)
            events.add(logical_id, resource_type, "DELETE_IN_PROGRESS", physical_id)
        try:
            original_delete_resource(self, parsed_resource, resource_json)
        except Exception as exc:
            if events is not None:
                events.delete_errors[logical_id] = (resource_type, physical_id, _reason(exc))
            raise
        if events is not None:
            events.delete_errors.pop(logical_id, None)
            events.add(logical_id, resource_type, "DELETE_COMPLETE", physical_id)

    original_getitem = parsing.ResourceMap.__getitem__

    def getitem(self: Any, key: str) -> Any:
        # moto creates a resource the first time anything looks it up; after a stack is
        # deleted or rolled back, a look-up (DescribeStackResources, an output) would
        # create its resources again.
        if getattr(self, "_cachebridge_closed", False) and key not in self._parsed_resources and key in self._resource_json_map:
            return None
        return original_getitem(self, key)

    parsing.ResourceMap.__getitem__ = getitem
    parsing.parse_and_create_resource = parse_and_create_resource
    parsing.parse_and_update_resource = parse_and_update_resource
    parsing.ResourceMap._delete_resource = _delete_resource
    def change_set_diff(self: Any) -> list[Any]:
        # moto lists only resources whose template text changed; a changed parameter
        # changes the resources that name it too.
        old = self.stack.resource_map._resource_json_map
        new = self.template_dict.get("Resources", {})
        by_action = self.stack.resource_map.build_resource_diff(self.template_dict, self.parameters)
        return [
            cfn_models.Change(action=action, logical_resource_id=name, resource_type=(new.get(name) or old.get(name) or {}).get("Type", ""))
            for action in ("Add", "Modify", "Remove")
            for name in dict.fromkeys(by_action[action])
        ]

    cfn_models.ChangeSet.diff = change_set_diff
    cfn_models.CloudFormationBackend.execute_change_set = _execute_change_set
    cfn_models.CloudFormationBackend.delete_stack = _delete_stack
    # Resources skipped by a false Condition are None in the resource map; DescribeStackResources
    # lists only what exists.
    cfn_models.Stack.stack_resources = property(  # type: ignore[method-assign, assignment]
        lambda self: [r for r in self.resource_map.values() if r is not None and hasattr(r, "logical_resource_id")]
    )


def _find_change_set(backend: Any, change_set_name: str, stack_name: str | None) -> Any:
    from moto.cloudformation.exceptions import ValidationError

    change_set = backend.change_sets.get(change_set_name)
    if change_set is None:
        for candidate in backend.change_sets.values():
            if candidate.change_set_name == change_set_name and stack_name in (None, candidate.stack_name, candidate.stack_id):
                change_set = candidate
                break
    if change_set is None:
        raise ValidationError(stack_name, message=f"ChangeSet [{change_set_name}] does not exist")
    return change_set


def _execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    from moto.cloudformation.exceptions import ValidationError

    change_set = _find_change_set(self, change_set_name, stack_name)
    if change_set.execution_status != "AVAILABLE":
        raise ValidationError(
            change_set.stack_name,
            message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current execution status of [{change_set.execution_status}]",
        )
    stack = self.stacks[change_set.stack_id]
    verb = change_set.change_set_type  # CREATE or UPDATE
    change_set.execution_status = "EXECUTE_IN_PROGRESS"
    stack.status = f"{verb}_IN_PROGRESS"
    stack._add_stack_event(f"{verb}_IN_PROGRESS", resource_status_reason="User Initiated")
    with _recording(stack) as events:
        try:
            change_set.apply()
            stack.template = change_set.template
            stack._parse_template()
            stack.parameters = dict(change_set.parameters)
            stack.description = stack.template_dict.get("Description")
            stack.output_map = stack._create_output_map()
            list(stack.output_map.values())  # resolve now: a bad output fails the operation
        except Exception as exc:
            change_set.execution_status = "EXECUTE_FAILED"
            _roll_back(stack, verb, events, exc)
            return
    change_set.execution_status = "EXECUTE_COMPLETE"
    stack.status = f"{verb}_COMPLETE"
    stack._add_stack_event(f"{verb}_COMPLETE")
    # "After you execute a change set, CloudFormation removes all change sets that are
    # associated with the stack" (AWS CloudFormation User Guide).
    for change_set_id in [k for k, cs in self.change_sets.items() if cs.stack_id == stack.stack_id]:
        del self.change_sets[change_set_id]


def _roll_back(stack: Any, verb: str, events: _StackEvents, exc: BaseException) -> None:
    what = "create" if verb == "CREATE" else "update"
    if events.failed:
        reason = f"The following resource(s) failed to {what}: [{', '.join(events.failed)}]. "
    else:
        reason = _reason(exc)
    if verb == "CREATE":
        stack.status = "ROLLBACK_IN_PROGRESS"
        stack._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=reason + ("Rollback requested by user." if events.failed else ""))
        try:
            stack.resource_map.delete()
        except Exception as rollback_exc:
            stack.status = "ROLLBACK_FAILED"
            stack._add_stack_event("ROLLBACK_FAILED", resource_status_reason=_reason(rollback_exc))
            return
        _close(stack)
        stack.status = "ROLLBACK_COMPLETE"
        stack._add_stack_event("ROLLBACK_COMPLETE")
    else:
        # moto keeps no previous version of a resource to return to; the stack keeps what
        # the update changed before it failed, and says so.
        stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
        stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
        stack.status = "UPDATE_ROLLBACK_COMPLETE"
        stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE", resource_status_reason="moto restores no previous resource state")


def _close(stack: Any) -> None:
    """A deleted or rolled-back stack has no resources and no outputs."""
    from moto.cloudformation.parsing import OutputMap

    stack.resource_map._cachebridge_closed = True
    stack.output_map = OutputMap(stack.resource_map, {}, stack.stack_id)


def _delete_stack(self: Any, name_or_stack_id: str) -> None:
    stack = self.stacks.get(name_or_stack_id)
    if stack is None:
        stack = next((s for s in self.stacks.values() if s.name == name_or_stack_id), None)
    if stack is None:
        return  # deleting a stack that does not exist succeeds, as on AWS
    export_names = [export.name for export in stack.exports]
    stack.status = "DELETE_IN_PROGRESS"
    stack._add_stack_event("DELETE_IN_PROGRESS", resource_status_reason="User Initiated")
    with _recording(stack) as events:
        try:
            stack.resource_map.delete()
        except Exception as exc:
            failed = events.delete_errors or {"(stack)": ("AWS::CloudFormation::Stack", stack.stack_id, _reason(exc))}
            for logical_id, (resource_type, physical_id, reason) in failed.items():
                events.add(logical_id, resource_type, "DELETE_FAILED", physical_id, reason)
            stack.status = "DELETE_FAILED"
            stack._add_stack_event(
                "DELETE_FAILED",
                resource_status_reason=f"The following resource(s) failed to delete: [{', '.join(failed)}]. ",
            )
            return
    _close(stack)
    stack.status = "DELETE_COMPLETE"
    stack._add_stack_event("DELETE_COMPLETE")
    self.stacks.pop(stack.stack_id, None)
    self.deleted_stacks[stack.stack_id] = stack
    for name in export_names:
        self.exports.pop(name, None)


# -- elbv2: load balancer type and attributes, target group attributes, deletes -------------


def _patch_elbv2_resources() -> None:
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
    from moto.elbv2.exceptions import ListenerNotFoundError, TargetGroupNotFoundError
    from moto.elbv2.models import ELBv2Backend, FakeListener, FakeLoadBalancer, elbv2_backends

    original_create_load_balancer = ELBv2Backend.create_load_balancer

    def create_load_balancer(self: Any, *args: Any, **kwargs: Any) -> Any:
        # moto writes ``loadbalancer/app/`` into every ARN; AWS says ``net/`` for an NLB.
        balancer = original_create_load_balancer(self, *args, **kwargs)
        prefix = {"network": "net", "gateway": "gwy"}.get(balancer.type)
        if prefix and "/app/" in balancer.arn:
            old_arn, balancer.arn = balancer.arn, balancer.arn.replace("loadbalancer/app/", f"loadbalancer/{prefix}/", 1)
            self.load_balancers = type(self.load_balancers)((balancer.arn if k == old_arn else k, v) for k, v in self.load_balancers.items())
            tags = self.tagging_service.list_tags_for_resource(old_arn).get("Tags", [])
            self.tagging_service.delete_all_tags_for_resource(old_arn)
            if tags:
                self.tagging_service.tag_resource(balancer.arn, tags)
        return balancer

    ELBv2Backend.create_load_balancer = create_load_balancer  # type: ignore[method-assign]

    def load_balancer_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        backend = elbv2_backends[account_id][region_name]
        extra: dict[str, Any] = {}
        if properties.get("Tags"):
            extra["tags"] = properties["Tags"]
        balancer = backend.create_load_balancer(
            name=resource_name,
            security_groups=properties.get("SecurityGroups") or [],
            subnet_ids=properties.get("Subnets") or [],
            subnet_mappings=properties.get("SubnetMappings"),
            scheme=properties.get("Scheme") or "internet-facing",
            loadbalancer_type=properties.get("Type") or "application",
            ip_address_type=properties.get("IpAddressType") or "ipv4",
            **extra,
        )
        attributes = {a["Key"]: str(a["Value"]).lower() if isinstance(a["Value"], bool) else str(a["Value"]) for a in properties.get("LoadBalancerAttributes") or []}
        if attributes:
            backend.modify_load_balancer_attributes(balancer.arn, attributes)
        return balancer

    original_lb_attribute = FakeLoadBalancer.get_cfn_attribute

    def load_balancer_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name == "LoadBalancerFullName":
            prefix = {"network": "net", "gateway": "gwy"}.get(self.type, "app")
            return f"{prefix}/{self.name}/{self.arn.rsplit('/', 1)[-1]}"
        if attribute_name == "CanonicalHostedZoneID":
            return self.canonical_hosted_zone_id
        if attribute_name == "SecurityGroups":
            return list(self.security_groups or [])
        if attribute_name == "LoadBalancerArn":
            return self.arn
        return original_lb_attribute(self, attribute_name)

    lb_attributes = ("DNSName", "LoadBalancerName", "CanonicalHostedZoneID", "LoadBalancerFullName", "SecurityGroups", "LoadBalancerArn")
    FakeLoadBalancer.create_from_cloudformation_json = classmethod(load_balancer_from_cfn)  # type: ignore[method-assign, assignment]
    FakeLoadBalancer.get_cfn_attribute = load_balancer_attribute  # type: ignore[method-assign]
    FakeLoadBalancer.has_cfn_attr = classmethod(lambda cls, attr: attr in lb_attributes)  # type: ignore[method-assign, assignment]

    original_tg_from_cfn = FakeTargetGroup.create_from_cloudformation_json

    def apply_target_group_properties(group: Any, properties: dict[str, Any], backend: Any) -> None:
        if "HealthCheckEnabled" in properties:
            enabled = properties["HealthCheckEnabled"]
            backend.modify_target_group(group.arn, health_check_enabled=str(enabled).lower() == "true")
        attributes = {
            a["Key"]: str(a["Value"]).lower() if isinstance(a["Value"], bool) else str(a["Value"])
            for a in properties.get("TargetGroupAttributes") or []
        }
        if attributes:
            backend.modify_target_group_attributes(group.arn, attributes)

    def target_group_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        group = original_tg_from_cfn(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        apply_target_group_properties(group, cloudformation_json["Properties"], elbv2_backends[account_id][region_name])
        return group

    def target_group_update(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str) -> Any:
        properties = cloudformation_json["Properties"]
        backend = elbv2_backends[account_id][region_name]
        replaced = [
            name
            for name, current in (("Protocol", original_resource.protocol), ("Port", original_resource.port), ("VpcId", original_resource.vpc_id), ("TargetType", original_resource.target_type))
            if name in properties and str(properties[name]) != str(current)
        ]
        if replaced:
            raise NotImplementedError(f"moto cannot replace a target group (changed: {', '.join(replaced)})")
        backend.modify_target_group(
            original_resource.arn,
            health_check_proto=properties.get("HealthCheckProtocol"),
            health_check_port=properties.get("HealthCheckPort"),
            health_check_path=properties.get("HealthCheckPath"),
            health_check_interval=properties.get("HealthCheckIntervalSeconds"),
            health_check_timeout=properties.get("HealthCheckTimeoutSeconds"),
            healthy_threshold_count=properties.get("HealthyThresholdCount"),
            unhealthy_threshold_count=properties.get("UnhealthyThresholdCount"),
        )
        apply_target_group_properties(original_resource, properties, backend)
        return original_resource

    def target_group_attribute(self: Any, attribute_name: str) -> Any:
        values = {
            "TargetGroupArn": self.arn,
            "TargetGroupName": self.name,
            "TargetGroupFullName": f"targetgroup/{self.name}/{self.arn.rsplit('/', 1)[-1]}",
            "LoadBalancerArns": list(self.load_balancer_arns),
        }
        if attribute_name in values:
            return values[attribute_name]
        raise UnformattedGetAttTemplateException()

    def target_group_delete(self: Any, account_id: str, region_name: str) -> None:
        with contextlib.suppress(TargetGroupNotFoundError):
            elbv2_backends[account_id][region_name].delete_target_group(self.arn)

    def listener_delete(self: Any, account_id: str, region_name: str) -> None:
        with contextlib.suppress(ListenerNotFoundError):  # gone with its load balancer
            elbv2_backends[account_id][region_name].delete_listener(self.arn)

    tg_attributes = ("TargetGroupArn", "TargetGroupName", "TargetGroupFullName", "LoadBalancerArns")
    FakeTargetGroup.create_from_cloudformation_json = classmethod(target_group_from_cfn)  # type: ignore[method-assign, assignment]
    FakeTargetGroup.update_from_cloudformation_json = classmethod(target_group_update)  # type: ignore[method-assign, assignment]
    FakeTargetGroup.get_cfn_attribute = target_group_attribute  # type: ignore[attr-defined]
    FakeTargetGroup.has_cfn_attr = classmethod(lambda cls, attr: attr in tg_attributes)  # type: ignore[method-assign, assignment]
    FakeTargetGroup.delete = target_group_delete  # type: ignore[attr-defined]
    FakeListener.delete = listener_delete  # type: ignore[attr-defined]


# -- ec2: security group rules as written, and ingress rules that can be removed -------------


def _rule_arguments(rule: dict[str, Any], peer_key: str) -> dict[str, Any]:
    described = {"Description": rule["Description"]} if rule.get("Description") else {}
    ranges: list[dict[str, Any]] = []
    if rule.get("CidrIp"):
        ranges.append({"CidrIp": rule["CidrIp"], **described})
    if rule.get("CidrIpv6"):
        ranges.append({"CidrIpv6": rule["CidrIpv6"], **described})
    groups: list[dict[str, Any]] = []
    if rule.get(peer_key):
        groups.append({"GroupId": rule[peer_key], **described})
    if rule.get("SourceSecurityGroupName"):
        groups.append({"GroupName": rule["SourceSecurityGroupName"], **described})
    return {
        "ip_protocol": str(rule["IpProtocol"]),
        "from_port": rule.get("FromPort"),
        "to_port": rule.get("ToPort"),
        "ip_ranges": ranges,
        "source_groups": groups,
    }


def _patch_ec2_resources() -> None:
    from moto.ec2.exceptions import DependencyViolationError, InvalidPermissionNotFoundError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.security_groups import SecurityGroup, SecurityGroupIngress

    def security_group_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        backend = ec2_backends[account_id][region_name]
        vpc_id = properties.get("VpcId")
        group = backend.create_security_group(
            name=resource_name,
            description=properties.get("GroupDescription"),
            vpc_id=vpc_id,
            tags={t["Key"]: t["Value"] for t in properties.get("Tags") or []},
        )
        for rule in properties.get("SecurityGroupIngress") or []:
            backend.authorize_security_group_ingress(group.id, vpc_id=vpc_id, **_rule_arguments(rule, "SourceSecurityGroupId"))
        egress = properties.get("SecurityGroupEgress")
        if egress is not None:
            # Rules given replace the default allow-all egress rule, as on AWS.
            group.egress_rules = type(group.egress_rules)()
            for rule in egress:
                backend.authorize_security_group_egress(group.id, vpc_id=vpc_id, **_rule_arguments(rule, "DestinationSecurityGroupId"))
        return group

    def ingress_update(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str) -> Any:
        # Every property of an ingress rule needs a replacement on AWS.
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def ingress_delete(self: Any, account_id: str, region_name: str) -> None:
        backend = ec2_backends[account_id][region_name]
        if backend.get_security_group_from_id(self.security_group.id) is None:
            return  # the rule went with its group
        with contextlib.suppress(InvalidPermissionNotFoundError):
            backend.revoke_security_group_ingress(
                self.security_group.id,
                vpc_id=self.security_group.vpc_id,
                **_rule_arguments(self.properties, "SourceSecurityGroupId"),
            )

    def security_group_delete(self: Any, account_id: str, region_name: str) -> None:
        # AWS refuses to delete a group that another group's rule or a load balancer
        # still names (DependencyViolation); CloudFormation then retries it after the
        # resources that depend on it. moto deletes it and strands those rules.
        from moto.elbv2.models import elbv2_backends

        backend = ec2_backends[account_id][region_name]
        referenced_by = sorted(
            group.id
            for groups in backend.groups.values()
            for group in list(groups.values())
            if group.id != self.id
            and any(rule.source_group.get("GroupId") == self.id for rule in [*group.ingress_rules, *group.egress_rules])
        )
        used_by = sorted(
            lb.name for lb in elbv2_backends[account_id][region_name].load_balancers.values() if self.id in (lb.security_groups or [])
        )
        if referenced_by or used_by:
            raise DependencyViolationError(f"resource {self.id} has a dependent object ({', '.join(referenced_by + used_by)})")
        backend.delete_security_group(group_id=self.id)

    original_ingress_from_cfn = SecurityGroupIngress.create_from_cloudformation_json

    def ingress_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        if not properties.get("Description"):
            return original_ingress_from_cfn(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        backend = ec2_backends[account_id][region_name]
        group_id = properties.get("GroupId") or backend.describe_security_groups(groupnames=[properties["GroupName"]])[0].id
        security_group = backend.describe_security_groups(group_ids=[group_id])[0]
        backend.authorize_security_group_ingress(security_group.id, vpc_id=security_group.vpc_id, **_rule_arguments(properties, "SourceSecurityGroupId"))
        return cls(security_group, properties)

    SecurityGroup.create_from_cloudformation_json = classmethod(security_group_from_cfn)  # type: ignore[method-assign, assignment]
    SecurityGroupIngress.create_from_cloudformation_json = classmethod(ingress_from_cfn)  # type: ignore[method-assign, assignment]
    SecurityGroupIngress.update_from_cloudformation_json = classmethod(ingress_update)  # type: ignore[method-assign, assignment]
    SecurityGroupIngress.delete = ingress_delete  # type: ignore[attr-defined]
    SecurityGroup.delete = security_group_delete  # type: ignore[method-assign]


# -- lambda: permissions that can be removed -------------------------------------------------


def _patch_lambda_permission() -> None:
    from moto.awslambda.exceptions import UnknownFunctionException
    from moto.awslambda.models import Permission, lambda_backends

    def permission_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        properties = dict(cloudformation_json["Properties"])
        properties.setdefault("StatementId", resource_name)
        function = lambda_backends[account_id][region_name].get_function(properties["FunctionName"])
        function.policy.add_statement(raw=json.dumps(properties))
        permission = Permission(region=region_name)
        permission.function_name = function.function_name  # type: ignore[attr-defined]
        permission.statement_id = properties["StatementId"]  # type: ignore[attr-defined]
        return permission

    def permission_delete(self: Any, account_id: str, region_name: str) -> None:
        try:
            function = lambda_backends[account_id][region_name].get_function(self.function_name)
        except UnknownFunctionException:
            return
        function.policy.del_statement(self.statement_id)

    Permission.create_from_cloudformation_json = classmethod(permission_from_cfn)  # type: ignore[method-assign, assignment]
    Permission.delete = permission_delete  # type: ignore[attr-defined]
    Permission.physical_resource_id = property(lambda self: getattr(self, "statement_id", ""))  # type: ignore[attr-defined]


# -- events: a named rule is created once ---------------------------------------------------


def _patch_events_rule() -> None:
    from moto.events.exceptions import ResourceAlreadyExistsException
    from moto.events.models import Rule, events_backends

    original_rule_from_cfn = Rule.create_from_cloudformation_json

    def rule_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        bus_name = cloudformation_json["Properties"].get("EventBusName") or "default"
        bus = events_backends[account_id][region_name]._get_event_bus(bus_name)
        if resource_name in bus.rules:
            raise ResourceAlreadyExistsException(f"{resource_name} already exists in event bus {bus_name}")
        return original_rule_from_cfn(resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Rule.create_from_cloudformation_json = classmethod(rule_from_cfn)  # type: ignore[method-assign, assignment]


# -- resource types moto does not model: SNS subscriptions, CloudWatch alarms ---------------


def _define_missing_resources() -> None:
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.common_models import CloudFormationModel
    from moto.sns.models import sns_backends

    class SnsSubscription(CloudFormationModel):
        """``AWS::SNS::Subscription`` through moto's SNS backend."""

        def __init__(self, arn: str, topic_arn: str, protocol: str, endpoint: str) -> None:
            self.arn = arn
            self.topic_arn = topic_arn
            self.protocol = protocol
            self.endpoint = endpoint

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::SNS::Subscription"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> Any:
            if attribute_name == "Arn":
                return self.arn
            raise UnformattedGetAttTemplateException()

        @property
        def physical_resource_id(self) -> str:
            return self.arn

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> SnsSubscription:
            properties = cloudformation_json["Properties"]
            backend = sns_backends[account_id][region_name]
            subscription = backend.subscribe(properties["TopicArn"], properties["Endpoint"], properties["Protocol"])
            for key in ("FilterPolicy", "RawMessageDelivery", "RedrivePolicy"):
                if key in properties:
                    value = properties[key]
                    value = json.dumps(value) if isinstance(value, dict) else str(value).lower() if isinstance(value, bool) else str(value)
                    backend.set_subscription_attributes(subscription.arn, key, value)
            return cls(subscription.arn, properties["TopicArn"], properties["Protocol"], properties["Endpoint"])

        @classmethod
        def update_from_cloudformation_json(  # type: ignore[misc]
            cls, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> SnsSubscription:
            original_resource.delete(account_id, region_name)
            return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

        def delete(self, account_id: str, region_name: str) -> None:
            sns_backends[account_id][region_name].unsubscribe(self.arn)

    class MetricAlarm(CloudFormationModel):
        """``AWS::CloudWatch::Alarm`` (metric alarms) through moto's CloudWatch backend."""

        def __init__(self, name: str, arn: str) -> None:
            self.name = name
            self.arn = arn

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> Any:
            if attribute_name == "Arn":
                return self.arn
            raise UnformattedGetAttTemplateException()

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> MetricAlarm:
            p = cloudformation_json["Properties"]
            if "Metrics" in p:
                raise NotImplementedError("metric math alarms (Metrics) are not modelled")
            alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=resource_name,
                namespace=p.get("Namespace"),
                metric_name=p.get("MetricName"),
                comparison_operator=p["ComparisonOperator"],
                evaluation_periods=int(p["EvaluationPeriods"]),
                period=int(p["Period"]) if "Period" in p else None,
                threshold=float(p["Threshold"]) if "Threshold" in p else None,
                statistic=p.get("Statistic"),
                extended_statistic=p.get("ExtendedStatistic"),
                description=p.get("AlarmDescription"),
                dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in p.get("Dimensions") or []],
                alarm_actions=list(p.get("AlarmActions") or []),
                ok_actions=list(p.get("OKActions") or []),
                insufficient_data_actions=list(p.get("InsufficientDataActions") or []),
                datapoints_to_alarm=int(p["DatapointsToAlarm"]) if "DatapointsToAlarm" in p else None,
                unit=p.get("Unit"),
                actions_enabled=str(p.get("ActionsEnabled", True)).lower() == "true",
                treat_missing_data=p.get("TreatMissingData"),
                evaluate_low_sample_count_percentile=p.get("EvaluateLowSampleCountPercentile"),
                threshold_metric_id=p.get("ThresholdMetricId"),
            )
            return cls(resource_name, alarm.alarm_arn)

        @classmethod
        def update_from_cloudformation_json(  # type: ignore[misc]
            cls, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> MetricAlarm:
            if new_resource_name != original_resource.name:
                original_resource.delete(account_id, region_name)
            return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

        def delete(self, account_id: str, region_name: str) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([self.name])

    global _MISSING_RESOURCE_TYPES
    _MISSING_RESOURCE_TYPES = (SnsSubscription, MetricAlarm)


_MISSING_RESOURCE_TYPES: tuple[type, ...] = ()


# =====================================================================================
# elasticache: what ``cachebridge deploy`` reads and writes on a replication group
# =====================================================================================
#
# ``deploy`` reads a replication group's security groups and notification topic from
# ``DescribeCacheClusters`` of a member (``DescribeReplicationGroups`` has neither), and
# sets the topic with ``ModifyReplicationGroup``. In moto 5.2.1 the members of a
# replication group are not cache clusters (``DescribeCacheClusters`` says
# ``CacheClusterNotFound`` for ``<rg>-001``), a cache cluster reports neither
# ``SecurityGroups`` nor ``NotificationConfiguration``, and ``ModifyReplicationGroup``
# does not exist. This section:
#
# - answers ``DescribeCacheClusters`` for a member with a view of that member built from
#   its replication group (a cache cluster created explicitly under that id wins);
# - reports ``SecurityGroups`` and ``NotificationConfiguration`` for cache clusters;
# - adds ``ModifyReplicationGroup`` for the notification settings only
#   (``NotificationTopicArn``, ``NotificationTopicStatus``, ``ApplyImmediately``); any
#   other change is refused with ``InvalidParameterCombination`` rather than ignored.

_ELASTICACHE_MARK = "_cachebridge_deploy_ext"
_MODIFIABLE = frozenset({"ReplicationGroupId", "NotificationTopicArn", "NotificationTopicStatus", "ApplyImmediately"})


class _MemberCluster:
    """A replication group member as DescribeCacheClusters shows it."""

    def __init__(self, group: Any, member: dict[str, Any], region_name: str, account_id: str) -> None:
        self.cache_cluster_id = member["cache_cluster_id"]
        self.replication_group_id = group.replication_group_id
        self.cache_node_type = group.cache_node_type
        self.engine = group.engine
        self.engine_version = group.engine_version
        self.cache_cluster_status = group.status
        self.num_cache_nodes = 1
        self.preferred_availability_zone = member.get("preferred_availability_zone")
        self.cache_cluster_create_time = group.replication_group_create_time
        self.cache_subnet_group_name = group.cache_subnet_group_name
        self.cache_parameter_group = None
        self.transit_encryption_enabled = group.transit_encryption_enabled
        self.at_rest_encryption_enabled = group.at_rest_encryption_enabled
        self.auth_token_enabled = group.auth_token_enabled
        self.snapshot_retention_limit = group.snapshot_retention_limit
        self.arn = f"arn:aws:elasticache:{region_name}:{account_id}:cluster:{self.cache_cluster_id}"
        self.security_groups = [{"SecurityGroupId": sg, "Status": "active"} for sg in group.security_group_ids or []]
        self.notification_configuration = _notification_configuration(group)


def _notification_configuration(resource: Any) -> dict[str, str] | None:
    topic = getattr(resource, "notification_topic_arn", None)
    if not topic:
        return None
    return {"TopicArn": topic, "TopicStatus": getattr(resource, "_cachebridge_topic_status", "active")}


def _install_elasticache_deploy() -> None:
    from moto.elasticache import models as ec_models
    from moto.elasticache.exceptions import CacheClusterNotFound, InvalidParameterCombinationException, InvalidParameterValueException
    from moto.elasticache.responses import ElastiCacheResponse
    from moto.core.responses import ActionResult

    backend_class = ec_models.ElastiCacheBackend
    if getattr(backend_class, _ELASTICACHE_MARK, False):
        return

    def members(backend: Any) -> dict[str, _MemberCluster]:
        views: dict[str, _MemberCluster] = {}
        for group in list(backend.replication_groups.values()):
            for node_group in group.node_groups:
                for member in node_group["node_group_members"]:
                    views[member["cache_cluster_id"]] = _MemberCluster(group, member, backend.region_name, backend.account_id)
        return views

    def describe_cache_clusters(self: Any, cache_cluster_id: str | None = None) -> list[Any]:
        views = members(self)
        if cache_cluster_id:
            if cache_cluster_id in self.cache_clusters:
                return [self.cache_clusters[cache_cluster_id]]
            if cache_cluster_id in views:
                return [views[cache_cluster_id]]
            raise CacheClusterNotFound(cache_cluster_id)
        return list(self.cache_clusters.values()) + [v for k, v in views.items() if k not in self.cache_clusters]

    def modify_replication_group(
        self: Any,
        replication_group_id: str,
        notification_topic_arn: str | None = None,
        notification_topic_status: str | None = None,
    ) -> Any:
        (group,) = self.describe_replication_groups(replication_group_id)
        if notification_topic_status not in (None, "active", "inactive"):
            raise InvalidParameterValueException(f"Invalid value for NotificationTopicStatus: {notification_topic_status}")
        if notification_topic_arn is not None:
            group.notification_topic_arn = notification_topic_arn
            group._cachebridge_topic_status = "active"
        if notification_topic_status is not None:
            group._cachebridge_topic_status = notification_topic_status
        for cluster_id in group.member_clusters:
            cluster = self.cache_clusters.get(cluster_id)
            if cluster is not None:
                cluster.notification_topic_arn = group.notification_topic_arn
                cluster._cachebridge_topic_status = getattr(group, "_cachebridge_topic_status", "active")
        return group

    def modify_replication_group_response(self: Any) -> ActionResult:
        params = self._get_params()
        unsupported = sorted(set(params) - _MODIFIABLE)
        if unsupported:
            raise InvalidParameterCombinationException(
                f"this moto extension models only the notification settings of ModifyReplicationGroup; not {', '.join(unsupported)}"
            )
        group = self.elasticache_backend.modify_replication_group(
            replication_group_id=params["ReplicationGroupId"],
            notification_topic_arn=params.get("NotificationTopicArn"),
            notification_topic_status=params.get("NotificationTopicStatus"),
        )
        return ActionResult({"ReplicationGroup": group})

    backend_class.describe_cache_clusters = describe_cache_clusters  # type: ignore[method-assign]
    backend_class.modify_replication_group = modify_replication_group  # type: ignore[attr-defined]
    ElastiCacheResponse.modify_replication_group = modify_replication_group_response  # type: ignore[attr-defined]
    ec_models.CacheCluster.security_groups = property(  # type: ignore[attr-defined]
        lambda self: [{"SecurityGroupId": sg, "Status": "active"} for sg in self.security_group_ids or []]
    )
    ec_models.CacheCluster.notification_configuration = property(_notification_configuration)  # type: ignore[attr-defined]
    setattr(backend_class, _ELASTICACHE_MARK, True)


# =====================================================================================
# sandbox data plane: draining targets and TestFailover
# =====================================================================================
#
# The sandbox's NLB stand-in (``sandbox.nlb_dataplane``) keeps a deregistered target
# ``draining`` for the deregistration delay, as AWS does; moto forgets it at once. A
# draining provider lists those targets so ``DescribeTargetHealth`` (without ``Targets``)
# reports them, which is what the controller's "draining counts as absent" rule and the
# drill's retarget measurement read.
#
# moto 5.2.1 has no ``TestFailover``. The sandbox installs a hook that runs a real
# failover on its redis-server nodes (``sandbox.failover``); without a hook the call
# promotes the first replica in moto's state only, so the elasticache source still sees
# the role change.

DrainingProvider = Callable[[str], "list[tuple[str, int]]"]
TestFailoverHook = Callable[[str, "str | None"], None]

_draining_provider: DrainingProvider | None = None
_test_failover_hook: TestFailoverHook | None = None
_SANDBOX_MARK = "_cachebridge_sandbox_ext"


def set_draining_provider(provider: DrainingProvider | None) -> DrainingProvider | None:
    """``provider(target_group_arn)`` lists the (ip, port) targets still draining."""
    global _draining_provider
    with _provider_lock:
        previous, _draining_provider = _draining_provider, provider
    return previous


def set_test_failover_hook(hook: TestFailoverHook | None) -> TestFailoverHook | None:
    """``hook(replication_group_id, node_group_id)`` starts a failover; it may raise
    ``LookupError`` for a group it does not run."""
    global _test_failover_hook
    with _provider_lock:
        previous, _test_failover_hook = _test_failover_hook, hook
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
                described.append(_HealthStatus({"Id": ip, "Port": port}, group.health_check_port, "draining",
                                               "Target.DeregistrationInProgress", "Target deregistration is in progress"))
        return described

    return describe_target_health


def _test_failover(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.elasticache.exceptions import InvalidParameterValueException

    rg_id = self._get_param("ReplicationGroupId")
    node_group_id = self._get_param("NodeGroupId")
    backend = self.elasticache_backend
    group = backend.describe_replication_groups(rg_id)[0]  # raises ReplicationGroupNotFound
    hook = _test_failover_hook
    try:
        if hook is None:
            raise LookupError(rg_id)
        hook(rg_id, node_group_id)
    except LookupError:
        members = group.node_groups[0]["node_group_members"]
        replica = next((m for m in members if m.get("current_role") == "replica"), None)
        if replica is None:
            raise InvalidParameterValueException(f"Replication group {rg_id} has no replica to fail over to") from None
        failover_replication_group(self.current_account, self.region, rg_id, replica["cache_cluster_id"])
    except RuntimeError as exc:
        raise InvalidParameterValueException(str(exc)) from None
    return ActionResult({"ReplicationGroup": group})


def _install_sandbox() -> None:
    from moto.elasticache.responses import ElastiCacheResponse
    from moto.elbv2.models import ELBv2Backend

    if getattr(ELBv2Backend, _SANDBOX_MARK, False):
        return
    ELBv2Backend.describe_target_health = _describe_target_health_with_draining(ELBv2Backend.describe_target_health)  # type: ignore[method-assign]
    ElastiCacheResponse.test_failover = _test_failover  # type: ignore[attr-defined]
    setattr(ELBv2Backend, _SANDBOX_MARK, True)


__all__ += ["set_draining_provider", "set_test_failover_hook"]

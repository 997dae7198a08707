"""Create, update and delete one cachebridge stack (the logic behind ``cachebridge deploy``
and ``cachebridge destroy``; no click here).

``deploy`` in order, refusing bad input before it creates anything:

1. Check the request (``validate_request``): stack name, allowed CIDRs (0.0.0.0/0 only with
   ``allow_any_source``), listener protocol and certificate, subnets, VPC, and the
   controller's options (idle timeout, reserved concurrency, its subnets and endpoints).
2. Read the replication group (``read_cache``): it must exist and have cluster mode
   disabled; its port and in-transit encryption come from DescribeReplicationGroups, its
   security group and notification topic from DescribeCacheClusters of a member (the
   replication group call has neither). Check the subnets are in the VPC, the template
   accepts the parameter values (``template.validate_parameters``), and an existing stack
   of that name is a cachebridge stack that can be updated. A function in the VPC needs
   subnets of that VPC (``deploy.vpc``); a given notification topic must be one ElastiCache
   can publish to: same account and Region, unencrypted, with the documented policy
   statement (``deploy.notifications``).
3. Ensure the artifact bucket ``cachebridge-artifacts-<account>-<region>`` (private: public
   access blocked, owner-enforced; encrypted; versioned) and upload the Lambda zip under its
   content-addressed key, only if that key is absent.
4. Create a change set (CREATE when there is no stack, UPDATE otherwise), wait for it with
   boto3's waiter; "no changes" deletes the empty change set and ends as a no-op. Otherwise
   execute it, report each new stack event as it appears, wait for a final status, and on
   failure raise ``DeployError`` naming each failing resource with CloudFormation's reason.
5. When the stack created the notification topic, set it on the replication group
   (ModifyReplicationGroup, ApplyImmediately) if the caller agreed.
6. Run one sync: ``invoke="lambda"`` invokes the function with ``{"action": "sync"}``;
   ``invoke="local"`` reads the deployed function's environment and runs
   ``cachebridge.handler.handler`` in this process with exactly that environment
   (``deploy.local``; moto cannot invoke a Lambda without Docker); ``invoke="none"``
   skips it.

Every AWS client comes from ``aws.client`` (standard AWS settings, ``AWS_ENDPOINT_URL``).

Each step lives in a module of its own, composed here: ``request`` (step 1),
``replication_group`` (step 2's reads and checks), ``parameter_values`` (the stack's
parameters), ``artifacts`` (step 3), ``cloudformation`` (step 4's change sets and events),
``first_sync`` (step 6) and ``clients``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import CacheBridgeError, ConfigError, DeployError
from ..nlb import vpc_cidr_blocks
from . import more_bindings
from . import package as packaging
from . import template as cfn_template
from .artifacts import (
    BUCKET_FORMAT,
    TEMPLATE_BODY_LIMIT,
    _template_source,
    artifact_bucket_name,
    ensure_artifact_bucket,
    upload_package,
)
from .clients import Clients, _message, _region
from .cloudformation import DEFAULT_POLL_S, DEFAULT_TIMEOUT_S, ResourceFailure, StackEvent, Stacks, _failures
from .first_sync import INVOKE_MODES, InvokeMode, run_sync
from .notifications import check_topic
from .parameter_values import _check_parameters, _node_slots, _with_layout, effective_layout, stack_parameters
from .replication_group import (
    CacheFacts,
    _cache_security_group,
    _check_network,
    _check_security_group,
    _check_zones,
    read_cache,
)
from .request import _STACK_NAME, PROTOCOLS, SCHEMES, DeployRequest, validate_request
from .vpc import check_lambda_network


__all__ = [
    "DEFAULT_POLL_S",
    "DEFAULT_TIMEOUT_S",
    "INVOKE_MODES",
    "DeployRequest",
    "CacheFacts",
    "StackEvent",
    "ResourceFailure",
    "DeployResult",
    "DestroyResult",
    "Clients",
    "validate_request",
    "read_cache",
    "artifact_bucket_name",
    "ensure_artifact_bucket",
    "upload_package",
    "stack_parameters",
    "Stacks",
    "deploy",
    "destroy",
    "run_sync",
]

# Parameters a cachebridge stack has and no other stack is likely to: how an existing stack
# of the requested name is recognised before it is updated.
_SIGNATURE_PARAMETERS = frozenset({"ReplicationGroupId", "CacheSecurityGroupId", "CodeBucket", "CodeKey"})


@dataclass
class DeployResult:
    stack_name: str
    stack_id: str | None
    action: Literal["create", "update", "none"]
    status: str
    outputs: dict[str, str]
    bucket: str
    key: str
    uploaded: bool
    bucket_created: bool
    events: list[StackEvent] = field(default_factory=list)
    notifications: str = "not-needed"  # wired | already-wired | declined | not-wired | existing-topic | given-topic | failed
    notification_topic_arn: str | None = None
    sync: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.notifications != "failed" and (self.sync is None or bool(self.sync.get("ok")))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "stack_name": self.stack_name,
            "stack_id": self.stack_id,
            "action": self.action,
            "status": self.status,
            "outputs": self.outputs,
            "artifact": {"bucket": self.bucket, "key": self.key, "uploaded": self.uploaded, "bucket_created": self.bucket_created},
            "notifications": {"state": self.notifications, "topic_arn": self.notification_topic_arn},
            "sync": self.sync,
            "events": [e.to_json() for e in self.events],
            "notes": self.notes,
        }


@dataclass
class DestroyResult:
    stack_name: str
    existed: bool
    status: str
    events: list[StackEvent] = field(default_factory=list)
    leftovers: tuple[ResourceFailure, ...] = ()
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack_name": self.stack_name,
            "existed": self.existed,
            "status": self.status,
            "leftovers": [f.to_json() for f in self.leftovers],
            "events": [e.to_json() for e in self.events],
            "notes": self.notes,
        }


_UPDATABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE")


def deploy(
    request: DeployRequest,
    *,
    clients: Callable[[str], Any] | None = None,
    built: packaging.LambdaPackage | None = None,
    invoke: InvokeMode = "lambda",
    nameservers: Sequence[str] = (),
    wire_notifications: bool | None = None,
    confirm_wiring: Callable[[str, str], bool] | None = None,
    on_event: Callable[[StackEvent], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    poll_s: float = DEFAULT_POLL_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    bytecode: packaging.BytecodeOptions | None = None,
) -> DeployResult:
    """Create or update the stack ``request`` describes; see the module docstring.
    ``bytecode``: the zip carries bytecode for the runtime's Python (``package.build``)."""
    if invoke not in INVOKE_MODES:
        raise ConfigError("--invoke", f"{invoke!r} is not a mode", ", ".join(INVOKE_MODES))
    if nameservers and invoke != "local":
        raise ConfigError("--nameserver", "only the local sync uses it", "--invoke local")
    validate_request(request)
    clients = clients or Clients()
    step = on_step or (lambda text: None)

    # Read everything first: nothing is created until the input is known to be good.
    step(f"reading replication group {request.replication_group_id}")
    try:
        cache = read_cache(clients("elasticache"), request.replication_group_id)
        _check_zones(cache, _check_network(clients("ec2"), request.vpc_id, request.subnet_ids))
        _check_security_group(clients("ec2"), _cache_security_group(request, cache), request.vpc_id)
        check_lambda_network(clients("ec2"), request.vpc_id, request.lambda_subnet_ids, request.lambda_security_group_id)
        vpc_cidrs = vpc_cidr_blocks(clients("ec2"), request.vpc_id)
        account_id = clients("sts").get_caller_identity()["Account"]
        region = _region(clients("s3"))
        if request.notification_topic_arn:
            step(f"checking notification topic {request.notification_topic_arn}")
            check_topic(clients("sns"), request.notification_topic_arn, account_id, region)
    except ClientError as exc:
        raise DeployError(f"AWS: {_message(exc)}") from None
    except BotoCoreError as exc:
        raise DeployError(f"AWS: {exc}") from None
    stacks = Stacks(clients("cloudformation"), poll_s=poll_s, timeout_s=timeout_s)
    existing = stacks.describe(request.stack_name)
    change_set_type = _change_set_type(request.stack_name, existing)
    current = existing if change_set_type == "UPDATE" else None
    topic, notifications, notes = _topic_parameter(request, cache, current)
    node_slots = _node_slots(request, cache, current)
    request = _with_layout(request, current, cache)
    template = cfn_template.build(node_slots=node_slots, replicas=len(cache.members) > 1)
    own_binding = cfn_template.binding_name_sub().replace("${ReplicationGroupId}", cache.replication_group_id)
    placement = more_bindings.place(request.extra_bindings, template, own_binding=own_binding)
    if placement.config is not None:
        built = packaging.build(config=placement.config, bytecode=bytecode)  # the file changes the zip, hence its key
    built = built or packaging.build(bytecode=bytecode)
    bucket = artifact_bucket_name(account_id, region)
    values = stack_parameters(request, cache, bucket, built.key, topic, node_slots)
    values.update(placement.parameters)
    values["VpcCidrs"] = ",".join(vpc_cidrs)
    if request.extra_bindings:
        notes.append(placement.describe(len(request.extra_bindings)))
    _check_parameters(values, request.stack_name, template)

    step(f"artifact bucket {bucket}")
    s3 = clients("s3")
    bucket, bucket_created = ensure_artifact_bucket(s3, account_id, region)
    uploaded = upload_package(s3, bucket, built)
    template_source = _template_source(s3, bucket, template)

    step(f"change set ({change_set_type}) for stack {request.stack_name}")
    try:
        change_set_id, stack_id, no_change = stacks.create_change_set(request.stack_name, change_set_type, template_source, values)
    except DeployError:
        if change_set_type == "CREATE":
            stacks.discard_review_stack(request.stack_name)
        raise
    if change_set_id is not None and change_set_type == "UPDATE":
        planned = stacks.changes(change_set_id)
        step("changes: " + (", ".join(f"{c['action']} {c['logical_id']}" for c in planned) or "none listed"))
    result = DeployResult(
        stack_name=request.stack_name,
        stack_id=(current or {}).get("StackId") or stack_id,
        action="none",
        status=(current or {}).get("StackStatus", ""),
        outputs=Stacks.outputs(current) if current else {},
        bucket=bucket,
        key=built.key,
        uploaded=uploaded,
        bucket_created=bucket_created,
        notifications=notifications,
        notes=notes,
    )
    if change_set_id is None:
        result.notes.append(f"no changes: {no_change}")
        if wire_notifications and current is not None:
            _wire(result, clients, cache, wire_notifications, confirm_wiring, Stacks.parameters(current))
        return result

    seen = stacks.event_ids(stack_id) if stack_id else set()
    step(f"executing change set on {request.stack_name}")
    stacks.execute(change_set_id)
    status, events = stacks.follow(stack_id or request.stack_name, seen, on_event)
    result.action = "create" if change_set_type == "CREATE" else "update"
    result.status = status
    result.events = events
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        failures = _failures(events)
        details = "; ".join(str(f) for f in failures) or "no failure reported"
        raise DeployError(f"stack {request.stack_name} ended {status}: {details}", failures, status)
    final = stacks.describe(stack_id or request.stack_name) or {}
    result.stack_id = final.get("StackId", result.stack_id)
    result.outputs = Stacks.outputs(final)

    _wire(result, clients, cache, wire_notifications, confirm_wiring, Stacks.parameters(final))
    if invoke != "none":
        function_name = result.outputs.get("FunctionName")
        if not function_name:
            raise DeployError(f"stack {request.stack_name} has no FunctionName output; cannot run the first sync")
        step(f"first sync ({invoke})")
        result.sync = run_sync(invoke, function_name, clients=clients, region=region, nameservers=nameservers, code=built.data)
    return result


def _change_set_type(stack_name: str, existing: Mapping[str, Any] | None) -> str:
    if existing is None:
        return "CREATE"
    status = existing["StackStatus"]
    if status == "REVIEW_IN_PROGRESS":  # a create change set was made and never executed
        return "CREATE"
    if not set(Stacks.parameters(existing)) >= _SIGNATURE_PARAMETERS:
        raise DeployError(f"stack {stack_name} exists and is not a cachebridge stack; choose another --stack-name")
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"):
        raise DeployError(
            f"stack {stack_name} is {status} (a failed create or delete) and cannot be updated; "
            f"run `cachebridge destroy --stack-name {stack_name}`, then deploy again",
            stack_status=status,
        )
    if status.endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {stack_name} is {status}; wait for that operation to end", stack_status=status)
    if status not in _UPDATABLE:
        raise DeployError(f"stack {stack_name} is {status} and cannot be updated", stack_status=status)
    return "UPDATE"


def _topic_parameter(request: DeployRequest, cache: CacheFacts, current: Mapping[str, Any] | None) -> tuple[str, str, list[str]]:
    """The NotificationTopicArn parameter: the one given; else the topic the replication
    group already has, unless that is the topic this stack created; else empty (the stack
    creates one)."""
    notes: list[str] = []
    if request.notification_topic_arn:
        return request.notification_topic_arn, "given-topic", notes
    own_topic = None
    if current is not None and Stacks.parameters(current).get("NotificationTopicArn", "") == "":
        own_topic = Stacks.outputs(current).get("NotificationTopicArn")
    if cache.notification_topic_arn and cache.notification_topic_arn != own_topic:
        if cache.notification_topic_active:
            notes.append(f"using the replication group's notification topic {cache.notification_topic_arn}")
            return cache.notification_topic_arn, "existing-topic", notes
        notes.append(f"the replication group's topic {cache.notification_topic_arn} is inactive; the stack creates its own")
    return "", "not-wired", notes


def _wire(
    result: DeployResult,
    clients: Callable[[str], Any],
    cache: CacheFacts,
    wire: bool | None,
    confirm: Callable[[str, str], bool] | None,
    parameters: Mapping[str, str],
) -> None:
    """Set the stack's own topic on the replication group, if the caller agrees."""
    if parameters.get("NotificationTopicArn", ""):
        result.notification_topic_arn = parameters["NotificationTopicArn"]
        return
    topic = result.outputs.get("NotificationTopicArn")
    result.notification_topic_arn = topic
    if not topic:
        return
    if cache.notification_topic_arn == topic and cache.notification_topic_active:
        result.notifications = "already-wired"
        return
    agreed = wire if wire is not None else (confirm(cache.replication_group_id, topic) if confirm else False)
    if not agreed:
        result.notifications = "declined"
        result.notes.append(
            f"failover notifications are not wired: set {topic} as the notification topic of "
            f"{cache.replication_group_id} (deploy again with --wire-notifications); until then only the schedule syncs"
        )
        return
    try:
        clients("elasticache").modify_replication_group(
            ReplicationGroupId=cache.replication_group_id,
            NotificationTopicArn=topic,
            ApplyImmediately=True,
        )
    except (ClientError, BotoCoreError) as exc:
        result.notifications = "failed"
        reason = _message(exc) if isinstance(exc, ClientError) else str(exc)
        result.notes.append(f"could not set {topic} on {cache.replication_group_id}: {reason}")
        return
    result.notifications = "wired"


def destroy(
    stack_name: str,
    *,
    clients: Callable[[str], Any] | None = None,
    on_event: Callable[[StackEvent], None] | None = None,
    poll_s: float = DEFAULT_POLL_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DestroyResult:
    """Delete the stack and wait. ``DeployError`` (with the resources left behind) when
    the deletion fails."""
    if not _STACK_NAME.match(stack_name or ""):
        raise ConfigError("--stack-name", f"{stack_name!r} is not a stack name", "1-128 letters, digits and hyphens, starting with a letter")
    clients = clients or Clients()
    stacks = Stacks(clients("cloudformation"), poll_s=poll_s, timeout_s=timeout_s)
    existing = stacks.describe(stack_name)
    if existing is None:
        return DestroyResult(stack_name=stack_name, existed=False, status="DOES_NOT_EXIST")
    parameters = Stacks.parameters(existing)
    if existing["StackStatus"] != "REVIEW_IN_PROGRESS" and not set(parameters) >= _SIGNATURE_PARAMETERS:
        raise DeployError(f"stack {stack_name} is not a cachebridge stack; delete it with the tool that made it")
    stack_id = existing["StackId"]
    notes = _orphaned_topic_note(clients, existing)
    seen = stacks.event_ids(stack_id)
    stacks.delete(stack_id)
    status, events = stacks.follow(stack_id, seen, on_event)
    skipped = tuple(
        ResourceFailure(e.logical_id, e.resource_type, e.status, e.reason or "left behind")
        for e in events
        if e.status == "DELETE_SKIPPED"
    )
    if status != "DELETE_COMPLETE":
        failures = _failures(events) + skipped
        details = "; ".join(str(f) for f in failures) or "no failure reported"
        raise DeployError(f"stack {stack_name} ended {status}; left behind: {details}", failures, status)
    result = DestroyResult(stack_name=stack_name, existed=True, status=status, events=events, leftovers=skipped, notes=notes)
    return result


def _orphaned_topic_note(clients: Callable[[str], Any], stack: Mapping[str, Any]) -> list[str]:
    parameters = Stacks.parameters(stack)
    topic = Stacks.outputs(stack).get("NotificationTopicArn")
    if parameters.get("NotificationTopicArn", "") or not topic or not parameters.get("ReplicationGroupId"):
        return []
    try:
        cache = read_cache(clients("elasticache"), parameters["ReplicationGroupId"])
    except (CacheBridgeError, ClientError, BotoCoreError):
        return []
    if cache.notification_topic_arn == topic:
        return [
            f"replication group {cache.replication_group_id} still names {topic} as its notification topic, "
            "which is deleted with the stack; set another topic on it (or none) when you no longer need it"
        ]
    return []

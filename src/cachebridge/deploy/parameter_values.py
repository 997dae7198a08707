"""The stack's parameter values, from the request and the replication group's facts: the
layout and its ports, and the template's own check of them with problems named by flag."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..errors import ConfigError, DeployError
from . import template as cfn_template
from .cloudformation import Stacks
from .replication_group import CacheFacts, _cache_security_group
from .request import DeployRequest

__all__ = ["stack_parameters", "effective_layout"]


# Which flag a template parameter or rule comes from, so its problems name what the user typed.
_FLAG_OF = {
    "VpcId": "--vpc",
    "SubnetIds": "--subnets",
    "Scheme": "--scheme",
    "ListenerPort": "--listener-port",
    "ListenerProtocol": "--listener-protocol",
    "CertificateArn": "--certificate-arn",
    "TlsListenerNeedsCertificate": "--certificate-arn",
    "AllowedCidrs": "--allowed-cidr",
    "AllowAnySource": "--allow-any-source",
    "AllowAnySourceOnPurpose": "--allow-any-source",
    "ReplicationGroupId": "--replication-group",
    "CacheSecurityGroupId": "--cache-security-group",
    "ScheduleExpression": "--schedule",
    "ScheduleRuleName": "--schedule-rule-name",
    "NotificationTopicArn": "--notification-topic-arn",
    "HealthCheckIntervalSeconds": "--health-check-interval",
    "HealthyThreshold": "--healthy-threshold",
    "DeregistrationDelaySeconds": "--deregistration-delay",
    "Layout": "--layout",
    "ReaderPort": "--reader-port",
    "NodePorts": "--node-port-base",
    "TcpIdleTimeoutSeconds": "--tcp-idle-timeout",
    "ReservedConcurrency": "--reserved-concurrency",
    "LambdaSubnetIds": "--lambda-subnets",
    "LambdaSecurityGroupId": "--lambda-security-group",
    "CreateVpcEndpoints": "--create-vpc-endpoints",
    "VpcOptionsNeedLambdaSubnets": "--lambda-subnets",
}


def stack_parameters(
    request: DeployRequest,
    cache: CacheFacts,
    bucket: str,
    key: str,
    notification_topic_arn: str = "",
    node_slots: int | None = None,
) -> dict[str, str]:
    """The stack's parameter values (strings, lists comma-separated). Options left out
    take the template's defaults, so the same command always describes the same stack."""
    security_group = _cache_security_group(request, cache)
    # A TLS listener re-encrypts towards a TLS cache; a TCP listener passes TLS through.
    target_protocol = "TLS" if cache.transit_encryption and request.listener_protocol == "TLS" else "TCP"
    values: dict[str, str] = {
        "VpcId": request.vpc_id,
        "SubnetIds": ",".join(request.subnet_ids),
        "Scheme": request.scheme,
        "ReplicationGroupId": cache.replication_group_id,
        "CacheSecurityGroupId": security_group,
        "CachePort": str(cache.port),
        "AllowedCidrs": ",".join(c.strip() for c in request.allowed_cidrs),
        "AllowAnySource": "true" if request.allow_any_source else "false",
        "ListenerPort": str(request.listener_port or cache.port),
        "ListenerProtocol": request.listener_protocol,
        "CertificateArn": request.certificate_arn or "",
        "TargetProtocol": target_protocol,
        "NotificationTopicArn": notification_topic_arn,
        "CodeBucket": bucket,
        "CodeKey": key,
    }
    optional = {
        "ScheduleExpression": request.schedule_expression,
        "ScheduleRuleName": request.schedule_rule_name,
        "HealthCheckIntervalSeconds": request.health_check_interval_s,
        "HealthyThreshold": request.healthy_threshold,
        "DeregistrationDelaySeconds": request.deregistration_delay_s,
        "TcpIdleTimeoutSeconds": request.tcp_idle_timeout_s,
        "ReservedConcurrency": request.reserved_concurrency,
        "LambdaSecurityGroupId": request.lambda_security_group_id,
    }
    if request.lambda_subnet_ids:
        values["LambdaSubnetIds"] = ",".join(request.lambda_subnet_ids)
    if request.create_vpc_endpoints:
        values["CreateVpcEndpoints"] = "true"
    values.update({name: str(value) for name, value in optional.items() if value is not None})
    values.update(_layout_parameters(request, cache, node_slots or cfn_template.node_slots_for(len(cache.members))))
    return values


def _with_layout(request: DeployRequest, current: Mapping[str, Any] | None, cache: CacheFacts) -> DeployRequest:
    """An update keeps the stack's layout unless one is asked for: moving a stack from one
    layout to the other points the primary listener at target groups the controller has
    not filled yet (until its next run and the NLB's registration), which should be a
    choice. A stack from before layouts existed is a retarget stack. A new stack takes the
    cluster layout for a cluster-mode-enabled group, the switch layout otherwise."""
    if request.layout is not None:
        return request
    if current is None:
        return replace(request, layout="cluster" if cache.cluster_enabled else "switch")
    return replace(request, layout=Stacks.parameters(current).get("Layout") or "retarget")


def _node_slots(request: DeployRequest, cache: CacheFacts, current: Mapping[str, Any] | None) -> int:
    """The group's members plus room to grow, and never fewer than the stack has: a slot
    removed by an update could be the one the primary listener forwards to."""
    slots = cfn_template.node_slots_for(len(cache.members))
    if current is not None:
        existing = [p for p in Stacks.parameters(current).get("NodePorts", "").split(",") if p.strip()]
        slots = max(slots, min(len(existing), cfn_template.MAX_NODE_SLOTS))
    return slots


def _layout_parameters(request: DeployRequest, cache: CacheFacts, node_slots: int) -> dict[str, str]:
    """Layout, ReaderPort and NodePorts: by default the reader listens on the primary
    listener's port + 1 and the node slots on the ports after it."""
    listener_port = request.listener_port or cache.port
    reader_port = request.reader_port or listener_port + 1
    base = request.node_port_base or max(listener_port, reader_port) + 1
    try:
        ports = cfn_template.node_ports(base, node_slots)
    except ValueError as exc:
        raise ConfigError("--node-port-base", str(exc), f"a port with {node_slots} free ports from it") from None
    if reader_port > 65535:
        raise ConfigError("--reader-port", f"{reader_port} is out of range", "1..65535")
    return {"Layout": effective_layout(request, cache), "ReaderPort": str(reader_port), "NodePorts": ",".join(map(str, ports))}


def effective_layout(request: DeployRequest, cache: CacheFacts) -> str:
    """The layout asked for, or the group's default; a layout that cannot serve the group's
    cluster mode is refused."""
    if cache.cluster_enabled:
        if request.layout not in (None, "cluster"):
            raise ConfigError(
                "--layout",
                f"{cache.replication_group_id!r} has cluster mode enabled: no single primary to follow, and clients must reach every node",
                "--layout cluster, or leave --layout out",
            )
        return "cluster"
    if request.layout == "cluster":
        raise ConfigError("--layout", f"{cache.replication_group_id!r} has cluster mode disabled", "switch or retarget")
    return request.layout or "switch"


def _check_parameters(values: Mapping[str, str], stack_name: str, template: Mapping[str, Any]) -> None:
    declared = set(template["Parameters"])
    unknown = sorted(set(values) - declared)
    if unknown:
        raise DeployError(f"the template has no parameter(s) {', '.join(unknown)}; cachebridge and its template disagree")
    problems = cfn_template.validate_parameters(values, stack_name=stack_name, template=template)
    if problems:
        first = problems[0].split(":", 1)[0]
        raise ConfigError(_FLAG_OF.get(first, first), "; ".join(problems))

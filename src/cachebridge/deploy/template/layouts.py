"""The NLB in each layout (switch, retarget, cluster): the load balancer, its target groups
and listeners, the node slots, and the ``Layout`` parameters, conditions, IAM statements
and outputs that shape them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...config import DEFAULT_PORT, MAX_NODE_TARGET_GROUPS
from .access import MAX_ALLOWED_CIDRS, _allowed_cidr, _cidr_condition
from .cfn import _NO_VALUE, _get_att, _if, _ref, _skip
from .lock_table import _lease_tags

__all__ = [
    "LAYOUTS",
    "DEFAULT_NODE_SLOTS",
    "MAX_NODE_SLOTS",
    "NODE_SLOT_HEADROOM",
    "HEALTH_CHECK_TIMEOUT_S",
    "TLS_POLICY",
    "TCP_IDLE_TIMEOUT_RANGE",
    "TCP_IDLE_TIMEOUT_DEFAULT_S",
    "tcp_listener_attributes",
    "node_target_group_name",
    "node_listener_name",
    "node_slots_for",
    "node_ports",
]


# Switch (the default): one IP target group per node slot, each behind its own listener on
# NodePorts[i] (a target group no listener uses is not health-checked, and a slot must be
# healthy before a failover needs it), the primary listener forwarding to the primary's
# slot (the controller switches it), a reader listener forwarding to every replica.
# Retarget: the primary listener forwards to one target group the controller re-points,
# plus the same reader listener. See ``cachebridge.switch`` for the documented facts.

LAYOUTS = ("switch", "retarget", "cluster")
DEFAULT_NODE_SLOTS = 4
MAX_NODE_SLOTS = MAX_NODE_TARGET_GROUPS
# Slots beyond the group's members: room for scale-out and for a replacement node that
# appears before the node it replaces is gone.
NODE_SLOT_HEADROOM = 2
_PORT_PATTERN = r"^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"

# NLB health checks: the timeout must be below the interval, whose minimum is 5 s.
HEALTH_CHECK_TIMEOUT_S = 4
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# "Enter a value for TCP idle timeout from 60-6000 seconds"; "The default idle timeout value
# for TCP flows is 350 seconds" (ELB User Guide for NLBs, "Update the TCP idle timeout").
TCP_IDLE_TIMEOUT_RANGE = (60, 6000)
TCP_IDLE_TIMEOUT_DEFAULT_S = 350


def _load_balancer_resources() -> dict[str, Any]:
    return {
        "LoadBalancer": {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Metadata": _skip(
                ("CKV_AWS_91", "access logs need a bucket that outlives the stack; connection-level logging is left to the operator"),
            ),
            "Properties": {
                "Type": "network",
                "Scheme": _ref("Scheme"),
                "IpAddressType": "ipv4",
                "Subnets": _ref("SubnetIds"),
                # An NLB gets security groups only at creation.
                "SecurityGroups": [_get_att("LoadBalancerSecurityGroup", "GroupId")],
            },
        },
        # Retarget: the primary; cluster: every node, behind the configuration listener.
        # Tagged with who owns the group and where its write lease lives (see _lease_resources).
        "TargetGroup": _ip_target_group(_ref("DeregistrationDelaySeconds"), {"Condition": "HasTargetGroup"}, tags=_lease_tags()),
        "Listener": {
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": _ref("LoadBalancer"),
                "Port": _ref("ListenerPort"),
                "Protocol": _ref("ListenerProtocol"),
                "Certificates": _if("TerminateTls", [{"CertificateArn": _ref("CertificateArn")}], _NO_VALUE),
                "SslPolicy": _if("ListenerIsTls", TLS_POLICY, _NO_VALUE),
                # Switch: the controller moves this to the primary's node target group;
                # CloudFormation sets it again only when a stack update changes it.
                "DefaultActions": [
                    {"Type": "forward", "TargetGroupArn": _if("IsSwitch", _ref(node_target_group_name(0)), _ref("TargetGroup"))}
                ],
                "ListenerAttributes": _if("ListenerIsTls", _NO_VALUE, tcp_listener_attributes()),
            },
        },
    }


def tcp_listener_attributes() -> list[dict[str, Any]]:
    """``ListenerAttributes`` of a TCP listener: the TcpIdleTimeoutSeconds parameter. Only
    TCP listeners take it: "The connection idle timeout for TLS listeners is 350 seconds and
    can't be modified" (ELB User Guide for NLBs, "Update the TCP idle timeout")."""
    return [{"Key": "tcp.idle_timeout.seconds", "Value": _ref("TcpIdleTimeoutSeconds")}]


def node_target_group_name(index: int) -> str:
    """Logical id of node slot ``index`` (0-based)'s target group."""
    return f"NodeTargetGroup{index + 1}"


def node_listener_name(index: int) -> str:
    return f"NodeListener{index + 1}"


def node_slots_for(members: int) -> int:
    """Node slots for a group of ``members`` nodes: members plus headroom, within the
    listener quota."""
    return max(1, min(MAX_NODE_SLOTS, max(1, members) + NODE_SLOT_HEADROOM))


def node_ports(base: int, count: int) -> list[int]:
    """The per-node listener ports: ``base``, ``base + 1``, ... (one range in the NLB's
    security group)."""
    if count < 1 or not 1 <= base or base + count - 1 > 65535:
        raise ValueError(f"{count} node ports from {base} do not fit in 1..65535")
    return list(range(base, base + count))


def _switch_parameters(node_slots: int) -> dict[str, Any]:
    return {
        "Layout": {
            "Type": "String",
            "Default": "switch",
            "AllowedValues": list(LAYOUTS),
            "Description": (
                "switch: one target group and listener per cache node, the primary listener switched to the new "
                "primary on failover (no registration on the failover path). retarget: one target group re-pointed "
                "to the new primary (waits for NLB registration). cluster (cluster mode enabled): one target group "
                "and listener per node, the listener on ListenerPort reaching every node; clients use an address map."
            ),
        },
        "ReaderPort": {
            "Type": "Number",
            "Default": DEFAULT_PORT + 1,
            "MinValue": 1,
            "MaxValue": 65535,
            "Description": "The port of the reader listener, which forwards to every replica.",
        },
        "NodePorts": {
            "Type": "CommaDelimitedList",
            "Default": ",".join(map(str, node_ports(DEFAULT_PORT + 2, node_slots))),
            "AllowedPattern": _PORT_PATTERN,
            "ConstraintDescription": "port numbers 1-65535, separated by commas",
            "Description": (
                f"Switch layout: {node_slots} consecutive ports, one listener per node slot, in slot order "
                "(clients that discover roles themselves connect to each node here)."
            ),
        },
    }


def _switch_conditions() -> dict[str, Any]:
    conditions: dict[str, Any] = {
        "IsSwitch": {"Fn::Equals": [_ref("Layout"), "switch"]},
        "IsRetarget": {"Fn::Equals": [_ref("Layout"), "retarget"]},
        "IsCluster": {"Fn::Equals": [_ref("Layout"), "cluster"]},
        "HasTargetGroup": {"Fn::Or": [{"Condition": "IsRetarget"}, {"Condition": "IsCluster"}]},
        "HasNodeSlots": {"Fn::Or": [{"Condition": "IsSwitch"}, {"Condition": "IsCluster"}]},
        # Cluster mode has no single set of replicas: a client reads from replicas through
        # the cluster protocol (READONLY on a node connection).
        "HasReader": {"Fn::Not": [{"Condition": "IsCluster"}]},
    }
    for index in range(1, MAX_ALLOWED_CIDRS):
        conditions[f"SwitchAllowedCidr{index + 1}"] = {"Fn::And": [{"Condition": "HasNodeSlots"}, {"Condition": _cidr_condition(index)}]}
        conditions[f"ReaderAllowedCidr{index + 1}"] = {"Fn::And": [{"Condition": "HasReader"}, {"Condition": _cidr_condition(index)}]}
    return conditions


def _ip_target_group(deregistration_delay: Any, extra: Mapping[str, Any] | None = None, tags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An IP target group of cache nodes: the primary's, the readers' or a node slot."""
    properties: dict[str, Any] = {
        "TargetType": "ip",
        "Protocol": _if("ReEncryptToTarget", "TLS", "TCP"),
        "Port": _ref("CachePort"),
        "VpcId": _ref("VpcId"),
        "HealthCheckEnabled": True,
        "HealthCheckProtocol": "TCP",
        "HealthCheckPort": "traffic-port",
        "HealthCheckIntervalSeconds": _ref("HealthCheckIntervalSeconds"),
        "HealthCheckTimeoutSeconds": HEALTH_CHECK_TIMEOUT_S,
        "HealthyThresholdCount": _ref("HealthyThreshold"),
        "UnhealthyThresholdCount": _ref("HealthyThreshold"),
    }
    if tags is not None:
        properties["Tags"] = tags
    properties["TargetGroupAttributes"] = [
        {"Key": "deregistration_delay.timeout_seconds", "Value": deregistration_delay},
        # After a failover the old primary stays healthy as a replica; resetting its
        # connections makes clients reconnect to the new primary instead of getting
        # READONLY on every write.
        {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
        {"Key": "load_balancing.cross_zone.enabled", "Value": "true"},
    ]
    return {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", **(extra or {}), "Properties": properties}


def _listener(port: Any, target_group: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "Type": "AWS::ElasticLoadBalancingV2::Listener",
        **(extra or {}),
        "Properties": {
            "LoadBalancerArn": _ref("LoadBalancer"),
            "Port": port,
            "Protocol": _ref("ListenerProtocol"),
            "Certificates": _if("TerminateTls", [{"CertificateArn": _ref("CertificateArn")}], _NO_VALUE),
            "SslPolicy": _if("ListenerIsTls", TLS_POLICY, _NO_VALUE),
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": _ref(target_group)}],
            "ListenerAttributes": _if("ListenerIsTls", _NO_VALUE, tcp_listener_attributes()),
        },
    }


def _client_ingress(from_port: Any, to_port: Any, index: int, what: str) -> dict[str, Any]:
    return {
        "GroupId": _get_att("LoadBalancerSecurityGroup", "GroupId"),
        "IpProtocol": "tcp",
        "FromPort": from_port,
        "ToPort": to_port,
        "CidrIp": _allowed_cidr(index),
        "Description": f"cachebridge clients to the {what}, AllowedCidrs entry {index + 1}",
    }


def _switch_resources(node_slots: int) -> dict[str, Any]:
    """The reader path (both layouts) and the node slots (switch layout)."""
    switch = {"Condition": "HasNodeSlots"}
    reader_only = {"Condition": "HasReader"}
    resources: dict[str, Any] = {
        "ReaderTargetGroup": _ip_target_group(_ref("DeregistrationDelaySeconds"), reader_only),
        "ReaderListener": _listener(_ref("ReaderPort"), "ReaderTargetGroup", reader_only),
    }
    for index in range(node_slots):
        # Switch: delay 0 and termination on, so deregistering the demoted primary from its
        # own slot resets its connections at once (the cut); a listener update never does.
        # Cluster: the usual delay, so a departing node's connections end before its slot
        # (and port) is given to another node.
        delay = _if("IsCluster", _ref("DeregistrationDelaySeconds"), "0")
        resources[node_target_group_name(index)] = _ip_target_group(delay, switch)
        resources[node_listener_name(index)] = _listener({"Fn::Select": [index, _ref("NodePorts")]}, node_target_group_name(index), switch)
    first_port = {"Fn::Select": [0, _ref("NodePorts")]}
    last_port = {"Fn::Select": [node_slots - 1, _ref("NodePorts")]}
    for index in range(MAX_ALLOWED_CIDRS):
        reader: dict[str, Any] = {"Type": "AWS::EC2::SecurityGroupIngress", "Condition": "HasReader"}
        nodes: dict[str, Any] = {"Type": "AWS::EC2::SecurityGroupIngress", "Condition": "HasNodeSlots"}
        if index:
            reader["Condition"] = f"ReaderAllowedCidr{index + 1}"
            nodes["Condition"] = f"SwitchAllowedCidr{index + 1}"
        reader["Properties"] = _client_ingress(_ref("ReaderPort"), _ref("ReaderPort"), index, "reader listener")
        nodes["Properties"] = _client_ingress(first_port, last_port, index, "per-node listeners")
        resources[f"ReaderIngress{index + 1}"] = reader
        resources[f"NodeIngress{index + 1}"] = nodes
    return resources


def _routed_target_groups(node_slots: int) -> list[Any]:
    """The target groups the controller registers into and deregisters from."""
    return [
        _if("HasReader", _ref("ReaderTargetGroup"), _NO_VALUE),
        _if("HasTargetGroup", _ref("TargetGroup"), _NO_VALUE),
        *(_if("HasNodeSlots", _ref(node_target_group_name(i)), _NO_VALUE) for i in range(node_slots)),
    ]


def _switch_statements(node_slots: int) -> list[dict[str, Any]]:
    return [
        _if(
            "IsSwitch",
            {
                "Sid": "SwitchThisListenerOnly",
                "Effect": "Allow",
                "Action": "elasticloadbalancing:ModifyListener",
                "Resource": _ref("Listener"),
            },
            _NO_VALUE,
        ),
        _if(
            "HasNodeSlots",
            {
                "Sid": "TagOwnNodeTargetGroupsOnly",
                "Effect": "Allow",
                "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                "Resource": [_ref(node_target_group_name(i)) for i in range(node_slots)],
            },
            _NO_VALUE,
        ),
    ]


def _switch_outputs(node_slots: int = DEFAULT_NODE_SLOTS) -> dict[str, Any]:
    return {
        "Layout": {"Description": "switch or retarget", "Value": _ref("Layout")},
        "PrimaryPort": {"Description": "Clients that write connect here: the primary listener", "Value": _ref("ListenerPort")},
        "PrimaryListenerArn": {"Description": "The primary listener (the switch layout switches its default action)", "Value": _ref("Listener")},
        "ReaderPort": {"Description": "The reader listener: every replica", "Condition": "HasReader", "Value": _ref("ReaderPort")},
        "ReaderTargetGroupArn": {"Description": "The target group the controller keeps on the replicas", "Condition": "HasReader", "Value": _ref("ReaderTargetGroup")},
        # What 'cachebridge endpoints' reads the cluster's address map from: each node
        # target group's node tag and target, and the listener that forwards to it.
        "NodeTargetGroups": {
            "Description": "Node target groups, in slot order (one listener each)",
            "Condition": "HasNodeSlots",
            "Value": {"Fn::Join": [",", [_ref(node_target_group_name(i)) for i in range(node_slots)]]},
        },
        "ConfigTargetGroup": {
            "Description": "Cluster layout: the target group behind the configuration listener (every node)",
            "Condition": "IsCluster",
            "Value": _ref("TargetGroup"),
        },
        "NodePorts": {
            "Description": "Switch and cluster layouts: one listener per node slot, in slot order",
            "Condition": "HasNodeSlots",
            "Value": {"Fn::Join": [",", _ref("NodePorts")]},
        },
    }


def _switch_parameter_problems(parameters: Mapping[str, Any], template: Mapping[str, Any]) -> list[str]:
    """What CloudFormation cannot check itself about the layout's ports."""
    problems: list[str] = []
    listener, reader = str(parameters.get("ListenerPort")), str(parameters.get("ReaderPort"))
    if reader == listener:
        problems.append(f"ReaderPort: {reader} is also the ListenerPort")
    if parameters.get("Layout") not in ("switch", "cluster"):
        return problems
    slots = sum(1 for rid in template["Resources"] if re.fullmatch(r"NodeListener\d+", rid))
    ports = [int(p) for p in parameters.get("NodePorts", []) if str(p).isdigit()]
    if len(ports) != slots:
        problems.append(f"NodePorts: {len(ports)} ports given; the template has {slots} node slots")
    elif ports != list(range(ports[0], ports[0] + slots)):
        problems.append("NodePorts: the ports must be consecutive, in slot order")
    elif {listener, reader} & {str(p) for p in ports}:
        problems.append("NodePorts: a node port is also the ListenerPort or the ReaderPort")
    return problems

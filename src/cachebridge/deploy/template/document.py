"""The whole template: every section assembled (``build``), the outputs, and the text
CloudFormation takes (``render``)."""

from __future__ import annotations

import copy
import json
from typing import Any

from ...config import Settings
from .access import _guard_resources, _security_group_resources
from .cfn import _get_att, _if, _ref, _sub
from .controller import FUNCTION_TIMEOUT_S, _controller_network_resources, _controller_resources
from .layouts import DEFAULT_NODE_SLOTS, MAX_NODE_SLOTS, _load_balancer_resources, _switch_outputs, _switch_resources
from .lock_table import _lease_resources
from .parameters import _conditions, _interface, _parameters, _rules
from .triggers import _alarm_resources, _trigger_resources

__all__ = ["build", "render"]


def _outputs(node_slots: int = 4) -> dict[str, Any]:
    return {
        "LoadBalancerDnsName": {
            "Description": "DNS name of the NLB",
            "Value": _get_att("LoadBalancer", "DNSName"),
        },
        "ConnectionUrl": {
            "Description": "Where clients connect. With a TLS listener, use the certificate's name instead of the NLB's; with TLS passed through, verify the cache's primary endpoint name (cachebridge endpoints says how, per client)",
            "Value": _sub(
                "${UrlScheme}://${LoadBalancer.DNSName}:${ListenerPort}",
                {"UrlScheme": _if("ClientSpeaksTls", "rediss", "redis")},
            ),
        },
        "TargetGroupArn": {
            "Description": "The target group the controller keeps on the primary (cluster layout: on every node)",
            "Condition": "HasTargetGroup",
            "Value": _ref("TargetGroup"),
        },
        **_switch_outputs(node_slots),
        "FunctionName": {"Description": "The controller Lambda function", "Value": _ref("ControllerFunction")},
        "NotificationTopicArn": {
            "Description": "The ElastiCache notification topic the controller listens to",
            "Value": _if("CreateTopic", _ref("NotificationTopic"), _ref("NotificationTopicArn")),
        },
        "ScheduleRuleName": {"Description": "The safety-net schedule rule", "Value": _ref("Schedule")},
        "LoadBalancerSecurityGroupId": {
            "Description": "The NLB's security group",
            "Value": _get_att("LoadBalancerSecurityGroup", "GroupId"),
        },
        # What 'cachebridge endpoints' needs to say how clients connect and which TLS name
        # they verify.
        "ListenerProtocol": {"Description": "TCP (TLS to a TLS cache passes through) or TLS (terminated with CertificateArn)", "Value": _ref("ListenerProtocol")},
        "ListenerPort": {"Description": "The port clients connect to", "Value": _ref("ListenerPort")},
        "TargetProtocol": {"Description": "What the cache speaks: TLS with in-transit encryption", "Value": _ref("TargetProtocol")},
        "ReplicationGroupId": {"Description": "The replication group behind the NLB", "Value": _ref("ReplicationGroupId")},
        "CertificateArn": {
            "Condition": "ListenerIsTls",
            "Description": "The TLS listener's certificate: clients connect by its name",
            "Value": _ref("CertificateArn"),
        },
    }


def build(settings: Settings | None = None, node_slots: int = 0, replicas: bool = True) -> dict[str, Any]:
    """The template as a fresh dict. ``settings`` are baked into CACHEBRIDGE_BINDINGS
    (default: the package defaults); event_wait_s must stay below the function timeout.
    ``node_slots``: how many node target groups the switch layout gets (default
    ``DEFAULT_NODE_SLOTS``; ``node_slots_for`` sizes it from a group's members).
    ``replicas``: whether the controller gets a binding for the reader target group (a
    group without replicas has nothing to put there)."""
    settings = settings or Settings()
    node_slots = node_slots or DEFAULT_NODE_SLOTS
    if not 1 <= node_slots <= MAX_NODE_SLOTS:
        raise ValueError(f"node_slots {node_slots} is not within 1..{MAX_NODE_SLOTS} (50 listeners per NLB)")
    if settings.event_wait_s >= FUNCTION_TIMEOUT_S:
        raise ValueError(f"event_wait_s {settings.event_wait_s:g} must be below the function timeout {FUNCTION_TIMEOUT_S} s")
    resources: dict[str, Any] = {}
    for part in (
        _guard_resources(),
        _security_group_resources(),
        _load_balancer_resources(),
        _switch_resources(node_slots),
        _controller_resources(settings, node_slots, replicas),
        _lease_resources(),
        _controller_network_resources(),
        _trigger_resources(),
        _alarm_resources(),
    ):
        resources.update(part)
    return copy.deepcopy(
        {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": "cachebridge: an NLB that follows the primary of an ElastiCache replication group",
            "Metadata": {"AWS::CloudFormation::Interface": _interface()},
            "Parameters": _parameters(node_slots),
            "Rules": _rules(),
            "Conditions": _conditions(),
            "Resources": resources,
            "Outputs": _outputs(node_slots),
        }
    )


def render(fmt: str = "yaml", settings: Settings | None = None, node_slots: int = 0) -> str:
    """The template as YAML (``fmt='yaml'``) or JSON (``fmt='json'``) text."""
    template = build(settings, node_slots)
    if fmt == "json":
        return json.dumps(template, indent=2) + "\n"
    if fmt in ("yaml", "yml"):
        import yaml  # the CLI's dependency; the Lambda never renders

        return yaml.dump(template, Dumper=_no_alias_dumper(), sort_keys=False, default_flow_style=False, width=10_000)
    raise ValueError(f"unknown template format {fmt!r} (accepted: yaml, json)")


def _no_alias_dumper() -> type:
    """A SafeDumper that writes shared values out again instead of as ``&id001``/``*id001``
    anchors and aliases, which CloudFormation only accepts after packaging."""
    import yaml

    class NoAliasDumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return NoAliasDumper

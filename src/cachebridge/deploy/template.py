"""The CloudFormation template of one cachebridge stack, built as a Python dict.

One stack gives applications outside the VPC a Network Load Balancer in front of the
current primary of one ElastiCache replication group (cluster mode disabled)::

    client ──TCP/TLS──► NLB (own security group: AllowedCidrs on ListenerPort only)
                         └─ listener ─► IP target group ─► current primary IP:CachePort
    ElastiCache ──SNS──► controller Lambda ◄── EventBridge schedule (safety net)

Everything is named by CloudFormation or derived from the stack name, so any number of
stacks coexist in one account and region. Nothing in it blocks deletion.

``AllowedCidrs`` takes at most ``MAX_ALLOWED_CIDRS`` IPv4 ranges (one security group rule
each, selected by Conditions). CloudFormation Rules cannot count list members, so a longer
list creates the ``AllowedCidrsLimitExceeded`` guard, a wait condition nobody signals: the
stack fails within seconds and rolls back, rather than silently ignoring the extra ranges.
A list covering more than a /8 without ``AllowAnySource=true`` fails the same way, through
``AllowedCidrsCoverMoreThanASlash8SetAllowAnySource`` (``deploy.allow_list`` says how the
Conditions count addresses, and what they cannot see).

``validate_parameters`` applies the parameter constraints, the ``Rules`` and that limit
to a set of parameter values, with the same tiny evaluator the tests use, so a caller can
refuse bad input before calling CloudFormation.

Protocols: ``ListenerProtocol`` is what clients speak to the NLB; ``TargetProtocol`` is
what the cache speaks (``TLS`` for in-transit encryption). With a TLS listener the NLB
terminates TLS with ``CertificateArn`` and, for a TLS cache, re-encrypts towards it (TLS
target group). With a TCP listener the bytes pass through unchanged, so a TLS cache is
reached end to end through a TCP target group; the connection URL is ``rediss://``
whenever the client must speak TLS.

Optional parts, each off by default and selected by a Condition:

- ``ReservedConcurrency``: 0 leaves the function unreserved. Lambda refuses a reservation
  that would leave the account's unreserved concurrency below 100 ("You can reserve up to
  the Unreserved account concurrency value minus 100", Lambda Developer Guide, "Configuring
  reserved concurrency"), which fails stack creation in new accounts with low quotas; the
  controller is safe with concurrent invocations without it.
- ``LambdaSubnetIds``: the function runs in the VPC and resolves node names through the VPC
  resolver. It then reaches the ELB, ElastiCache and EC2 APIs through an existing NAT, or
  through interface endpoints the stack creates (``CreateVpcEndpoints``).
- ``TcpIdleTimeoutSeconds``: the TCP listener's ``tcp.idle_timeout.seconds`` (60-6000,
  AWS's default 350); a TLS listener keeps its fixed 350 s.

The topic the stack creates carries ElastiCache's documented publish statement
(``"Principal": {"AWS": "*"}`` with ``AWS:SourceOwner``), see ``_trigger_resources``.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_EVENT_WAIT_S, DEFAULT_PORT, MAX_NODE_TARGET_GROUPS, Binding, Config, Settings
from . import allow_list

__all__ = [
    "MAX_ALLOWED_CIDRS",
    "FUNCTION_TIMEOUT_S",
    "RUNTIME",
    "HANDLER",
    "DRIFT_NAMESPACE",
    "PARAMETER_GROUPS",
    "Variant",
    "build",
    "render",
    "variants",
    "bindings_sub",
    "client_ingress_name",
    "binding_name_sub",
    "validate_parameters",
    "evaluate",
    "TemplateEvaluationError",
    "TOO_MANY_CIDRS",
    "LAYOUTS",
    "DEFAULT_NODE_SLOTS",
    "MAX_NODE_SLOTS",
    "node_ports",
    "node_slots_for",
    "switch_bindings_sub",
    "cluster_bindings_sub",
    "retarget_bindings_sub",
    "TCP_IDLE_TIMEOUT_RANGE",
    "VPC_ENDPOINT_SERVICES",
    "elasticache_publish_statement",
    "tcp_listener_attributes",
]

MAX_ALLOWED_CIDRS = 5
RUNTIME = "python3.13"
HANDLER = "cachebridge.handler.handler"
DRIFT_NAMESPACE = "CacheBridge"  # metrics.NAMESPACE; the EMF lines carry FunctionName and Binding
# An ElastiCache event is followed by up to event_wait_s of re-reading before the sync
# itself; the rest leaves room for a cold start, the API calls and the report.
FUNCTION_TIMEOUT_S = max(60, int(DEFAULT_EVENT_WAIT_S) + 30)
FUNCTION_MEMORY_MB = 256
LOG_RETENTION_DAYS = 30
# NLB health checks: the timeout must be below the interval, whose minimum is 5 s.
HEALTH_CHECK_TIMEOUT_S = 4
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
SCHEDULE_RULE_SUFFIX = "-sync"
SCHEDULE_RULE_NAME_MAX = 64
# "Enter a value for TCP idle timeout from 60-6000 seconds"; "The default idle timeout value
# for TCP flows is 350 seconds" (ELB User Guide for NLBs, "Update the TCP idle timeout").
TCP_IDLE_TIMEOUT_RANGE = (60, 6000)
TCP_IDLE_TIMEOUT_DEFAULT_S = 350
# The APIs the controller calls (nlb.py, sources.py, lease.py): interface endpoints for these
# let a function in subnets without NAT reach them. Logs need none: Lambda ships the
# function's stdout itself. DynamoDB has interface endpoints too ("AWS PrivateLink for
# DynamoDB", DynamoDB Developer Guide); without its lock table the controller registers but
# never deregisters.
VPC_ENDPOINT_SERVICES = ("elasticloadbalancing", "elasticache", "ec2", "dynamodb")

_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
# An IPv4 CIDR with a prefix of 1-32, or exactly 0.0.0.0/0 (which a Rule then refuses
# unless AllowAnySource is true); other /0 spellings are refused outright.
CIDR_PATTERN = rf"^(0\.0\.0\.0/0|({_OCTET}\.){{3}}{_OCTET}/(3[0-2]|[12][0-9]|[1-9]))$"
ANY_SOURCE = "0.0.0.0/0"
TOO_MANY_CIDRS = "TooManyAllowedCidrs"  # the condition that creates the failing guard

PARAMETER_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Network Load Balancer", ("VpcId", "SubnetIds", "Scheme", "ListenerPort", "ListenerProtocol", "CertificateArn")),
    ("Layout", ("Layout", "ReaderPort", "NodePorts")),
    ("Who may connect", ("AllowedCidrs", "AllowAnySource")),
    ("ElastiCache", ("ReplicationGroupId", "CacheSecurityGroupId", "CachePort", "TargetProtocol")),
    ("Controller", ("ScheduleExpression", "ScheduleRuleName", "NotificationTopicArn", "ReservedConcurrency")),
    ("Controller network", ("LambdaSubnetIds", "LambdaSecurityGroupId", "CreateVpcEndpoints")),
    ("Target health and failover", ("HealthCheckIntervalSeconds", "HealthyThreshold", "DeregistrationDelaySeconds", "TcpIdleTimeoutSeconds")),
    ("Controller code", ("CodeBucket", "CodeKey")),
    ("More bindings", ("ExtraBindings", "ConfigFile")),
)


# -- intrinsic helpers ---------------------------------------------------------------------

def _ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def _get_att(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def _sub(text: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"Fn::Sub": [text, dict(variables)] if variables else text}


def _if(condition: str, then: Any, otherwise: Any) -> dict[str, Any]:
    return {"Fn::If": [condition, then, otherwise]}


_NO_VALUE = _ref("AWS::NoValue")


def _skip(*checks: tuple[str, str]) -> dict[str, Any]:
    """checkov suppressions, each with the one-line reason it does not apply here."""
    return {"checkov": {"skip": [{"id": check, "comment": comment} for check, comment in checks]}}


# -- parameters ----------------------------------------------------------------------------

def _parameters(node_slots: int = 0) -> dict[str, Any]:
    return {
        **_switch_parameters(node_slots or DEFAULT_NODE_SLOTS),
        "VpcId": {
            "Type": "AWS::EC2::VPC::Id",
            "Description": "The VPC of the replication group; the NLB and its target group live here.",
        },
        "SubnetIds": {
            "Type": "List<AWS::EC2::Subnet::Id>",
            "Description": "Subnets for the NLB, one per Availability Zone (public subnets for an internet-facing NLB).",
        },
        "Scheme": {
            "Type": "String",
            "Default": "internet-facing",
            "AllowedValues": ["internet-facing", "internal"],
            "Description": "internet-facing for clients on the internet; internal for clients over VPN, peering or Direct Connect.",
        },
        "ListenerPort": {
            "Type": "Number",
            "Default": DEFAULT_PORT,
            "MinValue": 1,
            "MaxValue": 65535,
            "Description": "The port clients connect to on the NLB.",
        },
        "ListenerProtocol": {
            "Type": "String",
            "Default": "TCP",
            "AllowedValues": ["TCP", "TLS"],
            "Description": "TLS terminates TLS on the NLB with CertificateArn (clients connect by the certificate's name); TCP passes bytes through.",
        },
        "CertificateArn": {
            "Type": "String",
            "Default": "",
            "AllowedPattern": r"^(|arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+)$",
            "ConstraintDescription": "empty, or an ACM certificate ARN",
            "Description": "Certificate for a TLS listener, for a name of yours that points at the NLB. Required when ListenerProtocol is TLS.",
        },
        "AllowedCidrs": {
            "Type": "CommaDelimitedList",
            "AllowedPattern": CIDR_PATTERN,
            "ConstraintDescription": "IPv4 CIDR ranges such as 203.0.113.0/24, separated by commas without spaces",
            "Description": (
                f"Required. Up to {MAX_ALLOWED_CIDRS} IPv4 ranges allowed to connect to ListenerPort. "
                "Ranges covering more than a /8 in all (0.0.0.0/0, two /1s, three /9s...) are refused unless AllowAnySource is true."
            ),
        },
        "AllowAnySource": {
            "Type": "String",
            "Default": "false",
            "AllowedValues": ["false", "true"],
            "Description": "Set to true, on purpose, to allow 0.0.0.0/0, or ranges covering more than a /8, in AllowedCidrs.",
        },
        "ReplicationGroupId": {
            "Type": "String",
            "AllowedPattern": "^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$",
            "ConstraintDescription": "a replication group id as ElastiCache stores it: lower case letters, digits and hyphens, starting with a letter",
            "Description": "The ElastiCache (Redis OSS / Valkey) replication group, cluster mode disabled, whose primary the NLB follows.",
        },
        "CacheSecurityGroupId": {
            "Type": "AWS::EC2::SecurityGroup::Id",
            "Description": "A security group of the replication group; the stack adds a rule admitting the NLB's security group on CachePort.",
        },
        "CachePort": {
            "Type": "Number",
            "Default": DEFAULT_PORT,
            "MinValue": 1,
            "MaxValue": 65535,
            "Description": "The port of the replication group.",
        },
        "TargetProtocol": {
            "Type": "String",
            "Default": "TCP",
            "AllowedValues": ["TCP", "TLS"],
            "Description": "TLS when the replication group has in-transit encryption.",
        },
        "ScheduleExpression": {
            "Type": "String",
            "Default": "rate(1 minute)",
            "AllowedPattern": r"^(rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$",
            "ConstraintDescription": "an EventBridge rate(...) or cron(...) expression",
            "Description": "How often the controller syncs even without a failover notification (the safety net).",
        },
        "ScheduleRuleName": {
            "Type": "String",
            "Default": "",
            "AllowedPattern": r"^[.\-_A-Za-z0-9]{0,64}$",
            "ConstraintDescription": "empty, or 1-64 letters, digits, '.', '-' or '_'",
            "Description": (
                f"Name of the schedule rule. Empty: <stack name>{SCHEDULE_RULE_SUFFIX} "
                f"(then the stack name may have at most {SCHEDULE_RULE_NAME_MAX - len(SCHEDULE_RULE_SUFFIX)} characters)."
            ),
        },
        "NotificationTopicArn": {
            "Type": "String",
            "Default": "",
            "AllowedPattern": r"^(|arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256})$",
            "ConstraintDescription": "empty, or an SNS topic ARN",
            "Description": "The replication group's ElastiCache notification topic. Empty: the stack creates one (set it on the replication group).",
        },
        "HealthCheckIntervalSeconds": {
            "Type": "Number",
            "Default": 10,
            "MinValue": 5,
            "MaxValue": 300,
            "Description": "Seconds between NLB health checks of a target.",
        },
        "HealthyThreshold": {
            "Type": "Number",
            "Default": 2,
            "MinValue": 2,
            "MaxValue": 10,
            "Description": "Consecutive health checks for a target to turn healthy (or unhealthy).",
        },
        "DeregistrationDelaySeconds": {
            "Type": "Number",
            "Default": 5,
            "MinValue": 0,
            "MaxValue": 3600,
            "Description": "Seconds a deregistered target (the old primary) keeps its connections before the NLB resets them.",
        },
        "TcpIdleTimeoutSeconds": {
            "Type": "Number",
            "Default": TCP_IDLE_TIMEOUT_DEFAULT_S,
            "MinValue": TCP_IDLE_TIMEOUT_RANGE[0],
            "MaxValue": TCP_IDLE_TIMEOUT_RANGE[1],
            "Description": (
                "Seconds a TCP listener keeps a connection with no traffic either way (pub/sub, blocking commands). "
                "A TLS listener stays at 350."
            ),
        },
        "ReservedConcurrency": {
            "Type": "Number",
            "Default": 0,
            "MinValue": 0,
            "MaxValue": 1000,
            "Description": (
                "0: the function draws on the account's unreserved concurrency. N: reserve N executions "
                "(Lambda refuses what would leave less than 100 unreserved)."
            ),
        },
        "LambdaSubnetIds": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "AllowedPattern": r"^(|subnet-[0-9a-f]{8,17})$",
            "ConstraintDescription": "empty, or subnet ids separated by commas without spaces",
            "Description": (
                "Empty: the function runs outside the VPC. Subnets of VpcId: it runs there and resolves node names "
                "through the VPC resolver; the subnets need a NAT route or CreateVpcEndpoints=true."
            ),
        },
        "LambdaSecurityGroupId": {
            "Type": "String",
            "Default": "",
            "AllowedPattern": r"^(|sg-[0-9a-f]{8,17})$",
            "ConstraintDescription": "empty, or a security group id",
            "Description": "With LambdaSubnetIds: the function's security group. Empty: the stack creates one (HTTPS out only).",
        },
        "CreateVpcEndpoints": {
            "Type": "String",
            "Default": "false",
            "AllowedValues": ["false", "true"],
            "Description": (
                "With LambdaSubnetIds: true creates interface endpoints (with private DNS) for "
                + ", ".join(VPC_ENDPOINT_SERVICES)
                + " in those subnets; false relies on an existing NAT or endpoints."
            ),
        },
        "CodeBucket": {
            "Type": "String",
            "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
            "ConstraintDescription": "an S3 bucket name",
            "Description": "S3 bucket holding the controller zip (filled in by cachebridge deploy).",
        },
        "CodeKey": {
            "Type": "String",
            "AllowedPattern": r"^\S{1,1024}$",
            "ConstraintDescription": "an S3 object key",
            "Description": "S3 key of the controller zip (content-addressed; filled in by cachebridge deploy).",
        },
        # Bindings besides this stack's own (cachebridge deploy --config fills in one of
        # the two): JSON in the environment while everything fits Lambda's 4 KB, else a
        # file in the zip. Their target groups carry the cachebridge:owner tag naming
        # this stack, which is what lets the controller write them.
        "ExtraBindings": {
            "Type": "String",
            "Default": "",
            "Description": "JSON bindings the controller also follows (CACHEBRIDGE_EXTRA_BINDINGS); empty: none.",
        },
        "ConfigFile": {
            "Type": "String",
            "Default": "",
            "AllowedPattern": r"^(|[A-Za-z0-9_.-]{1,128}\.json)$",
            "ConstraintDescription": "empty, or the name of a JSON file at the zip's root",
            "Description": "A JSON file of bindings inside the controller zip (CACHEBRIDGE_CONFIG_FILE); empty: none.",
        },
    }


_LABELS = {
    "VpcId": "VPC",
    "SubnetIds": "NLB subnets",
    "Scheme": "NLB scheme",
    "ListenerPort": "Listener port",
    "ListenerProtocol": "Listener protocol",
    "CertificateArn": "TLS certificate ARN",
    "AllowedCidrs": "Allowed client CIDRs",
    "AllowAnySource": "Allow 0.0.0.0/0",
    "ReplicationGroupId": "Replication group id",
    "CacheSecurityGroupId": "Cache security group",
    "CachePort": "Cache port",
    "TargetProtocol": "Cache protocol",
    "ScheduleExpression": "Schedule",
    "ScheduleRuleName": "Schedule rule name",
    "NotificationTopicArn": "ElastiCache notification topic",
    "HealthCheckIntervalSeconds": "Health check interval (s)",
    "HealthyThreshold": "Healthy threshold",
    "DeregistrationDelaySeconds": "Deregistration delay (s)",
    "TcpIdleTimeoutSeconds": "TCP idle timeout (s)",
    "ReservedConcurrency": "Reserved concurrency (0: none)",
    "LambdaSubnetIds": "Controller subnets (empty: outside the VPC)",
    "LambdaSecurityGroupId": "Controller security group",
    "CreateVpcEndpoints": "Create interface VPC endpoints",
    "CodeBucket": "Code bucket",
    "CodeKey": "Code key",
    "Layout": "Layout (switch or retarget)",
    "ReaderPort": "Reader listener port",
    "NodePorts": "Per-node listener ports",
    "ExtraBindings": "More bindings (JSON)",
    "ConfigFile": "More bindings (file in the zip)",
}


def _interface() -> dict[str, Any]:
    return {
        "ParameterGroups": [
            {"Label": {"default": label}, "Parameters": list(names)} for label, names in PARAMETER_GROUPS
        ],
        "ParameterLabels": {name: {"default": label} for name, label in _LABELS.items()},
    }


def _rules() -> dict[str, Any]:
    return {
        "AllowAnySourceOnPurpose": {
            "RuleCondition": {"Fn::Not": [{"Fn::Equals": [_ref("AllowAnySource"), "true"]}]},
            "Assertions": [
                {
                    "Assert": {"Fn::Not": [{"Fn::Contains": [_ref("AllowedCidrs"), ANY_SOURCE]}]},
                    "AssertDescription": f"AllowedCidrs contains {ANY_SOURCE}; set AllowAnySource=true to allow any source on purpose",
                }
            ],
        },
        "VpcOptionsNeedLambdaSubnets": {
            "RuleCondition": {"Fn::Equals": [{"Fn::Join": ["", _ref("LambdaSubnetIds")]}, ""]},
            "Assertions": [
                {
                    "Assert": {"Fn::Equals": [_ref("CreateVpcEndpoints"), "false"]},
                    "AssertDescription": "CreateVpcEndpoints needs LambdaSubnetIds",
                },
                {
                    "Assert": {"Fn::Equals": [_ref("LambdaSecurityGroupId"), ""]},
                    "AssertDescription": "LambdaSecurityGroupId needs LambdaSubnetIds",
                },
            ],
        },
        "TlsListenerNeedsCertificate": {
            "RuleCondition": {"Fn::Equals": [_ref("ListenerProtocol"), "TLS"]},
            "Assertions": [
                {
                    "Assert": {"Fn::Not": [{"Fn::Equals": [_ref("CertificateArn"), ""]}]},
                    "AssertDescription": "ListenerProtocol TLS needs CertificateArn",
                }
            ],
        },
    }


# -- conditions ----------------------------------------------------------------------------

def _allowed_cidr(index: int) -> dict[str, Any]:
    """Entry ``index`` of AllowedCidrs, or "" past its end: the list is joined and padded
    with MAX_ALLOWED_CIDRS empty entries before splitting, so every index up to
    MAX_ALLOWED_CIDRS exists."""
    if index == 0:
        return {"Fn::Select": [0, _ref("AllowedCidrs")]}
    padded = {"Fn::Join": ["", [{"Fn::Join": [",", _ref("AllowedCidrs")]}, "," * MAX_ALLOWED_CIDRS]]}
    return {"Fn::Select": [index, {"Fn::Split": [",", padded]}]}


def _cidr_condition(index: int) -> str:
    return f"HasAllowedCidr{index + 1}"


def _conditions() -> dict[str, Any]:
    conditions: dict[str, Any] = {
        "ListenerIsTls": {"Fn::Equals": [_ref("ListenerProtocol"), "TLS"]},
        "TargetIsTls": {"Fn::Equals": [_ref("TargetProtocol"), "TLS"]},
        "ReEncryptToTarget": {"Fn::And": [{"Condition": "ListenerIsTls"}, {"Condition": "TargetIsTls"}]},
        "ClientSpeaksTls": {"Fn::Or": [{"Condition": "ListenerIsTls"}, {"Condition": "TargetIsTls"}]},
        # The TlsListenerNeedsCertificate rule makes this ListenerIsTls in practice; naming
        # the certificate here lets cfn-lint see that the Ref is never empty where used.
        "HasCertificate": {"Fn::Not": [{"Fn::Equals": [_ref("CertificateArn"), ""]}]},
        "TerminateTls": {"Fn::And": [{"Condition": "ListenerIsTls"}, {"Condition": "HasCertificate"}]},
        "CreateTopic": {"Fn::Equals": [_ref("NotificationTopicArn"), ""]},
        "HasScheduleRuleName": {"Fn::Not": [{"Fn::Equals": [_ref("ScheduleRuleName"), ""]}]},
        "HasReservedConcurrency": {"Fn::Not": [{"Fn::Equals": [_ref("ReservedConcurrency"), "0"]}]},
        "HasExtraBindings": {"Fn::Not": [{"Fn::Equals": [_ref("ExtraBindings"), ""]}]},
        "HasConfigFile": {"Fn::Not": [{"Fn::Equals": [_ref("ConfigFile"), ""]}]},
        "FollowsMoreBindings": {"Fn::Or": [{"Condition": "HasExtraBindings"}, {"Condition": "HasConfigFile"}]},
        "FunctionInVpc": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", _ref("LambdaSubnetIds")]}, ""]}]},
        "CreateControllerSecurityGroup": {
            "Fn::And": [{"Condition": "FunctionInVpc"}, {"Fn::Equals": [_ref("LambdaSecurityGroupId"), ""]}]
        },
        "CreateEndpoints": {"Fn::And": [{"Condition": "FunctionInVpc"}, {"Fn::Equals": [_ref("CreateVpcEndpoints"), "true"]}]},
        TOO_MANY_CIDRS: {"Fn::Not": [{"Fn::Equals": [_allowed_cidr(MAX_ALLOWED_CIDRS), ""]}]},
    }
    for index in range(1, MAX_ALLOWED_CIDRS):
        conditions[_cidr_condition(index)] = {"Fn::Not": [{"Fn::Equals": [_allowed_cidr(index), ""]}]}
    conditions.update(_switch_conditions())
    conditions.update(allow_list.guard_conditions(
        MAX_ALLOWED_CIDRS,
        present=lambda index: {"Condition": _cidr_condition(index)},
        allow_any_source={"Fn::Equals": [_ref("AllowAnySource"), "true"]},
    ))
    return conditions


def _guard_resources() -> dict[str, Any]:
    return {
        "AllowedCidrsLimitHandle": {
            "Type": "AWS::CloudFormation::WaitConditionHandle",
            "Condition": TOO_MANY_CIDRS,
        },
        "AllowedCidrsLimitExceeded": {
            "Type": "AWS::CloudFormation::WaitCondition",
            "Condition": TOO_MANY_CIDRS,
            "Properties": {"Handle": _ref("AllowedCidrsLimitHandle"), "Timeout": "1", "Count": 1},
        },
        # Named so that the stack's failure event says what to change.
        "AllowedCidrsBreadthHandle": {
            "Type": "AWS::CloudFormation::WaitConditionHandle",
            "Condition": allow_list.BROAD_ALLOW_LIST,
        },
        "AllowedCidrsCoverMoreThanASlash8SetAllowAnySource": {
            "Type": "AWS::CloudFormation::WaitCondition",
            "Condition": allow_list.BROAD_ALLOW_LIST,
            "Properties": {"Handle": _ref("AllowedCidrsBreadthHandle"), "Timeout": "1", "Count": 1},
        },
    }


# -- the controller's configuration --------------------------------------------------------

_PLACEHOLDER_RG = "cbplaceholderrg"
_PLACEHOLDER_TG = "cb-placeholder-tg"
_PLACEHOLDER_PORT = 65432


def binding_name_sub() -> str:
    """The binding's name, as a Fn::Sub string (also the Drift alarm's Binding dimension)."""
    return "${ReplicationGroupId}-primary"


def bindings_sub(settings: Settings | None = None) -> str:
    """The Fn::Sub string of ``CACHEBRIDGE_BINDINGS``.

    It is ``Config.bindings_json()`` of a one-binding configuration (the replication
    group's primary, into this stack's target group, on CachePort), built by the config
    model itself from placeholder values that are then replaced by ``${Parameter}``
    references; so the Lambda reads exactly what the model writes."""
    config = Config.single(
        source=f"elasticache://{_PLACEHOLDER_RG}?role=primary",
        target_group=_PLACEHOLDER_TG,
        port=_PLACEHOLDER_PORT,
        name=binding_name_sub().replace("${ReplicationGroupId}", _PLACEHOLDER_RG),
        settings=settings,
    )
    text = config.bindings_json()
    replacements = (
        (f'"port":{_PLACEHOLDER_PORT}', '"port":${CachePort}', 1),
        (f'"{_PLACEHOLDER_TG}"', '"${TargetGroup}"', 1),
        (_PLACEHOLDER_RG, "${ReplicationGroupId}", 2),
    )
    for placeholder, reference, expected in replacements:
        found = text.count(placeholder)
        if found != expected:
            raise RuntimeError(f"bindings_json() holds {placeholder!r} {found} times, expected {expected}: {text}")
        text = text.replace(placeholder, reference)
    if "$" in text.replace("${CachePort}", "").replace("${TargetGroup}", "").replace("${ReplicationGroupId}", ""):
        raise RuntimeError(f"bindings_json() holds a '$' that Fn::Sub would misread: {text}")
    return text


# -- resources -----------------------------------------------------------------------------

def client_ingress_name(index: int) -> str:
    """Logical id of the security group rule for AllowedCidrs entry ``index`` (0-based)."""
    return f"ClientIngress{index + 1}"


def _security_group_resources() -> dict[str, Any]:
    resources: dict[str, Any] = {
        "LoadBalancerSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": _sub("cachebridge NLB of stack ${AWS::StackName}: AllowedCidrs in, the cache out"),
                "VpcId": _ref("VpcId"),
                # Replaces the default allow-all egress.
                "SecurityGroupEgress": [
                    {
                        "IpProtocol": "tcp",
                        "FromPort": _ref("CachePort"),
                        "ToPort": _ref("CachePort"),
                        "DestinationSecurityGroupId": _ref("CacheSecurityGroupId"),
                        "Description": "to the cache nodes: traffic and health checks",
                    }
                ],
            },
        },
        "CacheIngressFromLoadBalancer": {
            "Type": "AWS::EC2::SecurityGroupIngress",
            "Properties": {
                "GroupId": _ref("CacheSecurityGroupId"),
                "IpProtocol": "tcp",
                "FromPort": _ref("CachePort"),
                "ToPort": _ref("CachePort"),
                "SourceSecurityGroupId": _get_att("LoadBalancerSecurityGroup", "GroupId"),
                "Description": _sub("cachebridge NLB of stack ${AWS::StackName}"),
            },
        },
    }
    for index in range(MAX_ALLOWED_CIDRS):
        rule: dict[str, Any] = {
            "Type": "AWS::EC2::SecurityGroupIngress",
            "Properties": {
                "GroupId": _get_att("LoadBalancerSecurityGroup", "GroupId"),
                "IpProtocol": "tcp",
                "FromPort": _ref("ListenerPort"),
                "ToPort": _ref("ListenerPort"),
                "CidrIp": _allowed_cidr(index),
                "Description": f"cachebridge clients, AllowedCidrs entry {index + 1}",
            },
        }
        if index:
            rule = {"Type": rule["Type"], "Condition": _cidr_condition(index), "Properties": rule["Properties"]}
        resources[client_ingress_name(index)] = rule
    return resources


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
        "TargetGroup": {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            # Retarget: the primary; cluster: every node, behind the configuration listener.
            "Condition": "HasTargetGroup",
            "Properties": {
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
                # Who owns the group and where its write lease lives (see _lease_resources).
                "Tags": _lease_tags(),
                "TargetGroupAttributes": [
                    {"Key": "deregistration_delay.timeout_seconds", "Value": _ref("DeregistrationDelaySeconds")},
                    # After a failover the old primary stays healthy as a replica; resetting
                    # its connections makes clients reconnect to the new primary instead of
                    # getting READONLY on every write.
                    {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
                    {"Key": "load_balancing.cross_zone.enabled", "Value": "true"},
                ],
            },
        },
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


def _controller_resources(settings: Settings, node_slots: int = 0, replicas: bool = True) -> dict[str, Any]:
    node_slots = node_slots or DEFAULT_NODE_SLOTS
    return {
        "ControllerLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            # Logs go with the stack: nothing is left behind to collide or to pay for.
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Metadata": _skip(
                ("CKV_AWS_158", "the controller logs target IPs and sync results, nothing secret; CloudWatch Logs encrypts at rest by default"),
            ),
            "Properties": {"RetentionInDays": LOG_RETENTION_DAYS},
        },
        "ControllerRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": _sub("cachebridge controller of stack ${AWS::StackName}"),
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                # Inline, so the policy exists once the role does: the function, which
                # needs the role, never runs without its permissions.
                "Policies": [
                    {
                        "PolicyName": "cachebridge-controller",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "RouteThisTargetGroupOnly",
                                    "Effect": "Allow",
                                    "Action": [
                                        "elasticloadbalancing:RegisterTargets",
                                        "elasticloadbalancing:DeregisterTargets",
                                    ],
                                    "Resource": _routed_target_groups(node_slots),
                                },
                                *_switch_statements(node_slots),
                                {
                                    "Sid": "ReadOnlyLookups",
                                    "Effect": "Allow",
                                    "Action": [
                                        "elasticloadbalancing:DescribeTargetGroups",
                                        "elasticloadbalancing:DescribeTargetGroupAttributes",
                                        "elasticloadbalancing:DescribeTargetHealth",
                                        "elasticloadbalancing:DescribeListeners",
                                        "elasticloadbalancing:DescribeTags",
                                        "elasticache:DescribeReplicationGroups",
                                        # Cluster mode: node names (ShowCacheNodeInfo).
                                        "elasticache:DescribeCacheClusters",
                                        "ec2:DescribeVpcs",
                                    ],
                                    # Read-only calls on "*": whether each supports resource-level
                                    # permissions varies, and a denied describe would stop the
                                    # controller; writes stay scoped to this target group.
                                    "Resource": "*",
                                },
                                _lease_statement(),
                                _if("FollowsMoreBindings", _owned_target_groups_statement(), _NO_VALUE),
                                {
                                    "Sid": "WriteOwnLogs",
                                    "Effect": "Allow",
                                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                    "Resource": _get_att("ControllerLogGroup", "Arn"),
                                },
                                # In the VPC, Lambda manages the function's network interfaces
                                # with the execution role (the AWSLambdaVPCAccessExecutionRole
                                # permissions); Lambda checks them when the function is created,
                                # so they live in this inline policy.
                                _if("FunctionInVpc", VPC_ACCESS_STATEMENT, _NO_VALUE),
                            ],
                        },
                    }
                ],
            },
        },
        "ControllerFunction": {
            "Type": "AWS::Lambda::Function",
            "Metadata": _skip(
                ("CKV_AWS_116", "level-triggered: the next scheduled run redoes a failed one, and failures raise the Errors alarm"),
                ("CKV_AWS_117", "in the VPC only when LambdaSubnetIds is given (then it needs NAT or endpoints); by default it calls only AWS APIs and DNS"),
                ("CKV_AWS_173", "the environment holds only the binding (group id, target group ARN, port), nothing secret"),
            ),
            # Ordering: the function references its log group (LoggingConfig) and its role,
            # whose policy is inline, so CloudFormation creates both first.
            "Properties": {
                "Description": _sub("cachebridge: keeps the NLB of stack ${AWS::StackName} on the primary of ${ReplicationGroupId}"),
                "Runtime": RUNTIME,
                "Handler": HANDLER,
                "Code": {"S3Bucket": _ref("CodeBucket"), "S3Key": _ref("CodeKey")},
                "Role": _get_att("ControllerRole", "Arn"),
                "Timeout": FUNCTION_TIMEOUT_S,
                "MemorySize": FUNCTION_MEMORY_MB,
                # Off by default: a reservation can fail stack creation (see the module
                # docstring); concurrent syncs are safe without it.
                "ReservedConcurrentExecutions": _if("HasReservedConcurrency", _ref("ReservedConcurrency"), _NO_VALUE),
                "VpcConfig": _if(
                    "FunctionInVpc",
                    {"SubnetIds": _ref("LambdaSubnetIds"), "SecurityGroupIds": [_controller_security_group()]},
                    _NO_VALUE,
                ),
                "LoggingConfig": {"LogGroup": _ref("ControllerLogGroup"), "LogFormat": "Text"},
                "Environment": {
                    "Variables": {
                        "CACHEBRIDGE_BINDINGS": _bindings_value(settings, node_slots, replicas),
                        **_lease_environment(),
                        **_more_bindings_environment(),
                    }
                },
            },
        },
    }


# -- the write lease: one controller at a time writes the target group (cachebridge.lease) --

def _lease_resources() -> dict[str, Any]:
    """The lock table: one small item per target group, written with conditional updates."""
    return {
        "LockTable": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Metadata": _skip(
                ("CKV_AWS_28", "holds a short-lived write lease per target group, nothing to restore"),
                ("CKV_AWS_119", "holds a lease holder's name and target addresses, nothing secret; encrypted at rest with an AWS owned key"),
            ),
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "lease_key", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "lease_key", "KeyType": "HASH"}],
            },
        },
    }


def _lease_tags() -> list[dict[str, Any]]:
    # nlb.OWNER_TAG and nlb.LOCK_TABLE_TAG: a CLI sync refuses a group another stack owns.
    return [
        {"Key": "cachebridge:owner", "Value": _ref("AWS::StackName")},
        {"Key": "cachebridge:lock-table", "Value": _ref("LockTable")},
    ]


def _lease_statement() -> dict[str, Any]:
    # lease.py takes and gives back leases with UpdateItem, or many at once with
    # TransactWriteItems of Update actions, whose records it reads with BatchGetItem.
    # "Permissions for Put, Update, Delete, and Get actions are governed by the permissions
    # used for the underlying PutItem, UpdateItem, DeleteItem, and GetItem operations"
    # (DynamoDB Developer Guide, "Using IAM with DynamoDB transactions"): no action of its
    # own for the transaction. BatchGetItem is an action of its own, dynamodb:BatchGetItem
    # ("IAM policy to grant read-only permissions on items in a DynamoDB table").
    return {
        "Sid": "WriteLeaseOnly",
        "Effect": "Allow",
        "Action": ["dynamodb:UpdateItem", "dynamodb:BatchGetItem"],
        "Resource": _get_att("LockTable", "Arn"),
    }


def _lease_environment() -> dict[str, Any]:
    # The controller's name is the stack's: the owner the target group's tag names.
    return {"CACHEBRIDGE_CONTROLLER_ID": _ref("AWS::StackName")}


# What AWSLambdaVPCAccessExecutionRole grants, as the Lambda Developer Guide lists it for a
# function connected to a VPC. These actions take no resource-level scope (the interfaces do
# not exist yet), so "*" as in the managed policy.
VPC_ACCESS_STATEMENT: dict[str, Any] = {
    "Sid": "ManageFunctionNetworkInterfaces",
    "Effect": "Allow",
    "Action": [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ],
    "Resource": "*",
}


def _controller_security_group() -> dict[str, Any]:
    return _if("CreateControllerSecurityGroup", _get_att("ControllerSecurityGroup", "GroupId"), _ref("LambdaSecurityGroupId"))


def _controller_network_resources() -> dict[str, Any]:
    """The function's security group and the interface endpoints, when it runs in the VPC.

    The function only calls AWS APIs over HTTPS and asks the VPC resolver for node names
    (security groups do not filter traffic to the Amazon DNS server), so HTTPS out is all
    its group allows."""
    resources: dict[str, Any] = {
        "ControllerSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Condition": "CreateControllerSecurityGroup",
            "Properties": {
                "GroupDescription": _sub("cachebridge controller of stack ${AWS::StackName}: HTTPS to AWS APIs only"),
                "VpcId": _ref("VpcId"),
                "SecurityGroupEgress": [
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 443,
                        "ToPort": 443,
                        # AWS API addresses are many and change; the port is the limit.
                        "CidrIp": "0.0.0.0/0",
                        "Description": "AWS APIs, through a NAT or the VPC endpoints",
                    }
                ],
            },
        },
        "VpcEndpointSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Condition": "CreateEndpoints",
            "Properties": {
                "GroupDescription": _sub("cachebridge VPC endpoints of stack ${AWS::StackName}: HTTPS from the controller"),
                "VpcId": _ref("VpcId"),
                "SecurityGroupIngress": [
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 443,
                        "ToPort": 443,
                        "SourceSecurityGroupId": _controller_security_group(),
                        "Description": "the cachebridge controller",
                    }
                ],
                # An endpoint only answers (security groups are stateful): a rule to the
                # loopback address replaces the default allow-all egress with nothing usable.
                "SecurityGroupEgress": [
                    {"IpProtocol": "-1", "CidrIp": "127.0.0.1/32", "Description": "no egress"}
                ],
            },
        },
    }
    for service in VPC_ENDPOINT_SERVICES:
        resources[_endpoint_name(service)] = {
            "Type": "AWS::EC2::VPCEndpoint",
            "Condition": "CreateEndpoints",
            "Properties": {
                "VpcEndpointType": "Interface",
                "ServiceName": _sub(f"com.amazonaws.${{AWS::Region}}.{service}"),
                "VpcId": _ref("VpcId"),
                "SubnetIds": _ref("LambdaSubnetIds"),
                "SecurityGroupIds": [_get_att("VpcEndpointSecurityGroup", "GroupId")],
                # The SDK's regional endpoint names then resolve to the endpoint's addresses.
                "PrivateDnsEnabled": True,
            },
        }
    return resources


def _endpoint_name(service: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^a-z0-9]", service)) + "Endpoint"


# -- bindings besides the stack's own (ExtraBindings, ConfigFile) ---------------------------

def _more_bindings_environment() -> dict[str, Any]:
    return {
        "CACHEBRIDGE_EXTRA_BINDINGS": _if("HasExtraBindings", _ref("ExtraBindings"), _NO_VALUE),
        "CACHEBRIDGE_CONFIG_FILE": _if("HasConfigFile", _ref("ConfigFile"), _NO_VALUE),
    }


def _owned_target_groups_statement() -> dict[str, Any]:
    # RegisterTargets and DeregisterTargets take the aws:ResourceTag/${TagKey} condition key
    # on the targetgroup resource (Service Authorization Reference, Elastic Load Balancing
    # V2): writes reach only the groups tagged as this stack's, as a CLI sync already
    # refuses to write another stack's group (nlb.OWNER_TAG).
    return {
        "Sid": "RouteTargetGroupsOwnedByThisStack",
        "Effect": "Allow",
        "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
        "Resource": _sub("arn:${AWS::Partition}:elasticloadbalancing:${AWS::Region}:${AWS::AccountId}:targetgroup/*/*"),
        "Condition": {"StringEquals": {"aws:ResourceTag/cachebridge:owner": _ref("AWS::StackName")}},
    }


def _schedule_rule_name() -> dict[str, Any]:
    return _if("HasScheduleRuleName", _ref("ScheduleRuleName"), _sub("${AWS::StackName}" + SCHEDULE_RULE_SUFFIX))


def _trigger_resources() -> dict[str, Any]:
    topic_arn = _if("CreateTopic", _ref("NotificationTopic"), _ref("NotificationTopicArn"))
    return {
        # The rule's ARN is built from its name, so the permission can exist before the
        # rule starts invoking the function.
        "SchedulePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": _get_att("ControllerFunction", "Arn"),
                "Principal": "events.amazonaws.com",
                "SourceArn": _sub(
                    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${RuleName}",
                    {"RuleName": _schedule_rule_name()},
                ),
            },
        },
        "Schedule": {
            "Type": "AWS::Events::Rule",
            "DependsOn": ["SchedulePermission"],
            "Properties": {
                "Name": _schedule_rule_name(),
                "Description": _sub("cachebridge safety-net sync of stack ${AWS::StackName}"),
                "ScheduleExpression": _ref("ScheduleExpression"),
                "State": "ENABLED",
                "Targets": [{"Arn": _get_att("ControllerFunction", "Arn"), "Id": "controller"}],
            },
        },
        "NotificationTopic": {
            "Type": "AWS::SNS::Topic",
            "Condition": "CreateTopic",
            "Metadata": _skip(
                ("CKV_AWS_26", "ElastiCache cannot publish to an encrypted topic (User Guide: the topic cannot be encrypted)"),
            ),
            "Properties": {"DisplayName": _sub("cachebridge ${ReplicationGroupId}")},
        },
        # ElastiCache publishes only to topics whose policy conditions on AWS:SourceOwner:
        # "the topic's access policy must use the aws:SourceOwner condition key, not
        # aws:SourceAccount" or ElastiCache "automatically sets the topic status to
        # inactive" (ElastiCache User Guide, "Managing ElastiCache Amazon SNS
        # notifications"). The statement is the one that page shows, word for word.
        "NotificationTopicPolicy": {
            "Type": "AWS::SNS::TopicPolicy",
            "Condition": "CreateTopic",
            "Properties": {
                "Topics": [_ref("NotificationTopic")],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        elasticache_publish_statement(_ref("NotificationTopic"), _ref("AWS::AccountId")),
                        {
                            "Sid": "AccountManagesTopic",
                            "Effect": "Allow",
                            "Principal": {"AWS": _sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                            "Action": [
                                "sns:GetTopicAttributes",
                                "sns:SetTopicAttributes",
                                "sns:Subscribe",
                                "sns:ListSubscriptionsByTopic",
                                "sns:Publish",
                                "sns:DeleteTopic",
                            ],
                            "Resource": _ref("NotificationTopic"),
                        },
                    ],
                },
            },
        },
        "TopicPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": _get_att("ControllerFunction", "Arn"),
                "Principal": "sns.amazonaws.com",
                "SourceArn": topic_arn,
            },
        },
        "TopicSubscription": {
            "Type": "AWS::SNS::Subscription",
            "DependsOn": ["TopicPermission"],
            "Properties": {
                "Protocol": "lambda",
                "Endpoint": _get_att("ControllerFunction", "Arn"),
                "TopicArn": topic_arn,
            },
        },
    }


def elasticache_publish_statement(topic_arn: Any, account_id: Any) -> dict[str, Any]:
    """ElastiCache's documented statement letting it publish to a topic (ElastiCache User
    Guide, "Managing ElastiCache Amazon SNS notifications"): any principal, SNS:Publish,
    on condition that the source owner is this account."""
    return {
        "Sid": "AllowElastiCachePublish",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": "SNS:Publish",
        "Resource": topic_arn,
        "Condition": {"StringEquals": {"AWS:SourceOwner": account_id}},
    }


def _alarm_resources() -> dict[str, Any]:
    return {
        "ControllerErrorsAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": _sub("cachebridge ${AWS::StackName}: the controller failed (a binding in error, or a crash)"),
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": _ref("ControllerFunction")}],
                "Statistic": "Sum",
                "Period": 60,
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            },
        },
        "NoHealthyTargetAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Condition": "HasTargetGroup",
            "Properties": {
                "AlarmDescription": _sub("cachebridge ${AWS::StackName}: no healthy target behind the NLB"),
                "Namespace": "AWS/NetworkELB",
                "MetricName": "HealthyHostCount",
                "Dimensions": [
                    {"Name": "TargetGroup", "Value": _get_att("TargetGroup", "TargetGroupFullName")},
                    {"Name": "LoadBalancer", "Value": _get_att("LoadBalancer", "LoadBalancerFullName")},
                ],
                "Statistic": "Minimum",
                "Period": 60,
                "EvaluationPeriods": 2,
                "DatapointsToAlarm": 2,
                "Threshold": 1,
                "ComparisonOperator": "LessThanThreshold",
                "TreatMissingData": "breaching",
            },
        },
        "DriftAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": _sub(
                    "cachebridge ${AWS::StackName}: every sync in 5 minutes found the target group differing from the primary"
                ),
                "Namespace": DRIFT_NAMESPACE,
                "MetricName": "Drift",
                "Dimensions": [
                    {"Name": "FunctionName", "Value": _ref("ControllerFunction")},
                    # Cluster layout: the node slots binding (the configuration group's
                    # membership follows the same nodes).
                    {"Name": "Binding", "Value": _if("IsCluster", _sub("${ReplicationGroupId}-nodes"), _sub(binding_name_sub()))},
                ],
                "Statistic": "Minimum",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            },
        },
    }


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


# -- the switch layout ---------------------------------------------------------------------
#
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
_PLACEHOLDER_READER_TG = "cb-placeholder-reader"
_PLACEHOLDER_LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/net/cbplaceholderlb/0123456789abcdef/0123456789abcdef"
_PORT_PATTERN = r"^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"


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


def _ip_target_group(deregistration_delay: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
        **(extra or {}),
        "Properties": {
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
            "TargetGroupAttributes": [
                {"Key": "deregistration_delay.timeout_seconds", "Value": deregistration_delay},
                {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
                {"Key": "load_balancing.cross_zone.enabled", "Value": "true"},
            ],
        },
    }


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


def retarget_bindings_sub(settings: Settings | None = None, replicas: bool = True) -> str:
    """The Fn::Sub string of ``CACHEBRIDGE_BINDINGS`` in the retarget layout: the primary
    into ``TargetGroup`` and (``replicas``) the replicas into ``ReaderTargetGroup``."""
    primary = Config.single(
        source=f"elasticache://{_PLACEHOLDER_RG}?role=primary",
        target_group=_PLACEHOLDER_TG,
        port=_PLACEHOLDER_PORT,
        name=f"{_PLACEHOLDER_RG}-primary",
    ).bindings[0]
    return _substitute_placeholders(Config(bindings=(primary, *_reader_binding(replicas)), settings=settings or Settings()), 0)


def switch_bindings_sub(settings: Settings | None = None, node_slots: int = DEFAULT_NODE_SLOTS, replicas: bool = True) -> str:
    """The Fn::Sub string of ``CACHEBRIDGE_BINDINGS`` in the switch layout: the primary
    through ``Listener`` and the node target groups (``${NodeTargetGroupNName}``, the
    names, to keep the variable well under Lambda's 4 KB), the replicas into
    ``ReaderTargetGroup``."""
    primary = Binding.from_mapping({
        "name": f"{_PLACEHOLDER_RG}-primary",
        "source": f"elasticache://{_PLACEHOLDER_RG}?role=primary",
        "layout": "switch",
        "listener": _PLACEHOLDER_LISTENER,
        "node_target_groups": [f"cb-placeholder-n{i + 1}" for i in range(node_slots)],
        "port": _PLACEHOLDER_PORT,
    })
    return _substitute_placeholders(Config(bindings=(primary, *_reader_binding(replicas)), settings=settings or Settings()), node_slots)


def _reader_binding(replicas: bool) -> tuple[Binding, ...]:
    # A group without replicas would make a replicas binding fail on every run (an empty
    # source is an error): it gets the reader listener, and the binding once it has some.
    if not replicas:
        return ()
    return (Binding.from_mapping({
        "name": f"{_PLACEHOLDER_RG}-replicas",
        "source": f"elasticache://{_PLACEHOLDER_RG}?role=replicas",
        "target_group": _PLACEHOLDER_READER_TG,
        "port": _PLACEHOLDER_PORT,
    }),)


def _substitute_placeholders(config: Config, node_slots: int) -> str:
    text = config.bindings_json()
    count = len(config.bindings)
    replacements = [
        (f'"port":{_PLACEHOLDER_PORT}', '"port":${CachePort}', count),
        (f'"{_PLACEHOLDER_READER_TG}"', '"${ReaderTargetGroup}"', count - 1),
        (_PLACEHOLDER_RG, "${ReplicationGroupId}", 2 * count),
    ]
    if node_slots:
        replacements.append((f'"{_PLACEHOLDER_LISTENER}"', '"${Listener}"', 1))
        replacements += [(f'"cb-placeholder-n{i + 1}"', f'"${{{node_target_group_name(i)}Name}}"', 1) for i in range(node_slots)]
    else:
        replacements.append((f'"{_PLACEHOLDER_TG}"', '"${TargetGroup}"', 1))
    for placeholder, reference, expected in replacements:
        found = text.count(placeholder)
        if found != expected:
            raise RuntimeError(f"bindings_json() holds {placeholder!r} {found} times, expected {expected}: {text}")
        text = text.replace(placeholder, reference)
    if "$" in re.sub(r"\$\{[A-Za-z0-9]+\}", "", text):
        raise RuntimeError(f"bindings_json() holds a '$' that Fn::Sub would misread: {text}")
    return text


def _bindings_value(settings: Settings, node_slots: int, replicas: bool) -> dict[str, Any]:
    names = {f"{node_target_group_name(i)}Name": _get_att(node_target_group_name(i), "TargetGroupName") for i in range(node_slots)}
    return _if(
        "IsSwitch",
        _sub(switch_bindings_sub(settings, node_slots, replicas), names),
        _if("IsCluster", _sub(cluster_bindings_sub(settings, node_slots), names), _sub(retarget_bindings_sub(settings, replicas))),
    )


def cluster_bindings_sub(settings: Settings | None = None, node_slots: int = DEFAULT_NODE_SLOTS) -> str:
    """The Fn::Sub string of ``CACHEBRIDGE_BINDINGS`` in the cluster layout: every node into
    its node target group (``${NodeTargetGroupNName}``), and every node into ``TargetGroup``
    behind the configuration listener."""
    nodes = Binding.from_mapping({
        "name": f"{_PLACEHOLDER_RG}-nodes",
        "source": f"elasticache://{_PLACEHOLDER_RG}?role=cluster",
        "layout": "cluster",
        "node_target_groups": [f"cb-placeholder-n{i + 1}" for i in range(node_slots)],
        "port": _PLACEHOLDER_PORT,
    })
    everyone = Binding.from_mapping({
        "name": f"{_PLACEHOLDER_RG}-config",
        "source": f"elasticache://{_PLACEHOLDER_RG}?role=cluster",
        "target_group": _PLACEHOLDER_TG,
        "port": _PLACEHOLDER_PORT,
    })
    text = Config(bindings=(nodes, everyone), settings=settings or Settings()).bindings_json()
    replacements = [
        (f'"port":{_PLACEHOLDER_PORT}', '"port":${CachePort}', 2),
        (f'"{_PLACEHOLDER_TG}"', '"${TargetGroup}"', 1),
        (_PLACEHOLDER_RG, "${ReplicationGroupId}", 4),
        *((f'"cb-placeholder-n{i + 1}"', f'"${{{node_target_group_name(i)}Name}}"', 1) for i in range(node_slots)),
    ]
    for placeholder, reference, expected in replacements:
        found = text.count(placeholder)
        if found != expected:
            raise RuntimeError(f"bindings_json() holds {placeholder!r} {found} times, expected {expected}: {text}")
        text = text.replace(placeholder, reference)
    if "$" in re.sub(r"\$\{[A-Za-z0-9]+\}", "", text):
        raise RuntimeError(f"bindings_json() holds a '$' that Fn::Sub would misread: {text}")
    return text


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


# -- supported parameter combinations ------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """One supported combination of the parameters that shape the stack."""

    listener_protocol: str
    target_protocol: str
    scheme: str
    topic_given: bool
    # Where the function runs: "outside-vpc", "vpc" (an existing NAT or endpoints) or
    # "vpc-endpoints" (the stack creates the endpoints).
    lambda_network: str = "outside-vpc"

    @property
    def name(self) -> str:
        topic = "topic-given" if self.topic_given else "topic-created"
        network = "" if self.lambda_network == "outside-vpc" else f"-lambda-{self.lambda_network}"
        return f"{self.listener_protocol.lower()}-to-{self.target_protocol.lower()}-{self.scheme}-{topic}{network}"

    @property
    def client_speaks_tls(self) -> bool:
        return "TLS" in (self.listener_protocol, self.target_protocol)

    def parameters(self, **overrides: str) -> dict[str, str]:
        """Sample parameter values for this variant, as CloudFormation takes them
        (strings; lists comma-separated)."""
        values = {
            "VpcId": "vpc-0a1b2c3d4e5f60718",
            "SubnetIds": "subnet-0a1b2c3d4e5f60711,subnet-0a1b2c3d4e5f60722",
            "Scheme": self.scheme,
            "ReplicationGroupId": "orders",
            "CacheSecurityGroupId": "sg-0a1b2c3d4e5f60733",
            "CachePort": str(DEFAULT_PORT),
            "AllowedCidrs": "203.0.113.0/24,198.51.100.7/32",
            "AllowAnySource": "false",
            "ListenerPort": str(DEFAULT_PORT),
            "ListenerProtocol": self.listener_protocol,
            "TargetProtocol": self.target_protocol,
            "CodeBucket": "cachebridge-artifacts-123456789012-us-east-1",
            "CodeKey": "cachebridge/lambda-0123456789abcdef.zip",
        }
        if self.listener_protocol == "TLS":
            values["CertificateArn"] = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        if self.topic_given:
            values["NotificationTopicArn"] = "arn:aws:sns:us-east-1:123456789012:elasticache-orders"
        if self.lambda_network != "outside-vpc":
            values["LambdaSubnetIds"] = "subnet-0a1b2c3d4e5f60744,subnet-0a1b2c3d4e5f60755"
        if self.lambda_network == "vpc-endpoints":
            values["CreateVpcEndpoints"] = "true"
        values.update(overrides)
        return values


def variants() -> tuple[Variant, ...]:
    """Every combination the template supports: TCP/TLS listener x TCP/TLS cache x
    internet-facing/internal x notification topic given/created, with the function outside
    the VPC; plus the function in the VPC (with and without the stack's endpoints) for a
    TCP and a TLS listener, the network being independent of the rest."""
    outside = tuple(
        Variant(listener, target, scheme, topic_given)
        for listener, target, scheme, topic_given in itertools.product(
            ("TCP", "TLS"), ("TCP", "TLS"), ("internet-facing", "internal"), (True, False)
        )
    )
    in_vpc = tuple(
        Variant(listener, target, "internal", False, network)
        for (listener, target), network in itertools.product((("TCP", "TCP"), ("TLS", "TLS")), ("vpc", "vpc-endpoints"))
    )
    return outside + in_vpc


# -- a tiny evaluator for Rules and Conditions ---------------------------------------------

class TemplateEvaluationError(ValueError):
    """An intrinsic function could not be evaluated (CloudFormation would refuse too)."""


_LIST_TYPES = ("CommaDelimitedList", "List<")


def _is_list_type(spec: Mapping[str, Any]) -> bool:
    return str(spec.get("Type", "")).startswith(_LIST_TYPES)


def _resolved_parameters(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        raw = values.get(name, spec.get("Default"))
        if raw is None:
            continue
        raw = str(raw)
        resolved[name] = raw.split(",") if _is_list_type(spec) else raw
    return resolved


def evaluate(
    expression: Any,
    template: Mapping[str, Any],
    parameters: Mapping[str, Any],
    pseudo: Mapping[str, str] | None = None,
) -> Any:
    """Evaluate a Rules or Conditions expression the way CloudFormation does, for the
    functions this template uses. ``parameters`` are resolved values (lists for list
    types) and may also give resource Refs; ``pseudo`` gives AWS:: pseudo parameters."""

    def ev(node: Any) -> Any:
        if isinstance(node, list):
            return [ev(item) for item in node]
        if not isinstance(node, dict):
            return node if isinstance(node, str) else (str(node) if not isinstance(node, bool) else node)
        if len(node) != 1:
            raise TemplateEvaluationError(f"not an intrinsic function: {node!r}")
        (fn, arg), = node.items()
        if fn == "Ref":
            if arg in parameters:
                return parameters[arg]
            if pseudo and arg in pseudo:
                return pseudo[arg]
            raise TemplateEvaluationError(f"Ref {arg}: no value")
        if fn == "Condition":
            return ev(template["Conditions"][arg])
        if fn == "Fn::Equals":
            left, right = ev(arg[0]), ev(arg[1])
            return left == right
        if fn == "Fn::Not":
            return not _boolean(ev(arg[0]))
        if fn == "Fn::And":
            return all(_boolean(ev(item)) for item in arg)
        if fn == "Fn::Or":
            return any(_boolean(ev(item)) for item in arg)
        if fn == "Fn::Contains":
            return ev(arg[1]) in _as_list(ev(arg[0]))
        if fn == "Fn::EachMemberEquals":
            value = ev(arg[1])
            return all(member == value for member in _as_list(ev(arg[0])))
        if fn == "Fn::EachMemberIn":
            allowed = _as_list(ev(arg[1]))
            return all(member in allowed for member in _as_list(ev(arg[0])))
        if fn == "Fn::Join":
            return str(arg[0]).join(_as_list(ev(arg[1])))
        if fn == "Fn::Split":
            return str(ev(arg[1])).split(str(arg[0]))
        if fn == "Fn::Select":
            index, items = int(ev(arg[0])), _as_list(ev(arg[1]))
            if not 0 <= index < len(items):
                raise TemplateEvaluationError(f"Fn::Select cannot select nonexistent value at index {index}")
            return items[index]
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], {k: ev(v) for k, v in arg[1].items()})

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name.startswith("!"):
                    return "${" + name[1:] + "}"
                value = variables[name] if name in variables else ev({"Ref": name})
                if not isinstance(value, str):
                    raise TemplateEvaluationError(f"Fn::Sub ${{{name}}} is not a string")
                return value

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
        if fn == "Fn::If":
            condition, then, otherwise = arg
            return ev(then) if ev({"Condition": condition}) else ev(otherwise)
        raise TemplateEvaluationError(f"{fn} is not supported here")

    return ev(expression)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TemplateEvaluationError(f"{value!r} is not a boolean")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    raise TemplateEvaluationError(f"{value!r} is not a list")


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def validate_parameters(
    values: Mapping[str, str],
    stack_name: str | None = None,
    template: Mapping[str, Any] | None = None,
) -> list[str]:
    """What CloudFormation would refuse about these parameter values, before anything is
    created: unknown or missing parameters, AllowedValues / AllowedPattern / MinValue /
    MaxValue, every Rule assertion, and the AllowedCidrs limit. Values are strings as
    CloudFormation takes them (lists comma-separated). Returns one message per problem;
    ``stack_name`` also checks the schedule rule name derived from it."""
    template = template if template is not None else build()
    specs = template["Parameters"]
    problems = [f"{name}: unknown parameter" for name in values if name not in specs]
    for name, spec in specs.items():
        raw = values.get(name, spec.get("Default"))
        if raw is None:
            problems.append(f"{name}: required")
            continue
        raw = str(raw)
        members = raw.split(",") if _is_list_type(spec) else [raw]
        for member in members:
            if "AllowedValues" in spec and member not in [str(v) for v in spec["AllowedValues"]]:
                problems.append(f"{name}: {member!r} is not one of {', '.join(map(str, spec['AllowedValues']))}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], member):
                problems.append(f"{name}: {member!r} is not {spec.get('ConstraintDescription', spec['AllowedPattern'])}")
            if spec.get("Type") == "Number":
                number = _number(member)
                if number is None:
                    problems.append(f"{name}: {member!r} is not a number")
                elif not spec.get("MinValue", number) <= number <= spec.get("MaxValue", number):
                    problems.append(f"{name}: {member} is not within {spec.get('MinValue')}..{spec.get('MaxValue')}")
            elif spec.get("Type", "").startswith(("AWS::", "List<AWS::")) and not member:
                problems.append(f"{name}: empty")
    if problems:
        return problems
    parameters = _resolved_parameters(template, values)
    pseudo = {"AWS::StackName": stack_name or "cachebridge", "AWS::Region": "us-east-1", "AWS::Partition": "aws"}
    for rule_name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], template, parameters, pseudo):
            continue
        for assertion in rule["Assertions"]:
            if not evaluate(assertion["Assert"], template, parameters, pseudo):
                problems.append(f"{rule_name}: {assertion.get('AssertDescription', 'assertion failed')}")
    if evaluate({"Condition": TOO_MANY_CIDRS}, template, parameters, pseudo):
        problems.append(f"AllowedCidrs: at most {MAX_ALLOWED_CIDRS} ranges")
    elif evaluate({"Condition": allow_list.BROAD_ALLOW_LIST}, template, parameters, pseudo):
        problems.append("AllowedCidrs: the ranges together cover more than a /8; set AllowAnySource=true to allow that on purpose")
    problems += _switch_parameter_problems(parameters, template)
    if stack_name is not None and not values.get("ScheduleRuleName"):
        derived = stack_name + SCHEDULE_RULE_SUFFIX
        if len(derived) > SCHEDULE_RULE_NAME_MAX:
            problems.append(
                f"ScheduleRuleName: the derived name {derived!r} is longer than {SCHEDULE_RULE_NAME_MAX} characters; "
                "give ScheduleRuleName or a shorter stack name"
            )
    return list(dict.fromkeys(problems))


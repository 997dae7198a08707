"""The stack's inputs: Parameters, their console labels and groups, the Rules that check
them together, and the Conditions derived from them."""

from __future__ import annotations

from typing import Any

from ...config import DEFAULT_PORT
from .. import allow_list
from .access import ANY_SOURCE, CIDR_PATTERN, MAX_ALLOWED_CIDRS, TOO_MANY_CIDRS, _allowed_cidr, _cidr_condition
from .cfn import _ref
from .controller import VPC_ENDPOINT_SERVICES
from .layouts import (
    DEFAULT_NODE_SLOTS,
    TCP_IDLE_TIMEOUT_DEFAULT_S,
    TCP_IDLE_TIMEOUT_RANGE,
    _switch_conditions,
    _switch_parameters,
)
from .triggers import SCHEDULE_RULE_NAME_MAX, SCHEDULE_RULE_SUFFIX

__all__ = ["PARAMETER_GROUPS"]


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

"""The controller Lambda: its log group, role and function, its network when it runs in the
VPC (security groups, interface endpoints), and the bindings it follows besides the
stack's own (``ExtraBindings``, ``ConfigFile``)."""

from __future__ import annotations

import re
from typing import Any

from ...config import DEFAULT_EVENT_WAIT_S, Settings
from .bindings import _bindings_value
from .cfn import _NO_VALUE, _get_att, _if, _ref, _skip, _sub
from .layouts import DEFAULT_NODE_SLOTS, _routed_target_groups, _switch_statements
from .lock_table import _lease_environment, _lease_statement

__all__ = [
    "RUNTIME",
    "HANDLER",
    "FUNCTION_TIMEOUT_S",
    "FUNCTION_MEMORY_MB",
    "LOG_RETENTION_DAYS",
    "VPC_ENDPOINT_SERVICES",
    "VPC_ACCESS_STATEMENT",
]


RUNTIME = "python3.13"
HANDLER = "cachebridge.handler.handler"
# An ElastiCache event is followed by up to event_wait_s of re-reading before the sync
# itself; the rest leaves room for a cold start, the API calls and the report.
FUNCTION_TIMEOUT_S = max(60, int(DEFAULT_EVENT_WAIT_S) + 30)
FUNCTION_MEMORY_MB = 256
LOG_RETENTION_DAYS = 30
# The APIs the controller calls (nlb.py, sources.py, lease.py): interface endpoints for these
# let a function in subnets without NAT reach them. Logs need none: Lambda ships the
# function's stdout itself. DynamoDB has interface endpoints too ("AWS PrivateLink for
# DynamoDB", DynamoDB Developer Guide); without its lock table the controller registers but
# never deregisters.
VPC_ENDPOINT_SERVICES = ("elasticloadbalancing", "elasticache", "ec2", "dynamodb")


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

"""Who may connect to the NLB: the ``AllowedCidrs`` entries (one security group rule each,
selected by Conditions), the NLB's and the cache's security group rules, and the wait
conditions that fail the stack when the list is too long or too broad."""

from __future__ import annotations

from typing import Any

from .. import allow_list
from .cfn import _get_att, _ref, _sub

__all__ = ["MAX_ALLOWED_CIDRS", "CIDR_PATTERN", "ANY_SOURCE", "TOO_MANY_CIDRS", "client_ingress_name"]


MAX_ALLOWED_CIDRS = 5
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
# An IPv4 CIDR with a prefix of 1-32, or exactly 0.0.0.0/0 (which a Rule then refuses
# unless AllowAnySource is true); other /0 spellings are refused outright.
CIDR_PATTERN = rf"^(0\.0\.0\.0/0|({_OCTET}\.){{3}}{_OCTET}/(3[0-2]|[12][0-9]|[1-9]))$"
ANY_SOURCE = "0.0.0.0/0"
TOO_MANY_CIDRS = "TooManyAllowedCidrs"  # the condition that creates the failing guard


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

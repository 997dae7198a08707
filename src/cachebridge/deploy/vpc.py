"""Check where the controller function is to run, when it runs in the VPC.

With ``--lambda-subnets`` the function is connected to the VPC and resolves node names
through the VPC resolver. Its subnets must be subnets of the VPC the stack uses, and a
given security group must belong to that VPC, or stack creation fails late with a less
helpful message; ``check_lambda_network`` says so before anything is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ConfigError, DeployError

__all__ = ["check_lambda_network"]


def check_lambda_network(ec2: Any, vpc_id: str, subnet_ids: Sequence[str], security_group_id: str | None) -> None:
    if not subnet_ids:
        return
    try:
        subnets = ec2.describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]
    except ClientError as exc:
        if "NotFound" in str(exc.response.get("Error", {}).get("Code", "")):
            raise ConfigError("--lambda-subnets", exc.response["Error"].get("Message", "no such subnet"), f"existing subnets of {vpc_id}") from None
        raise DeployError(f"DescribeSubnets: {exc}") from None
    outside = sorted(s["SubnetId"] for s in subnets if s.get("VpcId") != vpc_id)
    if outside:
        raise ConfigError("--lambda-subnets", f"{', '.join(outside)} not in {vpc_id}", f"subnets of {vpc_id} (the --vpc)")
    if not security_group_id:
        return
    try:
        groups = ec2.describe_security_groups(GroupIds=[security_group_id])["SecurityGroups"]
    except ClientError as exc:
        if "NotFound" in str(exc.response.get("Error", {}).get("Code", "")):
            raise ConfigError("--lambda-security-group", f"no security group {security_group_id!r}", f"a security group of {vpc_id}") from None
        raise DeployError(f"DescribeSecurityGroups: {exc}") from None
    if groups and groups[0].get("VpcId") != vpc_id:
        raise ConfigError("--lambda-security-group", f"{security_group_id} is in {groups[0].get('VpcId')}, not {vpc_id}", f"a security group of {vpc_id}")

"""AWS_REGION is honoured wherever cachebridge resolves a region (boto3 itself reads only
AWS_DEFAULT_REGION and the profile)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from cachebridge import aws
from cachebridge.cli import cli
from cachebridge.deploy.stack import Clients
from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.drill_targets import resolve_target

REGION = "eu-west-1"


@pytest.fixture
def only_aws_region(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no region from a profile either
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws.clear_caches()
    yield
    aws.clear_caches()


@pytest.mark.parametrize(
    ("given", "aws_region", "default_region", "expected"),
    [
        (None, "eu-west-1", None, "eu-west-1"),
        (None, None, "us-west-2", "us-west-2"),
        (None, "eu-west-1", "us-west-2", "eu-west-1"),  # AWS_REGION wins, as in the AWS CLI v2 and the SDKs
        ("ap-south-1", "eu-west-1", "us-west-2", "ap-south-1"),
        (None, " ", None, None),
        (None, None, None, None),
    ],
)
def test_resolve_region(monkeypatch, given, aws_region, default_region, expected):
    for name, value in (("AWS_REGION", aws_region), ("AWS_DEFAULT_REGION", default_region)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert aws.resolve_region(given) == expected


def test_boto3_alone_ignores_aws_region(only_aws_region):
    # Why resolve_region exists: without it elbv2 has no region at all.
    from botocore.exceptions import NoRegionError

    with pytest.raises(NoRegionError):
        boto3.session.Session().client("elbv2")


@pytest.mark.parametrize("service", ["elbv2", "elasticache", "ec2", "s3", "cloudformation"])
def test_clients_take_aws_region(only_aws_region, service):
    assert aws.client(service).meta.region_name == REGION
    assert Clients()(service).meta.region_name == REGION


def test_cli_works_with_only_aws_region(only_aws_region):
    with mock_aws():
        boto3.client("cloudformation", region_name=REGION)  # the region moto answers for
        result = CliRunner().invoke(cli, ["destroy", "--stack-name", "nosuchstack", "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "DOES_NOT_EXIST"


def test_drill_on_a_stack_works_with_only_aws_region(only_aws_region, tmp_path):
    moto_ext.install()
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        elbv2 = boto3.client("elbv2", region_name=REGION)
        arn = elbv2.create_target_group(Name="orders", Protocol="TCP", Port=6379, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        template = {
            "Parameters": {"ReplicationGroupId": {"Type": "String"}},
            "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {
                "ConnectionUrl": {"Value": "redis://nlb.example.com:6379"},
                "LoadBalancerDnsName": {"Value": "nlb.example.com"},
                "TargetGroupArn": {"Value": arn},
            },
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName="orders", TemplateBody=json.dumps(template), Parameters=[{"ParameterKey": "ReplicationGroupId", "ParameterValue": "orders"}]
        )
        target = resolve_target(state_dir=tmp_path, stack_name="orders", kill_primary=False)
    assert target.elbv2.meta.region_name == REGION
    assert (target.host, target.port, target.target_group_arn) == ("nlb.example.com", 6379, arn)

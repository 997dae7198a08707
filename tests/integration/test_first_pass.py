"""A new instance's first pass reads only what every pass needs: the target group's
description and health, and the source. Tags (owner, lock table) and attributes (risky
settings) are read when a binding has something to write, before it writes, so a group
owned by another stack is still refused and a lock table still guards the write; a dry run
(``status``) reads them up front to show the warnings. Moto in-process, a real DNS server on
loopback, an ElastiCache source."""

from __future__ import annotations

from typing import Any

import pytest

from cachebridge.nlb import OWNER_TAG
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.targets import Target

from .conftest import PRIMARY_IP, CallLog, orders_config, registered, sync_pass

pytestmark = pytest.mark.timeout(60)

PORT = 6379
MOVED_IP = "10.0.1.20"
DETAILS = ("DescribeTargetGroupAttributes", "DescribeTags")


def test_a_new_instance_in_sync_reads_the_group_its_health_and_the_replication_group_only(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    elbv2.register_targets(TargetGroupArn=bare_tg_arn, Targets=[{"Id": PRIMARY_IP, "Port": PORT}])
    log = CallLog(elbv2, ec2, elasticache)

    (result,) = sync_pass(orders_config(dns_server), elbv2, ec2, elasticache, cold=True).bindings

    assert result.status == "in_sync"
    assert result.registered_after == (Target(PRIMARY_IP, PORT),)
    assert sorted(log.names()) == ["DescribeReplicationGroups", "DescribeTargetGroups", "DescribeTargetHealth"]

    log.clear()
    (again,) = sync_pass(orders_config(dns_server), elbv2, ec2, elasticache).bindings
    assert again.status == "in_sync"
    assert sorted(log.names()) == ["DescribeReplicationGroups", "DescribeTargetHealth"]


def test_a_pass_that_writes_reads_tags_and_attributes_before_writing(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    log = CallLog(elbv2, ec2, elasticache)

    (result,) = sync_pass(orders_config(dns_server), elbv2, ec2, elasticache, cold=True).bindings

    assert result.status == "changed"
    assert registered(elbv2, bare_tg_arn) == {Target(PRIMARY_IP, PORT)}
    names = log.names()
    first_write = names.index("RegisterTargets")
    assert all(name in names[:first_write] for name in DETAILS)
    # The group's default settings are risky for a failover; a write reports them.
    assert any("connection_termination" in w for w in result.warnings)


@pytest.mark.usefixtures("owned_elsewhere")
def test_a_foreign_owner_is_refused_when_the_first_pass_was_in_sync(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    cfg = orders_config(dns_server, controller_id="orders-mine")
    # In sync: the group's details are cached without its tags.
    (first,) = sync_pass(cfg, elbv2, ec2, elasticache, cold=True).bindings
    assert first.status == "in_sync"

    dns_server.zone.set_a(primary_name, MOVED_IP)  # a node replacement moves the primary
    log = CallLog(elbv2, ec2, elasticache)
    (refused,) = sync_pass(cfg, elbv2, ec2, elasticache).bindings

    assert refused.status == "error"
    assert "orders-external" in (refused.error or "") and OWNER_TAG in (refused.error or "")
    assert "DescribeTags" in log.names()
    assert log.writes() == []
    assert registered(elbv2, bare_tg_arn) == {Target(PRIMARY_IP, PORT)}


@pytest.mark.usefixtures("lock_table_tagged")
def test_a_lock_table_tag_read_before_the_write_puts_the_write_under_the_lease(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, dynamodb: Any, bare_tg_arn: str
) -> None:
    cfg = orders_config(dns_server, controller_id="orders-mine")
    (first,) = sync_pass(cfg, elbv2, ec2, elasticache, dynamodb, cold=True).bindings
    assert first.status == "in_sync"

    dns_server.zone.set_a(primary_name, MOVED_IP)
    log = CallLog(elbv2, dynamodb)
    (result,) = sync_pass(cfg, elbv2, ec2, elasticache, dynamodb).bindings

    assert result.status == "changed"
    assert registered(elbv2, bare_tg_arn) == {Target(MOVED_IP, PORT)}
    names = log.names()
    assert names.index("DescribeTags") < names.index("UpdateItem") < names.index("RegisterTargets")
    item = dynamodb.get_item(TableName="orders-locks", Key={"lease_key": {"S": bare_tg_arn}})["Item"]
    assert item["last_controller"] == {"S": "orders-mine"}
    assert item["last_desired"] == {"L": [{"S": str(Target(MOVED_IP, PORT))}]}


@pytest.mark.usefixtures("owned_elsewhere")
def test_a_dry_run_reads_the_settings_and_shows_their_warnings_when_in_sync(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    log = CallLog(elbv2)

    (planned,) = sync_pass(orders_config(dns_server), elbv2, ec2, elasticache, dry_run=True, cold=True).bindings

    assert planned.status == "dry_run"
    assert all(name in log.names() for name in DETAILS)
    assert any("connection_termination" in w for w in planned.warnings)
    assert any("orders-external" in w for w in planned.warnings)
    assert log.writes() == []


# -- the VPC's CIDRs from the configuration --------------------------------------------------


class Ec2Factory:
    """Builds the EC2 client on first use, as ``aws.adapters`` does, and says whether it did."""

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2
        self.built = 0

    def __call__(self) -> Any:
        self.built += 1
        return self.ec2


def vpc_of(elbv2: Any, arn: str) -> str:
    return str(elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]["VpcId"])


def test_a_write_inside_the_configured_cidrs_builds_no_ec2_client(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    factory = Ec2Factory(ec2)
    cfg = orders_config(dns_server, vpc_cidrs={vpc_of(elbv2, bare_tg_arn): ["10.0.0.0/16"]})
    log = CallLog(ec2)

    (result,) = sync_pass(cfg, elbv2, factory, elasticache, cold=True).bindings

    assert result.status == "changed"
    assert registered(elbv2, bare_tg_arn) == {Target(PRIMARY_IP, PORT)}
    assert factory.built == 0 and log.names() == []


def test_an_address_outside_the_configured_cidrs_reads_the_vpc_again(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    vpc = vpc_of(elbv2, bare_tg_arn)
    # Deployed when the VPC had 10.0.0.0/16 only; a block associated since holds the node.
    ec2.associate_vpc_cidr_block(VpcId=vpc, CidrBlock="10.1.0.0/16")
    dns_server.zone.set_a(primary_name, "10.1.0.5")
    factory = Ec2Factory(ec2)
    log = CallLog(ec2)

    (result,) = sync_pass(orders_config(dns_server, vpc_cidrs={vpc: ["10.0.0.0/16"]}), elbv2, factory, elasticache, cold=True).bindings

    assert result.status == "changed", result.error
    assert registered(elbv2, bare_tg_arn) == {Target("10.1.0.5", PORT)}
    assert factory.built == 1 and log.names() == ["DescribeVpcs"]


def test_an_address_outside_the_vpc_read_again_is_refused(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    vpc = vpc_of(elbv2, bare_tg_arn)
    dns_server.zone.set_a(primary_name, "192.168.7.7")  # private, but in no block of the VPC
    factory = Ec2Factory(ec2)
    log = CallLog(ec2, elbv2)

    (result,) = sync_pass(orders_config(dns_server, vpc_cidrs={vpc: ["10.0.0.0/16"]}), elbv2, factory, elasticache, cold=True).bindings

    assert result.status == "error"
    assert "answer refused" in (result.error or "") and "192.168.7.7" in (result.error or "")
    assert "DescribeVpcs" in log.names()
    assert log.writes() == []
    assert registered(elbv2, bare_tg_arn) == set()


def test_cidrs_configured_for_another_vpc_are_not_used(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    factory = Ec2Factory(ec2)
    log = CallLog(ec2)

    (result,) = sync_pass(orders_config(dns_server, vpc_cidrs={"vpc-0a1b2c3d4e5f60718": ["10.0.0.0/16"]}), elbv2, factory, elasticache, cold=True).bindings

    assert result.status == "changed"
    assert log.names() == ["DescribeVpcs"]

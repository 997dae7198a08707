"""A new instance's first pass reads only what every pass needs: the target group's
description and health, and the source. Tags (owner, lock table) and attributes (risky
settings) are read when a binding has something to write, before it writes, so a group
owned by another stack is still refused and a lock table still guards the write; a dry run
(``status``) reads them up front to show the warnings. Moto in-process, a real DNS server on
loopback, an ElastiCache source."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from cachebridge import nlb
from cachebridge.config import Binding, Config, ElastiCacheSourceSpec, Settings
from cachebridge.nlb import LOCK_TABLE_TAG, OWNER_TAG, TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from .conftest import REGION, CallLog

pytestmark = pytest.mark.timeout(60)

PORT = 6379
PRIMARY_IP, REPLICA_IP, MOVED_IP = "10.0.1.10", "10.0.1.11", "10.0.1.20"
DETAILS = ("DescribeTargetGroupAttributes", "DescribeTags")


@pytest.fixture
def elasticache(aws: None) -> Any:
    return boto3.client("elasticache", region_name=REGION)


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def primary_name(elasticache: Any, dns_server: LoopbackDnsServer) -> str:
    """A replication group whose primary's node name resolves to PRIMARY_IP."""
    elasticache.create_replication_group(ReplicationGroupId="orders", ReplicationGroupDescription="orders", ReplicasPerNodeGroup=1)
    members = elasticache.describe_replication_groups(ReplicationGroupId="orders")["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
    primary = next(m["ReadEndpoint"]["Address"] for m in members if m["CurrentRole"] == "primary")
    for m in members:
        name = m["ReadEndpoint"]["Address"]
        dns_server.zone.set_a(name, PRIMARY_IP if name == primary else REPLICA_IP)
    return str(primary)


@pytest.fixture
def tg_arn(elbv2: Any, ec2: Any) -> str:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    arn = elbv2.create_target_group(Name="orders-primary", Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    return str(arn)


def config(dns_server: LoopbackDnsServer, **settings: Any) -> Config:
    binding = Binding("orders-primary", ElastiCacheSourceSpec("orders", "primary"), "orders-primary", PORT)
    return Config((binding,), Settings(nameservers=(dns_server.address,), dns_timeout_s=0.5, poll_interval_s=0.05).merged(settings))


def new_instance(cfg: Config, elbv2: Any, ec2: Any, elasticache: Any, dynamodb: Any = None, **kwargs: Any) -> SyncReport:
    """A pass as a new Lambda instance makes it: nothing cached."""
    nlb.clear_caches()
    return warm(cfg, elbv2, ec2, elasticache, dynamodb, **kwargs)


def warm(cfg: Config, elbv2: Any, ec2: Any, elasticache: Any, dynamodb: Any = None, **kwargs: Any) -> SyncReport:
    sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s), elasticache)
    return sync(cfg, target_groups=TargetGroups(elbv2, ec2, dynamodb=dynamodb), sources=sources, **kwargs)


def registered(elbv2: Any, arn: str) -> set[Target]:
    descriptions = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in descriptions}


def test_a_new_instance_in_sync_reads_the_group_its_health_and_the_replication_group_only(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, tg_arn: str
) -> None:
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": PRIMARY_IP, "Port": PORT}])
    log = CallLog(elbv2, ec2, elasticache)

    (result,) = new_instance(config(dns_server), elbv2, ec2, elasticache).bindings

    assert result.status == "in_sync"
    assert result.registered_after == (Target(PRIMARY_IP, PORT),)
    assert sorted(log.names()) == ["DescribeReplicationGroups", "DescribeTargetGroups", "DescribeTargetHealth"]

    log.clear()
    (again,) = warm(config(dns_server), elbv2, ec2, elasticache).bindings
    assert again.status == "in_sync"
    assert sorted(log.names()) == ["DescribeReplicationGroups", "DescribeTargetHealth"]


def test_a_pass_that_writes_reads_tags_and_attributes_before_writing(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, tg_arn: str
) -> None:
    log = CallLog(elbv2, ec2, elasticache)

    (result,) = new_instance(config(dns_server), elbv2, ec2, elasticache).bindings

    assert result.status == "changed"
    assert registered(elbv2, tg_arn) == {Target(PRIMARY_IP, PORT)}
    names = log.names()
    first_write = names.index("RegisterTargets")
    assert all(name in names[:first_write] for name in DETAILS)
    # The group's default settings are risky for a failover; a write reports them.
    assert any("connection_termination" in w for w in result.warnings)


def test_a_foreign_owner_is_refused_when_the_first_pass_was_in_sync(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, tg_arn: str
) -> None:
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": PRIMARY_IP, "Port": PORT}])
    elbv2.add_tags(ResourceArns=[tg_arn], Tags=[{"Key": OWNER_TAG, "Value": "orders-external"}])
    cfg = config(dns_server, controller_id="orders-mine")
    # In sync: the group's details are cached without its tags.
    (first,) = new_instance(cfg, elbv2, ec2, elasticache).bindings
    assert first.status == "in_sync"

    dns_server.zone.set_a(primary_name, MOVED_IP)  # a node replacement moves the primary
    log = CallLog(elbv2, ec2, elasticache)
    (refused,) = warm(cfg, elbv2, ec2, elasticache).bindings

    assert refused.status == "error"
    assert "orders-external" in (refused.error or "") and OWNER_TAG in (refused.error or "")
    assert "DescribeTags" in log.names()
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == {Target(PRIMARY_IP, PORT)}


def test_a_lock_table_tag_read_before_the_write_puts_the_write_under_the_lease(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, dynamodb: Any, tg_arn: str
) -> None:
    dynamodb.create_table(
        TableName="orders-locks", KeySchema=[{"AttributeName": "lease_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lease_key", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": PRIMARY_IP, "Port": PORT}])
    elbv2.add_tags(ResourceArns=[tg_arn], Tags=[{"Key": LOCK_TABLE_TAG, "Value": "orders-locks"}])
    cfg = config(dns_server, controller_id="orders-mine")
    (first,) = new_instance(cfg, elbv2, ec2, elasticache, dynamodb).bindings
    assert first.status == "in_sync"

    dns_server.zone.set_a(primary_name, MOVED_IP)
    log = CallLog(elbv2, dynamodb)
    (result,) = warm(cfg, elbv2, ec2, elasticache, dynamodb).bindings

    assert result.status == "changed"
    assert registered(elbv2, tg_arn) == {Target(MOVED_IP, PORT)}
    names = log.names()
    assert names.index("DescribeTags") < names.index("UpdateItem") < names.index("RegisterTargets")
    item = dynamodb.get_item(TableName="orders-locks", Key={"lease_key": {"S": tg_arn}})["Item"]
    assert item["last_controller"] == {"S": "orders-mine"}
    assert item["last_desired"] == {"L": [{"S": str(Target(MOVED_IP, PORT))}]}


def test_a_dry_run_reads_the_settings_and_shows_their_warnings_when_in_sync(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, tg_arn: str
) -> None:
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": PRIMARY_IP, "Port": PORT}])
    elbv2.add_tags(ResourceArns=[tg_arn], Tags=[{"Key": OWNER_TAG, "Value": "orders-external"}])
    log = CallLog(elbv2)

    (planned,) = new_instance(config(dns_server), elbv2, ec2, elasticache, dry_run=True).bindings

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
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, tg_arn: str
) -> None:
    factory = Ec2Factory(ec2)
    cfg = config(dns_server, vpc_cidrs={vpc_of(elbv2, tg_arn): ["10.0.0.0/16"]})
    log = CallLog(ec2)

    (result,) = new_instance(cfg, elbv2, factory, elasticache).bindings

    assert result.status == "changed"
    assert registered(elbv2, tg_arn) == {Target(PRIMARY_IP, PORT)}
    assert factory.built == 0 and log.names() == []


def test_an_address_outside_the_configured_cidrs_reads_the_vpc_again(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, tg_arn: str
) -> None:
    vpc = vpc_of(elbv2, tg_arn)
    # Deployed when the VPC had 10.0.0.0/16 only; a block associated since holds the node.
    ec2.associate_vpc_cidr_block(VpcId=vpc, CidrBlock="10.1.0.0/16")
    dns_server.zone.set_a(primary_name, "10.1.0.5")
    factory = Ec2Factory(ec2)
    log = CallLog(ec2)

    (result,) = new_instance(config(dns_server, vpc_cidrs={vpc: ["10.0.0.0/16"]}), elbv2, factory, elasticache).bindings

    assert result.status == "changed", result.error
    assert registered(elbv2, tg_arn) == {Target("10.1.0.5", PORT)}
    assert factory.built == 1 and log.names() == ["DescribeVpcs"]


def test_an_address_outside_the_vpc_read_again_is_refused(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, tg_arn: str
) -> None:
    vpc = vpc_of(elbv2, tg_arn)
    dns_server.zone.set_a(primary_name, "192.168.7.7")  # private, but in no block of the VPC
    factory = Ec2Factory(ec2)
    log = CallLog(ec2, elbv2)

    (result,) = new_instance(config(dns_server, vpc_cidrs={vpc: ["10.0.0.0/16"]}), elbv2, factory, elasticache).bindings

    assert result.status == "error"
    assert "answer refused" in (result.error or "") and "192.168.7.7" in (result.error or "")
    assert "DescribeVpcs" in log.names()
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == set()


def test_cidrs_configured_for_another_vpc_are_not_used(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, tg_arn: str
) -> None:
    factory = Ec2Factory(ec2)
    log = CallLog(ec2)

    (result,) = new_instance(config(dns_server, vpc_cidrs={"vpc-0a1b2c3d4e5f60718": ["10.0.0.0/16"]}), elbv2, factory, elasticache).bindings

    assert result.status == "changed"
    assert log.names() == ["DescribeVpcs"]

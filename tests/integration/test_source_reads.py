"""What one pass round reads from its sources: many replication groups listed in pages
(``Sources.expect``) rather than described one by one, and each DNS name resolved once
however many bindings name it.

moto in-process (with ``moto_ext``) and a real DNS server on loopback; calls are counted
with a botocore event hook on the source's own client, DNS queries at the server.
"""

from __future__ import annotations

import math
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID

from cachebridge import sources as sources_module
from cachebridge.config import Binding, Config, DnsSourceSpec, ElastiCacheSourceSpec, Settings
from cachebridge.errors import SourceError, SourceNotFound
from cachebridge.nlb import TargetGroups
from cachebridge.parallel import Failure, map_ordered
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.sandbox.moto_ext import failover_replication_group
from cachebridge.sources import LIST_MIN_GROUPS, DnsResolver, Reading, Sources
from cachebridge.sync import sync
from cachebridge.targets import Target

from .conftest import REGION, CallLog

pytestmark = pytest.mark.timeout(120)

PORT = 6379
PAGE = 20  # AWS's smallest MaxRecords, so a few dozen groups make several pages
# DNS answers on real time; a loaded machine must not turn a slow loopback answer into a
# failed read (these tests count API calls, not timeouts).
DNS_TIMEOUT_S = 3.0


@pytest.fixture
def admin(aws: None) -> Any:
    return boto3.client("elasticache", region_name=REGION)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sources_module, "LIST_PAGE_SIZE", PAGE)
    return PAGE


def create_groups(admin: Any, zone: Zone, prefix: str, count: int, subnet: int = 0) -> dict[str, dict[str, str]]:
    """``count`` groups of a primary and one replica; each node name in the zone. Returns
    group id -> {role: address}."""
    made: dict[str, dict[str, str]] = {}
    for g in range(count):
        rg_id = f"{prefix}{g:03d}"
        admin.create_replication_group(ReplicationGroupId=rg_id, ReplicationGroupDescription="t", ReplicasPerNodeGroup=1)
        members = admin.describe_replication_groups(ReplicationGroupId=rg_id)["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
        made[rg_id] = {}
        for m, member in enumerate(members):
            address = f"10.{subnet}.{g}.{m + 1}"
            zone.set_a(member["ReadEndpoint"]["Address"], address)
            made[rg_id][member["CurrentRole"]] = address
    return made


def specs_of(groups: dict[str, dict[str, str]]) -> list[ElastiCacheSourceSpec]:
    return [ElastiCacheSourceSpec(rg_id, role) for rg_id in groups for role in ("primary", "replicas")]  # type: ignore[arg-type]


def read_round(sources: Sources, specs: list[ElastiCacheSourceSpec], *, expect: bool) -> list[Reading | Failure]:
    """One round as ``sync`` reads it: 8 at a time, after ``new_pass`` (and ``expect``)."""
    sources.new_pass()
    if expect:
        sources.expect(specs)
    return map_ordered(lambda spec: sources.read(spec, (4,)), specs, 8)


# -- listing in pages ----------------------------------------------------------------------


def test_many_groups_are_listed_in_pages_with_the_answers_per_id_reads_give(
    admin: Any, elasticache: Any, zone: Zone, dns_server: LoopbackDnsServer, small_pages: int
) -> None:
    groups = create_groups(admin, zone, "orders", 45)  # three pages of 20
    specs = specs_of(groups)
    log = CallLog(elasticache)
    listed = Sources(DnsResolver([dns_server.address], timeout=DNS_TIMEOUT_S), elasticache)

    readings = read_round(listed, specs, expect=True)

    calls = log.of("DescribeReplicationGroups")
    assert len(calls) == math.ceil(len(groups) / small_pages) == 3
    assert "ReplicationGroupId" not in calls[0] and calls[0]["MaxRecords"] == small_pages
    assert all(c["MaxRecords"] == small_pages and c["Marker"] for c in calls[1:])  # pages follow the marker
    assert [r.addresses for r in readings] == [  # type: ignore[union-attr]
        (groups[s.replication_group_id]["primary" if s.role == "primary" else "replica"],) for s in specs
    ]
    log.clear()
    per_id = Sources(DnsResolver([dns_server.address], timeout=DNS_TIMEOUT_S), elasticache)
    assert read_round(per_id, specs, expect=False) == readings
    assert len(log.of("DescribeReplicationGroups")) == len(groups)  # one per group


def test_a_few_groups_are_described_by_id(admin: Any, elasticache: Any, zone: Zone, dns_server: LoopbackDnsServer) -> None:
    groups = create_groups(admin, zone, "carts", LIST_MIN_GROUPS - 1)
    log = CallLog(elasticache)
    sources = Sources(DnsResolver([dns_server.address], timeout=DNS_TIMEOUT_S), elasticache)

    readings = read_round(sources, specs_of(groups), expect=True)

    assert not any(isinstance(r, Failure) for r in readings)
    assert sorted(c["ReplicationGroupId"] for c in log.of("DescribeReplicationGroups")) == sorted(groups)


def test_a_missing_group_is_not_found_as_when_described_by_id(
    admin: Any, elasticache: Any, zone: Zone, dns_server: LoopbackDnsServer, small_pages: int
) -> None:
    groups = create_groups(admin, zone, "orders", 6)
    specs = [*specs_of(groups), ElastiCacheSourceSpec("nope", "primary")]
    log = CallLog(elasticache)
    sources = Sources(DnsResolver([dns_server.address], timeout=DNS_TIMEOUT_S), elasticache)

    readings = read_round(sources, specs, expect=True)

    missing = readings[-1]
    assert isinstance(missing, Failure) and isinstance(missing.error, SourceNotFound)
    assert str(missing.error) == "elasticache://nope: no such replication group"
    assert [r for r in readings[:-1] if isinstance(r, Failure)] == []
    # One page listed the six; the missing one was then asked for by name.
    assert [c.get("ReplicationGroupId") for c in log.of("DescribeReplicationGroups")] == [None, "nope"]


def test_the_listing_never_costs_more_than_one_call_over_per_id_reads(
    admin: Any, elasticache: Any, zone: Zone, dns_server: LoopbackDnsServer, small_pages: int
) -> None:
    create_groups(admin, zone, "others", 3 * small_pages, subnet=1)  # the account's other groups come first
    wanted = create_groups(admin, zone, "orders", 5)
    log = CallLog(elasticache)
    sources = Sources(DnsResolver([dns_server.address], timeout=DNS_TIMEOUT_S), elasticache)

    readings = read_round(sources, specs_of(wanted), expect=True)

    assert not any(isinstance(r, Failure) for r in readings)
    calls = log.of("DescribeReplicationGroups")
    # The first page found none of the five: paging stops, and each is described by id.
    assert len(calls) == len(wanted) + 1
    assert sorted(c["ReplicationGroupId"] for c in calls[1:]) == sorted(wanted)


def test_a_new_round_lists_afresh_and_sees_a_change_made_since_the_last(
    admin: Any, elasticache: Any, elbv2: Any, ec2: Any, zone: Zone, dns_server: LoopbackDnsServer
) -> None:
    """A failover seen by the first round, undone before the agreement re-read: the second
    round must read the groups again (not the first round's pages), find each group's
    primary back where the target group already points, and write nothing. (Reading the
    first round's pages again would confirm the failover and move every group.)"""
    groups = create_groups(admin, zone, "orders", LIST_MIN_GROUPS)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    bindings = []
    for rg_id in groups:
        elbv2.create_target_group(Name=f"{rg_id}-p", Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")
        bindings.append(Binding(name=rg_id, source=ElastiCacheSourceSpec(rg_id, "primary"), target_group=f"{rg_id}-p", port=PORT))
    cfg = Config(tuple(bindings), Settings(nameservers=(dns_server.address,), poll_interval_s=0.01, dns_timeout_s=1.0))

    def run(**kwargs: Any) -> Any:
        sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s), elasticache)
        return sync(cfg, target_groups=TargetGroups(elbv2, ec2), sources=sources, **kwargs)

    assert {b.status for b in run().bindings} == {"changed"}  # the primaries registered
    roles = {rg_id: {m["CurrentRole"]: m["CacheClusterId"] for m in admin.describe_replication_groups(ReplicationGroupId=rg_id)["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]} for rg_id in groups}
    for rg_id in groups:
        failover_replication_group(DEFAULT_ACCOUNT_ID, REGION, rg_id, roles[rg_id]["replica"])
    undone: list[str] = []

    def sleep(seconds: float) -> None:  # between the rounds of the pass
        for rg_id in groups:
            failover_replication_group(DEFAULT_ACCOUNT_ID, REGION, rg_id, roles[rg_id]["primary"])
        undone.append("yes")

    log = CallLog(elasticache, elbv2)
    report = run(sleep=sleep)

    assert undone == ["yes"]
    assert [(b.status, b.polls) for b in report.bindings] == [("in_sync", 2)] * len(groups)
    assert not {"RegisterTargets", "DeregisterTargets"} & set(log.names())
    assert log.of("DescribeReplicationGroups") == [{"MaxRecords": 100}, {"MaxRecords": 100}]  # one listing a round
    for rg_id in groups:
        arn = elbv2.describe_target_groups(Names=[f"{rg_id}-p"])["TargetGroups"][0]["TargetGroupArn"]
        held = {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}
        assert held == {Target(groups[rg_id]["primary"], PORT)}


class RefusedListing:
    """An elasticache client whose unfiltered DescribeReplicationGroups fails with ``code``
    (as an IAM policy naming groups, or a throttled API, makes it fail); every other call
    goes to the real client."""

    def __init__(self, real: Any, code: str) -> None:
        self._real, self.code = real, code
        self.calls: list[str | None] = []

    def describe_replication_groups(self, **params: Any) -> Any:
        self.calls.append(params.get("ReplicationGroupId"))
        if "ReplicationGroupId" not in params:
            raise ClientError({"Error": {"Code": self.code, "Message": "injected"}}, "DescribeReplicationGroups")
        return self._real.describe_replication_groups(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_refused_listing_falls_back_to_reads_by_id_and_is_not_tried_again(
    admin: Any, elasticache: Any, zone: Zone, dns_server: LoopbackDnsServer
) -> None:
    groups = create_groups(admin, zone, "orders", 5)
    client = RefusedListing(elasticache, "AccessDenied")
    sources = Sources(DnsResolver([dns_server.address], timeout=DNS_TIMEOUT_S), client)

    first = read_round(sources, specs_of(groups), expect=True)
    assert not any(isinstance(r, Failure) for r in first)
    assert client.calls[0] is None and sorted(client.calls[1:]) == sorted(groups)  # type: ignore[type-var]

    client.calls.clear()
    assert read_round(sources, specs_of(groups), expect=True) == first
    assert sorted(client.calls) == sorted(groups)  # type: ignore[type-var]


def test_a_throttled_listing_fails_every_group_of_the_round_without_more_calls(
    admin: Any, elasticache: Any, zone: Zone, dns_server: LoopbackDnsServer
) -> None:
    groups = create_groups(admin, zone, "orders", 5)
    client = RefusedListing(elasticache, "Throttling")
    sources = Sources(DnsResolver([dns_server.address], timeout=DNS_TIMEOUT_S), client)

    readings = read_round(sources, specs_of(groups), expect=True)

    assert client.calls == [None]
    for spec, reading in zip(specs_of(groups), readings):
        assert isinstance(reading, Failure) and type(reading.error) is SourceError
        assert str(reading.error) == f"elasticache://{spec.replication_group_id}: DescribeReplicationGroups failed: Throttling: injected"


# -- DNS ------------------------------------------------------------------------------------


def test_a_dns_name_two_bindings_share_is_queried_once_a_round(
    elbv2: Any, ec2: Any, zone: Zone, dns_server: LoopbackDnsServer
) -> None:
    host = "master.orders.abc123.euw1.cache.amazonaws.com"
    zone.set_a(host, "10.0.1.11")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    bindings = []
    for name in ("writers", "also-writers"):
        elbv2.create_target_group(Name=name, Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")
        bindings.append(Binding(name=name, source=DnsSourceSpec(host), target_group=name, port=PORT))
    cfg = Config(tuple(bindings), Settings(nameservers=(dns_server.address,), poll_interval_s=0.01, dns_timeout_s=1.0))

    def run() -> Any:
        sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s))
        zone.queries = 0
        return sync(cfg, target_groups=TargetGroups(elbv2, ec2), sources=sources)

    first = run()  # registers: a read, then the agreement re-read
    assert [(b.status, b.polls) for b in first.bindings] == [("changed", 2), ("changed", 2)]
    assert zone.queries == 2  # one A query a round, for both bindings

    second = run()
    assert [(b.status, b.polls) for b in second.bindings] == [("in_sync", 1), ("in_sync", 1)]
    assert zone.queries == 1


# -- the sandbox pages as AWS does -----------------------------------------------------------


@pytest.mark.parametrize("max_records", [19, 101])
def test_moto_refuses_a_page_size_aws_refuses(admin: Any, max_records: int) -> None:
    with pytest.raises(ClientError) as caught:
        admin.describe_replication_groups(MaxRecords=max_records)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_the_page_size_the_source_uses_is_one_aws_takes(admin: Any, zone: Zone) -> None:
    create_groups(admin, zone, "orders", 2)
    page = admin.describe_replication_groups(MaxRecords=sources_module.LIST_PAGE_SIZE)
    assert sorted(g["ReplicationGroupId"] for g in page["ReplicationGroups"]) == ["orders000", "orders001"]

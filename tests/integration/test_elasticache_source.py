"""The elasticache:// source against moto (in-process) and a real DNS server on loopback.

moto creates the replication group and reports each member's ``CurrentRole`` and node name;
the loopback zone maps the node names to addresses, as Route 53 does for ElastiCache.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from cachebridge.config import ElastiCacheSourceSpec
from cachebridge.errors import EmptySource, SourceError, SourceNotFound, SourceTimeout, SourceUnsupported
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.sandbox.moto_ext import failover_replication_group
from cachebridge.sources import DnsResolver, Reading, Sources

pytestmark = pytest.mark.timeout(60)

REGION = "us-east-1"
PRIMARY_IP = "127.0.0.2"
REPLICA_IPS = ("127.0.0.3", "127.0.0.4")
ZONE_TTL = 10
DNS_TIMEOUT_S = 0.3


@dataclass(frozen=True)
class Group:
    """A replication group as created: each member's node name, role and address."""

    rg_id: str
    names: dict[str, str]  # cache cluster id -> node name (ReadEndpoint.Address)
    roles: dict[str, str]  # cache cluster id -> CurrentRole at creation
    addresses: dict[str, str]  # cache cluster id -> the address its name resolves to

    def ids(self, role: str) -> list[str]:
        return sorted(cid for cid, r in self.roles.items() if r == role)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    """In place of conftest's: moto in-process for this module's region, kept apart from
    the machine's AWS config and credentials files."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ELASTICACHE"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def admin(aws: None) -> Any:
    """The client that sets the scene; the source gets its own, so call counts are its own."""
    return boto3.client("elasticache", region_name=REGION)


@pytest.fixture
def elasticache(aws: None) -> Any:
    return boto3.client("elasticache", region_name=REGION)


@pytest.fixture
def describe_calls(elasticache: Any) -> Counter[str]:
    """DescribeReplicationGroups calls made through ``elasticache``, by group id."""
    calls: Counter[str] = Counter()

    def count(params: dict[str, Any], **kwargs: Any) -> None:
        body = params.get("body")
        calls[body.get("ReplicationGroupId", "(all)") if isinstance(body, dict) else "(unknown)"] += 1

    elasticache.meta.events.register("before-call.elasticache.DescribeReplicationGroups", count)
    return calls


@pytest.fixture
def zone_ttl() -> int:
    """The records' TTL, for the tests that check the TTL a reading reports."""
    return ZONE_TTL


@pytest.fixture
def sources(dns_server: LoopbackDnsServer, elasticache: Any) -> Sources:
    return Sources(DnsResolver([dns_server.address], timeout=DNS_TIMEOUT_S), elasticache)


def create_group(
    admin: Any,
    zone: Zone,
    rg_id: str,
    replicas: int = 2,
    primary_ip: str = PRIMARY_IP,
    replica_ips: tuple[str, ...] = REPLICA_IPS,
) -> Group:
    # moto ignores NumCacheClusters with cluster mode disabled; ReplicasPerNodeGroup it honours.
    admin.create_replication_group(
        ReplicationGroupId=rg_id,
        ReplicationGroupDescription=f"{rg_id} for cachebridge tests",
        Engine="redis",
        CacheNodeType="cache.t4g.micro",
        ReplicasPerNodeGroup=replicas,
    )
    rg = admin.describe_replication_groups(ReplicationGroupId=rg_id)["ReplicationGroups"][0]
    members = rg["NodeGroups"][0]["NodeGroupMembers"]
    assert len(members) == replicas + 1
    free_replica_ips = iter(replica_ips[:replicas])
    names, roles, addresses = {}, {}, {}
    for m in members:
        cid = m["CacheClusterId"]
        names[cid] = m["ReadEndpoint"]["Address"]
        roles[cid] = m["CurrentRole"]
        addresses[cid] = primary_ip if m["CurrentRole"] == "primary" else next(free_replica_ips)
        assert names[cid].startswith(f"{cid}.{rg_id}.") and names[cid].endswith(".cache.amazonaws.com")
        zone.set_a(names[cid], addresses[cid])
    return Group(rg_id, names, roles, addresses)


def create_sharded_group(admin: Any, shards: int) -> None:
    """``sharded``: a cluster-mode-enabled group of ``shards`` shards, one replica each."""
    admin.create_replication_group(
        ReplicationGroupId="sharded",
        ReplicationGroupDescription="cluster mode enabled",
        Engine="redis",
        CacheNodeType="cache.t4g.micro",
        ClusterMode="enabled",
        NumNodeGroups=shards,
        ReplicasPerNodeGroup=1,
    )


@pytest.fixture
def orders(admin: Any, zone: Zone) -> Group:
    return create_group(admin, zone, "orders")


def current_roles(admin: Any, rg_id: str) -> dict[str, str]:
    rg = admin.describe_replication_groups(ReplicationGroupId=rg_id)["ReplicationGroups"][0]
    return {m["CacheClusterId"]: m["CurrentRole"] for m in rg["NodeGroups"][0]["NodeGroupMembers"]}


# -- answers ------------------------------------------------------------------------------


def test_primary_role_gives_the_primary_nodes_address(sources: Sources, orders: Group) -> None:
    (primary,) = orders.ids("primary")

    reading = sources.read(ElastiCacheSourceSpec("orders", "primary"))

    assert reading == Reading(
        source="elasticache://orders?role=primary",
        addresses=(PRIMARY_IP,),
        ttl=ZONE_TTL,
        detail={"nodes": {primary: [PRIMARY_IP]}, "status": "available"},
        port=6379,
    )


def test_replicas_role_gives_every_replicas_address(sources: Sources, orders: Group) -> None:
    replicas = orders.ids("replica")
    assert len(replicas) == 2

    reading = sources.read(ElastiCacheSourceSpec("orders", "replicas"))

    assert reading.source == "elasticache://orders?role=replicas"
    assert reading.addresses == REPLICA_IPS
    assert reading.detail["nodes"] == {cid: [orders.addresses[cid]] for cid in replicas}
    assert PRIMARY_IP not in reading.addresses


def test_replicas_role_of_a_group_without_replicas_is_empty(sources: Sources, admin: Any, zone: Zone) -> None:
    create_group(admin, zone, "solo", replicas=0)

    with pytest.raises(EmptySource, match=r"elasticache://solo\?role=replicas: no member has role replica"):
        sources.read(ElastiCacheSourceSpec("solo", "replicas"))


def test_the_primary_read_follows_a_failover(sources: Sources, orders: Group, admin: Any, dns_server: LoopbackDnsServer, elasticache: Any) -> None:
    (old_primary,) = orders.ids("primary")
    new_primary = orders.ids("replica")[0]
    primary = ElastiCacheSourceSpec("orders", "primary")
    replicas = ElastiCacheSourceSpec("orders", "replicas")
    assert sources.read(primary).addresses == (PRIMARY_IP,)

    assert failover_replication_group(DEFAULT_ACCOUNT_ID, REGION, "orders", new_primary) == (old_primary,)
    sources.new_pass()

    assert current_roles(admin, "orders") == {cid: "primary" if cid == new_primary else "replica" for cid in orders.names}
    after = sources.read(primary)
    assert after.addresses == (orders.addresses[new_primary],)
    assert after.detail["nodes"] == {new_primary: [orders.addresses[new_primary]]}
    assert sources.read(replicas).addresses == tuple(
        sorted((orders.addresses[cid] for cid in orders.names if cid != new_primary), key=ipaddress.ip_address)
    )
    fresh = Sources(DnsResolver([dns_server.address], timeout=DNS_TIMEOUT_S), elasticache)
    assert fresh.read(primary).addresses == (orders.addresses[new_primary],)


def test_a_second_failover_returns_to_the_first_primary(sources: Sources, orders: Group) -> None:
    (first,) = orders.ids("primary")
    second = orders.ids("replica")[1]
    spec = ElastiCacheSourceSpec("orders", "primary")

    failover_replication_group(DEFAULT_ACCOUNT_ID, REGION, "orders", second)
    sources.new_pass()
    assert sources.read(spec).addresses == (orders.addresses[second],)
    failover_replication_group(DEFAULT_ACCOUNT_ID, REGION, "orders", first)
    sources.new_pass()

    assert sources.read(spec).addresses == (PRIMARY_IP,)


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["primary", "replicas"])
def test_an_unknown_replication_group_is_not_found(sources: Sources, orders: Group, role: str) -> None:
    with pytest.raises(SourceNotFound, match=r"^elasticache://nope: no such replication group$"):
        sources.read(ElastiCacheSourceSpec("nope", role))  # type: ignore[arg-type]


@pytest.mark.parametrize("role", ["primary", "replicas"])
def test_a_cluster_mode_enabled_group_is_unsupported(sources: Sources, admin: Any, role: str) -> None:
    create_sharded_group(admin, shards=2)

    with pytest.raises(SourceUnsupported, match="cluster mode is enabled"):
        sources.read(ElastiCacheSourceSpec("sharded", role))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "error"),
    [("nxdomain", SourceNotFound), ("servfail", SourceError), ("drop", SourceTimeout)],
)
def test_one_replica_name_failing_fails_the_whole_replicas_read(
    sources: Sources, orders: Group, zone: Zone, failure: str, error: type[SourceError]
) -> None:
    broken, healthy = orders.ids("replica")
    if failure == "nxdomain":
        zone.remove(orders.names[broken])
    else:
        zone.set_fault(orders.names[broken], failure)  # type: ignore[arg-type]

    with pytest.raises(error) as caught:
        sources.read(ElastiCacheSourceSpec("orders", "replicas"))

    assert orders.names[broken] in str(caught.value)
    if error is SourceError:
        assert not isinstance(caught.value, (SourceNotFound, SourceTimeout))
    # The other replica and the primary still resolve: a partial answer was there to give.
    assert sources.resolver.resolve(orders.names[healthy]).addresses == (orders.addresses[healthy],)
    assert sources.read(ElastiCacheSourceSpec("orders", "primary")).addresses == (PRIMARY_IP,)


def test_a_primary_name_failing_is_a_source_error(sources: Sources, orders: Group, zone: Zone) -> None:
    (primary,) = orders.ids("primary")
    zone.set_fault(orders.names[primary], "servfail")

    with pytest.raises(SourceError, match=orders.names[primary].replace(".", r"\.")):
        sources.read(ElastiCacheSourceSpec("orders", "primary"))


# -- calls --------------------------------------------------------------------------------


def test_one_describe_per_replication_group_per_pass(sources: Sources, admin: Any, zone: Zone, orders: Group, describe_calls: Counter[str]) -> None:
    create_group(admin, zone, "carts", replicas=1, primary_ip="127.0.1.2", replica_ips=("127.0.1.3",))
    specs = [
        ElastiCacheSourceSpec("orders", "primary"),
        ElastiCacheSourceSpec("orders", "replicas"),
        ElastiCacheSourceSpec("carts", "primary"),
        ElastiCacheSourceSpec("orders", "primary"),
        ElastiCacheSourceSpec("carts", "replicas"),
    ]
    assert describe_calls == Counter()

    first = [sources.read(spec).addresses for spec in specs]

    assert describe_calls == Counter({"orders": 1, "carts": 1})
    assert first == [(PRIMARY_IP,), REPLICA_IPS, ("127.0.1.2",), (PRIMARY_IP,), ("127.0.1.3",)]

    sources.new_pass()
    second = [sources.read(spec).addresses for spec in specs]

    assert describe_calls == Counter({"orders": 2, "carts": 2})
    assert second == first


# -- the moto extension itself --------------------------------------------------------------


def test_failover_helper_rejects_what_it_cannot_model(admin: Any, orders: Group) -> None:
    create_sharded_group(admin, shards=1)
    before = current_roles(admin, "orders")

    with pytest.raises(ValueError, match="no replication group 'nope'"):
        failover_replication_group(DEFAULT_ACCOUNT_ID, REGION, "nope", "nope-002")
    with pytest.raises(ValueError, match="no member 'orders-009'"):
        failover_replication_group(DEFAULT_ACCOUNT_ID, REGION, "orders", "orders-009")
    with pytest.raises(ValueError, match="cluster mode enabled"):
        failover_replication_group(DEFAULT_ACCOUNT_ID, REGION, "sharded", "sharded-0001-002")

    assert current_roles(admin, "orders") == before

"""Cluster clients through the cluster layout, against real parts: a Redis cluster of
redis-server processes (3 shards x 2 nodes on 127.0.3.x), its ElastiCache view in moto
(in-process, with ``moto_ext``), node names on a loopback DNS server, the controller's
sync, and the sandbox's NLB stand-in serving a listener per node and the configuration
listener. The redis-py snippet ``cachebridge endpoints`` prints is run as printed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID

from cachebridge.address_map import AddressMap, read
from cachebridge.config import Config
from cachebridge.nlb import TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sandbox.nlb_dataplane import DataPlane
from cachebridge.sandbox.redis_cluster import LoopbackCluster
from cachebridge.sandbox.redis_nodes import free_port
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, sync

from .conftest import REGION

pytestmark = [pytest.mark.timeout(180), pytest.mark.redis]

RG = "sessions"
HOSTS = [f"127.0.3.{11 + i}" for i in range(6)]
SLOTS = 8


@dataclass
class Site:
    cluster: LoopbackCluster
    config: Config
    node_groups: list[str]
    elbv2: Any

    def sync(self) -> SyncReport:
        settings = self.config.settings
        sources = Sources(DnsResolver(settings.nameservers, settings.dns_timeout_s), boto3.client("elasticache", region_name=REGION))
        return sync(self.config, target_groups=TargetGroups(self.elbv2), sources=sources)

    def address_map(self) -> AddressMap:
        return read(self.elbv2, self.node_groups, "sessions-config", nlb_host="127.0.0.1")


@pytest.fixture
def site(aws: None, ec2: Any, elbv2: Any, dns_server: LoopbackDnsServer, tmp_path: Path) -> Iterator[Site]:
    port = free_port(tuple(HOSTS))
    cluster = LoopbackCluster(tmp_path / "redis", HOSTS, port, node_timeout_ms=1500).start()
    plane: DataPlane | None = None
    try:
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
        lb = elbv2.create_load_balancer(Name="sessions", Subnets=[subnet], Type="network")["LoadBalancers"][0]["LoadBalancerArn"]

        def group(name: str) -> str:
            arn = elbv2.create_target_group(
                Name=name, Protocol="TCP", Port=port, VpcId=vpc, TargetType="ip", HealthCheckProtocol="TCP",
                HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=5, HealthyThresholdCount=2,
            )["TargetGroups"][0]["TargetGroupArn"]
            elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}])
            return arn

        names = [f"sessions-n{i + 1}" for i in range(SLOTS)]
        for name in names:
            elbv2.create_listener(LoadBalancerArn=lb, Protocol="TCP", Port=free_port(), DefaultActions=[{"Type": "forward", "TargetGroupArn": group(name)}])
        elbv2.create_listener(LoadBalancerArn=lb, Protocol="TCP", Port=free_port(), DefaultActions=[{"Type": "forward", "TargetGroupArn": group("sessions-config")}])
        elasticache = boto3.client("elasticache", region_name=REGION)
        elasticache.create_replication_group(
            ReplicationGroupId=RG, ReplicationGroupDescription="sessions", Engine="redis", ClusterMode="enabled",
            NumNodeGroups=3, ReplicasPerNodeGroup=1, Port=port,
        )
        for shard in cluster.shards:
            for m, node in enumerate(shard.nodes):
                cid = f"{RG}-{shard.node_group_id}-{m + 1:03d}"
                name = elasticache.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]["CacheNodes"][0]["Endpoint"]["Address"]
                dns_server.zone.set_a(name, node.host)
        config = Config.from_mapping({
            "settings": {"nameservers": [dns_server.address], "dns_timeout_s": 0.5, "event_wait_s": 0, "max_changes": 10},
            "bindings": [
                {"name": "sessions-nodes", "source": f"elasticache://{RG}?role=cluster", "layout": "cluster", "node_target_groups": names, "port": port},
                {"name": "sessions-config", "source": f"elasticache://{RG}?role=cluster", "target_group": "sessions-config", "port": port},
            ],
        })
        # Health checks every 5 s x 0.05: a target turns healthy in about half a second.
        plane = DataPlane(DEFAULT_ACCOUNT_ID, REGION, registration_delay_s=2.0, time_scale=0.05).start()
        yield Site(cluster, config, names, elbv2)
    finally:
        if plane is not None:
            plane.stop()
        cluster.stop()


def wait_healthy(site: Site, count: int, timeout: float = 30.0) -> AddressMap:
    deadline = time.monotonic() + timeout
    while True:
        m = site.address_map()
        if len(m.routes) == count and all(r.health == "healthy" for r in m.routes):
            return m
        if time.monotonic() > deadline:
            raise TimeoutError(f"node targets not healthy in {timeout}s: {[(r.node, r.health) for r in m.routes]}")
        time.sleep(0.2)


def keys_per_shard(rc: Any, cluster: LoopbackCluster, per_shard: int) -> dict[str, list[str]]:
    """``per_shard`` keys whose slots fall in each shard's range."""
    found: dict[str, list[str]] = {s.node_group_id: [] for s in cluster.shards}
    i = 0
    while any(len(v) < per_shard for v in found.values()) and i < 100_000:
        key = f"key:{i}"
        slot = rc.keyslot(key)
        shard = next(s for s in cluster.shards if s.slots[0] <= slot <= s.slots[1])
        if len(found[shard.node_group_id]) < per_shard:
            found[shard.node_group_id].append(key)
        i += 1
    return found


def write(rc: Any, key: str, value: str, timeout: float = 30.0) -> int:
    """SET until acknowledged; returns how many attempts failed first."""
    from redis.exceptions import RedisError

    failures = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert rc.set(key, value)
            return failures
        except (RedisError, OSError):
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_redis_py_snippet_reaches_every_shard_through_the_nlb_and_follows_failovers(site: Site) -> None:
    reports = [site.sync() for _ in range(2)]
    assert all(b.ok for r in reports for b in r.bindings), [b.error for r in reports for b in r.bindings]
    m = wait_healthy(site, 6)
    listener_ports = {r.nlb_port for r in m.routes}
    assert m.mapping().keys() == {f"{h}:{site.cluster.port}" for h in HOSTS}

    snippet = next(c for c in m.clients if c.client == "redis-py").code
    scope: dict[str, Any] = {}
    exec(snippet, scope)  # the snippet as 'cachebridge endpoints' prints it
    rc = scope["rc"]
    try:
        # Every connection goes to the NLB: the client knows the nodes only by their NLB address.
        assert {(n.host, n.port) for n in rc.get_nodes()} <= {("127.0.0.1", p) for p in listener_ports}
        keys = keys_per_shard(rc, site.cluster, 20)
        acknowledged = {}
        for shard_keys in keys.values():
            for key in shard_keys:
                assert write(rc, key, "v0") == 0
                acknowledged[key] = "v0"

        # A planned failover of shard 0001: CLUSTER FAILOVER on its replica.
        failed, other = site.cluster.shards[0], site.cluster.shards[1]
        new_primary = site.cluster.failover(failed)
        other_errors = sum(write(rc, k, "v1") for k in keys[other.node_group_id])
        for k in keys[other.node_group_id]:
            acknowledged[k] = "v1"
        for k in keys[failed.node_group_id]:
            write(rc, k, "v1")
            acknowledged[k] = "v1"
        assert other_errors == 0  # another shard's keys never noticed
        assert rc.cluster_nodes  # still a cluster client
        assert new_primary.role() == "master"

        # The NLB did not change: node IPs are stable, the cluster announces the new roles.
        after = site.sync()
        assert [b.status for b in after.bindings] == ["in_sync", "in_sync"]
        assert site.address_map().mapping() == m.mapping()

        # An unplanned failover of shard 0002: its primary is killed, a replica elected.
        site.cluster.kill_primary(other)
        for k in keys[other.node_group_id]:
            write(rc, k, "v2", timeout=60)
            acknowledged[k] = "v2"
        # Nothing acknowledged was lost.
        for key, value in acknowledged.items():
            assert rc.get(key) == value.encode(), key
    finally:
        rc.close()


IOREDIS = Path(__file__).resolve().parents[1] / "clients" / "ioredis"


@pytest.fixture(scope="session")
def ioredis_dir() -> Path:
    """tests/clients/ioredis with its pinned ioredis installed (npm ci, from the lock file)."""
    import subprocess

    if not (IOREDIS / "node_modules" / "ioredis").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=IOREDIS, check=True, timeout=300, capture_output=True)
    return IOREDIS


def test_ioredis_snippet_reaches_every_shard_through_the_nlb(site: Site, ioredis_dir: Path, tmp_path: Path) -> None:
    import json
    import subprocess

    import redis

    for _ in range(2):
        site.sync()
    m = wait_healthy(site, 6)
    snippet = tmp_path / "snippet.js"
    snippet.write_text(next(c for c in m.clients if c.client == "ioredis").code)
    probe = redis.RedisCluster(host=HOSTS[0], port=site.cluster.port)  # direct, to pick keys and check them
    try:
        keys = [k for ks in keys_per_shard(probe, site.cluster, 5).values() for k in ks]
        run = subprocess.run(
            ["node", str(ioredis_dir / "run.js"), str(snippet)], input="\n".join(keys), text=True,
            capture_output=True, timeout=90, cwd=ioredis_dir,
        )
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out["written"] == len(keys) == 15
        # ioredis knew every node only by its NLB address.
        assert set(out["nodes"]) == {f"127.0.0.1:{r.nlb_port}" for r in m.routes}
        assert all(probe.get(k) == b"ioredis" for k in keys)
    finally:
        probe.close()

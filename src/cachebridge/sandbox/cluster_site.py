"""A cluster-mode site in one process, for tests and the cluster benchmark: a real Redis
cluster on loopback (``redis_cluster``), its ElastiCache view in moto (in-process, with
``moto_ext``: node groups, members and node names), the names on a loopback DNS server, an
NLB in moto with a listener per node slot plus the configuration listener, the NLB
stand-in (``nlb_dataplane``) serving them, and the controller's sync.

Node addresses are 127.0.3.x (one per node, one shared port, as ElastiCache nodes share
one); the NLB stand-in listens on 127.0.0.1, so the address map is read with that host
instead of the NLB's (unresolvable) moto DNS name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..address_map import AddressMap, read
from ..config import Config
from ..sync import SyncReport, sync
from .dns import LoopbackDnsServer
from .nlb_dataplane import DataPlane
from .redis_cluster import LoopbackCluster
from .redis_nodes import free_port

__all__ = ["ClusterSite", "REGION", "drill", "keys_per_shard"]

REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"  # moto's default account


class ClusterSite:
    def __init__(
        self,
        workdir: Path,
        *,
        rg: str = "sessions",
        shards: int = 3,
        replicas: int = 1,
        node_slots: int = 8,
        host_prefix: str = "127.0.3.",
        node_timeout_ms: int = 2000,
        time_scale: float = 0.05,
        registration_delay_s: float = 2.0,
        own_moto: bool = True,
    ) -> None:
        """``own_moto``: start (and stop) moto in-process here; False when the caller already
        runs ``mock_aws`` (a test fixture). The NLB stand-in runs its default (``documented``)
        profile but with ``registration_delay_s`` in place of its minutes of registration:
        targets are registered once, at start, and a shard failover registers nothing, so
        only the wait before the first drill would change. ``time_scale`` shortens every
        modelled duration (health checks every 5 s x scale)."""
        self.workdir = workdir
        self.rg = rg
        self.node_slots = node_slots
        self.hosts = [f"{host_prefix}{11 + i}" for i in range(shards * (1 + replicas))]
        self.shards, self.replicas = shards, replicas
        self.node_timeout_ms = node_timeout_ms
        self.time_scale, self.registration_delay_s = time_scale, registration_delay_s
        self.own_moto = own_moto
        self.names = [f"{rg}-n{i + 1}" for i in range(node_slots)]
        self.config_group = f"{rg}-config"
        self._mock: Any = None
        self.dns: LoopbackDnsServer | None = None
        self.cluster: LoopbackCluster | None = None
        self.plane: DataPlane | None = None
        self.config: Config | None = None

    def clients(self, name: str) -> Any:
        import boto3

        return boto3.client(name, region_name=REGION)

    def start(self, ready_timeout: float = 60.0) -> "ClusterSite":
        try:
            self._start(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, ready_timeout: float) -> None:
        from . import moto_ext

        if self.own_moto:
            from moto import mock_aws

            for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
                os.environ.pop(key, None)
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "sandbox")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "sandbox")
            moto_ext.install()
            self._mock = mock_aws()
            self._mock.start()
        from .. import nlb

        nlb.clear_caches()  # target group details cached by name would outlive a previous site
        self.dns = LoopbackDnsServer().start()
        port = cluster_port(self.hosts)
        self.cluster = LoopbackCluster(self.workdir / "redis", self.hosts, port, shards=self.shards, replicas=self.replicas, node_timeout_ms=self.node_timeout_ms).start()
        ec2, elbv2, elasticache = self.clients("ec2"), self.clients("elbv2"), self.clients("elasticache")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
        lb = elbv2.create_load_balancer(Name=self.rg, Subnets=[subnet], Type="network")["LoadBalancers"][0]["LoadBalancerArn"]

        def group(name: str) -> str:
            arn = elbv2.create_target_group(
                Name=name, Protocol="TCP", Port=port, VpcId=vpc, TargetType="ip", HealthCheckProtocol="TCP",
                HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=5, HealthyThresholdCount=2,
            )["TargetGroups"][0]["TargetGroupArn"]
            elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}])
            return arn

        for name in self.names:
            elbv2.create_listener(LoadBalancerArn=lb, Protocol="TCP", Port=free_port(), DefaultActions=[{"Type": "forward", "TargetGroupArn": group(name)}])
        elbv2.create_listener(LoadBalancerArn=lb, Protocol="TCP", Port=free_port(), DefaultActions=[{"Type": "forward", "TargetGroupArn": group(self.config_group)}])
        elasticache.create_replication_group(
            ReplicationGroupId=self.rg, ReplicationGroupDescription="cachebridge cluster site", Engine="redis", ClusterMode="enabled",
            NumNodeGroups=self.shards, ReplicasPerNodeGroup=self.replicas, Port=port,
        )
        for shard in self.cluster.shards:
            for m, node in enumerate(shard.nodes):
                cid = f"{self.rg}-{shard.node_group_id}-{m + 1:03d}"
                described = elasticache.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
                self.dns.zone.set_a(described["CacheNodes"][0]["Endpoint"]["Address"], node.host)
        self.config = Config.from_mapping({
            # The nodes are on loopback, which the answer checks accept only when declared.
            "settings": {"nameservers": [self.dns.address], "dns_timeout_s": 0.5, "event_wait_s": 0, "max_changes": 2 * len(self.hosts),
                         "allowed_target_networks": ["127.0.0.0/8"]},
            "bindings": [
                {"name": f"{self.rg}-nodes", "source": f"elasticache://{self.rg}?role=cluster", "layout": "cluster", "node_target_groups": self.names, "port": port},
                {"name": self.config_group, "source": f"elasticache://{self.rg}?role=cluster", "target_group": self.config_group, "port": port},
            ],
        })
        self.plane = DataPlane(ACCOUNT_ID, REGION, registration_delay_s=self.registration_delay_s, time_scale=self.time_scale).start()
        report = self.sync()
        if not all(b.ok for b in report.bindings):
            raise RuntimeError("the first sync failed: " + "; ".join(str(b.error) for b in report.bindings if not b.ok))
        self.wait_healthy(ready_timeout)

    def sync(self) -> SyncReport:
        from ..nlb import TargetGroups
        from ..sources import DnsResolver, Sources

        assert self.config is not None
        settings = self.config.settings
        sources = Sources(DnsResolver(settings.nameservers, settings.dns_timeout_s), self.clients("elasticache"))
        return sync(self.config, target_groups=TargetGroups(self.clients("elbv2")), sources=sources)

    def address_map(self) -> AddressMap:
        return read(self.clients("elbv2"), self.names, self.config_group, nlb_host="127.0.0.1")

    def wait_healthy(self, timeout: float = 60.0) -> AddressMap:
        """Until every node's listener has a healthy target, and the configuration group
        holds every node healthy (the NLB's default profile gives a target still
        ``initial`` no traffic): the drill never starts on a path that is not ready."""
        elbv2 = self.clients("elbv2")
        config_arn = elbv2.describe_target_groups(Names=[self.config_group])["TargetGroups"][0]["TargetGroupArn"]
        deadline = time.monotonic() + timeout
        while True:
            m = self.address_map()
            config = [d["TargetHealth"]["State"] for d in elbv2.describe_target_health(TargetGroupArn=config_arn)["TargetHealthDescriptions"]]
            nodes_ready = len(m.routes) == len(self.hosts) and all(r.health == "healthy" for r in m.routes)
            if nodes_ready and len(config) == len(self.hosts) and all(state == "healthy" for state in config):
                return m
            if time.monotonic() > deadline:
                raise TimeoutError(f"targets not healthy in {timeout}s: nodes {[(r.node, r.health) for r in m.routes]}, configuration group {config}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.plane is not None:
            self.plane.stop()
            self.plane = None
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
        if self.dns is not None:
            self.dns.stop()
            self.dns = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None


def cluster_port(hosts: list[str], attempts: int = 50) -> int:
    """A port free on every host whose cluster bus port (port + 10000, Redis's fixed
    offset) is free too and within 65535."""
    from .redis_nodes import _bindable

    for _ in range(attempts):
        port = free_port(tuple(hosts))
        if port + 10000 <= 65535 and all(_bindable(h, port + 10000) for h in hosts):
            return port
    raise RuntimeError(f"no port with a free cluster bus port on all of {hosts}")


def keys_per_shard(rc: Any, site: ClusterSite, per_shard: int) -> dict[str, list[str]]:
    """``per_shard`` keys in each shard's slot range (so every slot range is written)."""
    assert site.cluster is not None
    found: dict[str, list[str]] = {s.node_group_id: [] for s in site.cluster.shards}
    for i in range(200_000):
        if all(len(v) >= per_shard for v in found.values()):
            break
        key = f"drill:{i}"
        slot = rc.keyslot(key)
        shard = next(s for s in site.cluster.shards if s.slots[0] <= slot <= s.slots[1])
        if len(found[shard.node_group_id]) < per_shard:
            found[shard.node_group_id].append(key)
    return found


def drill(workdir: Path, *, kind: str = "planned", duration_s: float = 10.0, failover_after_s: float = 3.0,
          node_timeout_ms: int = 2000, keys_each: int = 50) -> Any:
    """One cluster-mode drill on a fresh site: redis-py ``RedisCluster`` with the address
    map (``address_remap``), writers on every shard, shard 0001 failed over (``planned``:
    CLUSTER FAILOVER on its replica; ``kill``: its primary killed). Returns a
    ``cluster_drill.ClusterDrillResult``."""
    from redis.cluster import RedisCluster

    from ..cluster_drill import run_drill

    site = ClusterSite(workdir, node_timeout_ms=node_timeout_ms).start()
    try:
        m = site.wait_healthy()
        nat = {}
        for announced, nlb in m.mapping().items():
            ip, port = announced.rsplit(":", 1)
            host, nlb_port = nlb.rsplit(":", 1)
            nat[(ip, int(port))] = (host, int(nlb_port))

        def client() -> Any:
            return RedisCluster(host=m.nlb_host, port=m.config_port or 0, address_remap=lambda addr: nat.get(addr, addr),
                                socket_timeout=2, socket_connect_timeout=2)

        probe = client()
        try:
            keys = keys_per_shard(probe, site, keys_each)
        finally:
            probe.close()
        cluster = site.cluster
        assert cluster is not None
        shard = cluster.shards[0]
        failover = (lambda: cluster.failover(shard)) if kind == "planned" else (lambda: cluster.kill_primary(shard))
        result = run_drill(client, keys, failover, failed_shard=shard.node_group_id, kind=kind,
                           duration_s=duration_s, failover_after_s=failover_after_s)
        # The NLB never changed: node IPs are stable and clients followed the cluster.
        result.nlb_changed = site.address_map().mapping() != m.mapping()
        return result
    finally:
        site.stop()

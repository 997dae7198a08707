"""Cluster clients through the cluster layout, against real parts: a Redis cluster of
redis-server processes (3 shards x 2 nodes on 127.0.3.x), its ElastiCache view in moto
(in-process, with ``moto_ext``), node names on a loopback DNS server, the controller's
sync, and the sandbox's NLB stand-in serving a listener per node and the configuration
listener. The redis-py snippet ``cachebridge endpoints`` prints is run as printed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachebridge.sandbox.cluster_site import ClusterSite
from cachebridge.sandbox.redis_cluster import LoopbackCluster

pytestmark = [pytest.mark.timeout(180), pytest.mark.redis]



@pytest.fixture
def site(aws: None, tmp_path: Path) -> Iterator[ClusterSite]:
    s = ClusterSite(tmp_path, own_moto=False, node_timeout_ms=1500).start()
    try:
        yield s
    finally:
        s.stop()


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


def test_redis_py_snippet_reaches_every_shard_through_the_nlb_and_follows_failovers(site: ClusterSite) -> None:
    assert site.cluster is not None
    m = site.wait_healthy()
    listener_ports = {r.nlb_port for r in m.routes}
    assert m.mapping().keys() == {f"{h}:{site.cluster.port}" for h in site.hosts}

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


def test_ioredis_snippet_reaches_every_shard_through_the_nlb(site: ClusterSite, ioredis_dir: Path, tmp_path: Path) -> None:
    import json
    import subprocess

    import redis

    assert site.cluster is not None
    m = site.wait_healthy()
    snippet = tmp_path / "snippet.js"
    snippet.write_text(next(c for c in m.clients if c.client == "ioredis").code)
    probe = redis.RedisCluster(host=site.hosts[0], port=site.cluster.port)  # direct, to pick keys and check them
    try:
        keys = [k for ks in keys_per_shard(probe, site.cluster, 5).values() for k in ks]
        run = subprocess.run(
            ["node", str(ioredis_dir / "run.js"), str(snippet)], input="\n".join(keys), text=True,
            capture_output=True, timeout=90, cwd=ioredis_dir,
        )
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out["written"] == len(keys) == 15
        # ioredis knew the nodes only by their NLB addresses (the configuration listener and
        # one per node), and wrote through each shard's primary.
        through_nlb = {f"127.0.0.1:{r.nlb_port}" for r in m.routes}
        assert set(out["nodes"]) <= through_nlb | {f"127.0.0.1:{m.config_port}"}
        assert len(set(out["nodes"]) & through_nlb) >= 3
        assert all(probe.get(k) == b"ioredis" for k in keys)
    finally:
        probe.close()

"""A real Redis cluster on loopback for the sandbox: ``redis-server --cluster-enabled yes``,
``shards`` primaries with ``replicas`` each, every node on its own 127.0.0.x address and the
same port (as ElastiCache's nodes share one port), slots spread evenly.

The cluster is built with CLUSTER MEET, ADDSLOTSRANGE and REPLICATE rather than
``redis-cli --cluster create``, so which node is whose replica is fixed (shard ``i`` is
``nodes[i]`` with replicas ``nodes[shards + i*replicas ...]``) and matches the node groups
the sandbox gives moto's ElastiCache.

``cluster-node-timeout`` (default here 2000 ms) is how long a primary may be unreachable
before its replicas start an election: the sandbox's stand-in for ElastiCache's detection
of a failed primary, shortened so a drill stays short. ElastiCache documents no figure for
it; it does not let users change ``cluster-node-timeout``.

``cluster-require-full-coverage no``: with ``yes`` (Redis's default) every node refuses
queries while any slot is uncovered, so a dead primary would stop every shard until its
replica is elected; with ``no`` the other shards keep serving. ElastiCache lists the
parameter in its Redis OSS parameter groups with the default ``no`` (ElastiCache User
Guide, "Redis OSS 3.2.4 parameter changes"); the page was not at hand to re-check while
writing this, so treat the sandbox's value as the one to confirm on your parameter group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .redis_nodes import RedisNode

__all__ = ["ClusterShard", "LoopbackCluster", "SLOTS"]

SLOTS = 16384


@dataclass
class ClusterShard:
    node_group_id: str  # "0001", as ElastiCache numbers node groups
    nodes: list[RedisNode]  # the first is the primary at creation
    slots: tuple[int, int]

    def primary(self) -> RedisNode:
        """The node that is primary now (ROLE), a live one."""
        for node in self.nodes:
            try:
                if node.process is not None and node.role() == "master":
                    return node
            except Exception:  # a killed node
                continue
        raise RuntimeError(f"shard {self.node_group_id} has no live primary")

    def replicas(self) -> list[RedisNode]:
        primary = self.primary()
        return [n for n in self.nodes if n is not primary and n.process is not None]


class LoopbackCluster:
    def __init__(self, workdir: Path, hosts: list[str], port: int, *, shards: int = 3, replicas: int = 1, node_timeout_ms: int = 2000) -> None:
        if shards < 3:
            raise ValueError("a Redis cluster needs at least 3 primaries to elect a failover")
        if len(hosts) != shards * (1 + replicas):
            raise ValueError(f"{shards} shards x {1 + replicas} nodes need {shards * (1 + replicas)} hosts, got {len(hosts)}")
        self.port = port
        self.node_timeout_ms = node_timeout_ms
        args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(node_timeout_ms),
                "--cluster-require-full-coverage", "no", "--cluster-announce-ip")
        self.nodes = [RedisNode(h, port, workdir / f"{h}-{port}", extra_args=(*args, h)) for h in hosts]
        self.shards: list[ClusterShard] = []
        for i in range(shards):
            members = [self.nodes[i], *self.nodes[shards + i * replicas : shards + (i + 1) * replicas]]
            self.shards.append(ClusterShard(f"{i + 1:04d}", members, (i * SLOTS // shards, (i + 1) * SLOTS // shards - 1)))

    def start(self, timeout: float = 30.0) -> "LoopbackCluster":
        for node in self.nodes:
            node.start()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            first.command("CLUSTER", "MEET", node.host, str(node.port))
        for shard in self.shards:
            low, high = shard.slots
            shard.nodes[0].command("CLUSTER", "ADDSLOTSRANGE", str(low), str(high))
        ids = {n.host: self._wait_known(n, timeout) for n in self.nodes}
        for shard in self.shards:
            for replica in shard.nodes[1:]:
                self._until(lambda r=replica, p=shard.nodes[0]: r.command("CLUSTER", "REPLICATE", ids[p.host]) == "OK", timeout, f"{replica.address} replicates")
        self.wait_ok(timeout)
        for shard in self.shards:
            for replica in shard.nodes[1:]:
                replica.wait_synced(timeout)
        return self

    def _wait_known(self, node: RedisNode, timeout: float) -> str:
        """The node's id once every node knows every other (MEET has propagated)."""
        def known() -> bool:
            return all(len(n.command("CLUSTER", "NODES").strip().splitlines()) == len(self.nodes) for n in self.nodes)

        self._until(known, timeout, "every node knows every node")
        return str(node.command("CLUSTER", "MYID"))

    @staticmethod
    def _until(check: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except Exception as exc:  # not ready yet
                last = exc
            time.sleep(0.1)
        raise TimeoutError(f"{what}: not within {timeout}s" + (f" ({last})" if last else ""))

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node reports cluster_state:ok."""
        def ok() -> bool:
            return all("cluster_state:ok" in str(n.command("CLUSTER", "INFO")) for n in self.nodes if n.process is not None)

        self._until(ok, timeout, "cluster_state:ok")

    def failover(self, shard: ClusterShard, timeout: float = 30.0) -> RedisNode:
        """A planned failover: CLUSTER FAILOVER on a replica (it waits for the replica to
        catch up, then takes over). Returns the new primary."""
        replica = shard.replicas()[0]
        replica.command("CLUSTER", "FAILOVER")
        self._until(lambda: replica.role() == "master", timeout, f"{replica.address} becomes primary")
        return replica

    def kill_primary(self, shard: ClusterShard, timeout: float = 60.0) -> RedisNode:
        """An unplanned failover: kill the primary; a replica is elected after
        cluster-node-timeout. Returns the new primary."""
        old = shard.primary()
        replica = shard.replicas()[0]
        old.kill()
        self._until(lambda: replica.role() == "master", timeout, f"{replica.address} is elected primary")
        return replica

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

"""``cachebridge sandbox up --cluster-mode``: the supervisor's bring-up for a
cluster-mode-enabled group.

A real Redis cluster (``redis_cluster``: 3 shards x 2 nodes on 127.0.0.2-7, one port),
ElastiCache's view of it in moto (node groups, members, node names in the sandbox's DNS),
and the stack deployed with ``cachebridge deploy`` in the cluster layout: a listener per
node and the configuration listener, all served by the NLB stand-in. ``TestFailover`` on a
node group runs ``CLUSTER FAILOVER`` on that shard's replica; ``sandbox kill-primary``
kills shard 0001's primary (its replica is elected after ``cluster-node-timeout``).
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ..deploy import template as cfn_template
from .cluster_site import cluster_port
from .redis_cluster import LoopbackCluster

if TYPE_CHECKING:
    from .supervisor import Supervisor

__all__ = ["start_cluster_mode", "kill_primary", "SHARDS"]

SHARDS = 3


def start_cluster_mode(sup: "Supervisor", clients: dict[str, Any], vpc: str, subnets: list[str], cache_sg: str) -> None:
    from . import moto_ext
    from ..deploy.local import LocalFunction
    from .supervisor import SCHEDULE_EVENT, FunctionHost, _control_handler, _jsonable, free_port_range
    from .redis_nodes import free_port
    from http.server import ThreadingHTTPServer
    from dataclasses import asdict

    opts = sup.options
    hosts = [f"127.0.0.{i + 2}" for i in range(SHARDS * 2)]
    port = cluster_port(hosts)
    elasticache = clients["elasticache"]
    elasticache.create_replication_group(
        ReplicationGroupId=opts.replication_group, ReplicationGroupDescription="cachebridge sandbox (cluster mode)",
        Engine="redis", ClusterMode="enabled", NumNodeGroups=SHARDS, ReplicasPerNodeGroup=1, Port=port,
        SecurityGroupIds=[cache_sg],
    )
    cluster = LoopbackCluster(sup.state_dir / "nodes", hosts, port, shards=SHARDS, replicas=1).start()
    sup.nodes = list(cluster.nodes)
    assert sup.dns is not None
    nodes = []
    for shard in cluster.shards:
        for m, node in enumerate(shard.nodes):
            cid = f"{opts.replication_group}-{shard.node_group_id}-{m + 1:03d}"
            name = elasticache.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]["CacheNodes"][0]["Endpoint"]["Address"]
            sup.dns.zone.set_a(name, node.host)
            nodes.append({"cluster_id": cid, "shard": shard.node_group_id, "host": node.host, "port": node.port, "hostname": name})
    sup.record("cluster.ready", mode="cluster", port=port)

    def on_test_failover(rg: str, node_group_id: str | None) -> None:
        if rg != opts.replication_group:
            raise LookupError(rg)
        shard = next((s for s in cluster.shards if s.node_group_id == (node_group_id or "0001")), None)
        if shard is None:
            raise RuntimeError(f"no node group {node_group_id} in {rg}")
        replica = shard.replicas()[0]
        sup.record("failover.start", kind="planned", shard=shard.node_group_id)
        replica.command("CLUSTER", "FAILOVER")  # returns at once; the replica takes over
        threading.Thread(target=_record_promotion, args=(sup, shard, replica), daemon=True).start()

    moto_ext.set_test_failover_hook(on_test_failover)
    sup.cluster_mode = cluster  # type: ignore[attr-defined]

    listener_port = free_port()
    slots = cfn_template.node_slots_for(len(hosts))
    node_port_base = free_port_range(slots)
    outputs = sup._deploy(vpc, subnets, cache_sg, listener_port, layout="cluster", reader_port=free_port(), node_port_base=node_port_base)
    function_name = outputs["FunctionName"]
    config = clients["lambda"].get_function_configuration(FunctionName=function_name)
    # The nodes listen on 127.0.0.x, outside the VPC the stack was given: declare them.
    extra = {"CACHEBRIDGE_NAMESERVERS": sup.dns.address, "CACHEBRIDGE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8"}
    if opts.event_wait_s is not None:
        extra["CACHEBRIDGE_EVENT_WAIT_S"] = str(opts.event_wait_s)
    sup.function = FunctionHost(LocalFunction(config, extra), sup.record)
    schedule_s = opts.schedule_s or sup._schedule_period(clients["events"], clients["cloudformation"])
    # The configuration group fills max_changes targets per run: run until it holds every node.
    for _ in range(1 + len(hosts)):
        first = sup.function.invoke(SCHEDULE_EVENT, "schedule")
        if not first["ok"]:
            raise RuntimeError(f"a controller run failed: {first['error']}")
        statuses = (first.get("result") or {}).get("bindings") or {}  # binding name -> status
        if statuses and all(status == "in_sync" for status in statuses.values()):
            break
    threading.Thread(target=sup._ticks, args=(schedule_s,), name="schedule", daemon=True).start()
    sup.control = ThreadingHTTPServer(("127.0.0.1", 0), _control_handler(sup))
    threading.Thread(target=sup.control.serve_forever, name="control", daemon=True).start()
    configuration = elasticache.describe_replication_groups(ReplicationGroupId=opts.replication_group)["ReplicationGroups"][0]
    sup.state = {
        "status": "ready",
        "pid": os.getpid(),
        "state_dir": str(sup.state_dir),
        "aws_endpoint_url": sup.aws.endpoint_url if sup.aws else None,
        "region": "us-east-1",
        "dns": sup.dns.address,
        "control_url": f"http://127.0.0.1:{sup.control.server_port}",
        "stack_name": opts.stack_name,
        "function_name": function_name,
        "replication_group": opts.replication_group,
        "cluster_mode": True,
        "primary_endpoint": configuration.get("ConfigurationEndpoint", {}).get("Address"),
        "nlb": {"host": "127.0.0.1", "port": listener_port, "dns_name": outputs.get("LoadBalancerDnsName")},
        "layout": "cluster",
        "listeners": {"configuration": listener_port, "nodes": [int(p) for p in outputs.get("NodePorts", "").split(",") if p]},
        "node_target_groups": [g for g in outputs.get("NodeTargetGroups", "").split(",") if g],
        "config_target_group": outputs.get("ConfigTargetGroup"),
        "target_group_arn": outputs.get("ConfigTargetGroup"),
        "schedule_s": schedule_s,
        "outputs": outputs,
        "nodes": nodes,
        "options": _jsonable(asdict(opts)),
    }
    sup._write_state()
    sup.record("sandbox.ready")


def _record_promotion(sup: "Supervisor", shard: Any, replica: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if replica.role() == "master":
                sup.record("failover.promoted", shard=shard.node_group_id, node=replica.address)
                return
        except Exception:  # the node is busy taking over
            pass
        time.sleep(0.05)
    sup.record("failover.timeout", shard=shard.node_group_id)


def kill_primary(sup: "Supervisor", node_group_id: str = "0001") -> None:
    """An unplanned failover of one shard: its primary killed, its replica elected after
    cluster-node-timeout (recorded when it answers as primary)."""
    cluster: LoopbackCluster = sup.cluster_mode  # type: ignore[attr-defined]
    shard = next(s for s in cluster.shards if s.node_group_id == node_group_id)
    primary, replica = shard.primary(), shard.replicas()[0]
    sup.record("failover.start", kind="unplanned", shard=node_group_id)
    primary.kill()
    threading.Thread(target=_record_promotion, args=(sup, shard, replica, 60.0), daemon=True).start()

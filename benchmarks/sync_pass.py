"""API calls, wall time and peak memory of one sync pass, for 1 and 100 bindings.

Runs against moto server (its own process, started here on loopback) and a loopback DNS
server. Bindings are ElastiCache sources, half of them ``role=primary`` and half
``role=replicas`` of the same replication groups, so a pass over 100 bindings describes
50 replication groups. Passes measured:

- cold in-sync: a fresh process's first pass (reads target group and VPC details);
- warm in-sync: the next pass, as a warm Lambda runs it (those details are cached);
- changing: every node's address moved (node replacement), so each binding registers
  one target and deregisters one.

Targets: an in-sync warm pass makes no write call, one DescribeTargetHealth per target
group and one DescribeReplicationGroups per replication group; 100 bindings in under
3 s; peak RSS within a 128 MB Lambda.

    python benchmarks/sync_pass.py [--bindings 1 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import boto3

from cachebridge import aws, nlb
from cachebridge.config import Binding, Config, ElastiCacheSourceSpec, Settings
from cachebridge.nlb import TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sandbox.redis_nodes import free_port
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import sync

WRITE_CALLS = {"RegisterTargets", "DeregisterTargets"}


class CallCounter:
    def __init__(self, *clients: Any) -> None:
        self.calls: Counter[str] = Counter()
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> dict[str, int]:
        out = dict(sorted(self.calls.items()))
        self.calls.clear()
        return out


def start_moto() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachebridge.sandbox.aws_server", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith("ready"):
        raise SystemExit("moto server did not start")
    return proc, f"http://127.0.0.1:{port}"


def build_world(n_bindings: int, dns: LoopbackDnsServer, clients: dict[str, Any]) -> tuple[Config, dict[str, str]]:
    """Replication groups, their node names in DNS, and one IP target group per binding."""
    vpc = clients["ec2"].create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    n_groups = max(1, n_bindings // 2)
    bindings: list[Binding] = []
    node_names: dict[str, str] = {}
    run = os.urandom(3).hex()
    for g in range(n_groups):
        rg_id = f"bench{run}-{g}"
        clients["elasticache"].create_replication_group(
            ReplicationGroupId=rg_id, ReplicationGroupDescription="bench", ReplicasPerNodeGroup=1
        )
        members = clients["elasticache"].describe_replication_groups(ReplicationGroupId=rg_id)["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
        for i, member in enumerate(members):
            ip = f"10.1.{g % 250}.{10 + i}"
            node_names[member["ReadEndpoint"]["Address"]] = ip
            dns.zone.set_a(member["ReadEndpoint"]["Address"], ip)
        roles = ["primary", "replicas"] if n_bindings > 1 else ["primary"]
        for role in roles:
            if len(bindings) == n_bindings:
                break
            name = f"tg-{run}-{g}-{role[0]}"
            clients["elbv2"].create_target_group(Name=name, Protocol="TCP", Port=6379, VpcId=vpc, TargetType="ip")
            bindings.append(Binding(name=name, source=ElastiCacheSourceSpec(rg_id, role), target_group=name))  # type: ignore[arg-type]
    return Config(tuple(bindings), Settings(nameservers=(dns.address,), dns_timeout_s=1.0)), node_names


def measure(config: Config, clients: dict[str, Any], counter: CallCounter, label: str) -> dict[str, Any]:
    target_groups = TargetGroups(clients["elbv2"], clients["ec2"])
    sources = Sources(DnsResolver(config.settings.nameservers, config.settings.dns_timeout_s), clients["elasticache"])
    counter.take()
    started = time.perf_counter()
    report = sync(config, target_groups=target_groups, sources=sources)
    wall = time.perf_counter() - started
    calls = counter.take()
    statuses = Counter(b.status for b in report.bindings)
    return {
        "pass": label,
        "bindings": len(config.bindings),
        "wall_s": round(wall, 3),
        "calls": calls,
        "api_calls": sum(calls.values()),
        "write_calls": sum(v for k, v in calls.items() if k in WRITE_CALLS),
        "statuses": dict(statuses),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bindings", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    moto, endpoint = start_moto()
    dns = LoopbackDnsServer().start()
    results: list[dict[str, Any]] = []
    try:
        kwargs = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
        setup = {name: boto3.client(name, **kwargs) for name in ("elbv2", "ec2", "elasticache")}
        for n in args.bindings:
            config, node_names = build_world(n, dns, setup)
            nlb.clear_caches()
            aws.clear_caches()
            clients = {name: boto3.client(name, config=aws.BOTO_CONFIG, **kwargs) for name in ("elbv2", "ec2", "elasticache")}
            counter = CallCounter(*clients.values())
            measure(config, clients, counter, "initial registration")  # brings every group in sync
            nlb.clear_caches()  # as a new Lambda instance would start
            results.append(measure(config, clients, counter, "cold in-sync"))
            results.append(measure(config, clients, counter, "warm in-sync"))
            for name, ip in node_names.items():
                a, b, c, d = ip.split(".")
                dns.zone.set_a(name, f"{a}.{b}.{c}.{int(d) + 100}")
            results.append(measure(config, clients, counter, "changing"))
    finally:
        dns.stop()
        moto.terminate()
        moto.wait(10)

    if args.json:
        print(json.dumps({"results": results}, indent=2))
        return 0
    print(f"{'pass':<14} {'bindings':>8} {'wall s':>8} {'API calls':>9} {'writes':>6} {'peak RSS MB':>11}  calls")
    for r in results:
        calls = ", ".join(f"{k}={v}" for k, v in r["calls"].items())
        print(f"{r['pass']:<14} {r['bindings']:>8} {r['wall_s']:>8.3f} {r['api_calls']:>9} {r['write_calls']:>6} {r['peak_rss_mb']:>11}  {calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

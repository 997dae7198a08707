"""Cluster-mode shard failover through the NLB: per drill kind, the failed shard's
write_unavailable_s (median, max) against the cluster's own promotion time, errors on the
other shards' keys, lost acknowledged writes.

Each drill builds a fresh in-process cluster site (``cachebridge.sandbox.cluster_site``:
3 shards x 2 redis-server nodes on 127.0.3.x, moto's ElastiCache view, the NLB stand-in
with a listener per node, the controller's sync), writes through redis-py ``RedisCluster``
with the address map ``cachebridge endpoints`` prints, and fails shard 0001 over:
planned (CLUSTER FAILOVER on its replica) or unplanned (its primary killed; the replica is
elected after cluster-node-timeout, --node-timeout-ms).

Targets: failed shard write_unavailable_s median <= promotion_s + 2 s; 0 errors on the
other shards' keys; 0 lost acknowledged writes on a planned failover.

    python benchmarks/cluster_failover.py [--drills 5] [--duration 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from cachebridge.cluster_drill import ClusterDrillResult, summary
from cachebridge.sandbox.cluster_site import drill


def one_drill(kind: str, duration: float, node_timeout_ms: int) -> ClusterDrillResult:
    with tempfile.TemporaryDirectory(prefix="cb-cluster-drill-") as workdir:
        result: ClusterDrillResult = drill(Path(workdir), kind=kind, duration_s=duration, node_timeout_ms=node_timeout_ms)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drills", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--node-timeout-ms", type=int, default=2000, help="cluster-node-timeout: the unplanned failover's detection")
    parser.add_argument("--kinds", default="planned,unplanned")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    table: dict[str, Any] = {}
    for kind in args.kinds.split(","):
        results = [one_drill("planned" if kind == "planned" else "kill", args.duration, args.node_timeout_ms) for _ in range(args.drills)]
        table[kind] = {**summary(results), "runs": [r.to_json() for r in results]}
    if args.json:
        json.dump(table, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'kind':<10} {'drills':>6} {'promotion_s med/max':>20} {'failed shard unavailable_s med/max':>36} "
          f"{'target':>8} {'other-shard errors':>19} {'lost acked':>11}")
    for kind, s in table.items():
        target = s["promotion_s"]["median"] + 2
        met = "met" if s["failed_shard_write_unavailable_s"]["median"] <= target else "MISSED"
        print(f"{kind:<10} {s['drills']:>6} {s['promotion_s']['median']:>11.2f}/{s['promotion_s']['max']:<8.2f} "
              f"{s['failed_shard_write_unavailable_s']['median']:>27.2f}/{s['failed_shard_write_unavailable_s']['max']:<8.2f} "
              f"{met:>8} {s['other_shard_errors']:>19} {s['lost_acknowledged_writes']:>11}")
    medians = [s["failed_shard_write_unavailable_s"]["median"] for s in table.values()]
    return 0 if medians and statistics.median(medians) >= 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

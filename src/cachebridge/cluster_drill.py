"""A cluster-mode failover drill: writes to keys of every shard through the NLB (one writer
thread and one cluster client per shard, so a shard that stalls does not hold the others
up), fails one shard over, and reports per shard what the writers saw.

Figures, per shard:

- ``write_unavailable_s``: the longest time between two acknowledged writes to the
  shard's keys (a write that fails or blocks while the shard has no primary stretches it);
  for a shard the failover did not touch it is the write spacing plus scheduling noise.
- ``errors``: writes that raised (the client retried and gave up, or a connection broke).
- ``lost``: keys whose value, read at the end, is older than the last acknowledged write
  (0 is expected for a planned failover; an unplanned one may lose what the dead primary
  had not replicated yet).

The failed shard's ``promotion_s`` is the cluster's own time: from the failover's start to
the replica answering ``ROLE`` as primary.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ShardFigures", "ClusterDrillResult", "run_drill", "summary"]


@dataclass
class ShardFigures:
    shard: str
    failed_over: bool
    writes: int = 0
    errors: int = 0
    write_unavailable_s: float = 0.0
    lost: int = 0


@dataclass
class ClusterDrillResult:
    kind: str  # planned | kill
    failed_shard: str
    promotion_s: float
    duration_s: float
    shards: dict[str, ShardFigures] = field(default_factory=dict)
    nlb_changed: bool | None = None  # whether the address map differed after the drill

    @property
    def lost(self) -> int:
        return sum(s.lost for s in self.shards.values())

    def to_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "shards"}, "lost": self.lost,
                "shards": {k: asdict(v) for k, v in self.shards.items()}}


def run_drill(
    client: Callable[[], Any],
    keys: Mapping[str, Sequence[str]],
    failover: Callable[[], None],
    *,
    failed_shard: str,
    kind: str,
    duration_s: float = 10.0,
    failover_after_s: float = 3.0,
    interval_s: float = 0.01,
) -> ClusterDrillResult:
    """``client()`` makes a cluster client (one per writer); ``keys`` are keys per shard;
    ``failover()`` fails ``failed_shard`` over and returns once its new primary serves."""
    from redis.exceptions import RedisError

    stop = threading.Event()
    acked: dict[str, int] = {}
    figures = {shard: ShardFigures(shard, shard == failed_shard) for shard in keys}
    lock = threading.Lock()

    def writer(shard: str, shard_keys: Sequence[str]) -> None:
        rc = client()
        last_ok = time.monotonic()
        gap = 0.0
        n = 0
        try:
            while not stop.is_set():
                key = shard_keys[n % len(shard_keys)]
                n += 1
                try:
                    rc.set(key, str(n))
                except (RedisError, OSError):
                    with lock:
                        figures[shard].errors += 1
                    time.sleep(interval_s)
                    continue
                now = time.monotonic()
                gap = max(gap, now - last_ok)
                last_ok = now
                with lock:
                    acked[key] = n
                    figures[shard].writes += 1
                time.sleep(interval_s)
        finally:
            figures[shard].write_unavailable_s = round(gap, 3)
            rc.close()

    threads = [threading.Thread(target=writer, args=(s, k), name=f"drill-{s}", daemon=True) for s, k in keys.items()]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(failover_after_s)
    began = time.monotonic()
    failover()
    promotion_s = time.monotonic() - began
    remaining = duration_s - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    stop.set()
    for t in threads:
        t.join(60)
    check = client()
    try:
        for shard, shard_keys in keys.items():
            for key in shard_keys:
                if key in acked:
                    value = check.get(key)
                    if value is None or int(value) < acked[key]:
                        figures[shard].lost += 1
    finally:
        check.close()
    return ClusterDrillResult(kind, failed_shard, round(promotion_s, 3), round(time.monotonic() - started, 3), figures)


def summary(results: Sequence[ClusterDrillResult]) -> dict[str, Any]:
    """Median and max of the failed shard's write_unavailable_s and promotion_s, errors on
    the other shards, lost writes."""
    failed = [r.shards[r.failed_shard].write_unavailable_s for r in results]
    promotion = [r.promotion_s for r in results]
    others = [s.errors for r in results for s in r.shards.values() if not s.failed_over]
    return {
        "drills": len(results),
        "failed_shard_write_unavailable_s": {"median": round(statistics.median(failed), 3), "max": max(failed)},
        "promotion_s": {"median": round(statistics.median(promotion), 3), "max": max(promotion)},
        "failed_shard_errors": sum(r.shards[r.failed_shard].errors for r in results),
        "other_shard_errors": sum(others),
        "other_shard_write_unavailable_s_max": max((s.write_unavailable_s for r in results for s in r.shards.values() if not s.failed_over), default=0.0),
        "lost_acknowledged_writes": sum(r.lost for r in results),
    }

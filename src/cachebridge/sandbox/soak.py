"""Many failovers in a row against a running sandbox, each measured by the drill.

``run_soak`` alternates planned (``TestFailover``) and unplanned (``kill-primary``)
failovers, each under write load through the NLB (``cachebridge.drill.run_drill``), and
between them waits for the cluster to settle (every node answers ``ROLE``, exactly one is
master, the replicas' links are up). A sampler runs across the whole soak: every 100 ms it
reads the target group and asks every node ``ROLE``; a target that leaves the group's live
set (deregistered or draining) while its node answers ``master`` and is the sandbox's
current primary is a **wrong deregistration**.

A failover is **followed** when, after it, the target group's only live target is the node
that answers ``ROLE`` ``master``.

``benchmarks/soak.py`` is the command; ``tests/e2e/test_soak.py`` runs a short soak in CI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pathlib import Path

from .. import drill as drills
from .control import control, events
from .failover import FailoverOptions
from .supervisor import SandboxOptions

__all__ = ["FailoverOutcome", "WrongDeregistration", "SoakReport", "run_soak", "soak_options"]


def soak_options(state_dir: Path, time_scale: float = 1.0) -> SandboxOptions:
    """A sandbox whose failovers follow each other quickly: short registration delay,
    detection and rejoin times (times ``time_scale``), and AWS's minimum health check
    settings (interval 5 s, threshold 2)."""
    return SandboxOptions(
        state_dir=state_dir,
        registration_delay_s=2.0 * time_scale,
        health_check_interval_s=5,
        healthy_threshold=2,
        deregistration_delay_s=max(0, round(2 * time_scale)),
        event_wait_s=10.0,
        failover=FailoverOptions(notify_delay_s=0.5 * time_scale, detect_s=1.0 * time_scale, rejoin_s=2.0 * time_scale),
    )


@dataclass(frozen=True)
class FailoverOutcome:
    index: int
    kind: str
    followed: bool
    new_primary: str | None
    live_after: tuple[str, ...]
    lost_acknowledged_writes: int
    acknowledged_writes: int
    write_unavailable_s: float
    detect_s: float | None
    retarget_s: float | None
    # What the controller reported as failed between this failover's start and its end.
    controller_errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class WrongDeregistration:
    t: float
    target: str
    roles: dict[str, str]


@dataclass
class SoakReport:
    outcomes: list[FailoverOutcome] = field(default_factory=list)
    wrong_deregistrations: list[WrongDeregistration] = field(default_factory=list)
    deregistrations_seen: int = 0
    samples: int = 0
    duration_s: float = 0.0

    @property
    def failovers(self) -> int:
        return len(self.outcomes)

    @property
    def followed(self) -> int:
        return sum(1 for o in self.outcomes if o.followed)

    @property
    def lost_acknowledged_writes_planned(self) -> int:
        return sum(o.lost_acknowledged_writes for o in self.outcomes if o.kind == "planned")

    @property
    def lost_acknowledged_writes_unplanned(self) -> int:
        return sum(o.lost_acknowledged_writes for o in self.outcomes if o.kind == "unplanned")

    def max_write_unavailable_s(self, kind: str | None = None) -> float:
        return max((o.write_unavailable_s for o in self.outcomes if kind in (None, o.kind)), default=0.0)

    def summary(self) -> dict[str, Any]:
        return {
            "failovers": self.failovers,
            "planned": sum(1 for o in self.outcomes if o.kind == "planned"),
            "unplanned": sum(1 for o in self.outcomes if o.kind == "unplanned"),
            "failovers_followed": self.followed,
            "lost_acknowledged_writes_planned": self.lost_acknowledged_writes_planned,
            "lost_acknowledged_writes_unplanned": self.lost_acknowledged_writes_unplanned,
            "acknowledged_writes": sum(o.acknowledged_writes for o in self.outcomes),
            "wrong_deregistrations": len(self.wrong_deregistrations),
            "deregistrations_seen": self.deregistrations_seen,
            "controller_errors": sum(len(o.controller_errors) for o in self.outcomes),
            "max_write_unavailable_s": round(self.max_write_unavailable_s(), 3),
            "max_write_unavailable_s_planned": round(self.max_write_unavailable_s("planned"), 3),
            "max_write_unavailable_s_unplanned": round(self.max_write_unavailable_s("unplanned"), 3),
            "samples": self.samples,
            "duration_s": round(self.duration_s, 1),
        }


def _roles(nodes: list[dict[str, Any]], timeout: float = 0.3) -> dict[str, str]:
    """``ip:port`` -> ``master`` / ``slave`` / ``down``, from each node's own ``ROLE``."""
    import redis

    roles: dict[str, str] = {}
    for node in nodes:
        key = f"{node['host']}:{node['port']}"
        try:
            client = redis.Redis(node["host"], int(node["port"]), socket_timeout=timeout, socket_connect_timeout=timeout,
                                 decode_responses=True)
            try:
                roles[key] = str(client.execute_command("ROLE")[0])
            finally:
                client.close()
        except Exception:  # a dead or restarting node: anything but "master"
            roles[key] = "down"
    return roles


def _live(elbv2: Any, arn: str) -> dict[str, str]:
    described = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {f"{d['Target']['Id']}:{d['Target']['Port']}": d["TargetHealth"]["State"] for d in described}


class _Sampler(threading.Thread):
    """Target group and node roles every ``period`` seconds; flags a live target that leaves
    the group while its node is the master."""

    def __init__(self, elbv2: Any, arn: str, nodes: list[dict[str, Any]], report: SoakReport, period: float = 0.1) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.elbv2, self.arn, self.nodes, self.report, self.period = elbv2, arn, nodes, report, period
        self.stop = threading.Event()

    def run(self) -> None:
        previous: frozenset[str] | None = None
        while not self.stop.is_set():
            try:
                states = _live(self.elbv2, self.arn)
            except Exception:  # a failed describe is a gap in the samples
                self.stop.wait(self.period)
                continue
            roles = _roles(self.nodes)
            live = frozenset(t for t, s in states.items() if "draining" not in s)
            self.report.samples += 1
            if previous is not None:
                for target in sorted(previous - live):
                    self.report.deregistrations_seen += 1
                    if roles.get(target) == "master":
                        self.report.wrong_deregistrations.append(WrongDeregistration(time.time(), target, roles))
            previous = live
            self.stop.wait(self.period)


def _settle(nodes: list[dict[str, Any]], timeout: float) -> str:
    """Wait until every node answers, exactly one is master and every replica's link is up.
    Returns the master's ``ip:port``."""
    import redis

    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        last = _roles(nodes)
        masters = [t for t, r in last.items() if r == "master"]
        if len(masters) == 1 and all(r in ("master", "slave") for r in last.values()):
            linked = True
            for node in nodes:
                key = f"{node['host']}:{node['port']}"
                if last[key] != "slave":
                    continue
                try:
                    client = redis.Redis(node["host"], int(node["port"]), socket_timeout=1, decode_responses=True)
                    info = client.info("replication")
                    client.close()
                except Exception:
                    linked = False
                    break
                if info.get("master_link_status") != "up":
                    linked = False
            if linked:
                return masters[0]
        time.sleep(0.2)
    raise RuntimeError(f"the cluster did not settle within {timeout:.0f} s (roles: {last})")


def _followed(elbv2: Any, arn: str, primary: str, timeout: float) -> tuple[bool, tuple[str, ...]]:
    """True once the group's only live target is ``primary``."""
    deadline = time.monotonic() + timeout
    live: frozenset[str] = frozenset()
    while True:
        states = _live(elbv2, arn)
        live = frozenset(t for t, s in states.items() if "draining" not in s)
        if live == {primary}:
            return True, tuple(sorted(live))
        if time.monotonic() >= deadline:
            return False, tuple(sorted(live))
        time.sleep(0.2)


def run_soak(
    state: dict[str, Any],
    *,
    count: int = 100,
    time_scale: float = 1.0,
    rate: float = 40.0,
    progress: Callable[[FailoverOutcome], None] | None = None,
) -> SoakReport:
    """``count`` failovers (planned first, then alternating) against the sandbox in ``state``.

    ``time_scale`` multiplies each drill's load time and the waits for the cluster to
    settle and for the group to follow."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=state["region"])
    elbv2 = session.client("elbv2", endpoint_url=state["aws_endpoint_url"])
    sampler_elbv2 = session.client("elbv2", endpoint_url=state["aws_endpoint_url"])
    elasticache = session.client("elasticache", endpoint_url=state["aws_endpoint_url"])
    arn = state["target_group_arn"]
    nodes = list(state["nodes"])
    host, port = state["nlb"]["host"], int(state["nlb"]["port"])
    attrs = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    deregistration_delay = float(next((a["Value"] for a in attrs if a["Key"] == "deregistration_delay.timeout_seconds"), 300))

    report = SoakReport()
    sampler = _Sampler(sampler_elbv2, arn, nodes, report)
    started = time.monotonic()
    sampler.start()
    try:
        for index in range(count):
            primary = _settle(nodes, timeout=60 * max(time_scale, 0.5))
            _followed(elbv2, arn, primary, timeout=60 * max(time_scale, 0.5))
            kind = "planned" if index % 2 == 0 else "unplanned"
            if kind == "planned":
                rg = state["replication_group"]
                trigger: Callable[[], None] = lambda: elasticache.test_failover(ReplicationGroupId=rg, NodeGroupId="0001")
            else:
                trigger = lambda: control(state, "/kill-primary", method="POST")
            result = drills.run_drill(
                host=host, port=port, elbv2=elbv2, target_group_arn=arn, trigger=trigger, kind=kind, rate=rate,
                duration=12.0 * time_scale, failover_after=2.0 * time_scale, deregistration_delay_s=deregistration_delay,
            )
            result.events = events(state)
            summary = drills.summarise(result, rate)
            new_primary = _settle(nodes, timeout=60 * max(time_scale, 0.5))
            followed, live_after = _followed(elbv2, arn, new_primary, timeout=30 * max(time_scale, 0.5))
            errors = tuple(
                str(e.get("error")) for e in events(state)
                if e.get("kind") == "controller.end" and not e.get("ok") and e["t"] >= result.failover_at
            )
            outcome = FailoverOutcome(
                index=index, kind=kind, followed=followed and new_primary != primary, new_primary=new_primary,
                live_after=live_after, lost_acknowledged_writes=summary["lost_acknowledged_writes"],
                acknowledged_writes=summary["acknowledged_writes"], write_unavailable_s=summary["write_unavailable_s"],
                detect_s=summary["detect_s"], retarget_s=summary["retarget_s"], controller_errors=errors,
            )
            report.outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    finally:
        sampler.stop.set()
        sampler.join(10)
        report.duration_s = time.monotonic() - started
    return report

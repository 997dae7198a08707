"""``cachebridge drill``: measure a failover as a client behind the NLB sees it.

A steady load of writes (and a read after each) goes through the NLB endpoint with
redis-py, every operation recorded with its time and outcome, while a watcher samples
the target group's health every 100 ms. Then a failover is triggered (``TestFailover``,
or in the sandbox ``kill-primary``) and the drill reports:

- ``detect_s``: failover start until the new primary is registered in the target group
  (the controller noticed and acted);
- ``retarget_s``: until the new primary is the only target taking new connections;
- ``healthy_s``: until the NLB reports the new primary ``healthy`` (registration delay and
  health checks; until then the group fails open to it);
- ``write_unavailable_s``: the longest stretch without a successful write, as the client
  saw it (less the nominal interval between writes);
- errors by kind (``readonly``, ``connection``, ``timeout``, ``other``), and
  ``readonly_after_termination``: READONLY errors later than the old primary's
  deregistration delay after its deregistration (connection termination should end them);
- ``lost_acknowledged_writes``: writes the server acknowledged that cannot be read back
  once the failover is over.

A probe opens a fresh connection through the NLB every few hundred milliseconds and asks
the node behind it for its role and run id, which gives what the NLB's API cannot show:

- ``new_primary_reached_s``: failover start until a new connection first reaches the new
  primary;
- ``measured_listener_propagation_s`` (switch layout): from the moment the watcher sees the
  listener's default action change (ModifyListener) until a new connection first reaches
  the new primary: how long the update took to reach new connections;
- ``measured_registration_s``: from the moment the watcher first sees a newly registered
  target (RegisterTargets) until it is ``healthy``: registration plus initial health checks.

AWS documents neither of the last two; one drill on a real stack measures both (each within
the watcher's sampling period). Before the load starts, the drill waits (bounded) until the
path it measures is healthy: every target of the watched group(s) healthy, none draining,
and consecutive new connections through the NLB all reaching the primary.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Op", "Sample", "Probe", "DrillPath", "DrillResult", "run_drill", "wait_until_ready", "summarise", "plot", "label_positions"]


@dataclass(frozen=True)
class Op:
    t: float  # wall clock
    kind: str  # "write" | "read"
    key: str
    outcome: str  # "ok" | "readonly" | "connection" | "timeout" | "other" | "stale"
    error: str | None = None


@dataclass(frozen=True)
class Sample:
    t: float
    live: frozenset[str]  # targets of the primary path's group not draining ("ip:port")
    states: dict[str, str]
    forward: str | None = None  # switch layout: the group the primary listener forwards to
    groups: dict[str, dict[str, str]] = field(default_factory=dict)  # every watched group's states


@dataclass(frozen=True)
class Probe:
    t: float
    role: str | None  # "master" | "slave" | None when the connection failed
    run_id: str | None
    error: str | None = None


@dataclass(frozen=True)
class DrillPath:
    """What the drill watches: the retarget layout's target group, or the switch layout's
    primary listener and node target groups."""

    layout: str = "retarget"
    target_group_arn: str | None = None
    listener_arn: str | None = None
    node_target_groups: tuple[str, ...] = ()
    nodes: int = 0  # switch layout: cache nodes that must each have a healthy node group


@dataclass
class DrillResult:
    kind: str
    started: float
    failover_at: float
    ended: float
    ops: list[Op]
    samples: list[Sample]
    old_target: str | None
    new_target: str | None
    deregistration_delay_s: float
    acknowledged: list[str]
    missing: list[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    waited_s: float = 0.0
    forward_before: str | None = None
    context: dict[str, Any] = field(default_factory=dict)  # layout, NLB profile: reported as given


def _classify(exc: Exception) -> str:
    import redis

    if isinstance(exc, redis.exceptions.ReadOnlyError) or "READONLY" in str(exc):
        return "readonly"
    if isinstance(exc, redis.exceptions.TimeoutError):
        return "timeout"
    if isinstance(exc, (redis.exceptions.ConnectionError, OSError)):
        return "connection"
    return "other"


def _client(host: str, port: int, timeout: float) -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No client-side retries: the drill must see every failure the NLB lets through.
    return redis.Redis(
        host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), decode_responses=True,
    )


class _Load(threading.Thread):
    def __init__(self, host: str, port: int, rate: float, stop: threading.Event, prefix: str, timeout: float) -> None:
        super().__init__(name="drill-load", daemon=True)
        self.host, self.port, self.rate, self.stop, self.prefix, self.timeout = host, port, rate, stop, prefix, timeout
        self.ops: list[Op] = []
        self.acknowledged: list[str] = []

    def run(self) -> None:
        client = _client(self.host, self.port, self.timeout)
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        i = 0
        while not self.stop.is_set():
            key = f"{self.prefix}:{i}"
            try:
                client.set(key, str(i))
                self.ops.append(Op(time.time(), "write", key, "ok"))
                self.acknowledged.append(key)
            except Exception as exc:  # every failure is data here
                self.ops.append(Op(time.time(), "write", key, _classify(exc), str(exc)[:200]))
            if self.acknowledged:
                last = self.acknowledged[-1]
                try:
                    value = client.get(last)
                    outcome = "ok" if value is not None else "stale"
                    self.ops.append(Op(time.time(), "read", last, outcome))
                except Exception as exc:
                    self.ops.append(Op(time.time(), "read", last, _classify(exc), str(exc)[:200]))
            i += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                next_at = time.monotonic()  # fell behind (a timeout): keep the rate, not the backlog
        client.close()


class _Watcher(threading.Thread):
    def __init__(self, elbv2: Any, path: DrillPath, stop: threading.Event, period: float = 0.1) -> None:
        super().__init__(name="drill-watch", daemon=True)
        self.elbv2, self.path, self.stop, self.period = elbv2, path, stop, period
        self.samples: list[Sample] = []

    def _states(self, arn: str) -> dict[str, str]:
        described = self.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return {f"{d['Target']['Id']}:{d['Target']['Port']}": d["TargetHealth"]["State"] for d in described}

    def sample(self) -> Sample:
        forward = None
        groups: dict[str, dict[str, str]] = {}
        if self.path.listener_arn:
            listener = self.elbv2.describe_listeners(ListenerArns=[self.path.listener_arn])["Listeners"][0]
            forward = forward_target(listener.get("DefaultActions", []))
            for arn in self.path.node_target_groups:
                groups[arn] = self._states(arn)
            primary = forward
        else:
            primary = self.path.target_group_arn
        if primary and primary not in groups:
            groups[primary] = self._states(primary)
        states = groups.get(primary, {}) if primary else {}
        live = frozenset(t for t, s in states.items() if s not in ("draining", "unhealthy.draining"))
        return Sample(time.time(), live, states, forward, groups)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append(self.sample())
            except Exception:  # a throttled or failed describe is a gap in the samples, not a stop
                pass
            self.stop.wait(self.period)


def forward_target(actions: list[dict[str, Any]]) -> str | None:
    """The target group a listener's default actions forward to (the heaviest, if weighted)."""
    for action in actions:
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn"):
            return str(action["TargetGroupArn"])
        groups = action.get("ForwardConfig", {}).get("TargetGroups", [])
        if groups:
            return str(max(groups, key=lambda g: g.get("Weight", 1))["TargetGroupArn"])
    return None


def probe(host: str, port: int, timeout: float) -> Probe:
    """A fresh connection through the NLB: which node answers, in which role."""
    client = _client(host, port, timeout)
    try:
        role = str(client.info("replication").get("role"))
        run_id = str(client.info("server").get("run_id"))
        return Probe(time.time(), role, run_id)
    except Exception as exc:  # a refused or reset connection is data here
        return Probe(time.time(), None, None, _classify(exc))
    finally:
        client.close()


class _Prober(threading.Thread):
    def __init__(self, host: str, port: int, stop: threading.Event, timeout: float, period: float = 0.2) -> None:
        super().__init__(name="drill-probe", daemon=True)
        self.host, self.port, self.stop, self.timeout, self.period = host, port, stop, timeout, period
        self.probes: list[Probe] = []

    def run(self) -> None:
        while not self.stop.is_set():
            self.probes.append(probe(self.host, self.port, self.timeout))
            self.stop.wait(self.period)


def _path_ready(sample: Sample, path: DrillPath) -> str | None:
    """Why the path is not ready yet, or ``None`` when every watched target is healthy."""
    if path.listener_arn and not sample.forward:
        return "the primary listener forwards to no target group"
    for arn, states in sample.groups.items():
        name = arn.rsplit(":", 1)[-1]
        if arn == (sample.forward or path.target_group_arn) and not states:
            return f"{name} has no target"
        unready = {t: s for t, s in states.items() if s != "healthy"}
        if unready:
            return f"{name}: " + ", ".join(f"{t} {s}" for t, s in sorted(unready.items()))
    if path.listener_arn:
        ready = sum(1 for arn in path.node_target_groups if sample.groups.get(arn))
        if ready < path.nodes:
            return f"{ready} of {path.nodes} cache nodes have a healthy node target group"
    return None


def wait_until_ready(
    host: str,
    port: int,
    elbv2: Any,
    path: DrillPath,
    *,
    timeout: float = 600.0,
    probes_needed: int = 10,
    op_timeout: float = 1.0,
    on_wait: Callable[[str], None] | None = None,
) -> float:
    """Wait until the path the drill measures is healthy; return how long that took.

    Healthy: every target the watcher sees healthy (none ``initial``, ``unhealthy`` or
    ``draining``), and ``probes_needed`` new connections in a row through the NLB reach a
    primary (a deregistered target can take new connections for a while after the API
    stops listing it, so the API alone does not say). Raises ``RuntimeError`` after
    ``timeout`` seconds, with what was still missing."""
    watcher = _Watcher(elbv2, path, threading.Event())
    started = time.monotonic()
    reason: str | None = "not checked yet"
    said = False
    while time.monotonic() - started < timeout:
        try:
            reason = _path_ready(watcher.sample(), path)
        except Exception as exc:  # a throttled describe: look again
            reason = f"could not describe the path: {exc}"
        if reason is None:
            answers = [probe(host, port, op_timeout) for _ in range(probes_needed)]
            wrong = [p for p in answers if p.role != "master"]
            if not wrong:
                return time.monotonic() - started
            reason = f"{len(wrong)} of {probes_needed} new connections did not reach a primary"
        if on_wait is not None and not said:
            on_wait(reason)
            said = True
        time.sleep(0.5)
    raise RuntimeError(f"the path the drill measures was not healthy within {timeout:g} s ({reason})")


def run_drill(
    *,
    host: str,
    port: int,
    elbv2: Any,
    target_group_arn: str | None = None,
    path: DrillPath | None = None,
    trigger: Callable[[], None],
    kind: str,
    rate: float = 50.0,
    duration: float = 30.0,
    failover_after: float = 5.0,
    settle: Callable[[DrillResult], bool] | None = None,
    op_timeout: float = 1.0,
    progress: Callable[[float, int, int], None] | None = None,
    deregistration_delay_s: float = 0.0,
    wait_timeout: float = 600.0,
    on_wait: Callable[[str], None] | None = None,
    watch_period: float = 0.1,
    context: dict[str, Any] | None = None,
    ready_waited: float | None = None,
) -> DrillResult:
    """Wait until the path is healthy, then run load for ``duration`` seconds, triggering
    the failover ``failover_after`` in."""
    if not 0 < failover_after < duration:
        raise ValueError("failover_after must fall inside the duration")
    if path is None:
        if target_group_arn is None:
            raise ValueError("give the target group or the path to watch")
        path = DrillPath(target_group_arn=target_group_arn)
    if ready_waited is None:
        waited = wait_until_ready(host, port, elbv2, path, timeout=wait_timeout, op_timeout=op_timeout, on_wait=on_wait)
    else:
        waited = ready_waited  # the caller waited already
    stop = threading.Event()
    prefix = f"drill:{uuid.uuid4().hex[:8]}"
    watcher = _Watcher(elbv2, path, stop, watch_period)
    before = watcher.sample()
    old_target = sorted(before.live)[0] if before.live else None
    load = _Load(host, port, rate, stop, prefix, op_timeout)
    prober = _Prober(host, port, stop, op_timeout)
    started = time.time()
    load.start()
    watcher.start()
    prober.start()
    failover_at = 0.0
    deadline = time.monotonic() + duration
    try:
        while time.monotonic() < deadline:
            elapsed = duration - (deadline - time.monotonic())
            if not failover_at and elapsed >= failover_after:
                failover_at = time.time()
                trigger()
            if progress:
                errors = sum(1 for op in load.ops if op.outcome not in ("ok",))
                progress(elapsed, len(load.ops), errors)
            time.sleep(0.1)
    finally:
        stop.set()
        load.join(10)
        watcher.join(10)
        prober.join(10)
    ended = time.time()
    new_target = _new_target(watcher.samples, failover_at, old_target)
    missing = _missing(host, port, list(load.acknowledged), op_timeout)
    return DrillResult(kind, started, failover_at, ended, list(load.ops), list(watcher.samples), old_target, new_target,
                       deregistration_delay_s, list(load.acknowledged), missing, probes=list(prober.probes),
                       waited_s=round(waited, 3), forward_before=before.forward, context=dict(context or {}))


def _new_target(samples: list[Sample], after: float, old: str | None) -> str | None:
    for s in samples:
        if s.t >= after:
            fresh = sorted(s.live - {old} if old else s.live)
            if fresh:
                return fresh[0]
    return None


def _missing(host: str, port: int, keys: list[str], timeout: float, attempts: int = 20) -> list[str]:
    """Read every acknowledged key back through the NLB, retrying while it settles."""
    for attempt in range(attempts):
        try:
            client = _client(host, port, max(timeout, 2.0))
            missing: list[str] = []
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                values = client.mget(chunk)
                missing += [k for k, v in zip(chunk, values) if v is None]
            client.close()
            return missing
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"could not read the acknowledged writes back after {attempts} attempts")


def summarise(result: DrillResult, rate: float) -> dict[str, Any]:
    t0 = result.failover_at
    ops = result.ops
    errors = Counter(op.outcome for op in ops if op.outcome not in ("ok",))
    detect_at = next((s.t for s in result.samples if s.t >= t0 and result.new_target in s.states and s.states[result.new_target] not in ("draining",)), None)
    healthy_at = next((s.t for s in result.samples if s.t >= t0 and result.new_target and s.states.get(result.new_target) == "healthy"), None)
    retarget_at = next((s.t for s in result.samples if s.t >= t0 and result.new_target and s.live == frozenset({result.new_target})), None)
    deregistered_at = next(
        (s.t for s in result.samples if s.t >= t0 and result.old_target and result.old_target not in s.live), None
    )
    writes_ok = [op.t for op in ops if op.kind == "write" and op.outcome == "ok"]
    gaps = [b - a for a, b in zip(writes_ok, writes_ok[1:]) if b >= t0 - 1.0]
    interval = 1.0 / rate
    unavailable = max([0.0, *[g - interval for g in gaps]])
    termination_at = deregistered_at + result.deregistration_delay_s if deregistered_at else None
    readonly_after = [op for op in ops if op.outcome == "readonly" and termination_at is not None and op.t > termination_at + 1.0]
    dns_flip = next((e["t"] for e in result.events if e.get("kind") == "dns.flipped" and e["t"] >= t0 - 1), None)
    notified = next((e["t"] for e in result.events if e.get("kind") == "notification.sent" and e["t"] >= t0 - 1), None)
    promoted = next((e["t"] for e in result.events if e.get("kind") == "node.promoted" and e["t"] >= t0 - 1), None)

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 3)

    measured = measure_nlb(result)
    return {
        **result.context,
        "kind": result.kind,
        "waited_for_healthy_s": result.waited_s,
        "detect_s": rel(detect_at),
        "retarget_s": rel(retarget_at),
        "healthy_s": rel(healthy_at),
        "write_unavailable_s": round(unavailable, 3),
        "ops": len(ops),
        "writes": sum(1 for op in ops if op.kind == "write"),
        "errors": dict(sorted(errors.items())),
        "readonly_errors": errors.get("readonly", 0),
        "readonly_after_termination": len(readonly_after),
        "lost_acknowledged_writes": len(result.missing),
        "acknowledged_writes": len(result.acknowledged),
        "old_target": result.old_target,
        "new_target": result.new_target,
        "dns_flip_s": rel(dns_flip),
        "notification_s": rel(notified),
        "promoted_s": rel(promoted),
        "deregistered_s": rel(deregistered_at),
        "duration_s": round(result.ended - result.started, 3),
        **measured,
    }


def _old_run_id(result: DrillResult) -> str | None:
    before = [p for p in result.probes if p.t < result.failover_at and p.role == "master"]
    return before[-1].run_id if before else None


def measure_nlb(result: DrillResult) -> dict[str, Any]:
    """What the drill saw of the NLB's own timings (see the module docstring)."""
    t0 = result.failover_at
    old = _old_run_id(result)
    reached = [p for p in result.probes if p.t >= t0 and p.role == "master" and p.run_id and p.run_id != old]
    switched_at = next((s.t for s in result.samples if s.t >= t0 and s.forward and s.forward != result.forward_before), None)
    propagation = None
    if switched_at is not None:
        first = next((p.t for p in reached if p.t >= switched_at), None)
        propagation = None if first is None else round(first - switched_at, 3)
    registration, target, pending = _registration(result.samples, t0)
    return {
        "new_primary_reached_s": round(reached[0].t - t0, 3) if reached else None,
        "listener_switched_s": None if switched_at is None else round(switched_at - t0, 3),
        "forward_before": result.forward_before,
        "forward_after": next((s.forward for s in reversed(result.samples) if s.forward), None),
        "measured_listener_propagation_s": propagation,
        "measured_registration_s": registration,
        "measured_registration_target": target,
        "registration_pending_s": pending,
        "probes": len(result.probes),
    }


def _registration(samples: list[Sample], t0: float) -> tuple[float | None, str | None, float | None]:
    """The first target seen newly registered after ``t0`` and how long until it was
    healthy: (seconds, "group target", None), or (None, target, seconds so far) when it was
    still not healthy at the end, or (None, None, None) when no registration was seen."""
    seen: dict[tuple[str, str], str] = {}
    registered: dict[tuple[str, str], float] = {}
    pending: tuple[str, float] | None = None
    for s in samples:
        for group, states in s.groups.items():
            for target, state in states.items():
                key = (group, target)
                previous = seen.get(key)
                seen[key] = state
                if s.t < t0:
                    continue
                if state == "initial" and previous != "initial":
                    registered.setdefault(key, s.t)
                elif state == "healthy" and key in registered:
                    name = f"{group.rsplit(':', 1)[-1]} {target}"
                    return round(s.t - registered[key], 3), name, None
        for key, at in registered.items():
            pending = (f"{key[0].rsplit(':', 1)[-1]} {key[1]}", s.t - at)
    if pending is None:
        return None, None, None
    return None, pending[0], round(pending[1], 3)


def timeline(result: DrillResult) -> list[tuple[float, str]]:
    """Readable milestones relative to the failover start."""
    t0 = result.failover_at
    lines: list[tuple[float, str]] = [(0.0, f"failover triggered ({result.kind})")]
    for e in result.events:
        if e["t"] >= t0 - 0.5 and e["kind"] not in ("controller.start",):
            detail = {k: v for k, v in e.items() if k not in ("t", "kind", "result", "started")}
            lines.append((e["t"] - t0, f"{e['kind']} {detail}" if detail else e["kind"]))
    first_error = next((op for op in result.ops if op.t >= t0 - 1 and op.outcome != "ok"), None)
    if first_error:
        lines.append((first_error.t - t0, f"first client error: {first_error.outcome}"))
    last_error = next((op for op in reversed(result.ops) if op.outcome != "ok"), None)
    if last_error:
        lines.append((last_error.t - t0, f"last client error: {last_error.outcome}"))
    previous: frozenset[str] | None = None
    for s in result.samples:
        if s.t >= t0 and s.live != previous:
            lines.append((s.t - t0, "target group: " + (", ".join(f"{t} {s.states[t]}" for t in sorted(s.states)) or "(empty)")))
            previous = s.live
    return sorted(lines)


def label_positions(marks: list[tuple[float | None, str]], span: float, min_gap: float = 0.03) -> list[tuple[float, str, float]]:
    """Where each milestone's label goes: (x, text, height as a fraction of the axis).
    Milestones at the same moment share one label; a label closer than ``min_gap`` of the
    time span to others takes the highest of three heights none of them uses, so labels of
    near-simultaneous milestones do not overlap."""
    merged: list[tuple[float, str]] = []
    for x, label in sorted(((float(x), label) for x, label in marks if x is not None), key=lambda m: m[0]):
        if merged and x - merged[-1][0] < 0.001 * span:
            merged[-1] = (merged[-1][0], f"{merged[-1][1]} / {label}")
        else:
            merged.append((x, label))
    heights = (0.95, 0.65, 0.35)
    placed: list[tuple[float, str, float]] = []
    for x, label in merged:
        taken = {y for px, _, y in placed if x - px < min_gap * span}
        y = next((h for h in heights if h not in taken), heights[len(placed) % len(heights)])
        placed.append((x, label, y))
    return placed


def plot(result: DrillResult, path: str) -> None:
    """Operations per 100 ms coloured by outcome, failover milestones marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = result.failover_at
    outcomes = ["ok", "readonly", "connection", "timeout", "stale", "other"]
    colours = {"ok": "#2ca02c", "readonly": "#d62728", "connection": "#ff7f0e", "timeout": "#9467bd", "stale": "#8c564b", "other": "#7f7f7f"}
    start = min((op.t for op in result.ops), default=t0) - t0
    end = max((op.t for op in result.ops), default=t0) - t0
    bins = [start + i * 0.1 for i in range(int((end - start) / 0.1) + 2)]
    counts = {o: [0] * len(bins) for o in outcomes}
    for op in result.ops:
        index = int((op.t - t0 - start) / 0.1)
        counts[op.outcome if op.outcome in counts else "other"][min(index, len(bins) - 1)] += 1
    fig, ax = plt.subplots(figsize=(12, 4.5))
    bottom = [0] * len(bins)
    for outcome in outcomes:
        if any(counts[outcome]):
            ax.bar(bins, counts[outcome], width=0.1, bottom=bottom, color=colours[outcome], label=outcome, align="edge")
            bottom = [b + c for b, c in zip(bottom, counts[outcome])]
    summary = summarise(result, rate=max(1.0, len(result.ops) / max(1e-6, result.ended - result.started) / 2))
    marks = [(0.0, "failover"), (summary["dns_flip_s"], "DNS flip"), (summary["notification_s"], "notification"),
             (summary["detect_s"], "registered"), (summary["retarget_s"], "retargeted")]
    for x, label, y in label_positions(marks, span=max(1e-6, end - start)):
        ax.axvline(x, color="black", linestyle="--", linewidth=0.8)
        ax.text(x, ax.get_ylim()[1] * y, f" {label}", rotation=90, va="top", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    ax.set_xlabel("seconds from failover start")
    ax.set_ylabel("operations per 100 ms")
    ax.set_title(f"cachebridge drill: {result.kind} failover")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # outside: never over bars or labels
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

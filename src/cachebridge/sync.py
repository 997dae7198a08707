"""``sync``: the one reconcile pass that the CLI and the Lambda handler share.

For each binding: read the target group (cached details, live health), read the source,
``plan``, then apply the plan: register first, deregister only if every register
succeeded. Each binding ends with a ``BindingResult``; one failing binding never stops
the others.

On an ElastiCache event the source may not have changed yet (``FailoverComplete`` can
arrive before DNS or ``CurrentRole`` flips), so an event trigger re-reads the source
every ``poll_interval_s`` for up to ``event_wait_s`` until it differs from what is
registered, then applies.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import Binding, Config, ElastiCacheSourceSpec
from .errors import CacheBridgeError
from .nlb import TargetGroupInfo, TargetGroups, risky_settings
from .planner import Plan, plan
from .sources import Reading, Sources
from .targets import Target, TargetHealth

__all__ = ["Trigger", "BindingResult", "SyncReport", "sync", "select_bindings"]

Status = Literal["in_sync", "changed", "error", "skipped", "dry_run"]


@dataclass(frozen=True)
class Trigger:
    """Why a pass runs. ``wait_for_change`` asks for the bounded re-read loop."""

    kind: Literal["manual", "schedule", "event", "invoke"] = "manual"
    replication_group: str | None = None
    event: str | None = None
    wait_for_change: bool = False


@dataclass
class BindingResult:
    name: str
    source: str
    target_group: str
    port: int
    status: Status = "in_sync"
    desired: tuple[Target, ...] = ()
    registered_before: tuple[Target, ...] = ()
    register: tuple[Target, ...] = ()
    deregister: tuple[Target, ...] = ()
    registered_after: tuple[Target, ...] = ()
    deferred: tuple[Target, ...] = ()
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    target_group_arn: str | None = None
    health: dict[str, str] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    drift: int = 0
    source_error: bool = False
    ttl: int | None = None
    polls: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("in_sync", "changed", "dry_run")

    @property
    def changes(self) -> int:
        return 0 if self.status == "dry_run" else len(self.register) + len(self.deregister)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "target_group": self.target_group,
            "port": self.port,
            "desired": [str(t) for t in self.desired],
            "registered_before": [str(t) for t in self.registered_before],
            "register": [str(t) for t in self.register],
            "deregister": [str(t) for t in self.deregister],
            "registered_after": [str(t) for t in self.registered_after],
            "status": self.status,
            "error": self.error,
            "warnings": list(self.warnings),
            "duration_ms": round(self.duration_ms, 1),
            "target_group_arn": self.target_group_arn,
            "health": dict(self.health),
            "deferred": [str(t) for t in self.deferred],
            "drift": self.drift,
            "ttl": self.ttl,
            "layout": "retarget",
        }


@dataclass
class SyncReport:
    bindings: list[BindingResult]
    trigger: Trigger = Trigger()

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.bindings)

    @property
    def failed(self) -> list[BindingResult]:
        return [b for b in self.bindings if not b.ok]

    def to_json(self) -> dict[str, Any]:
        return {"bindings": [b.to_json() for b in self.bindings]}


def select_bindings(config: Config, trigger: Trigger) -> tuple[Binding, ...]:
    """The bindings an event concerns, in configuration order: elasticache sources reading
    the named replication group, and dns sources whose ElastiCache hostname names it."""
    if trigger.replication_group is None:
        return config.bindings
    named = trigger.replication_group.lower()
    return tuple(
        b for b in config.bindings
        if (_names_group(named, b.source.replication_group_id) if isinstance(b.source, ElastiCacheSourceSpec)
            else _dns_names_group(named, b.source.host))
    )


# Member clusters are named <group>-NNN (cluster mode disabled) or <group>-NNNN-NNN.
_MEMBER_SUFFIX = r"(?:-\d{3,4}){1,2}"


def _is_member(cluster_id: str, rg_id: str) -> bool:
    return re.fullmatch(re.escape(rg_id) + _MEMBER_SUFFIX, cluster_id) is not None


def _names_group(named: str, rg_id: str) -> bool:
    # Events name the group ("orders") or one of its nodes ("orders-002", "orders-0001-002");
    # a different group that merely shares the prefix ("orders-archive") is not named.
    return named == rg_id or _is_member(named, rg_id)


def _dns_names_group(named: str, host: str) -> bool:
    # ElastiCache endpoints embed the group id: master.<rg>.<hash>.<region>.cache.amazonaws.com
    # (and <rg>.<hash>.ng.0001.<region>... for older ones); node endpoints start with the
    # node id (<rg>-001.<hash>.<region>...), which an event naming the group also concerns.
    if "cache.amazonaws.com" not in host:
        return False
    labels = host.split(".")[:2]
    return any(_names_group(named, label) or _is_member(label, named) for label in labels)


class _Work:
    """One binding in flight."""

    def __init__(self, binding: Binding) -> None:
        self.binding = binding
        self.result = BindingResult(binding.name, str(binding.source), binding.target_group, binding.port)
        self.started = time.perf_counter()
        self.info: TargetGroupInfo | None = None
        self.actual: dict[Target, TargetHealth] = {}
        self.desired: frozenset[Target] | None = None
        self.reading: Reading | None = None
        self.source_error: str | None = None

    @property
    def actual_live(self) -> frozenset[Target]:
        return frozenset(t for t, h in self.actual.items() if not h.draining)

    def finish(self) -> BindingResult:
        self.result.duration_ms = (time.perf_counter() - self.started) * 1000
        return self.result


def sync(
    config: Config,
    *,
    target_groups: TargetGroups,
    sources: Sources,
    dry_run: bool = False,
    trigger: Trigger = Trigger(),
    bindings: Sequence[Binding] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    deadline: float | None = None,
) -> SyncReport:
    """Reconcile every binding (or ``bindings``) once.

    ``deadline`` is a ``clock()`` value after which the event wait loop stops early and
    bindings not yet read are reported ``skipped`` (the Lambda handler passes its remaining
    time, less a margin)."""
    settings = config.settings
    selected = tuple(bindings) if bindings is not None else select_bindings(config, trigger)
    if any(b.layout in ("switch", "cluster") for b in selected):
        from .cluster import sync_cluster  # its own pass; see cluster.py
        from .switch import sync_switch  # its own pass; see switch.py

        switched: dict[str, BindingResult] = {b.name: sync_switch(b, target_groups=target_groups, sources=sources, settings=settings, dry_run=dry_run, trigger=trigger, clock=clock, sleep=sleep, deadline=deadline) for b in selected if b.layout == "switch"}
        switched.update({b.name: sync_cluster(b, target_groups=target_groups, sources=sources, settings=settings, dry_run=dry_run) for b in selected if b.layout == "cluster"})
        report = sync(config, target_groups=target_groups, sources=sources, dry_run=dry_run, trigger=trigger, bindings=[b for b in selected if b.layout == "retarget"], clock=clock, sleep=sleep, deadline=deadline)
        retargeted = {b.name: b for b in report.bindings}
        return SyncReport([switched.get(b.name) or retargeted[b.name] for b in selected], trigger)
    works = [_Work(b) for b in selected]
    owners: dict[str, str] = {}

    # Target group side first: details (cached across warm invocations) and live health.
    target_groups.prefetch(w.binding.target_group for w in works)
    for w in works:
        try:
            w.info = target_groups.info(w.binding.target_group)
            w.result.target_group_arn = w.info.arn
            if w.info.arn in owners:
                raise CacheBridgeError(
                    f"target group {w.info.name} is also the target of binding {owners[w.info.arn]!r}; "
                    "a target group belongs to one binding"
                )
            owners[w.info.arn] = w.binding.name
            w.result.warnings.extend(risky_settings(w.info))
            w.actual = target_groups.health(w.info.arn)
        except CacheBridgeError as exc:
            w.result.status = "error"
            w.result.error = str(exc)
        except Exception as exc:  # one binding's surprise must not stop the others
            w.result.status = "error"
            w.result.error = f"unexpected error reading target group {w.binding.target_group}: {exc!r}"
        if w.info is not None and w.info.port and w.info.port != w.binding.port and w.result.status != "error":
            w.result.warnings.append(
                f"binding port {w.binding.port} differs from the target group's port {w.info.port}; "
                "targets are registered on the binding's port"
            )
        w.result.registered_before = tuple(sorted(w.actual_live))
        w.result.health = {str(t): h.state.value for t, h in sorted(w.actual.items())}

    pending = [w for w in works if w.result.status != "error"]
    start = clock()
    wait_until = start + settings.event_wait_s if trigger.wait_for_change else start
    if deadline is not None:
        wait_until = min(wait_until, deadline)

    # Read sources; on an event, keep re-reading the unchanged ones until the wait ends.
    while pending:
        sources.new_pass()
        still_waiting: list[_Work] = []
        for w in pending:
            if deadline is not None and w.result.polls == 0 and clock() >= deadline:
                # Out of time before this binding was even read (a slow source ahead of it):
                # leave it untouched and report it, rather than be cut off mid-write.
                w.result.status = "skipped"
                w.result.error = "not reached before the deadline; the next run syncs it"
                w.result.registered_after = w.result.registered_before
                continue
            _read_source(w, sources)
            w.result.polls += 1
            changed = w.desired is not None and w.desired != w.actual_live
            if changed or clock() >= wait_until:
                _plan_and_apply(w, target_groups, settings.max_changes, dry_run)
            else:
                still_waiting.append(w)
        pending = still_waiting
        if pending:
            remaining = wait_until - clock()
            if remaining <= 0:
                continue  # the next round applies whatever the source says now
            sleep(min(settings.poll_interval_s, remaining))

    return SyncReport([w.finish() for w in works], trigger)


def _read_source(w: _Work, sources: Sources) -> None:
    families = w.info.families if w.info is not None else (4, 6)
    try:
        reading = sources.read(w.binding.source, families)
    except CacheBridgeError as exc:
        w.desired, w.reading, w.source_error = None, None, str(exc)
        return
    except Exception as exc:  # a bug or an unexpected library error must not end the pass
        w.desired, w.reading, w.source_error = None, None, f"unexpected error reading {w.binding.source}: {exc!r}"
        return
    if reading.port is not None and reading.port != w.binding.port:
        # Registering the right address on the wrong port would replace a working target
        # with a dead one; refuse and say which port to configure.
        w.desired, w.reading = None, None
        w.source_error = (
            f"{reading.source} listens on port {reading.port} but binding {w.binding.name!r} registers port "
            f"{w.binding.port}; set port = {reading.port}"
        )
        return
    w.reading, w.source_error = reading, None
    w.desired = frozenset(Target(ip, w.binding.port) for ip in reading.addresses)


def _plan_and_apply(w: _Work, target_groups: TargetGroups, max_changes: int, dry_run: bool) -> None:
    r = w.result
    p: Plan = plan(w.desired, w.actual, max_changes=max_changes)
    r.desired = tuple(sorted(w.desired or ()))
    r.register, r.deregister, r.deferred, r.reasons = p.register, p.deregister, p.deferred, p.reasons
    r.drift = p.drift
    r.ttl = w.reading.ttl if w.reading else None
    if w.source_error is not None:
        r.status, r.error, r.source_error = "error", w.source_error, True
        r.registered_after = r.registered_before
        return
    if p.deferred:
        r.warnings.append(f"{len(p.deferred)} change(s) over max_changes={max_changes} deferred to the next run")
    if dry_run:
        r.status = "dry_run"
        r.registered_after = r.registered_before
        return
    if p.empty:
        r.status = "in_sync"
        r.registered_after = r.registered_before
        return
    assert w.info is not None
    live = set(w.actual_live)
    try:
        if p.register:
            target_groups.register(w.info, p.register)
            live.update(p.register)
    except Exception as exc:
        # Rule 5: a failed register means no deregister in this run. ``register`` and
        # ``deregister`` report what was done, so neither lists anything here.
        planned = ", ".join(map(str, p.register))
        r.status, r.error = "error", f"registering {planned} failed: {exc} (nothing deregistered)"
        r.register, r.deregister = (), ()
        r.registered_after = tuple(sorted(live))
        return
    try:
        if p.deregister:
            target_groups.deregister(w.info, p.deregister)
            live.difference_update(p.deregister)
    except Exception as exc:
        planned = ", ".join(map(str, p.deregister))
        r.status, r.error = "error", f"deregistering {planned} failed: {exc}"
        r.deregister = ()
        r.registered_after = tuple(sorted(live))
        return
    r.status = "changed"
    r.registered_after = tuple(sorted(live))

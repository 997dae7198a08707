"""The switch pass: one reconcile of a ``layout = "switch"`` binding (``sync`` dispatches here).

The switch layout gives each cache node its own IP target group (a *node slot*), holding
that node's address permanently, and switches the primary listener's default action to
the current primary's slot on failover. ElastiCache keeps a node's DNS name and IP across
node replacement in a VPC, so what changes on failover is the role, not the address, and
registration (which "can take a few minutes" on AWS) never sits on the failover path.

Why per-node listeners (the template gives each slot its own listener), not one weighted
forward action:

- A target group is health-checked only once a listener uses it: "After you specify a
  target group in a rule for a listener, the load balancer continually monitors the health
  of all targets registered with the target group" (Elastic Load Balancing, "Target groups
  for your Network Load Balancers"); a group no listener uses reports its targets
  ``unused`` (``Target.NotInUse``). A slot must be healthy *before* the failover, so every
  slot must be attached to a listener.
- NLBs now accept weighted forward actions over several target groups ("Network Load
  Balancers now support Weighted Target Groups", AWS Networking & Content Delivery blog;
  weights 0-999; the NLB listener guide shows a ModifyListener with two weighted groups),
  but the CloudFormation reference for ``ForwardConfig`` still says "For Network Load
  Balancers, you can specify a single target group", and nothing documents whether a
  group with weight 0 is health-checked. Per-node listeners rely on documented
  behaviour only, and also give clients direct access to each node (role-aware clients,
  cluster mode). Their limit: 50 listeners per NLB, not adjustable ("Quotas for your Network
  Load Balancers"), so at most 48 node slots beside the primary and reader listeners.

One pass: read the replication group (roles, node names resolved), each slot's tags and
target health and the listener's default action; ``switch_planner.plan_switch``; apply:

1. Switch: ModifyListener to the new primary's slot. "When the target group for the
   default action of a TCP or TLS listener is updated, new connections are routed to the
   newly configured target group ... active connections ... remain associated to the
   target in the original target group for up to one hour"; "Connection termination on
   deregistration is not applied when updating the listener" (Elastic Load Balancing,
   "Update a listener for your Network Load Balancer"). If it fails, nothing else is
   applied in this pass.
2. Tags of newly assigned slots, registrations.
3. The cut, ``listener_settle_s`` after the switch (the planner's rule 7): the switch time
   is tagged on the demoted primary's slot (marked, without a time, just before the switch,
   so a failure to record the time leaves a later run to record it and cut after that), the pass waits the settle time if the
   invocation's deadline leaves room (otherwise a later run cuts), then deregisters the
   demoted primary from its own slot (the node groups have deregistration delay 0 and
   connection termination on), which resets the connections still open to it, through the
   primary listener or its own; tag the slot with the time. Cutting at once would be
   worse than not cutting: clients reconnect while the listener update propagates, reach
   the old node through the old default action, and a deregistered target keeps taking
   new connections for "a few minutes" with nothing to reset them.
4. Deregistrations of stale targets, untag freed slots, and the rejoin of a cut node once
   ``rejoin_after_s`` has passed (see the planner's rule 6 for why it is not registered
   again at once: connections that still follow the old default action while the update
   propagates must find no target rather than a read-only one).

On an ElastiCache event the roles may not have flipped yet: the pass re-reads the source
every ``poll_interval_s`` for up to ``event_wait_s`` until the primary's slot differs
from the listener's forward target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import Binding, ElastiCacheSourceSpec, Settings
from .errors import CacheBridgeError, SourceError, SourceUnsupported
from .nlb import OWNER_TAG, TargetGroupInfo, TargetGroups, risky_settings
from .node_slots import SlotWrites, guarded_pass, slot_health, writing_slots
from .sources import Sources
from .switch_planner import CUT_TAG, NODE_TAG, SWITCH_TAG, SWITCH_UNKNOWN, Node, Slot, SwitchPlan, plan_switch
from .sync import BindingResult, Trigger
from .targets import Target

__all__ = ["SwitchResult", "read_nodes", "sync_switch"]


@dataclass
class SwitchResult(BindingResult):
    """A ``BindingResult`` plus what the switch layout adds to the report."""

    layout: str = "switch"
    listener: str | None = None
    forward_before: str | None = None
    forward_after: str | None = None
    switched: bool = False
    cut: tuple[Target, ...] = ()
    cut_deferred: bool = False  # the cut waits for a later run (settle time beyond the deadline)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    plan: SwitchPlan | None = None

    @property
    def changes(self) -> int:
        return super().changes + (int(self.switched) if self.status != "dry_run" else 0)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out.update(
            layout="switch",
            listener=self.listener,
            forward_before=self.forward_before,
            forward_after=self.forward_after,
            switched=self.switched,
            cut=[str(t) for t in self.cut],
            cut_deferred=self.cut_deferred,
            nodes=self.nodes,
        )
        return out


def read_nodes(sources: Sources, spec: ElastiCacheSourceSpec, port: int, families: Sequence[int] = (4, 6)) -> tuple[Node, ...]:
    """Every member of the replication group with its role and its one address.

    Raises ``SourceError`` rather than return part of the group: a missing node would look
    like a slot to free."""
    rg = sources.replication_group(spec.replication_group_id)
    where = str(spec)
    if rg.cluster_enabled:
        raise SourceUnsupported(f"{where}: cluster mode is enabled; the switch layout follows cluster-mode-disabled groups")
    if not rg.members:
        raise SourceError(f"{where}: the group lists no member (status {rg.status})")
    nodes: list[Node] = []
    for m in rg.members:
        if m.role not in ("primary", "replica"):
            raise SourceError(f"{where}: member {m.cache_cluster_id} has no role yet (status {rg.status})")
        if not m.address:
            raise SourceError(f"{where}: member {m.cache_cluster_id} has no endpoint yet (status {rg.status})")
        if m.port is not None and m.port != port:
            raise SourceError(f"{where}: member {m.cache_cluster_id} listens on port {m.port}, not {port}; set port = {m.port}")
        try:
            resolution = sources.resolver.resolve(m.address, families)
        except SourceError as exc:
            raise type(exc)(f"{where}: member {m.cache_cluster_id}: {exc}") from None
        if len(resolution.addresses) != 1:
            raise SourceError(f"{where}: member {m.cache_cluster_id} resolves to {', '.join(resolution.addresses)}; a node has one address")
        nodes.append(Node(m.cache_cluster_id, m.role, Target(resolution.addresses[0], port)))
    return tuple(nodes)


def wall_clock() -> float:
    """Unix time: the cut's tag and the rejoin hold compare it across runs (and hosts),
    which a monotonic clock cannot do."""
    return time.time()


@dataclass
class _Read:
    infos: list[TargetGroupInfo]
    slots: list[Slot]
    forward: str | None
    owners: dict[str, str] = field(default_factory=dict)  # slot ARN -> its cachebridge:owner tag


def _read_nlb(binding: Binding, target_groups: TargetGroups) -> _Read:
    assert binding.listener is not None
    infos = [target_groups.info(name) for name in binding.node_target_groups]
    tags = target_groups.tags([i.arn for i in infos])
    slots = []
    for info in infos:
        tag = tags.get(info.arn, {})
        # Unreadable: treat the hold, and the settle time, as long over.
        cut_at = _unix_tag(tag, CUT_TAG)
        unknown = tag.get(SWITCH_TAG) == SWITCH_UNKNOWN
        switched_at = None if unknown else _unix_tag(tag, SWITCH_TAG)
        slots.append(Slot(info.arn, tag.get(NODE_TAG) or None, target_groups.health(info.arn), cut_at, switched_at, unknown))
    forward = target_groups.listener(binding.listener).forward
    owners = {arn: tag[OWNER_TAG] for arn, tag in tags.items() if tag.get(OWNER_TAG)}
    return _Read(infos, slots, forward, owners)


def _unix_tag(tags: dict[str, str], key: str) -> float | None:
    try:
        return float(tags[key]) if tags.get(key) else None
    except ValueError:
        return 0.0


def sync_switch(
    binding: Binding,
    *,
    target_groups: TargetGroups,
    sources: Sources,
    settings: Settings,
    dry_run: bool = False,
    trigger: Trigger | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    deadline: float | None = None,
    wall: Callable[[], float] | None = None,
    call_budget_s: float = 0.0,
    force: bool = False,
) -> SwitchResult:
    """Reconcile one switch binding; never raises for AWS or source trouble (the result
    says ``error``).

    ``clock``, ``sleep`` and ``deadline`` (in ``clock``'s time) bound the waits; ``wall``
    is the Unix time the tags hold (default ``wall_clock``); ``call_budget_s`` is kept free before the deadline
    for the cut's own calls. A slot group tagged ``cachebridge:owner`` by another stack
    (not ``settings.controller_id``) is never written unless ``force``: the binding ends in
    error with nothing written, as a retarget binding's group does."""
    result = SwitchResult(binding.name, str(binding.source), ",".join(binding.node_target_groups), binding.port)
    result.listener = binding.listener
    return guarded_pass(
        result, "switch",
        lambda: _sync(binding, result, target_groups, sources, settings, dry_run, trigger, clock, sleep, deadline, wall or wall_clock, call_budget_s, force),
    )


def _sync(
    binding: Binding,
    r: SwitchResult,
    target_groups: TargetGroups,
    sources: Sources,
    settings: Settings,
    dry_run: bool,
    trigger: Trigger | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    deadline: float | None,
    wall: Callable[[], float],
    call_budget_s: float,
    force: bool = False,
) -> None:
    assert isinstance(binding.source, ElastiCacheSourceSpec)
    read = _read_nlb(binding, target_groups)
    for info in read.infos:
        r.warnings.extend(f"{info.name}: {w}" for w in risky_settings(info))
    r.forward_before = r.forward_after = read.forward
    r.target_group_arn = read.forward
    live = {t for s in read.slots for t in s.live}
    r.registered_before = tuple(sorted(live))
    names = {i.arn: i.name for i in read.infos}
    r.health = {f"{names[s.arn]} {t}": h.state.value for s in read.slots for t, h in sorted(s.actual.items())}
    families = read.infos[0].families if read.infos else (4, 6)

    wait_until = clock() + (settings.event_wait_s if trigger is not None and trigger.wait_for_change else 0.0)
    if deadline is not None:
        wait_until = min(wait_until, deadline)
    while True:
        sources.new_pass()
        r.polls += 1
        try:
            nodes: tuple[Node, ...] | None = read_nodes(sources, binding.source, binding.port, families)
            source_error = None
        except SourceError as exc:
            nodes, source_error = None, str(exc)
        p = plan_switch(
            nodes, read.slots, read.forward, now=wall(),
            rejoin_after_s=settings.rejoin_after_s, listener_settle_s=settings.listener_settle_s,
        )
        if p.switch or clock() >= wait_until:
            break
        sleep(max(0.0, min(settings.poll_interval_s, wait_until - clock())))

    r.plan = p
    r.reasons = p.reasons
    r.drift = p.drift
    r.desired = tuple(sorted(n.target for n in nodes or ()))
    r.forward_after = p.forward_after
    r.nodes = _nodes_report(nodes or (), p, read.slots)
    if p.unplaced:
        r.warnings.append("no free node slot for " + ", ".join(p.unplaced))
    if not p.blocked and p.primary_slot is not None and p.forward_after != p.primary_slot:
        r.warnings.append(f"the primary listener still forwards to {p.forward_after}, not the primary's {p.primary_slot}: " + "; ".join(x for x in p.reasons if "held" in x))
    if source_error is not None or p.blocked:
        r.status, r.error, r.source_error = "error", source_error or "; ".join(p.reasons), source_error is not None
        r.forward_after = read.forward
        return
    foreign = {names[arn]: owner for arn, owner in read.owners.items() if owner != settings.controller_id}
    for name, owner in sorted(foreign.items()):
        r.warnings.append(f"target group {name} is owned by stack {owner!r} (tag {OWNER_TAG}); its own controller keeps it in sync")
    r.register, r.deregister, r.cut = p.register, p.deregister, p.cut
    if dry_run:
        r.status = "dry_run"
        r.forward_after = read.forward
        r.registered_after = r.registered_before
        return
    r.register, r.deregister, r.cut = (), (), ()
    if p.empty:
        r.status = "in_sync"
        r.registered_after = r.registered_before
        return
    if foreign and not force:
        r.status, r.forward_after, r.registered_after = "error", read.forward, r.registered_before
        r.error = (
            f"target group(s) {', '.join(sorted(foreign))} owned by another stack (tag {OWNER_TAG}): nothing written; "
            "let that stack's controller sync them, or pass --force to write them anyway"
        )
        return
    # Room for the settle wait and then the cut's tag and deregistration at their worst (what
    # follows can fail or be cut short without harm: the tags make a later run finish it).
    room = None if deadline is None else lambda wait: clock() + wait + 2 * call_budget_s <= deadline
    apply(p, binding, target_groups, r, {i.arn: i for i in read.infos}, live, wall=wall, sleep=sleep, room=room)


def apply(
    p: SwitchPlan,
    binding: Binding,
    target_groups: TargetGroups,
    r: SwitchResult,
    infos: dict[str, TargetGroupInfo],
    live: set[Target],
    *,
    wall: Callable[[], float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    room: Callable[[float], bool] | None = None,
) -> None:
    """Apply a plan in the order the planner's rules 4 and 7 ask for; ``r`` records what was
    done. ``room(wait)`` says whether the invocation can wait that long before the cut
    (None: no deadline)."""
    assert binding.listener is not None
    wall = wall or wall_clock
    r.registered_after = tuple(sorted(live))
    if p.switch:
        assert p.forward_after is not None
        marked = p.cut_slot is not None and _mark_switching(target_groups, p.cut_slot, r)
        try:
            target_groups.forward(binding.listener, p.forward_after)
        except Exception as exc:
            r.status, r.error = "error", f"switching {binding.listener} to {p.forward_after} failed: {exc} (nothing else changed)"
            r.forward_after = p.forward_before
            if marked and p.cut_slot is not None:
                _unmark_switching(target_groups, p.cut_slot)
            return
        r.switched = True
        r.forward_after = p.forward_after
        r.target_group_arn = p.forward_after
    with writing_slots(r, SlotWrites(target_groups, infos, live), lambda exc: f"{exc} (after the switch)" if r.switched else str(exc)) as w:
        if p.switch and p.cut_slot is not None:
            # Recorded before anything else: whatever happens next in this run, a later
            # run finds the cut pending and performs it once the settle time has passed.
            target_groups.set_tags(p.cut_slot, {SWITCH_TAG: f"{wall():.3f}"})
        for s in p.slots:
            if s.stamp:
                target_groups.set_tags(s.arn, {SWITCH_TAG: f"{wall():.3f}"})
                r.warnings.append(
                    f"{s.arn}: the switch time was not recorded after the switch; recorded now, the cut follows listener_settle_s later"
                )
        for s in p.slots:
            if s.tag and s.node:
                target_groups.set_tags(s.arn, {NODE_TAG: s.node})
            if s.register:
                w.register(s.arn, s.register)
            if s.rejoin:
                target_groups.remove_tags(s.arn, [CUT_TAG])
        cut = bool(p.cut) and p.cut_slot is not None
        wait = max(0.0, (p.cut_due or 0.0) - wall()) if cut else 0.0
        if cut and wait > 0 and room is not None and not room(wait):
            cut = False
            r.cut_deferred = True
            r.warnings.append(f"cut of {', '.join(map(str, p.cut))} left to a later run: the settle time ({wait:.1f} s) does not fit before the deadline")
        if cut and p.cut_slot is not None:
            if wait > 0:
                sleep(wait)
            # Tagged first: if the deregistration then fails, the next run does not put the
            # node straight back (and, the switch tag still there, cuts again); if the tag
            # fails, nothing was cut yet.
            target_groups.set_tags(p.cut_slot, {CUT_TAG: f"{wall():.0f}"})
            w.deregister(p.cut_slot, p.cut)
            r.cut = p.cut
            target_groups.remove_tags(p.cut_slot, [SWITCH_TAG])
        for s in p.slots:
            if s.deregister:
                w.deregister(s.arn, s.deregister)
            if s.unmark:
                target_groups.remove_tags(s.arn, [SWITCH_TAG])
            if s.untag:
                target_groups.remove_tags(s.arn, [NODE_TAG, CUT_TAG, SWITCH_TAG])


def _mark_switching(target_groups: TargetGroups, arn: str, r: SwitchResult) -> bool:
    """Tag the slot the listener is about to leave before the switch: should recording the
    switch time after it fail, a later run still finds the cut to make (the planner's rule
    7). A failure here does not hold the switch back: only the primary takes writes."""
    try:
        target_groups.set_tags(arn, {SWITCH_TAG: SWITCH_UNKNOWN})
    except CacheBridgeError as exc:
        r.warnings.append(f"{arn}: could not mark the switch before it: {exc}")
        return False
    return True


def _unmark_switching(target_groups: TargetGroups, arn: str) -> None:
    # The listener still forwards to the slot: a later run drops the mark anyway (rule 7).
    try:
        target_groups.remove_tags(arn, [SWITCH_TAG])
    except CacheBridgeError:
        pass


def _nodes_report(nodes: Sequence[Node], p: SwitchPlan, slots: Sequence[Slot]) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for sp in p.slots:
        if sp.node is None:
            continue
        node = next((n for n in nodes if n.cluster_id == sp.node), None)
        report[sp.node] = {
            "target_group": sp.arn,
            "target": str(node.target) if node else None,
            "role": node.role if node else None,
            "health": slot_health(slots, sp.arn, node.target if node else None),
        }
    return report

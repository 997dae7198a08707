"""The pure planner of the switch layout: (nodes, node slots, listener, now) -> plan.
No I/O, no clock (``now`` is an input), no logging.

In the switch layout every cache node has its own IP target group (a *node slot*) that
holds that node's address all the time, and the primary listener's default action forwards
to the slot of the current primary. The desired NLB state is: each slot's membership (its
node's ``Target``, or nothing for a free slot) plus the listener's forward target.

The safety rules of the switch layout live here and only here, in the form of
``planner.plan``'s:

1. A failed source (``nodes is None``), or an answer without exactly one primary, plans
   nothing at all: no switch, no tag, no registration, no deregistration.
2. Never switch to a slot whose target is not ``healthy`` while the slot the listener
   forwards to has a healthy target. When neither is healthy, switch to the true primary
   anyway: the current target is then a replica (it would answer every write with
   READONLY) or dead, and the primary is the only node that can take writes; if the NLB
   fails open for that group, connections reach it at once, and they do as soon as its
   health checks pass otherwise. Staying would only keep clients on a node that cannot
   serve them.
3. Plans are deterministic (sorted tuples, slots in configuration order) and an applied
   plan is a no-op when planned again with the same ``now``.
4. A switch is applied first; the cut of the demoted primary's open connections
   (deregister it from its own slot) is only applied after the switch succeeded, and
   nothing else in the plan is applied when the switch fails (``switch.apply``), so a
   failed switch leaves the listener and every membership as they were.
7. The cut waits ``listener_settle_s`` after the switch (``cut_due``). Until the listener
   update has propagated, new connections still follow the old default action to the
   demoted primary's slot; a cut before then leaves a deregistered target that keeps taking
   new connections for "a few minutes" and nothing resets them. After the settle time, the
   cut resets every connection opened until then and new ones follow the new action. The
   switch time is a tag on the demoted slot (``SWITCH_TAG``), so a cut the invocation could
   not wait for, or one that failed, is planned again on every later run until it is done.
   The tag is first written, without a time (``SWITCH_UNKNOWN``), before the switch: if
   recording the time after the switch fails, a later run still knows which slot the
   listener left, takes the switch time as unknown, records it then (``SlotPlan.stamp``)
   and cuts ``listener_settle_s`` after that, never earlier.
   The current primary is never cut, and neither is the slot the listener forwards to: a
   pending cut whose node is primary again, or is gone, or whose target is already out, is
   dropped (the tag removed).
5. A slot is never reassigned (freed, retagged or emptied) while the listener forwards to
   it: a slot whose node left the group keeps its tag and its target until the listener
   forwards elsewhere, and is freed on a later run; an untagged slot the listener
   forwards to is given to the primary only, or left as it is.
6. The demoted primary rejoins its slot only ``rejoin_after_s`` after the cut (or at once
   if it is the primary again). A listener update reaches new connections only after a
   propagation delay that AWS does not document; a connection that still follows the old
   default action in that window must find no target, and fail fast, rather than reach a
   node that now answers writes with READONLY. An emptied slot refuses the connection; the
   client reconnects and, once the update has propagated, reaches the new primary.

Slot assignment is a tag on the slot's target group (``NODE_TAG = CacheClusterId``; absent
or empty: free). Existing tags are kept; a node without a slot takes the lowest free slot
in configuration order, the primary first (and into the slot the listener forwards to,
when that one is free), then by ``CacheClusterId``.

Draining targets count as absent: they are already leaving, and if desired they are
registered again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .targets import Target, TargetHealth, TargetState

__all__ = [
    "NODE_TAG",
    "CUT_TAG",
    "SWITCH_TAG",
    "SWITCH_UNKNOWN",
    "Node",
    "Slot",
    "SlotPlan",
    "SwitchPlan",
    "plan_switch",
]

NODE_TAG = "cachebridge:node"
# When the demoted primary's connections were cut (Unix seconds); removed when it rejoins.
CUT_TAG = "cachebridge:cut-at"
# When the listener was switched away from this slot (Unix seconds): a cut is pending until
# ``listener_settle_s`` later; removed once the cut is done or no longer needed.
SWITCH_TAG = "cachebridge:switched-at"
# SWITCH_TAG's value from just before the switch until its time is recorded after it.
SWITCH_UNKNOWN = "unknown"


@dataclass(frozen=True)
class Node:
    """A member of the replication group: its id, its role and its address."""

    cluster_id: str
    role: str  # "primary" | "replica"
    target: Target

    @property
    def primary(self) -> bool:
        return self.role == "primary"


@dataclass(frozen=True)
class Slot:
    """A node target group as it is: its assignment tag, its targets and their health."""

    arn: str
    node: str | None = None
    actual: Mapping[Target, TargetHealth] = field(default_factory=dict)
    cut_at: float | None = None
    switched_at: float | None = None  # SWITCH_TAG: a cut is pending since then
    switch_time_unknown: bool = False  # SWITCH_TAG is SWITCH_UNKNOWN: switched, time not recorded

    @property
    def live(self) -> frozenset[Target]:
        return frozenset(t for t, h in self.actual.items() if not h.draining)

    def healthy(self, target: Target | None = None) -> bool:
        """``target`` (or any target, when None) is registered and ``healthy``."""
        return any(h.state is TargetState.HEALTHY and (target is None or t == target) for t, h in self.actual.items())


@dataclass(frozen=True)
class SlotPlan:
    """What to do to one slot. ``node`` is its assignment after the plan."""

    arn: str
    node: str | None
    tag: bool = False  # set NODE_TAG = node (a newly assigned slot)
    untag: bool = False  # remove NODE_TAG (a freed slot)
    register: tuple[Target, ...] = ()
    deregister: tuple[Target, ...] = ()
    rejoin: bool = False  # remove CUT_TAG: the cut node comes back now
    unmark: bool = False  # remove SWITCH_TAG: its pending cut is no longer needed
    stamp: bool = False  # set SWITCH_TAG = now: the switch time was not recorded

    @property
    def empty(self) -> bool:
        return not (self.tag or self.untag or self.register or self.deregister or self.rejoin or self.unmark or self.stamp)


@dataclass(frozen=True)
class SwitchPlan:
    slots: tuple[SlotPlan, ...]
    forward_before: str | None
    forward_after: str | None
    cut: tuple[Target, ...] = ()  # deregistered from ``cut_slot`` after the switch
    cut_slot: str | None = None
    unplaced: tuple[str, ...] = ()  # nodes without a free slot
    held: tuple[str, ...] = ()  # nodes kept out of their slot until rejoin_after_s
    reasons: tuple[str, ...] = ()
    blocked: bool = False
    primary_slot: str | None = None
    # Not before this (Unix seconds) is ``cut`` applied: the switch time plus the settle
    # time. With a switch in this plan, the apply step tags ``cut_slot`` with the switch
    # time and waits, or leaves the cut to a later run.
    cut_due: float | None = None
    pending: tuple[str, ...] = ()  # slots whose cut waits for the settle time, not due yet

    @property
    def switch(self) -> bool:
        return self.forward_after is not None and self.forward_after != self.forward_before

    @property
    def empty(self) -> bool:
        return not self.switch and not self.cut and all(s.empty for s in self.slots)

    @property
    def register(self) -> tuple[Target, ...]:
        return tuple(sorted({t for s in self.slots for t in s.register}))

    @property
    def deregister(self) -> tuple[Target, ...]:
        return tuple(sorted({t for s in self.slots for t in s.deregister} | set(self.cut)))

    @property
    def drift(self) -> int:
        """How far the NLB is from the desired state before this plan is applied:
        membership changes, plus one while the listener does not forward to the primary's
        slot (switched now, or held for health)."""
        off = self.primary_slot is not None and self.forward_before != self.primary_slot
        return sum(len(s.register) + len(s.deregister) for s in self.slots) + len(self.cut) + int(off)


def plan_switch(
    nodes: Sequence[Node] | None,
    slots: Sequence[Slot],
    forward: str | None,
    *,
    now: float,
    rejoin_after_s: float,
    listener_settle_s: float = 0.0,
) -> SwitchPlan:
    """Plan slot assignments, memberships and the listener's forward target.

    ``nodes`` is ``None`` when the source failed; ``slots`` are the node target groups in
    configuration order; ``forward`` is the target group the primary listener forwards to."""
    if rejoin_after_s < 0:
        raise ValueError("rejoin_after_s must not be negative")
    if listener_settle_s < 0:
        raise ValueError("listener_settle_s must not be negative")
    if len({s.arn for s in slots}) != len(slots):
        raise ValueError("a node target group is listed twice")
    unchanged = tuple(SlotPlan(s.arn, s.node) for s in slots)
    if nodes is None:
        return SwitchPlan(unchanged, forward, forward, reasons=("source failed: nothing planned",), blocked=True)
    primaries = [n for n in nodes if n.primary]
    if len(primaries) != 1:
        what = "no member is primary" if not primaries else "more than one member is primary: " + ", ".join(sorted(n.cluster_id for n in primaries))
        return SwitchPlan(unchanged, forward, forward, reasons=(f"{what}: nothing planned",), blocked=True)
    primary = primaries[0]
    by_id = {n.cluster_id: n for n in nodes}
    reasons: list[str] = []

    # -- assignment: keep tags, free slots of departed nodes, place the rest -----------------
    assigned: dict[str, str | None] = {}
    claimed: set[str] = set()
    # The slot the listener forwards to keeps its tag first, so a duplicate tag elsewhere
    # is the one freed.
    ordered = sorted(slots, key=lambda s: s.arn != forward)
    for s in ordered:
        node = s.node or None
        if node is None:
            assigned[s.arn] = None
        elif s.arn == forward:
            assigned[s.arn] = node  # rule 5: never reassigned while forwarded to
            claimed.add(node)
            if node not in by_id:
                reasons.append(f"slot {s.arn} holds departed node {node} but the listener forwards to it: kept until it does not")
        elif node in by_id and node not in claimed:
            assigned[s.arn] = node
            claimed.add(node)
        else:
            assigned[s.arn] = None
            why = "left the group" if node not in by_id else "already has a slot"
            reasons.append(f"free slot {s.arn}: node {node} {why}")
    newly: set[str] = set()
    waiting = sorted((n for n in nodes if n.cluster_id not in claimed), key=lambda n: (not n.primary, n.cluster_id))
    free = [s.arn for s in slots if assigned[s.arn] is None and not s.node]
    # A slot freed in this plan is reused only on a later run, once it is empty.
    unplaced: list[str] = []
    for n in waiting:
        # A free slot the listener forwards to takes only the primary: another node there
        # would receive the primary listener's new connections.
        # The primary takes that slot first, so no switch is needed.
        usable = [arn for arn in free if n.primary or arn != forward]
        if n.primary and forward in usable:
            usable.insert(0, usable.pop(usable.index(forward)))
        if usable:
            arn = usable[0]
            free.remove(arn)
            assigned[arn] = n.cluster_id
            newly.add(arn)
            reasons.append(f"assign {n.cluster_id} to slot {arn}")
        else:
            unplaced.append(n.cluster_id)
    if unplaced:
        reasons.append("no free node slot for " + ", ".join(unplaced) + "; add node target groups")
    slot_of = {node: arn for arn, node in assigned.items() if node is not None}

    # -- the forward target ---------------------------------------------------------------
    by_arn = {s.arn: s for s in slots}
    primary_slot = slot_of.get(primary.cluster_id)
    forward_after = forward
    demoted: Slot | None = None
    if primary_slot is None:
        reasons.append(f"primary {primary.cluster_id} has no node slot: no switch")
    elif forward != primary_slot:
        target_healthy = by_arn[primary_slot].healthy(primary.target)
        current = by_arn.get(forward) if forward is not None else None
        current_healthy = current is not None and current.healthy()
        if target_healthy:
            forward_after = primary_slot
            reasons.append(f"switch to {primary.cluster_id} ({primary_slot})")
        elif current_healthy:
            reasons.append(
                f"switch to {primary.cluster_id} held: its target {primary.target} is not healthy "
                "while the current one is"
            )
        else:
            forward_after = primary_slot
            reasons.append(
                f"switch to {primary.cluster_id} ({primary_slot}) although its target is not healthy: "
                "the current target is not healthy either, and only the primary takes writes"
            )
        if forward_after == primary_slot and current is not None:
            demoted = current

    # -- the cut --------------------------------------------------------------------------
    cut: tuple[Target, ...] = ()
    cut_slot: str | None = None
    cut_due: float | None = None
    pending: list[str] = []
    unmark: set[str] = set()
    stamp: set[str] = set()
    if demoted is not None:
        old = by_id.get(demoted.node or "")
        if old is not None and not old.primary and old.target in demoted.live:
            cut, cut_slot, cut_due = (old.target,), demoted.arn, now + listener_settle_s
            reasons.append(
                f"cut {old.cluster_id}: deregister {old.target} from {demoted.arn} "
                f"{listener_settle_s:g} s after the switch (listener_settle_s)"
            )
    # Rule 7: cuts left over from earlier runs (not waited for, or failed).
    for s in slots:
        if (s.switched_at is None and not s.switch_time_unknown) or s.arn == cut_slot:
            continue
        old = by_id.get(assigned[s.arn] or "")
        if s.arn == forward_after or old is None or old.primary or old.target not in s.live:
            unmark.add(s.arn)
            reasons.append(f"pending cut in {s.arn} dropped: " + (
                "the listener forwards to it" if s.arn == forward_after
                else "its node left the group" if old is None
                else f"{old.cluster_id} is the primary" if old.primary
                else f"{old.target} is already out"
            ))
        elif s.switched_at is None:
            # Switched, but the time was never recorded: from now on, the cut waits its
            # full settle time.
            stamp.add(s.arn)
            pending.append(s.arn)
            reasons.append(
                f"switch time in {s.arn} unknown (not recorded after the switch): recorded now; "
                f"cut {old.cluster_id} listener_settle_s={listener_settle_s:g} later"
            )
        elif now - s.switched_at < listener_settle_s:
            pending.append(s.arn)
            reasons.append(f"cut {old.cluster_id} in {s.arn} waits for listener_settle_s={listener_settle_s:g} after the switch")
        elif cut_slot is None:
            cut, cut_slot, cut_due = (old.target,), s.arn, s.switched_at + listener_settle_s
            reasons.append(f"cut {old.cluster_id}: deregister {old.target} from {s.arn} (pending since the switch)")
        else:
            pending.append(s.arn)
            reasons.append(f"cut {old.cluster_id} in {s.arn} left to the next run: one cut per run")

    # -- memberships ----------------------------------------------------------------------
    planned: list[SlotPlan] = []
    held: list[str] = []
    for s in slots:
        node_id = assigned[s.arn]
        node = by_id.get(node_id or "")
        desired: frozenset[Target] = frozenset()
        rejoin = False
        if node is not None:
            desired = frozenset({node.target})
            in_hold = s.cut_at is not None and now - s.cut_at < rejoin_after_s and not node.primary
            if s.arn in pending:
                desired = s.live  # its cut is pending: nothing else touches it before
            elif s.arn == cut_slot or in_hold:
                desired = frozenset()
                if in_hold:
                    held.append(node.cluster_id)
            elif s.cut_at is not None and s.switched_at is None and not s.switch_time_unknown:
                rejoin = True
        elif node_id is not None or s.arn == forward:
            desired = s.live  # the listener forwards to it (rule 5): untouched
        live = s.live
        register = tuple(sorted(desired - live))
        deregister = tuple(sorted(live - desired - set(cut if s.arn == cut_slot else ())))
        planned.append(
            SlotPlan(
                s.arn,
                node_id,
                tag=s.arn in newly,
                untag=node_id is None and bool(s.node),
                register=register,
                deregister=deregister,
                rejoin=rejoin,
                unmark=s.arn in unmark,
                stamp=s.arn in stamp,
            )
        )
        draining = sorted(t for t, h in s.actual.items() if h.draining and t in desired)
        if draining:
            reasons.append(f"re-register draining in {s.arn}: " + ", ".join(map(str, draining)))
        if register:
            reasons.append(f"register in {s.arn}: " + ", ".join(map(str, register)))
        if deregister:
            reasons.append(f"deregister from {s.arn}: " + ", ".join(map(str, deregister)))
    if held:
        reasons.append(f"kept out of their slots for rejoin_after_s={rejoin_after_s:g}: " + ", ".join(sorted(held)))
    return SwitchPlan(
        tuple(planned),
        forward,
        forward_after,
        cut,
        cut_slot,
        tuple(unplaced),
        tuple(sorted(held)),
        tuple(reasons),
        primary_slot=primary_slot,
        cut_due=cut_due,
        pending=tuple(pending),
    )

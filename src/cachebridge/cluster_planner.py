"""The pure planner of the cluster layout: (nodes, node slots) -> plan. No I/O, no clock,
no logging.

In the cluster layout (cluster mode enabled) every node of every shard has its own IP
target group (a *node slot*) behind its own listener, so each node has a port of its own on
the NLB, and a cluster client reaches node ``ip:port`` (as the cluster announces it) at
``NLB:slot port`` through its address map. Node IPs are stable in a VPC, so a shard
failover changes nothing here: clients follow the cluster's own topology (``CLUSTER
SLOTS``/``MOVED``) through the map. The planner keeps slots matched to the node set
(scale out and in, node replacement); no listener is ever switched.

Slot assignment is the switch layout's tag (``NODE_TAG = CacheClusterId`` on the slot's
target group); the slot's listener port is fixed by the stack, so the tag also records the
node's port. The rules:

1. A failed source (``nodes is None``) or an answer without a single node plans nothing.
2. A node keeps its slot (and so its port) for its whole life. Existing tags are kept; a
   node listed in two slots keeps the first in configuration order, the other is freed. An
   untagged slot that holds one node's target and nothing else (its tag removed by hand,
   say) is that node's slot: it is tagged again, so the node's port does not move.
3. A slot whose node left the group has its target deregistered (the target groups keep a
   deregistration delay, so open connections end first); the slot keeps its tag until it
   holds no target at all, draining included, and is untagged then. Only an untagged slot
   without any target is free, so a new node never takes a port whose old connections
   may still be open.
4. A node without a slot takes the lowest free slot in configuration order, nodes ordered
   by (shard, CacheClusterId). A node that finds none is ``unplaced``: the rest of the plan
   still applies, and the pass reports an error that says to add node slots.
5. A slot's membership is its node's one target; anything else in it is deregistered (a
   replaced node with a new address, a stray registration).
6. Plans are deterministic and an applied plan is a no-op when planned again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .switch_planner import NODE_TAG, Slot, SlotPlan
from .targets import Target

__all__ = ["ClusterNode", "ClusterPlan", "plan_cluster", "NODE_TAG"]


@dataclass(frozen=True)
class ClusterNode:
    """A node of a cluster-mode-enabled group: its id, its shard and its address."""

    cluster_id: str
    node_group_id: str
    target: Target


@dataclass(frozen=True)
class ClusterPlan:
    slots: tuple[SlotPlan, ...]
    unplaced: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    blocked: bool = False

    @property
    def empty(self) -> bool:
        return all(s.empty for s in self.slots)

    @property
    def register(self) -> tuple[Target, ...]:
        return tuple(sorted({t for s in self.slots for t in s.register}))

    @property
    def deregister(self) -> tuple[Target, ...]:
        return tuple(sorted({t for s in self.slots for t in s.deregister}))

    @property
    def drift(self) -> int:
        return sum(len(s.register) + len(s.deregister) for s in self.slots)

    def slot_of(self, cluster_id: str) -> str | None:
        return next((s.arn for s in self.slots if s.node == cluster_id), None)


def plan_cluster(nodes: Sequence[ClusterNode] | None, slots: Sequence[Slot]) -> ClusterPlan:
    """Plan slot assignments and memberships. ``slots`` are the node target groups in
    configuration order (slot ``i`` is the stack's listener ``i``)."""
    if len({s.arn for s in slots}) != len(slots):
        raise ValueError("a node target group is listed twice")
    unchanged = tuple(SlotPlan(s.arn, s.node or None) for s in slots)
    if nodes is None:
        return ClusterPlan(unchanged, reasons=("source failed: nothing planned",), blocked=True)
    if not nodes:
        return ClusterPlan(unchanged, reasons=("the group lists no node: nothing planned",), blocked=True)
    ids = [n.cluster_id for n in nodes]
    if len(set(ids)) != len(ids):
        raise ValueError("a node is listed twice")
    by_id = {n.cluster_id: n for n in nodes}
    reasons: list[str] = []

    assigned: dict[str, str | None] = {}
    departed: set[str] = set()  # slots whose node left: emptied, untagged once empty
    claimed: set[str] = set()
    for s in slots:
        node = s.node or None
        if node is None:
            assigned[s.arn] = None
        elif node in by_id and node not in claimed:
            assigned[s.arn] = node
            claimed.add(node)
        elif node in by_id:
            assigned[s.arn] = None
            departed.add(s.arn)
            reasons.append(f"free slot {s.arn}: node {node} already has a slot")
        else:
            assigned[s.arn] = None
            departed.add(s.arn)
            reasons.append(f"slot {s.arn}: node {node} left the group")

    newly: set[str] = set()
    # Rule 2: an untagged slot holding one node's target alone is that node's slot (the
    # address map clients hold gives the node this slot's port).
    by_target = {n.target: n.cluster_id for n in nodes}
    for s in slots:
        if s.node or len(s.actual) != 1 or len(s.live) != 1:
            continue
        [target] = s.live
        held = by_target.get(target)
        if held is not None and held not in claimed:
            assigned[s.arn] = held
            claimed.add(held)
            newly.add(s.arn)
            reasons.append(f"slot {s.arn} holds {held}'s target without its tag: kept as its slot, tagged again")

    free = [s.arn for s in slots if not s.node and not s.actual]
    unplaced: list[str] = []
    for n in sorted((n for n in nodes if n.cluster_id not in claimed), key=lambda n: (n.node_group_id, n.cluster_id)):
        if free:
            arn = free.pop(0)
            assigned[arn] = n.cluster_id
            newly.add(arn)
            reasons.append(f"assign {n.cluster_id} (shard {n.node_group_id}) to slot {arn}")
        else:
            unplaced.append(n.cluster_id)
    if unplaced:
        reasons.append(
            f"no free node slot for {', '.join(unplaced)}: {len(nodes)} nodes, {len(slots)} node slots; "
            "add node slots (a larger --node-slots on the stack)"
        )

    planned: list[SlotPlan] = []
    for s in slots:
        node_id = assigned[s.arn]
        node = by_id.get(node_id or "")
        desired = frozenset({node.target}) if node is not None else frozenset()
        register = tuple(sorted(desired - s.live))
        deregister = tuple(sorted(s.live - desired))
        # Rule 3: the tag goes only once nothing is left, draining included.
        untag = s.arn in departed and not (s.actual.keys() - desired) and not deregister
        keep = s.node if s.arn in departed and not untag else node_id
        planned.append(SlotPlan(s.arn, keep, tag=s.arn in newly, untag=untag, register=register, deregister=deregister))
        if register:
            reasons.append(f"register in {s.arn}: " + ", ".join(map(str, register)))
        if deregister:
            reasons.append(f"deregister from {s.arn}: " + ", ".join(map(str, deregister)))
        if untag:
            reasons.append(f"untag {s.arn}: empty, free for a new node")
    return ClusterPlan(tuple(planned), tuple(unplaced), tuple(reasons))

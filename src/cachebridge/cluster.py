"""The cluster pass: one reconcile of a ``layout = "cluster"`` binding (``sync`` dispatches
here), and the reading of a cluster-mode-enabled group's nodes.

A cluster client connects to the configuration endpoint, asks for the topology (``CLUSTER
SLOTS``/``CLUSTER SHARDS``) and then connects to each node's announced private IP and port,
following ``MOVED``/``ASK`` to them. ElastiCache does not let users set
``cluster-announce-ip``, so a client outside the VPC translates each announced address to
an address on the NLB: one listener per node, each forwarding to the node's own IP target
group (``cluster_planner``). ``cachebridge endpoints`` prints the map and client snippets.

Why nothing moves on a shard failover: "ElastiCache ensures that both the DNS name and the
IP address of the cache node remain the same" across node replacement in a VPC (ElastiCache
User Guide, "Replacing nodes"), and a failover only changes roles, which the cluster itself
announces. The pass keeps slots matched to the node set: scale out/in and replacements.

Listener quota: 50 listeners per NLB, not adjustable ("Quotas for your Network Load
Balancers"): one configuration listener plus at most 49 node listeners.

Guards: the node addresses go through the answer checks (``checks``) as a retarget
binding's answer does, and a refused answer writes nothing. The pass takes no write lease
(``lease``) and does not read the owner tag: the node target groups are the stack's own,
written by its controller alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .checks import check_answer
from .cluster_planner import ClusterNode, ClusterPlan, plan_cluster
from .config import Binding, ElastiCacheSourceSpec, Settings
from .errors import SourceError
from .nlb import TargetGroupInfo, TargetGroups, risky_settings
from .node_slots import SlotWrites, guarded_pass, slot_health, writing_slots
from .sources import Sources, check_mode
from .switch_planner import NODE_TAG, Slot
from .sync import BindingResult
from .targets import Target

__all__ = ["ClusterResult", "read_cluster_nodes", "sync_cluster"]


@dataclass
class ClusterResult(BindingResult):
    """A ``BindingResult`` plus each node's slot, shard, address and health."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    unplaced: tuple[str, ...] = ()
    plan: ClusterPlan | None = None

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out.update(layout="cluster", nodes=self.nodes, unplaced=list(self.unplaced))
        return out


def read_cluster_nodes(sources: Sources, spec: ElastiCacheSourceSpec, port: int | None, families: Sequence[int] = (4, 6)) -> tuple[ClusterNode, ...]:
    """Every node of every shard, each with its one address (its node name, from
    DescribeCacheClusters, resolved). ``port``, when given, must be the nodes' port.

    Raises ``SourceError`` rather than return part of the group: a missing node would look
    like a slot to empty."""
    rg = sources.replication_group(spec.replication_group_id)
    where = str(spec)
    check_mode(rg, spec)
    if not rg.members:
        raise SourceError(f"{where}: the group lists no node (status {rg.status})")
    nodes: list[ClusterNode] = []
    for m in rg.members:
        try:
            name, node_port = (m.address, m.port) if m.address else sources.node_endpoint(m.cache_cluster_id)
        except SourceError as exc:
            raise type(exc)(f"{where}: node {m.cache_cluster_id}: {exc}") from None
        node_port = node_port or rg.port
        if node_port is None:
            raise SourceError(f"{where}: node {m.cache_cluster_id} has no port yet (status {rg.status})")
        if port is not None and node_port != port:
            raise SourceError(f"{where}: node {m.cache_cluster_id} listens on port {node_port}, not {port}; set port = {node_port}")
        try:
            resolution = sources.resolver.resolve(name, families)
        except SourceError as exc:
            raise type(exc)(f"{where}: node {m.cache_cluster_id}: {exc}") from None
        if len(resolution.addresses) != 1:
            raise SourceError(f"{where}: node {m.cache_cluster_id} resolves to {', '.join(resolution.addresses)}; a node has one address")
        nodes.append(ClusterNode(m.cache_cluster_id, m.node_group_id or "?", Target(resolution.addresses[0], int(node_port))))
    return tuple(nodes)


def _read_slots(binding: Binding, target_groups: TargetGroups) -> tuple[list[TargetGroupInfo], list[Slot]]:
    infos = [target_groups.info(name) for name in binding.node_target_groups]
    tags = target_groups.tags([i.arn for i in infos])
    slots = [Slot(i.arn, tags.get(i.arn, {}).get(NODE_TAG) or None, target_groups.health(i.arn)) for i in infos]
    return infos, slots


def sync_cluster(
    binding: Binding,
    *,
    target_groups: TargetGroups,
    sources: Sources,
    settings: Settings,
    dry_run: bool = False,
) -> ClusterResult:
    """Reconcile one cluster binding; never raises for AWS or source trouble (the result
    says ``error``)."""
    result = ClusterResult(binding.name, str(binding.source), ",".join(binding.node_target_groups), binding.port)
    return guarded_pass(result, "cluster", lambda: _sync(binding, result, target_groups, sources, settings, dry_run))


def _sync(binding: Binding, r: ClusterResult, target_groups: TargetGroups, sources: Sources, settings: Settings, dry_run: bool) -> None:
    assert isinstance(binding.source, ElastiCacheSourceSpec)
    infos, slots = _read_slots(binding, target_groups)
    for info in infos:
        r.warnings.extend(f"{info.name}: {w}" for w in risky_settings(info))
    live = {t for s in slots for t in s.live}
    r.registered_before = tuple(sorted(live))
    r.health = {f"{s.arn}|{t}": h.state.value for s in slots for t, h in sorted(s.actual.items())}
    families = infos[0].families if infos else (4, 6)
    sources.new_pass()
    r.polls = 1
    try:
        nodes: tuple[ClusterNode, ...] | None = read_cluster_nodes(sources, binding.source, binding.port, families)
        source_error = None
    except SourceError as exc:
        nodes, source_error = None, str(exc)
    if nodes is not None:
        source_error = _refusal(binding, nodes, infos, settings, r)
        nodes = nodes if source_error is None else None
    p = plan_cluster(nodes, slots)
    r.plan, r.reasons, r.drift, r.unplaced = p, p.reasons, p.drift, p.unplaced
    r.desired = tuple(sorted(n.target for n in nodes or ()))
    r.nodes = _nodes_report(nodes or (), p, slots)
    if source_error is not None or p.blocked:
        r.status, r.error, r.source_error = "error", source_error or "; ".join(p.reasons), source_error is not None
        return
    if dry_run:
        r.register, r.deregister = p.register, p.deregister
        r.status = "dry_run"
        r.registered_after = r.registered_before
        return
    if not p.empty:
        outside = binding.allow_outside_vpc or bool(settings.allowed_target_networks)
        _apply(p, target_groups, r, {i.arn: i for i in infos}, live, outside)
    else:
        r.status = "in_sync"
        r.registered_after = r.registered_before
    if p.unplaced and r.status != "error":
        r.status = "error"
        r.error = (
            f"no node slot for {', '.join(p.unplaced)}: the stack has {len(slots)} node listeners for {len(nodes or ())} nodes; "
            f"redeploy with more node slots (at most 49 per NLB; beyond that, split the data across clusters)"
        )


def _refusal(binding: Binding, nodes: Sequence[ClusterNode], infos: Sequence[TargetGroupInfo], settings: Settings, r: ClusterResult) -> str | None:
    """The answer checks (``checks``) over every node's address, as a retarget binding's
    answer is checked: the node slots share one VPC, the first slot's stands for all. A
    refused answer is handled as a failed read: nothing is written, no slot is emptied."""
    vpc = infos[0] if infos else None
    check = check_answer(
        [n.target.ip for n in nodes],
        max_targets=binding.target_limit,
        vpc_cidrs=vpc.vpc_cidrs if vpc is not None else (),
        vpc_known=vpc is not None and vpc.vpc_known,
        allow_outside_vpc=binding.allow_outside_vpc,
        allowed_networks=settings.allowed_target_networks,
    )
    r.warnings.extend(check.warnings)
    return None if check.ok else f"{binding.source}: answer refused: {check.error}"


def _apply(p: ClusterPlan, target_groups: TargetGroups, r: ClusterResult, infos: dict[str, TargetGroupInfo], live: set[Target], outside: bool) -> None:
    with writing_slots(r, SlotWrites(target_groups, infos, live, outside_vpc=outside)) as w:
        for s in p.slots:
            if s.tag and s.node:
                target_groups.set_tags(s.arn, {NODE_TAG: s.node})
            if s.register:
                w.register(s.arn, s.register)
        for s in p.slots:
            if s.deregister:
                w.deregister(s.arn, s.deregister)
            if s.untag:
                target_groups.remove_tags(s.arn, [NODE_TAG])


def _nodes_report(nodes: Sequence[ClusterNode], p: ClusterPlan, slots: Sequence[Slot]) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for n in nodes:
        arn = p.slot_of(n.cluster_id)
        report[n.cluster_id] = {"shard": n.node_group_id, "target_group": arn, "target": str(n.target), "health": slot_health(slots, arn, n.target)}
    return report

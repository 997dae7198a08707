"""The cluster layout's planner: slots follow the node set, a node keeps its slot (and so
its port) for life, a departed node's slot is freed only once empty."""

from __future__ import annotations

import pytest

from cachebridge.cluster_planner import ClusterNode, plan_cluster
from cachebridge.switch_planner import Slot, SlotPlan
from cachebridge.targets import Target, TargetHealth, TargetState

HEALTHY = TargetHealth(TargetState.HEALTHY)
DRAINING = TargetHealth(TargetState.DRAINING)


def node(cid: str, shard: str, ip: str) -> ClusterNode:
    return ClusterNode(cid, shard, Target(ip, 6379))


NODES = (node("c-0001-001", "0001", "10.0.0.1"), node("c-0001-002", "0001", "10.0.0.2"), node("c-0002-001", "0002", "10.0.0.3"))


def empty_slots(n: int) -> list[Slot]:
    return [Slot(f"tg{i}") for i in range(n)]


def applied(plan_slots: tuple[SlotPlan, ...], before: list[Slot], nodes: tuple[ClusterNode, ...]) -> list[Slot]:
    """The slots as the NLB holds them once ``plan_slots`` is applied (deregistered targets gone at once)."""
    by_id = {n.cluster_id: n for n in nodes}
    out = []
    for s, p in zip(before, plan_slots):
        actual = dict(s.actual)
        for t in p.deregister:
            actual.pop(t, None)
        for t in p.register:
            actual[t] = HEALTHY
        tag = None if p.untag else (p.node if (p.tag or s.node) else None)
        assert p.node is None or p.node in by_id or p.node == s.node
        out.append(Slot(s.arn, tag, actual))
    return out


def test_new_nodes_take_the_lowest_free_slots_by_shard_then_id() -> None:
    plan = plan_cluster(NODES, empty_slots(4))
    assert [(s.node, s.tag, s.register) for s in plan.slots] == [
        ("c-0001-001", True, (Target("10.0.0.1", 6379),)),
        ("c-0001-002", True, (Target("10.0.0.2", 6379),)),
        ("c-0002-001", True, (Target("10.0.0.3", 6379),)),
        (None, False, ()),
    ]
    assert plan.unplaced == ()


def test_an_applied_plan_is_a_no_op_and_plans_are_deterministic() -> None:
    slots = empty_slots(4)
    plan = plan_cluster(NODES, slots)
    assert plan == plan_cluster(tuple(reversed(NODES)), slots)
    after = applied(plan.slots, slots, NODES)
    again = plan_cluster(NODES, after)
    assert again.empty
    assert again.drift == 0


def test_a_node_keeps_its_slot_when_others_come_and_go() -> None:
    slots = applied(plan_cluster(NODES, empty_slots(5)).slots, empty_slots(5), NODES)
    grown = (*NODES[1:], node("c-0003-001", "0003", "10.0.0.9"), node("c-0000-001", "0000", "10.0.0.8"))
    plan = plan_cluster(grown, slots)
    kept = {s.node: s.arn for s in plan.slots if s.node}
    assert kept["c-0001-002"] == "tg1" and kept["c-0002-001"] == "tg2"
    # The departed node's slot is emptied, keeps its tag and is not reused in this plan.
    assert plan.slots[0].deregister == (Target("10.0.0.1", 6379),)
    assert plan.slots[0].node == "c-0001-001" and not plan.slots[0].untag and not plan.slots[0].register
    assert kept["c-0000-001"] == "tg3" and kept["c-0003-001"] == "tg4"


def test_a_departed_nodes_slot_is_freed_only_once_nothing_drains_in_it() -> None:
    slots = [Slot("tg0", "gone", {Target("10.0.0.7", 6379): DRAINING}), Slot("tg1")]
    plan = plan_cluster(NODES[:1], slots)
    assert plan.slots[0] == SlotPlan("tg0", "gone")  # still draining: no untag, nothing else
    assert plan.slot_of("c-0001-001") == "tg1"
    emptied = plan_cluster(NODES[:1], [Slot("tg0", "gone"), Slot("tg1", "c-0001-001", {Target("10.0.0.1", 6379): HEALTHY})])
    assert emptied.slots[0].untag and emptied.slots[0].node is None


def test_a_slot_with_a_stray_target_is_not_free_until_empty() -> None:
    slots = [Slot("tg0", None, {Target("10.9.9.9", 6379): HEALTHY}), Slot("tg1")]
    plan = plan_cluster(NODES[:1], slots)
    assert plan.slots[0].deregister == (Target("10.9.9.9", 6379),) and plan.slots[0].node is None
    assert plan.slot_of("c-0001-001") == "tg1"


def test_a_slot_holding_a_nodes_target_without_its_tag_stays_that_nodes_slot() -> None:
    # Moving the node would change its port on the NLB under every client's address map,
    # and empty the slot it is reached through now.
    slots = [Slot("tg0"), Slot("tg1", None, {Target("10.0.0.2", 6379): HEALTHY}), Slot("tg2")]
    plan = plan_cluster(NODES[:2], slots)
    assert plan.slots[1] == SlotPlan("tg1", "c-0001-002", tag=True)
    assert plan.slot_of("c-0001-001") == "tg0" and plan.slots[2] == SlotPlan("tg2", None)
    assert not plan.deregister
    assert plan_cluster(NODES[:2], applied(plan.slots, slots, NODES)).empty


def test_an_untagged_slot_is_not_taken_for_a_node_that_has_its_own() -> None:
    # The node's tagged slot wins; the untagged copy is a stray registration, emptied.
    target = Target("10.0.0.1", 6379)
    slots = [Slot("tg0", None, {target: HEALTHY}), Slot("tg1", "c-0001-001", {target: HEALTHY})]
    plan = plan_cluster(NODES[:1], slots)
    assert plan.slot_of("c-0001-001") == "tg1" and not plan.slots[1].register and not plan.slots[1].deregister
    assert plan.slots[0] == SlotPlan("tg0", None, deregister=(target,))


@pytest.mark.parametrize("others", [{Target("10.9.9.9", 6379): HEALTHY}, {Target("10.0.0.3", 6379): HEALTHY}], ids=["stray", "another node"])
def test_an_untagged_slot_holding_more_than_one_target_is_not_adopted(others: dict[Target, TargetHealth]) -> None:
    slots = [Slot("tg0", None, {Target("10.0.0.1", 6379): HEALTHY, **others}), Slot("tg1"), Slot("tg2")]
    plan = plan_cluster(NODES, slots)
    assert plan.slots[0].node is None and not plan.slots[0].tag
    assert set(plan.slots[0].deregister) == {Target("10.0.0.1", 6379), *others}


def test_an_untagged_slot_whose_one_target_drains_is_not_adopted() -> None:
    slots = [Slot("tg0", None, {Target("10.0.0.1", 6379): DRAINING}), Slot("tg1")]
    plan = plan_cluster(NODES[:1], slots)
    assert plan.slots[0] == SlotPlan("tg0", None) and plan.slot_of("c-0001-001") == "tg1"


def test_a_replaced_node_with_a_new_address_stays_in_its_slot() -> None:
    slots = [Slot("tg0", "c-0001-001", {Target("10.0.0.1", 6379): HEALTHY})]
    plan = plan_cluster((node("c-0001-001", "0001", "10.0.0.5"),), slots)
    assert plan.slots[0].register == (Target("10.0.0.5", 6379),)
    assert plan.slots[0].deregister == (Target("10.0.0.1", 6379),)
    assert not plan.slots[0].tag and not plan.slots[0].untag


def test_a_node_tagged_on_two_slots_keeps_the_first() -> None:
    t = Target("10.0.0.1", 6379)
    plan = plan_cluster(NODES[:1], [Slot("tg0", "c-0001-001", {t: HEALTHY}), Slot("tg1", "c-0001-001", {t: HEALTHY})])
    assert plan.slot_of("c-0001-001") == "tg0"
    assert plan.slots[1].deregister == (t,)


def test_more_nodes_than_slots_places_what_fits_and_names_the_rest() -> None:
    plan = plan_cluster(NODES, empty_slots(2))
    assert plan.unplaced == ("c-0002-001",)
    assert [s.node for s in plan.slots] == ["c-0001-001", "c-0001-002"]
    assert any("add node slots" in r for r in plan.reasons)


@pytest.mark.parametrize("nodes", [None, ()])
def test_a_failed_or_empty_source_plans_nothing(nodes: tuple[ClusterNode, ...] | None) -> None:
    slots = [Slot("tg0", "c-0001-001", {Target("10.0.0.1", 6379): HEALTHY}), Slot("tg1")]
    plan = plan_cluster(nodes, slots)
    assert plan.blocked and plan.empty
    assert plan.register == () and plan.deregister == ()


def test_duplicate_slots_or_nodes_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_cluster(NODES, [Slot("tg0"), Slot("tg0")])
    with pytest.raises(ValueError):
        plan_cluster((NODES[0], NODES[0]), empty_slots(2))

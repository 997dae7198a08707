"""The switch layout's safety rules (``switch_planner``'s docstring), one test per rule,
scenario tables first, then properties over any group, any slots and any listener."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachebridge.switch_planner import Node, Slot, SwitchPlan, plan_switch
from cachebridge.targets import Target, TargetHealth, TargetState

HEALTHY = TargetHealth(TargetState.HEALTHY)
INITIAL = TargetHealth(TargetState.INITIAL)
UNHEALTHY = TargetHealth(TargetState.UNHEALTHY)
DRAINING = TargetHealth(TargetState.DRAINING)

T1, T2, T3 = Target("10.0.1.11", 6379), Target("10.0.2.22", 6379), Target("10.0.3.33", 6379)
S1, S2, S3, S4 = (f"arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/orders-n{i}/{i:016x}" for i in range(1, 5))
NOW = 1_000_000.0
REJOIN = 75.0


def nodes(primary: str = "orders-001", *ids: str) -> tuple[Node, ...]:
    addresses = {"orders-001": T1, "orders-002": T2, "orders-003": T3}
    members = ids or ("orders-001", "orders-002")
    return tuple(Node(i, "primary" if i == primary else "replica", addresses[i]) for i in members)


def settled(health_1: TargetHealth = HEALTHY, health_2: TargetHealth = HEALTHY) -> list[Slot]:
    """Two nodes in slots 1 and 2, a free slot 3."""
    return [Slot(S1, "orders-001", {T1: health_1}), Slot(S2, "orders-002", {T2: health_2}), Slot(S3)]


def run(n: tuple[Node, ...] | None, slots: list[Slot], forward: str | None, now: float = NOW) -> SwitchPlan:
    return plan_switch(n, slots, forward, now=now, rejoin_after_s=REJOIN)


def applied(p: SwitchPlan, slots: list[Slot], now: float = NOW) -> tuple[list[Slot], str | None]:
    """The slots and forward target after ``p`` is applied in full (a model of ``switch.apply``)."""
    out = []
    by_plan = {s.arn: s for s in p.slots}
    for s in slots:
        sp = by_plan[s.arn]
        actual = {t: h for t, h in s.actual.items() if not h.draining}
        for t in sp.deregister:
            actual.pop(t, None)
        for t in sp.register:
            actual[t] = HEALTHY
        cut_at = None if (sp.rejoin or sp.untag) else s.cut_at
        if s.arn == p.cut_slot:
            for t in p.cut:
                actual.pop(t, None)
            cut_at = now
        out.append(Slot(s.arn, sp.node, actual, cut_at))
    return out, p.forward_after


# -- scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    nodes: tuple[Node, ...] | None
    slots: list[Slot]
    forward: str | None
    forward_after: str | None
    cut: tuple[Target, ...] = ()
    register: tuple[Target, ...] = ()
    deregister: tuple[Target, ...] = ()
    blocked: bool = False


SCENARIOS = [
    pytest.param(Case(nodes(), settled(), S1, S1), id="in-sync"),
    pytest.param(Case(nodes("orders-002"), settled(), S1, S2, cut=(T1,), deregister=(T1,)), id="failover-switches-then-cuts"),
    pytest.param(Case(nodes("orders-002"), settled(health_1=UNHEALTHY), S1, S2, cut=(), deregister=()), id="unplanned-failover-dead-primary-still-cut"),
    pytest.param(Case(nodes(), [Slot(S1), Slot(S2), Slot(S3)], S1, S1, register=(T1, T2)), id="first-run-assigns-primary-first"),
    pytest.param(Case(nodes(primary="orders-002"), [Slot(S1), Slot(S2), Slot(S3)], S1, S1, register=(T1, T2)), id="first-run-primary-takes-lowest-slot"),
    pytest.param(Case(None, settled(), S1, S1, blocked=True), id="source-error"),
]


@pytest.mark.parametrize("case", SCENARIOS)
def test_scenarios(case: Case) -> None:
    p = run(case.nodes, case.slots, case.forward)
    assert p.forward_after == case.forward_after
    assert p.blocked == case.blocked
    assert p.register == case.register
    assert p.deregister == case.deregister or set(case.deregister) <= set(p.deregister)


def test_unplanned_failover_cuts_a_dead_primary_still_registered() -> None:
    # The dead node is unhealthy but registered: its (dead) connections are cut too.
    p = run(nodes("orders-002"), settled(health_1=UNHEALTHY), S1)
    assert (p.forward_after, p.cut, p.cut_slot) == (S2, (T1,), S1)


def test_first_run_places_the_primary_in_the_slot_the_listener_forwards_to() -> None:
    p = run(nodes("orders-002"), [Slot(S1), Slot(S2), Slot(S3)], S1)
    assert [(s.arn, s.node, s.tag) for s in p.slots] == [(S1, "orders-002", True), (S2, "orders-001", True), (S3, None, False)]
    assert not p.switch


# -- rule 1: never switch on a source error --------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(None, id="source-failed"),
        pytest.param((Node("orders-001", "replica", T1), Node("orders-002", "replica", T2)), id="no-primary"),
        pytest.param((Node("orders-001", "primary", T1), Node("orders-002", "primary", T2)), id="two-primaries"),
    ],
)
def test_never_switch_on_a_source_error(answer: tuple[Node, ...] | None) -> None:
    slots = settled()
    p = run(answer, slots, S2)
    assert p.blocked and p.empty and not p.switch
    assert p.forward_after == S2
    assert all(s.node == orig.node and s.empty for s, orig in zip(p.slots, slots))


# -- rule 2: never switch to a slot that is not healthy while the current one is ------------


@pytest.mark.parametrize(
    ("new_health", "current_health", "switches"),
    [
        pytest.param(HEALTHY, HEALTHY, True, id="both-healthy"),
        pytest.param(HEALTHY, UNHEALTHY, True, id="current-dead"),
        pytest.param(INITIAL, HEALTHY, False, id="new-initial-current-healthy-held"),
        pytest.param(UNHEALTHY, HEALTHY, False, id="new-unhealthy-current-healthy-held"),
        pytest.param(UNHEALTHY, UNHEALTHY, True, id="none-healthy-switch-to-true-primary"),
        pytest.param(INITIAL, UNHEALTHY, True, id="new-initial-current-dead"),
    ],
)
def test_never_switch_to_an_unhealthy_slot_while_the_current_is_healthy(
    new_health: TargetHealth, current_health: TargetHealth, switches: bool
) -> None:
    p = run(nodes("orders-002"), settled(health_1=current_health, health_2=new_health), S1)
    assert p.switch is switches
    assert p.forward_after == (S2 if switches else S1)
    assert bool(p.cut) is switches  # no cut without a switch


def test_no_healthy_target_anywhere_switches_to_the_true_primary() -> None:
    p = run(nodes("orders-002"), settled(health_1=UNHEALTHY, health_2=INITIAL), S1)
    assert p.forward_after == S2
    assert any("only the primary takes writes" in r for r in p.reasons)


def test_a_held_switch_still_counts_as_drift() -> None:
    # The drift alarm fires when every run for a while finds the listener off the primary.
    held = run(nodes("orders-002"), settled(health_2=UNHEALTHY), S1)
    assert not held.switch and held.drift == 1
    assert run(nodes(), settled(), S1).drift == 0
    assert run(nodes("orders-002"), settled(), S1).drift == 2  # the switch and the cut


def test_an_unregistered_primary_slot_is_not_healthy() -> None:
    slots = [Slot(S1, "orders-001", {T1: HEALTHY}), Slot(S2, "orders-002", {}), Slot(S3)]
    p = run(nodes("orders-002"), slots, S1)
    assert not p.switch and p.slots[1].register == (T2,)


# -- rule 4: a failed switch leaves everything as it was (the apply order) -----------------


def test_cut_only_follows_a_switch() -> None:
    p = run(nodes("orders-002"), settled(), S1)
    assert p.switch and p.cut == (T1,) and p.cut_slot == S1
    # The cut target is not in the slot's own deregistrations: apply does it after the switch.
    assert T1 not in p.slots[0].deregister


# -- rule 5: a slot is never reassigned while the listener forwards to it ------------------


def test_slot_never_reassigned_while_listener_forwards_to_it() -> None:
    # orders-001 left the group (scale-in) but the listener still forwards to its slot.
    slots = [Slot(S1, "orders-001", {T1: HEALTHY}), Slot(S2, "orders-002", {T2: HEALTHY}), Slot(S3)]
    n = (Node("orders-002", "replica", T2), Node("orders-003", "primary", T3))
    p = run(n, slots, S1)
    s1 = p.slots[0]
    assert (s1.node, s1.untag, s1.deregister) == ("orders-001", False, ())
    # The new primary takes the free slot, not the forwarded-to one.
    assert p.slots[2].node == "orders-003" and p.slots[2].register == (T3,)


def test_departed_node_slot_is_freed_once_not_forwarded_to() -> None:
    slots = [Slot(S1, "orders-001", {T1: HEALTHY}), Slot(S2, "orders-002", {T2: HEALTHY}), Slot(S3)]
    n = (Node("orders-002", "primary", T2),)
    p = run(n, slots, S2)
    assert (p.slots[0].node, p.slots[0].untag, p.slots[0].deregister) == (None, True, (T1,))


def test_freed_slot_is_not_reused_in_the_same_run() -> None:
    slots = [Slot(S1, "orders-001", {T1: HEALTHY}), Slot(S2, "orders-002", {T2: HEALTHY})]
    n = (Node("orders-002", "primary", T2), Node("orders-003", "replica", T3))
    p = run(n, slots, S2)
    assert p.slots[0].node is None and p.unplaced == ("orders-003",)
    after, forward = applied(p, slots)
    p2 = run(n, after, forward)
    assert p2.slots[0].node == "orders-003" and p2.slots[0].register == (T3,)


def test_scale_out_takes_the_lowest_free_slot_and_replacement_keeps_its_slot() -> None:
    slots = [Slot(S1, "orders-001", {T1: HEALTHY}), Slot(S2), Slot(S3, "orders-002", {T2: HEALTHY}), Slot(S4)]
    p = run(nodes("orders-001", "orders-001", "orders-002", "orders-003"), slots, S1)
    assert [(s.node, s.tag, s.register) for s in p.slots] == [
        ("orders-001", False, ()),
        ("orders-003", True, (T3,)),
        ("orders-002", False, ()),
        (None, False, ()),
    ]


def test_duplicate_tag_keeps_the_forwarded_slot() -> None:
    slots = [Slot(S1, "orders-001", {T1: HEALTHY}), Slot(S2, "orders-001", {T1: HEALTHY})]
    p = run((Node("orders-001", "primary", T1),), slots, S2)
    assert (p.slots[1].node, p.slots[0].node, p.slots[0].untag) == ("orders-001", None, True)


# -- rule 6: the demoted primary rejoins after rejoin_after_s -------------------------------


def test_cut_node_is_held_out_until_rejoin_after_s() -> None:
    p = run(nodes("orders-002"), settled(), S1)
    after, forward = applied(p, settled())
    held = run(nodes("orders-002"), after, forward, now=NOW + REJOIN - 1)
    assert held.empty and held.held == ("orders-001",)
    back = run(nodes("orders-002"), after, forward, now=NOW + REJOIN)
    assert back.slots[0].register == (T1,) and back.slots[0].rejoin and not back.switch


def test_cut_node_promoted_again_rejoins_at_once() -> None:
    p = run(nodes("orders-002"), settled(), S1)
    after, forward = applied(p, settled())
    again = run(nodes("orders-001"), after, forward, now=NOW + 1)
    assert again.slots[0].register == (T1,) and again.slots[0].rejoin
    # Not switched back yet: its target starts over, and the current one is healthy.
    assert not again.switch


def test_draining_target_counts_as_absent() -> None:
    slots = [Slot(S1, "orders-001", {T1: DRAINING}), Slot(S2, "orders-002", {T2: HEALTHY})]
    p = run(nodes(), slots, S1)
    assert p.slots[0].register == (T1,)


# -- rule 3: determinism and idempotence (properties) --------------------------------------

IDS = ["orders-001", "orders-002", "orders-003"]
ADDRESSES = {"orders-001": T1, "orders-002": T2, "orders-003": T3}
ARNS = [S1, S2, S3, S4]
HEALTHS = st.sampled_from([HEALTHY, INITIAL, UNHEALTHY, DRAINING])


@st.composite
def situations(draw: st.DrawFn) -> tuple[tuple[Node, ...] | None, list[Slot], str | None, float]:
    member_ids = draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=3, unique=True))
    primary = draw(st.sampled_from(member_ids))
    n: tuple[Node, ...] | None = tuple(Node(i, "primary" if i == primary else "replica", ADDRESSES[i]) for i in member_ids)
    if draw(st.booleans()) and draw(st.booleans()):
        n = None
    count = draw(st.integers(min_value=1, max_value=4))
    slots = []
    for arn in ARNS[:count]:
        tag = draw(st.one_of(st.none(), st.sampled_from(IDS)))
        actual: Mapping[Target, TargetHealth] = draw(st.dictionaries(st.sampled_from([T1, T2, T3]), HEALTHS, max_size=2))
        cut_at = draw(st.one_of(st.none(), st.floats(min_value=NOW - 200, max_value=NOW)))
        slots.append(Slot(arn, tag, actual, cut_at))
    forward = draw(st.one_of(st.none(), st.sampled_from(ARNS[:count])))
    return n, slots, forward, NOW


@settings(max_examples=300, deadline=None)
@given(situations())
def test_same_inputs_give_the_same_plan(situation: tuple) -> None:
    n, slots, forward, now = situation
    assert run(n, slots, forward, now) == run(n, list(slots), forward, now)


@settings(max_examples=300, deadline=None)
@given(situations())
def test_applied_plan_is_a_noop_when_planned_again(situation: tuple) -> None:
    n, slots, forward, now = situation
    p = run(n, slots, forward, now)
    after, forward_after = applied(p, slots, now)
    again = run(n, after, forward_after, now)
    # Nothing the first plan did is planned again, nor undone.
    assert not (again.switch and again.forward_after == p.forward_after)
    registered = {(s.arn, t) for s in p.slots for t in s.register}
    assert not {(s.arn, t) for s in again.slots for t in s.register} & registered
    cut = {(p.cut_slot, t) for t in p.cut}
    assert not {(s.arn, t) for s in again.slots for t in s.deregister} & (registered | cut)
    assert not {s.arn for s in again.slots if s.tag} & {s.arn for s in p.slots if s.tag}


@settings(max_examples=300, deadline=None)
@given(situations())
def test_repeated_runs_settle(situation: tuple) -> None:
    # A freed slot is reused, and a slot left by the listener is freed, only on a later
    # run: five runs settle any situation (with the same ``now``): hold, switch, free,
    # place, register.
    n, slots, forward, now = situation
    for _ in range(5):
        p = run(n, slots, forward, now)
        slots, forward = applied(p, slots, now)
    assert run(n, slots, forward, now).empty


@settings(max_examples=300, deadline=None)
@given(situations())
def test_source_error_plans_nothing(situation: tuple) -> None:
    _, slots, forward, now = situation
    p = run(None, slots, forward, now)
    assert p.blocked and p.empty and p.forward_after == forward


@settings(max_examples=300, deadline=None)
@given(situations())
def test_never_switches_to_unhealthy_while_current_healthy(situation: tuple) -> None:
    n, slots, forward, now = situation
    p = run(n, slots, forward, now)
    if p.switch and forward is not None:
        by = {s.arn: s for s in slots}
        target_ok = by[p.forward_after].healthy()
        assert target_ok or not by[forward].healthy()


@settings(max_examples=300, deadline=None)
@given(situations())
def test_forwarded_slot_never_reassigned(situation: tuple) -> None:
    n, slots, forward, now = situation
    p = run(n, slots, forward, now)
    for s, sp in zip(slots, p.slots):
        if s.arn == forward and s.node:
            assert sp.node == s.node and not sp.untag
            if n is not None and s.node not in {x.cluster_id for x in n}:
                assert not sp.deregister and not sp.register  # a departed node's slot: untouched


def test_replace_keeps_identity() -> None:
    # Guard for the model above: a Slot with the same fields is equal, so plans compare.
    assert replace(Slot(S1), node=None) == Slot(S1)


# -- rule 7: the cut waits listener_settle_s after the switch, and is retried until done --------

SETTLE = 10.0


@dataclass(frozen=True)
class CutCase:
    nodes: tuple[Node, ...]
    slots: list[Slot]
    forward: str
    now: float
    cut: tuple[Target, ...]  # planned in this run
    cut_due: float | None = None
    pending: tuple[str, ...] = ()
    unmark: tuple[str, ...] = ()  # slots whose SWITCH_TAG is dropped
    register: tuple[Target, ...] = ()
    stamp: tuple[str, ...] = ()  # slots whose unknown switch time is recorded now


def switched(at: float | None = NOW, cut_at: float | None = None, health_1: TargetHealth = HEALTHY) -> list[Slot]:
    """The listener moved from slot 1 (orders-001) to slot 2 at ``at``; slot 1 still holds T1
    unless ``health_1`` is None."""
    actual = {T1: health_1} if health_1 is not None else {}
    return [Slot(S1, "orders-001", actual, cut_at=cut_at, switched_at=at), Slot(S2, "orders-002", {T2: HEALTHY}), Slot(S3)]


def unknown(health_1: TargetHealth | None = HEALTHY, cut_at: float | None = None) -> list[Slot]:
    """As ``switched``, but the switch time was never recorded: slot 1 carries the mark
    written before the switch (``SWITCH_UNKNOWN``)."""
    first, *rest = switched(at=None, cut_at=cut_at, health_1=health_1)
    return [replace(first, switch_time_unknown=True), *rest]


CUT_RULES = [
    pytest.param(CutCase(nodes("orders-002"), settled(), S1, NOW, cut=(T1,), cut_due=NOW + SETTLE), id="switch-plans-the-cut-not-before-settle"),
    pytest.param(CutCase(nodes("orders-002"), switched(), S2, NOW + SETTLE - 0.5, cut=(), pending=(S1,)), id="not-cut-before-settle"),
    pytest.param(CutCase(nodes("orders-002"), switched(), S2, NOW + SETTLE, cut=(T1,), cut_due=NOW + SETTLE), id="deferred-cut-on-a-later-run"),
    pytest.param(CutCase(nodes("orders-002"), switched(), S2, NOW + 3600, cut=(T1,), cut_due=NOW + SETTLE), id="deferred-cut-long-after"),
    # CUT_TAG set, deregistration failed: the switch tag is still there, so cut again.
    pytest.param(CutCase(nodes("orders-002"), switched(cut_at=NOW + SETTLE), S2, NOW + SETTLE + 30, cut=(T1,), cut_due=NOW + SETTLE), id="failed-cut-retried"),
    pytest.param(CutCase(nodes("orders-002"), switched(health_1=UNHEALTHY), S2, NOW + SETTLE, cut=(T1,), cut_due=NOW + SETTLE), id="dead-demoted-primary-still-cut"),
    # Promoted again and forwarded to again: never cut the current primary.
    pytest.param(CutCase(nodes("orders-001"), switched(), S1, NOW + SETTLE, cut=(), unmark=(S1,)), id="never-cut-the-primary"),
    # Promoted again, listener not back yet (the switch back is planned): still not cut.
    pytest.param(CutCase(nodes("orders-001"), switched(), S2, NOW + SETTLE, cut=(T2,), cut_due=NOW + 2 * SETTLE, unmark=(S1,)), id="never-cut-the-primary-switching-back"),
    pytest.param(CutCase(nodes("orders-002"), switched(health_1=None, cut_at=NOW + SETTLE), S2, NOW + SETTLE + 1, cut=(), unmark=(S1,)), id="already-out-dropped"),
    pytest.param(CutCase(nodes("orders-002", "orders-002"), switched(), S2, NOW + SETTLE, cut=(), unmark=(S1,)), id="departed-node-dropped"),
    # Switched, the time not recorded after it: recorded now, the cut waits a full settle time.
    pytest.param(CutCase(nodes("orders-002"), unknown(), S2, NOW + 3600, cut=(), pending=(S1,), stamp=(S1,)), id="unknown-switch-time-recorded-now"),
    pytest.param(CutCase(nodes("orders-002"), unknown(health_1=UNHEALTHY), S2, NOW, cut=(), pending=(S1,), stamp=(S1,)), id="unknown-switch-time-dead-node"),
    # The switch itself failed (the listener still forwards to slot 1) and is planned again:
    # cut after this switch, the mark rewritten by it.
    pytest.param(CutCase(nodes("orders-002"), unknown(), S1, NOW, cut=(T1,), cut_due=NOW + SETTLE), id="unknown-switch-time-switch-again"),
    pytest.param(CutCase(nodes("orders-001"), unknown(), S1, NOW, cut=(), unmark=(S1,)), id="unknown-switch-time-primary-forwarded-to"),
    pytest.param(CutCase(nodes("orders-001"), unknown(), S2, NOW, cut=(T2,), cut_due=NOW + SETTLE, unmark=(S1,)), id="unknown-switch-time-primary-again"),
    pytest.param(CutCase(nodes("orders-002"), unknown(health_1=None), S2, NOW, cut=(), unmark=(S1,)), id="unknown-switch-time-already-out"),
    pytest.param(CutCase(nodes("orders-002", "orders-002"), unknown(), S2, NOW, cut=(), unmark=(S1,)), id="unknown-switch-time-departed"),
]


@pytest.mark.parametrize("case", CUT_RULES)
def test_cut_rules(case: CutCase) -> None:
    p = plan_switch(case.nodes, case.slots, case.forward, now=case.now, rejoin_after_s=REJOIN, listener_settle_s=SETTLE)
    primary = next(n for n in case.nodes if n.primary)
    assert primary.target not in p.cut
    assert p.cut == case.cut
    assert p.cut_due == case.cut_due
    if case.cut:
        assert p.cut_due is not None and (p.switch or p.cut_due <= case.now)
    assert p.pending == case.pending
    assert tuple(s.arn for s in p.slots if s.unmark) == case.unmark
    assert tuple(s.arn for s in p.slots if s.stamp) == case.stamp
    # A pending cut keeps its node where it is: nothing else touches the slot before (but
    # recording an unknown switch time).
    for arn in case.pending:
        [sp] = [s for s in p.slots if s.arn == arn]
        assert replace(sp, stamp=False).empty
    if case.pending and not p.switch:
        assert p.empty is not bool(case.stamp)


def test_deferred_cut_then_hold_then_rejoin() -> None:
    """Switch (cut deferred), a run inside the settle time, the cut, the hold, the rejoin."""

    def plan(slots: list[Slot], forward: str, now: float) -> SwitchPlan:
        return plan_switch(nodes("orders-002"), slots, forward, now=now, rejoin_after_s=REJOIN, listener_settle_s=SETTLE)

    first = plan(settled(), S1, NOW)
    assert first.switch and first.cut == (T1,) and first.cut_due == NOW + SETTLE
    # The invocation could not wait: the switch tag is all that was written.
    assert plan(switched(), S2, NOW + 1).empty
    cut = plan(switched(), S2, NOW + SETTLE + 5)
    assert cut.cut == (T1,) and cut.cut_slot == S1 and not cut.switch
    after = [Slot(S1, "orders-001", {}, cut_at=NOW + SETTLE + 5), Slot(S2, "orders-002", {T2: HEALTHY}), Slot(S3)]
    held = plan(after, S2, NOW + SETTLE + 6)
    assert held.empty and held.held == ("orders-001",)
    back = plan(after, S2, NOW + SETTLE + 5 + REJOIN)
    assert back.slots[0].register == (T1,) and back.slots[0].rejoin and not back.cut


def test_unknown_switch_time_is_recorded_then_cut_a_settle_time_later() -> None:
    """The switch time could not be recorded after the switch: the next run records it
    (and nothing else), a run inside the settle time after that waits, the first run after
    it cuts."""

    def plan(slots: list[Slot], now: float) -> SwitchPlan:
        return plan_switch(nodes("orders-002"), slots, S2, now=now, rejoin_after_s=REJOIN, listener_settle_s=SETTLE)

    found = plan(unknown(), NOW + 100)
    assert not found.switch and not found.cut and found.slots[0].stamp and found.slots[0].register == found.slots[0].deregister == ()
    assert [s.arn for s in found.slots if not s.empty] == [S1]
    recorded = switched(at=NOW + 100)
    assert plan(recorded, NOW + 100 + SETTLE - 0.5).empty
    cut = plan(recorded, NOW + 100 + SETTLE)
    assert cut.cut == (T1,) and cut.cut_slot == S1 and cut.cut_due == NOW + 100 + SETTLE and not cut.slots[0].stamp


def test_negative_settle_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_switch(nodes(), settled(), S1, now=NOW, rejoin_after_s=REJOIN, listener_settle_s=-1)

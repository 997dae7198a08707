"""The planner's safety rules (DESIGN.md, "Safety rules of the planner").

Scenario cases first, one table row per situation the controller meets; then property
tests that hold for any desired set, any live target group and any cap.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cachebridge.planner import Plan, plan
from cachebridge.targets import Target, TargetHealth, TargetState

HEALTHY = TargetHealth(TargetState.HEALTHY)
INITIAL = TargetHealth(TargetState.INITIAL)
UNHEALTHY = TargetHealth(TargetState.UNHEALTHY)
DRAINING = TargetHealth(TargetState.DRAINING)
UNHEALTHY_DRAINING = TargetHealth(TargetState.UNHEALTHY_DRAINING)

OLD_PRIMARY = Target("10.0.1.10", 6379)
NEW_PRIMARY = Target("10.0.2.20", 6379)
A = Target("10.0.0.1", 6379)
B = Target("10.0.0.2", 6379)
C = Target("10.0.0.3", 6379)
D = Target("10.0.0.4", 6379)
E = Target("10.0.0.5", 6379)


def ts(*targets: Target) -> tuple[Target, ...]:
    return tuple(sorted(targets))


@dataclass(frozen=True)
class Case:
    desired: frozenset[Target] | None
    actual: Mapping[Target, TargetHealth]
    max_changes: int
    register: tuple[Target, ...] = ()
    deregister: tuple[Target, ...] = ()
    unchanged: tuple[Target, ...] = ()
    deferred: frozenset[Target] = frozenset()
    blocked: bool = False


CASES = [
    pytest.param(
        Case(
            desired=frozenset({NEW_PRIMARY}),
            actual={OLD_PRIMARY: HEALTHY},
            max_changes=4,
            register=(NEW_PRIMARY,),
            deregister=(OLD_PRIMARY,),
        ),
        id="failover swaps primary",
    ),
    pytest.param(
        Case(
            desired=frozenset({NEW_PRIMARY}),
            actual={OLD_PRIMARY: HEALTHY},
            max_changes=1,
            register=(NEW_PRIMARY,),
            deferred=frozenset({OLD_PRIMARY}),
        ),
        id="failover with cap 1 registers the new primary and keeps the old one for the next run",
    ),
    pytest.param(
        Case(
            desired=frozenset({NEW_PRIMARY}),
            actual={OLD_PRIMARY: HEALTHY, NEW_PRIMARY: INITIAL},
            max_changes=1,
            deregister=(OLD_PRIMARY,),
            unchanged=(NEW_PRIMARY,),
        ),
        id="second capped failover run deregisters the old primary once the new one is registered",
    ),
    pytest.param(
        Case(
            desired=frozenset({A}),
            actual={A: HEALTHY},
            max_changes=4,
            unchanged=(A,),
        ),
        id="already in sync",
    ),
    pytest.param(
        Case(
            desired=frozenset({A, B}),
            actual={A: UNHEALTHY, B: INITIAL},
            max_changes=4,
            unchanged=(A, B),
        ),
        id="unhealthy or initial desired targets are left alone",
    ),
    pytest.param(
        Case(
            desired=frozenset({A}),
            actual={A: DRAINING},
            max_changes=4,
            register=(A,),
        ),
        id="draining target that is desired is re-registered",
    ),
    pytest.param(
        Case(
            desired=frozenset({A}),
            actual={A: UNHEALTHY_DRAINING, B: HEALTHY},
            max_changes=4,
            register=(A,),
            deregister=(B,),
        ),
        id="unhealthy.draining target that is desired is re-registered",
    ),
    pytest.param(
        Case(
            desired=frozenset({NEW_PRIMARY}),
            actual={OLD_PRIMARY: DRAINING, NEW_PRIMARY: HEALTHY},
            max_changes=4,
            unchanged=(NEW_PRIMARY,),
        ),
        id="draining stale target is not deregistered again",
    ),
    pytest.param(
        Case(
            desired=frozenset({NEW_PRIMARY}),
            actual={OLD_PRIMARY: UNHEALTHY_DRAINING},
            max_changes=4,
            register=(NEW_PRIMARY,),
        ),
        id="unhealthy.draining stale target is not deregistered again",
    ),
    pytest.param(
        Case(
            desired=frozenset({Target("10.0.0.1", 6380)}),
            actual={Target("10.0.0.1", 6379): HEALTHY},
            max_changes=4,
            register=(Target("10.0.0.1", 6380),),
            deregister=(Target("10.0.0.1", 6379),),
        ),
        id="same IP different port is a different target",
    ),
    pytest.param(
        Case(
            desired=frozenset({Target("2001:db8::1", 6379)}),
            actual={Target("2001:0DB8:0:0::1", 6379): HEALTHY},
            max_changes=4,
            unchanged=(Target("2001:db8::1", 6379),),
        ),
        id="two spellings of one IPv6 address are the same target",
    ),
    pytest.param(
        Case(
            desired=None,
            actual={OLD_PRIMARY: HEALTHY, B: HEALTHY, C: DRAINING},
            max_changes=4,
            unchanged=ts(OLD_PRIMARY, B),
            blocked=True,
        ),
        id="source failed (desired None) plans nothing and is blocked",
    ),
    pytest.param(
        Case(desired=None, actual={}, max_changes=4, blocked=True),
        id="source failed with an empty target group plans nothing and is blocked",
    ),
    pytest.param(
        Case(
            desired=frozenset(),
            actual={OLD_PRIMARY: HEALTHY, B: UNHEALTHY},
            max_changes=4,
            unchanged=ts(OLD_PRIMARY, B),
            blocked=True,
        ),
        id="empty source plans nothing",
    ),
    pytest.param(
        Case(
            desired=frozenset({C, D, E}),
            actual={A: HEALTHY, B: HEALTHY},
            max_changes=2,
            register=(C, D),
            deferred=frozenset({E, A, B}),
        ),
        id="cap defers changes with registers taking the budget first",
    ),
    pytest.param(
        Case(
            desired=frozenset({C}),
            actual={A: HEALTHY, B: HEALTHY},
            max_changes=2,
            register=(C,),
            deregister=(A,),
            deferred=frozenset({B}),
        ),
        id="cap leaves the rest of the budget to deregisters",
    ),
    pytest.param(
        Case(
            desired=frozenset({A}),
            actual={A: HEALTHY, B: HEALTHY, C: HEALTHY, D: HEALTHY},
            max_changes=2,
            deregister=(B, C),
            unchanged=(A,),
            deferred=frozenset({D}),
        ),
        id="cap limits deregisters when the desired target is already registered",
    ),
    pytest.param(
        Case(
            desired=frozenset({A, B}),
            actual={},
            max_changes=4,
            register=(A, B),
        ),
        id="empty target group gets every desired target",
    ),
    pytest.param(
        Case(
            desired=frozenset({NEW_PRIMARY}),
            actual={OLD_PRIMARY: HEALTHY, NEW_PRIMARY: UNHEALTHY},
            max_changes=4,
            unchanged=(NEW_PRIMARY,),
            deferred=frozenset({OLD_PRIMARY}),
        ),
        id="old primary stays while the only desired target fails its health checks",
    ),
    pytest.param(
        Case(
            desired=frozenset({NEW_PRIMARY}),
            actual={OLD_PRIMARY: HEALTHY, NEW_PRIMARY: INITIAL},
            max_changes=4,
            deregister=(OLD_PRIMARY,),
            unchanged=(NEW_PRIMARY,),
        ),
        id="old primary goes once the desired target is registered and initial",
    ),
    pytest.param(
        Case(
            desired=frozenset({A, B}),
            actual={A: UNHEALTHY, B: HEALTHY, C: HEALTHY},
            max_changes=4,
            deregister=(C,),
            unchanged=(A, B),
        ),
        id="one healthy desired target is enough to deregister a stale one",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_scenario(case: Case) -> None:
    result = plan(case.desired, case.actual, max_changes=case.max_changes)
    assert result.register == case.register
    assert result.deregister == case.deregister
    assert result.unchanged == case.unchanged
    assert frozenset(result.deferred) == case.deferred
    assert len(result.deferred) == len(case.deferred)
    assert result.blocked is case.blocked


@pytest.mark.parametrize("max_changes", [0, -1, -100])
def test_max_changes_below_one_raises(max_changes: int) -> None:
    with pytest.raises(ValueError, match="max_changes"):
        plan(frozenset({A}), {B: HEALTHY}, max_changes=max_changes)


@pytest.mark.parametrize(
    ("desired", "words"),
    [
        pytest.param(None, "source failed", id="source-failed"),
        pytest.param(frozenset(), "no address", id="empty-source"),
    ],
)
def test_blocked_plan_says_why(desired: frozenset[Target] | None, words: str) -> None:
    result = plan(desired, {A: HEALTHY}, max_changes=4)
    assert result.empty
    assert any(words in reason for reason in result.reasons)


def test_reasons_name_the_targets() -> None:
    result = plan(frozenset({A, C}), {A: DRAINING, B: HEALTHY, D: HEALTHY}, max_changes=2)
    text = "\n".join(result.reasons)
    assert "re-register draining" in text and str(A) in text
    assert "register" in text and str(C) in text
    assert "max_changes=2" in text
    for target in result.deferred:
        assert str(target) in text


def test_in_sync_plan_has_no_reasons() -> None:
    result = plan(frozenset({A}), {A: HEALTHY}, max_changes=4)
    assert not result.blocked
    assert result.empty
    assert result.reasons == ()


# -- properties ------------------------------------------------------------------------

POOL = [
    Target(ip, port)
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "172.16.0.9", "fd00::1")
    for port in (6379, 6380)
]
ALL_HEALTH = [TargetHealth(state) for state in TargetState]

targets = st.sampled_from(POOL)
healths = st.sampled_from(ALL_HEALTH)
actuals = st.dictionaries(targets, healths, max_size=len(POOL))
nonempty_desired = st.frozensets(targets, min_size=1, max_size=6)
any_desired = st.one_of(st.none(), st.just(frozenset()), nonempty_desired)
caps = st.integers(min_value=1, max_value=6)


def live(actual: Mapping[Target, TargetHealth]) -> frozenset[Target]:
    return frozenset(t for t, h in actual.items() if not h.draining)


def apply(p: Plan, actual: Mapping[Target, TargetHealth], keep_draining: bool) -> dict[Target, TargetHealth]:
    """What the target group reports after the plan is applied and health checks pass.

    ``keep_draining`` also keeps deregistered and previously draining targets in the
    group as draining, as a real NLB does during the deregistration delay.
    """
    after = (live(actual) | set(p.register)) - set(p.deregister)
    result = {t: HEALTHY for t in after}
    if keep_draining:
        for t, h in actual.items():
            if h.draining and t not in after:
                result[t] = h
        for t in p.deregister:
            result[t] = DRAINING
    return result


def held_for_health(p: Plan) -> bool:
    return any("failing its health checks" in reason for reason in p.reasons)


def drift(desired: frozenset[Target], actual: Mapping[Target, TargetHealth]) -> int:
    return len(desired ^ live(actual))


@settings(max_examples=200, deadline=None)
@given(desired=any_desired, actual=actuals, keep_draining=st.booleans())
def test_applied_plan_is_a_no_op_when_planned_again(
    desired: frozenset[Target] | None, actual: dict[Target, TargetHealth], keep_draining: bool
) -> None:
    first = plan(desired, actual, max_changes=1000)
    assume(not held_for_health(first))  # that case has its own property below
    assert not first.deferred
    after = apply(first, actual, keep_draining)
    second = plan(desired, after, max_changes=1000)
    assert second.empty
    if desired:
        assert live(after) == desired


@settings(max_examples=200, deadline=None)
@given(desired=nonempty_desired, actual=actuals, cap=st.integers(1, 3), keep_draining=st.booleans())
def test_capped_runs_converge_within_ceil_drift_over_cap(
    desired: frozenset[Target], actual: dict[Target, TargetHealth], cap: int, keep_draining: bool
) -> None:
    assume(not held_for_health(plan(desired, actual, max_changes=1000)))
    remaining = drift(desired, actual)
    runs = math.ceil(remaining / cap)
    for _ in range(runs):
        p = plan(desired, actual, max_changes=cap)
        assert p.drift == remaining
        assert p.changes == min(cap, remaining)
        actual = apply(p, actual, keep_draining)
        assert live(actual) & desired, "a capped run left no desired target registered"
        remaining = drift(desired, actual)
    assert remaining == 0
    assert plan(desired, actual, max_changes=cap).empty
    assert live(actual) == desired


@settings(max_examples=200, deadline=None)
@given(desired=nonempty_desired, actual=actuals, cap=caps)
def test_nothing_is_deregistered_for_a_desired_target_that_is_failing(
    desired: frozenset[Target], actual: dict[Target, TargetHealth], cap: int
) -> None:
    p = plan(desired, actual, max_changes=cap)
    standing = [t for t in p.unchanged if actual[t].state is not TargetState.UNHEALTHY]
    if p.deregister:
        assert standing or p.register
    if held_for_health(p):
        assert p.deregister == () and not p.register and not standing


@settings(max_examples=200, deadline=None)
@given(desired=st.sampled_from([None, frozenset()]), actual=actuals, cap=caps)
def test_failed_or_empty_source_never_deregisters(
    desired: frozenset[Target] | None, actual: dict[Target, TargetHealth], cap: int
) -> None:
    p = plan(desired, actual, max_changes=cap)
    assert p.deregister == ()
    assert p.register == ()
    assert p.blocked
    assert set(p.unchanged) == live(actual)


@settings(max_examples=200, deadline=None)
@given(desired=nonempty_desired, actual=actuals, cap=caps)
def test_applied_plan_leaves_a_desired_target_registered(
    desired: frozenset[Target], actual: dict[Target, TargetHealth], cap: int
) -> None:
    p = plan(desired, actual, max_changes=cap)
    assert not p.blocked
    assert live(apply(p, actual, keep_draining=False)) & desired


@settings(max_examples=200, deadline=None)
@given(desired=any_desired, actual=actuals, cap=caps)
def test_deregister_only_while_something_desired_remains(
    desired: frozenset[Target] | None, actual: dict[Target, TargetHealth], cap: int
) -> None:
    p = plan(desired, actual, max_changes=cap)
    if p.deregister:
        assert desired
        kept = set(p.unchanged) | set(p.register)
        assert kept & desired
        assert set(p.register) == desired - live(actual), "deregistering before every register is planned"


@settings(max_examples=200, deadline=None)
@given(desired=any_desired, actual=actuals, cap=caps)
def test_plan_sets_are_consistent(
    desired: frozenset[Target] | None, actual: dict[Target, TargetHealth], cap: int
) -> None:
    p = plan(desired, actual, max_changes=cap)
    now_live = live(actual)
    register, deregister, unchanged = set(p.register), set(p.deregister), set(p.unchanged)
    assert not register & now_live
    assert deregister <= now_live
    assert unchanged <= now_live
    assert not register & deregister
    assert not deregister & unchanged
    if desired:
        assert register <= desired
        assert not deregister & desired
        assert unchanged == now_live & desired
        assert register | set(p.deferred) | deregister == desired ^ now_live


@settings(max_examples=200, deadline=None)
@given(desired=any_desired, actual=actuals, cap=caps)
def test_cap_bounds_changes(desired: frozenset[Target] | None, actual: dict[Target, TargetHealth], cap: int) -> None:
    p = plan(desired, actual, max_changes=cap)
    assert len(p.register) + len(p.deregister) <= cap
    assert p.changes <= cap


@settings(max_examples=200, deadline=None)
@given(desired=any_desired, actual=actuals, cap=caps, seed=st.integers(0, 2**32 - 1))
def test_same_inputs_in_any_order_give_the_same_plan(
    desired: frozenset[Target] | None, actual: dict[Target, TargetHealth], cap: int, seed: int
) -> None:
    rng = random.Random(seed)
    items = list(actual.items())
    rng.shuffle(items)
    shuffled_actual = dict(items)
    shuffled_desired = None
    if desired is not None:
        members = list(desired)
        rng.shuffle(members)
        shuffled_desired = frozenset(members)
    assert plan(desired, actual, max_changes=cap) == plan(shuffled_desired, shuffled_actual, max_changes=cap)


@settings(max_examples=200, deadline=None)
@given(desired=any_desired, actual=actuals, cap=caps)
def test_plan_tuples_are_sorted_and_unique(
    desired: frozenset[Target] | None, actual: dict[Target, TargetHealth], cap: int
) -> None:
    p = plan(desired, actual, max_changes=cap)
    for name in ("register", "deregister", "unchanged", "deferred"):
        values = getattr(p, name)
        assert isinstance(values, tuple), name
        assert list(values) == sorted(set(values)), name


ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))


@settings(max_examples=200, deadline=None)
@given(
    addresses=st.lists(ips, min_size=1, max_size=4, unique=True),
    ports=st.lists(st.integers(1, 65535), min_size=2, max_size=2, unique=True),
)
def test_same_ip_on_another_port_is_another_target(addresses: list, ports: list[int]) -> None:
    desired_port, actual_port = ports
    desired = frozenset(Target(str(ip), desired_port) for ip in addresses)
    actual = {Target(str(ip), actual_port): HEALTHY for ip in addresses}
    p = plan(desired, actual, max_changes=1000)
    assert set(p.register) == desired
    assert set(p.deregister) == set(actual)
    assert p.unchanged == ()


@settings(max_examples=200, deadline=None)
@given(addresses=st.lists(st.ip_addresses(v=6), min_size=1, max_size=4, unique=True), port=st.integers(1, 65535))
def test_identity_ignores_how_the_ip_is_spelled(addresses: list, port: int) -> None:
    desired = frozenset(Target(ip.exploded.upper(), port) for ip in addresses)
    actual = {Target(ip.compressed, port): HEALTHY for ip in addresses}
    p = plan(desired, actual, max_changes=1000)
    assert p.empty
    assert set(p.unchanged) == desired

"""Hostile attacks on ``read_order`` (pure): the rotation of the groups a new instance never
read, and the reserve kept for a change, with clocks and pass sizes that are odd."""

from __future__ import annotations

import math

import pytest

from cachebridge.read_order import ReadBudget, rotation_offset


@pytest.mark.parametrize(("n", "per_pass", "reads"), [(1080, 540, 500), (1200, 400, 390), (100, 50, 49), (90, 30, 29)])
def test_new_instances_every_minute_reach_every_group_though_each_reads_fewer_than_its_estimate(n: int, per_pass: int, reads: int) -> None:
    """A new instance each minute (nothing remembered) reads ``reads`` never-read groups from
    where the minute says; the estimate ``per_pass`` is a little high (the prefetch took
    tokens). With a step that divides the group count, the starting points cycled over a
    few values and the groups just past each window were never read by any instance."""
    covered: set[int] = set()
    for minute in range(4 * n):
        start = rotation_offset(n, minute * 60.0, per_pass)
        covered |= {(start + i) % n for i in range(reads)}
        if len(covered) == n:
            break
    assert covered == set(range(n)), f"never read: {sorted(set(range(n)) - covered)[:10]}..."


@pytest.mark.parametrize("n", [1000, 1080])
def test_the_step_stays_close_to_what_a_pass_reads(n: int) -> None:
    """Two successive minutes still cover what two passes can read (no large overlap)."""
    per_pass = 540
    first, second = rotation_offset(n, 0.0, per_pass), rotation_offset(n, 60.0, per_pass)
    step = (second - first) % n
    assert per_pass - 10 <= step <= per_pass


@pytest.mark.parametrize("wall", [math.inf, -math.inf, math.nan, 1e308, -1e308])
def test_a_broken_wall_clock_gives_a_start_inside_the_list(wall: float) -> None:
    for per_pass in (None, 3, 7):
        assert 0 <= rotation_offset(10, wall, per_pass) < 10


def test_a_clock_going_backwards_keeps_back_no_negative_time() -> None:
    budget = ReadBudget(
        deadline=50.0, call_budget_s=1.0, poll_interval_s=0.5, first_read_at=10.0,
        source_round_s=-5.0, rate_per_s=None, concurrency=2, source_read_s=-1.0,
    )
    assert budget.found_change(9.0, details_known=True, locked=True)
    assert 0.0 <= budget.reserve_s() <= 2 * 1.0 + 1.0
    assert budget.may_read(9.5)


def test_the_confirming_read_is_the_changed_sources_not_the_whole_round() -> None:
    """A first round of 30 s (many sources) but no read over 0.5 s: one change keeps back
    about one read, its calls and its writes, not 30 s."""
    budget = ReadBudget(
        deadline=60.0, call_budget_s=2.0, poll_interval_s=0.5, first_read_at=0.0,
        source_round_s=30.0, rate_per_s=None, concurrency=4, source_read_s=0.5,
    )
    assert budget.found_change(31.0, details_known=True, locked=False)
    assert budget.reserve_s() < 10.0
    # Many changes: the round of re-reads grows with them, up to the whole first round.
    assert budget._confirm_s(8) == 1.0
    assert budget._confirm_s(1000) == 30.0


def test_an_event_pass_keeps_back_the_whole_round() -> None:
    budget = ReadBudget(
        deadline=60.0, call_budget_s=2.0, poll_interval_s=0.5, first_read_at=0.0,
        source_round_s=30.0, rate_per_s=None, concurrency=4, source_read_s=None,
    )
    assert not budget.found_change(31.0, details_known=True, locked=False)
    assert budget.deferred == 1

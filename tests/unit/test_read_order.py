"""``read_order``: the order of a pass's target health reads and when they stop (pure)."""

from __future__ import annotations

import math

import pytest

from cachebridge.nlb import Seen
from cachebridge.read_order import CONFIRM_WAIT_POLLS, FIRST_WRITE_S, ReadBudget, health_order, rotation_offset
from cachebridge.targets import Target

A, B = frozenset({Target("10.0.0.1", 6379)}), frozenset({Target("10.0.0.2", 6379)})


def order(items: dict[str, tuple[Seen | None, frozenset[Target] | None]], wall_s: float = 0.0, per_pass: int | None = None) -> list[str]:
    return health_order(list(items), lambda k: items[k][0], lambda k: items[k][1], wall_s=wall_s, per_pass=per_pass)


def test_changed_first_then_never_read_then_least_recently_read_then_failed_sources() -> None:
    items = {
        "in-sync-old": (Seen(A, 1.0), A),
        "failed": (Seen(A, 0.5), None),
        "changed-new": (Seen(A, 9.0), B),
        "never": (None, A),
        "in-sync-new": (Seen(B, 5.0), B),
        "changed-old": (Seen(B, 2.0), A),
    }

    assert order(items) == ["changed-old", "changed-new", "never", "in-sync-old", "in-sync-new", "failed"]


def test_ties_keep_the_configuration_order() -> None:
    items = {name: (Seen(A, 1.0), A) for name in ("c", "a", "b")}

    assert order(items) == ["c", "a", "b"]


def test_the_never_read_groups_start_where_the_minute_says() -> None:
    items = {f"g{i}": (None, A) for i in range(10)}

    at_0 = order(items, wall_s=10.0, per_pass=3)
    at_1 = order(items, wall_s=70.0, per_pass=3)
    at_1_step_4 = order(items, wall_s=70.0, per_pass=4)  # 4 and 10 share a factor: a step of 3

    assert at_0 == [f"g{i}" for i in range(10)]
    assert at_1 == [f"g{(3 + i) % 10}" for i in range(10)]
    assert at_1_step_4 == at_1


def test_successive_minutes_cover_every_group_in_as_few_passes_as_the_bucket_allows() -> None:
    n, per_pass = 1000, 540
    covered: set[int] = set()
    for minute in range(2):
        start = rotation_offset(n, minute * 60.0, per_pass)
        covered |= {(start + i) % n for i in range(per_pass)}

    assert covered == set(range(n))


@pytest.mark.parametrize("n", [2, 7, 100, 1000])
def test_without_a_pass_size_the_start_still_moves_every_minute(n: int) -> None:
    starts = [rotation_offset(n, m * 60.0, None) for m in range(3)]

    assert all(0 <= s < n for s in starts)
    assert len(set(starts)) == min(3, n)


def budget(**overrides: object) -> ReadBudget:
    values: dict[str, object] = {
        "deadline": 50.0, "call_budget_s": 9.0, "poll_interval_s": 0.5, "first_read_at": 0.0,
        "source_round_s": 1.0, "rate_per_s": 10.0, "concurrency": 8,
    }
    values.update(overrides)
    return ReadBudget(**values)  # type: ignore[arg-type]


def test_reads_go_on_to_the_deadline_while_nothing_changed() -> None:
    b = budget()

    assert b.may_read(49.9) and not b.may_read(50.0)
    assert not b.holding_back


def test_a_change_found_keeps_back_its_confirming_read_its_reads_and_its_writes() -> None:
    b = budget()
    b.read_took(0.03)

    assert b.found_change(5.0, details_known=False, locked=True)

    # The source round again (1 s), 3 ELB reads at 10 a second (0.3 s), its writes (4
    # calls of 0.03 s, 8 at a time), a register and a deregister at their worst (2 x 9 s),
    # and what a first write does before them. The confirming read's wait runs from the
    # first source read (CONFIRM_WAIT_POLLS), not from the last health read.
    assert b.reserve_s() == pytest.approx(1.0 + 0.3 + 4 * 0.03 / 8 + 18.0 + FIRST_WRITE_S)
    assert b.confirm_at() == CONFIRM_WAIT_POLLS * b.poll_interval_s
    assert b.holding_back
    assert b.may_read(50.0 - b.reserve_s() - 0.01)
    assert not b.may_read(50.0 - b.reserve_s() + 0.01)


def test_unlocked_writes_keep_back_four_calls_at_their_worst() -> None:
    b = budget(source_round_s=0.0, rate_per_s=None)

    assert b.found_change(0.0, details_known=True, locked=False)

    assert b.reserve_s() >= 4 * 9.0


def test_a_change_found_too_late_is_left_for_the_next_run_and_the_others_kept() -> None:
    b = budget()
    assert b.found_change(1.0, details_known=True, locked=True)
    kept = b.reserve_s()

    assert not b.found_change(45.0, details_known=True, locked=True)

    assert b.deferred == 1
    assert b.reserve_s() == kept


def test_without_a_deadline_nothing_is_held_back() -> None:
    b = budget(deadline=None)
    assert b.found_change(1e9, details_known=False, locked=False)

    assert b.may_read(math.inf)



def test_the_tags_of_the_changes_found_are_kept_back_at_one_call_per_20_groups() -> None:
    # A change on a group whose details are known keeps back its lease re-read and its share
    # of a DescribeTags (the tags are read again before every write, 20 groups a call).
    reserved = {}
    for n in (1, 20, 21):
        b = budget(deadline=1e6)
        b.read_took(0.03)
        for _ in range(n):
            assert b.found_change(0.0, details_known=True, locked=True)
        reserved[n] = b.reserve_s()
    token_s, writes_s = 1 / 10.0, 4 * 0.03 / 8  # one token at 10 a second; a change's writes
    # 1 change: 1 re-read + 1 tags call; 20: 20 + 1; 21: 21 + 2.
    assert reserved[20] - reserved[1] == pytest.approx((21 - 2) * token_s + 19 * writes_s)
    assert reserved[21] - reserved[20] == pytest.approx((23 - 21) * token_s + writes_s)

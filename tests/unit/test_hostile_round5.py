"""Hostile checks of the time a pass keeps back once it finds a change (``read_order``,
pure): the confirming read's wait at the extremes of ``poll_interval_s``."""

from __future__ import annotations

import pytest

from cachebridge.read_order import ReadBudget

# The default function: a 60 s timeout less the handler's margin (1 s and one call at its
# worst, 9 s), as ``handler._deadline`` makes it.
DEADLINE = 50.0


def budget(poll_interval_s: float, **overrides: object) -> ReadBudget:
    values: dict[str, object] = {
        "deadline": DEADLINE, "call_budget_s": 9.0, "poll_interval_s": poll_interval_s, "first_read_at": 0.0,
        "source_round_s": 0.5, "rate_per_s": 10.0, "concurrency": 8, "source_read_s": 0.05,
    }
    values.update(overrides)
    return ReadBudget(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("poll_interval_s", [0.05, 0.5, 5.0, 20.0, 30.0])
def test_a_change_found_at_once_under_a_lease_is_kept_for_this_run_up_to_a_30_s_poll(poll_interval_s: float) -> None:
    b = budget(poll_interval_s)
    b.read_took(0.03)

    assert b.found_change(0.1, details_known=True, locked=True)
    assert b.never_fits(details_known=True, locked=True) is None
    # The wait is kept back from the first source read, once, not after each change.
    assert b.may_read(DEADLINE - b.reserve_s() - 0.01)
    assert b.reserve_s() < 2 * 9.0 + 1.0


def test_the_wait_is_not_counted_twice_once_the_health_reads_outlast_it() -> None:
    # Health reads until 25 s with a 20 s poll: the confirming read follows them at once,
    # so a change found at 25 s still has 50 - 25 = 25 s for its 18 s of writes.
    b = budget(20.0)
    b.read_took(0.03)

    assert b.found_change(25.0, details_known=True, locked=True)
    assert not b.found_change(DEADLINE - 18.0 + 0.5, details_known=True, locked=True)


@pytest.mark.parametrize(("poll_interval_s", "locked"), [(60.0, True), (40.0, True), (20.0, False), (60.0, False)])
def test_a_poll_interval_that_never_fits_says_so_and_what_would(poll_interval_s: float, locked: bool) -> None:
    b = budget(poll_interval_s)

    assert not b.found_change(0.0, details_known=False, locked=locked)
    why = b.never_fits(details_known=False, locked=locked)

    assert why is not None and f"poll_interval_s={poll_interval_s:g}" in why
    advised = float(why.split("at most ")[1].split(" s")[0])
    assert 0 < advised < poll_interval_s
    fitting = budget(advised)
    assert fitting.found_change(0.0, details_known=False, locked=locked)
    assert fitting.never_fits(details_known=False, locked=locked) is None
    assert ("lock table" in why) is not locked


def test_a_deadline_too_close_for_any_poll_asks_for_a_longer_timeout() -> None:
    b = budget(0.5, deadline=10.0)

    assert not b.found_change(0.0, details_known=True, locked=True)
    why = b.never_fits(details_known=True, locked=True)
    assert why is not None and "longer function timeout" in why


def test_without_a_deadline_everything_fits() -> None:
    b = budget(60.0, deadline=None)

    assert b.found_change(1e6, details_known=False, locked=False)
    assert b.never_fits(details_known=False, locked=False) is None

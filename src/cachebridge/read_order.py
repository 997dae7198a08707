"""Which target groups a pass reads first, and how much of the pass it keeps back.

Under Elastic Load Balancing's documented ``Describe*`` throttle (40 tokens, refilled at
10 a second; ``pacing``, ``docs/scale.md``) a pass cannot read the health of more than
about 540 target groups before its deadline. ``sync`` reads every source first (they cost
no ELB token), so by the time it reads target health it knows what each group should
hold, and it spends its ELB reads where they are most useful (``health_order``):

1. **Changed**: groups whose source now gives something else than what this process last
   saw registered there (``nlb.last_seen``): a failover, a node replacement, a group
   someone edited. Least recently read first; a change found too late to apply keeps the
   age its group had (``nlb.read_first``), so it comes before those read since.
2. **Never read** by this process (a new instance, or groups a pass before did not
   reach), in a rotating order: the starting point moves with the wall clock's minute, by
   about as many groups as a pass can read (a step prime to their count: each group is a
   starting point in turn), so successive new instances (and successive passes)
   do not all start at the same bindings.
3. **The rest**, least recently read first: a warm instance sweeps every group in turn.
4. Bindings whose source read failed: nothing can be applied to them this run; their
   group is read last, for the report.

Once a change is found, the pass keeps back what it needs to apply it (``ReadBudget``):
the confirming source read (a poll interval after the first one: kept back from the first
read, not from each change), the ELB reads the write
step makes (the groups' tags, 20 groups a call on every pass that writes; a group's
attributes, once per group per instance; the lease path's re-read), the writes themselves, and the time left that a write needs at its start
(``writes``: a register and a deregister at their worst, ``aws.call_budget_s`` each;
four calls without a lock table). Target health reads stop when the time left no longer
covers that; a change found after that line is left for the next run, which reads it
first (it is then a "changed" group). The planner, the agreement of two source reads and
the writes' own checks are unchanged: this module only orders reads and stops them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from . import pacing
from .nlb import DESCRIBE_TAGS_CHUNK, Seen
from .targets import Target

__all__ = ["ReadBudget", "health_order", "rotation_offset", "paced_rate", "reads_per_pass", "GOLDEN_FRACTION", "CONFIRM_WAIT_POLLS", "FIRST_WRITE_S"]

_W = TypeVar("_W")

# Without a pacing figure to size the rotation step, successive minutes start about 0.618
# of the way round from each other: the starting points spread evenly however many groups
# there are (the golden ratio's fractional part).
GOLDEN_FRACTION = (math.sqrt(5) - 1) / 2

# Calls the write step makes per binding besides the ones ``writes`` covers at its start
# (register, deregister, a share of the lease's transaction and release), for the time the
# writes of many bindings take one after another, ``max_concurrency`` at a time.
WRITE_CALLS = 4

# The confirming read starts this many poll intervals after the pass's first source read
# (``sync``: the first round's pause is the interval less what the health reads took), or
# right after the health reads when they took longer. So the wait is kept back from the
# first read, not added to what every change needs after the last health read: counted
# after it, a poll interval of 20 s under the default 60 s function left a change no time
# in any run, though the pass had 30 s to spare.
CONFIRM_WAIT_POLLS = 1.0
# What an instance's first write to a group does before ``writes`` checks the time left and
# no call count covers: building a client and reading the VPC's CIDRs when ``vpc_cidrs`` is
# not set (about 0.1-0.5 s on the benchmark machine: ``benchmarks/throttled_pass.py``).
FIRST_WRITE_S = 1.0


def rotation_offset(n: int, wall_s: float, per_pass: int | None) -> int:
    """Where the never-read groups start this minute: about ``per_pass`` (how many a pass
    can read; at most that, and prime to ``n``) further round than the minute before, or a
    golden-ratio step when unknown."""
    if n <= 1:
        return 0
    if not math.isfinite(wall_s):
        wall_s = 0.0  # a broken clock still orders the reads; it must not end the pass
    minute = int(wall_s // 60)
    if per_pass and 0 < per_pass < n:
        # A step prime to ``n``: every group is a starting point within ``n`` minutes. A
        # step that divides into ``n`` (540 of 1080) cycles over a few starting points, and
        # when passes read fewer groups than estimated, those just past each window were
        # never read by any new instance.
        step = per_pass
        while math.gcd(step, n) != 1:
            step -= 1
        return (minute * step) % n
    return int(((minute * GOLDEN_FRACTION) % 1.0) * n) % n


def paced_rate() -> float | None:
    """The refill of the ELB Describe* bucket this process paces to (None: not paced)."""
    bucket = pacing.current()
    return bucket.rate_per_s if bucket is not None else None


def reads_per_pass(deadline: float | None, now: float) -> int | None:
    """How many target health reads the pacing bucket pays for before ``deadline`` (the
    step the never-read groups' starting point moves by each minute); None when unknown."""
    bucket = pacing.current()
    if bucket is None or deadline is None:
        return None
    return int(bucket.burst + bucket.rate_per_s * max(0.0, deadline - now))


def health_order(
    items: Sequence[_W],
    seen: Callable[[_W], Seen | None],
    desired: Callable[[_W], frozenset[Target] | None],
    *,
    wall_s: float,
    per_pass: int | None = None,
) -> list[_W]:
    """``items`` in the order their target health should be read (module docstring).
    ``seen``: what this process last saw in the item's group; ``desired``: what its source
    said this pass (None: the read failed)."""
    changed: list[tuple[float, int, _W]] = []
    never: list[_W] = []
    rest: list[tuple[float, int, _W]] = []
    failed: list[tuple[float, int, _W]] = []
    for i, item in enumerate(items):
        last, want = seen(item), desired(item)
        if want is None:
            failed.append((last.read_at if last else -math.inf, i, item))
        elif last is None:
            never.append(item)
        elif last.targets != want:
            changed.append((last.read_at, i, item))
        else:
            rest.append((last.read_at, i, item))
    start = rotation_offset(len(never), wall_s, per_pass)
    return (
        [item for _, _, item in sorted(changed, key=_by_age)]
        + never[start:] + never[:start]
        + [item for _, _, item in sorted(rest, key=_by_age)]
        + [item for _, _, item in sorted(failed, key=_by_age)]
    )


def _by_age(entry: tuple[float, int, object]) -> tuple[float, int]:
    return entry[0], entry[1]


@dataclass(frozen=True)
class _Change:
    describe_calls: int  # ELB Describe* calls its write step may make (besides its share of a tags read)
    write_calls: int  # calls ``writes`` wants covered at its start
    first_write: bool = False  # this instance has not written the group yet (details unread)


class ReadBudget:
    """When target health reads stop: at the deadline while nothing changed; once changes
    are found, early enough for their confirming read and writes (module docstring).
    Thread-safe: the health reads of a pass run ``max_concurrency`` at a time.

    Times are ``clock()`` values (the pass's clock). ``rate_per_s``: the pacing bucket's
    refill (None: not paced, ELB reads cost no waiting). ``first_read_at``: when the
    pass's first source read began; ``source_round_s``: how long that round took;
    ``source_read_s``: the slowest single read in it (None: the confirming round reads
    every source again, as an event's does, and takes as long as the first);
    ``started_at``: when the pass began (default: its first source read), which
    ``never_fits`` judges from."""

    def __init__(
        self,
        *,
        deadline: float | None,
        call_budget_s: float,
        poll_interval_s: float,
        first_read_at: float,
        source_round_s: float,
        rate_per_s: float | None,
        concurrency: int,
        source_read_s: float | None = None,
        started_at: float | None = None,
    ) -> None:
        self.deadline = deadline
        self.call_budget_s = call_budget_s
        self.poll_interval_s = poll_interval_s
        self.first_read_at = first_read_at
        # When the pass began (before its target group details): what a pass has at best.
        self.started_at = first_read_at if started_at is None else min(started_at, first_read_at)
        self.source_round_s = max(0.0, source_round_s)
        self.source_read_s = None if source_read_s is None else max(0.0, source_read_s)
        self.rate_per_s = rate_per_s if rate_per_s and rate_per_s > 0 else None
        self.concurrency = max(1, concurrency)
        self._lock = threading.Lock()
        self._changes: list[_Change] = []
        self._call_s: float | None = None  # the fastest target health read seen: one call's latency
        self.deferred = 0  # changes found too late to apply in this pass

    def reserve_s(self, changes: Sequence[_Change] | None = None) -> float:
        """The time the changes found need after the last target health read."""
        changes = self._changes if changes is None else changes
        if not changes:
            return 0.0
        call_s = self._call_s if self._call_s is not None else 0.05
        # The tags of the groups to be written are read 20 a call (``sync._guard_round``).
        describe = sum(c.describe_calls for c in changes) + math.ceil(len(changes) / DESCRIBE_TAGS_CHUNK)
        token_s = describe / self.rate_per_s if self.rate_per_s else describe * call_s / self.concurrency
        writes_s = len(changes) * WRITE_CALLS * call_s / self.concurrency
        cover_s = max(c.write_calls for c in changes) * self.call_budget_s
        first_write_s = FIRST_WRITE_S if any(c.first_write for c in changes) else 0.0
        return self._confirm_s(len(changes)) + token_s + writes_s + cover_s + first_write_s

    def _confirm_s(self, changes: int) -> float:
        # The confirming round re-reads the changed bindings' sources only, ``concurrency``
        # at a time: as many slowest reads of the first round as that takes, never more than
        # the whole first round. (Estimating it as the whole round deferred every change,
        # every run, once the first round took half the time left.)
        if self.source_read_s is None:
            return self.source_round_s
        return min(self.source_round_s, self.source_read_s * math.ceil(changes / self.concurrency))

    def _stop_at(self, changes: Sequence[_Change]) -> float | None:
        if self.deadline is None:
            return None
        if not changes:
            return self.deadline
        # The confirming read starts when the health reads end, or a poll interval after the
        # first source read if that is later (``CONFIRM_WAIT_POLLS``).
        latest = self.deadline - self.reserve_s(changes)
        return latest if self.confirm_at() <= latest else -math.inf

    def confirm_at(self) -> float:
        """The earliest the confirming read of a change can start (``clock()`` value)."""
        return self.first_read_at + CONFIRM_WAIT_POLLS * self.poll_interval_s

    def never_fits(self, *, details_known: bool, locked: bool) -> str | None:
        """Why no change could be confirmed and written in this pass however early it was
        found (the poll interval's wait and one change's writes overrun the deadline), or
        None. A pass that starts like this one leaves every change so: a setting to
        change, not a run to wait for."""
        if self.deadline is None:
            return None
        # The group's details stay unread until it is written: a change that never fits
        # keeps its first write's share too.
        one = [_Change(describe_calls=(0 if details_known else 1) + (1 if locked else 3), write_calls=2 if locked else 4, first_write=not details_known)]
        reserve = self.reserve_s(one)
        # Judged on the whole pass, from its start: time this pass lost before its first
        # source read (slow or retried details reads) is this run's, and leaves the change
        # to the next run; only a pass that could not fit it from the start is a setting.
        room = self.deadline - self.started_at
        if CONFIRM_WAIT_POLLS * self.poll_interval_s + reserve <= room:
            return None
        fits = math.floor((room - reserve) / CONFIRM_WAIT_POLLS * 10) / 10
        advice = f"a poll_interval_s of at most {fits:.1f} s" if fits >= 0.1 else "a longer function timeout"
        if not locked:
            advice += " (or a lock table: a write then needs two calls at their worst, not four)"
        return (
            f"poll_interval_s={self.poll_interval_s:g} s: the read that confirms a change comes {self.poll_interval_s:g} s "
            f"after the first and a write needs {reserve:.0f} s more at its worst, more than the "
            f"{room:.0f} s this pass had from its start, so no pass that starts like this one can "
            f"follow a change; it needs {advice}"
        )

    def may_read(self, now: float) -> bool:
        """Whether a target health read may start at ``now``."""
        with self._lock:
            stop = self._stop_at(self._changes)
        return stop is None or now < stop

    @property
    def holding_back(self) -> bool:
        """Whether reads stop before the deadline because changes were found."""
        with self._lock:
            return bool(self._changes) and self.deadline is not None

    def read_took(self, seconds: float) -> None:
        with self._lock:
            if seconds > 0 and (self._call_s is None or seconds < self._call_s):
                self._call_s = seconds

    def found_change(self, now: float, *, details_known: bool, locked: bool) -> bool:
        """A change was found at ``now``: True when the pass can still confirm and apply it
        (it is counted), False when it must be left for the next run."""
        change = _Change(
            describe_calls=(0 if details_known else 1) + (1 if locked else 3), write_calls=2 if locked else 4,
            first_write=not details_known,
        )
        with self._lock:
            stop = self._stop_at([*self._changes, change])
            if stop is not None and now > stop:
                self.deferred += 1
                return False
            self._changes.append(change)
            return True

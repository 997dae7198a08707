"""Client-side pacing of the controller's ELB ``Describe*`` calls: one token bucket per process.

Elastic Load Balancing throttles API calls per account and Region with token buckets; for
the non-mutating actions (``Describe*``) its user guide gives 40 tokens, refilled at 10 a
second (sources below; ``docs/scale.md`` quotes them). A pass that calls as fast as
``max_concurrency`` allows empties that bucket in its first second, botocore's standard
retry tries once more within a second, and its retry quota, once spent, stays spent on a
warm instance: most bindings end in ``error``. Waiting for a token before each attempt
costs time instead.

The bucket is the one the guide describes: it starts full (``burst``) and "a set number of
tokens is added back every second": ``rate`` tokens each whole second since it started,
never past ``burst``. A caller takes a token, or reserves the next one to come and sleeps
until then outside the lock, so threads go in the order they asked. Every thread of a
process (a warm Lambda instance) shares one bucket (``configure``), as AWS's bucket is
shared by every caller in the account.

A call is never paced past the pass's deadline (``pass_deadline``, a ``time.monotonic()``
value the handler sets): a call whose token comes later does not wait but raises
``PacingBudgetSpent``; its binding is reported with nothing written and the next run
continues.

Sources: Elastic Load Balancing User Guide, "Request throttling for the Elastic Load
Balancing API" (https://docs.aws.amazon.com/elasticloadbalancing/latest/userguide/elb-api-throttling.html):
"the token bucket size for non-mutating API actions is 40 tokens. You can make up to 40
Describe* requests in one second." The refill rate is cut from the stored English copy; the
Chinese translation of the same page (.../zh_cn/elasticloadbalancing/latest/userguide/elb-api-throttling.html)
gives it: 40 tokens, refilled at 10 tokens a second. The page gives these as its example;
no per-action table was found, so they are the defaults for every ``Describe*`` call. The
mutating actions (register, deregister, modify listener) have no figure there: not paced.

AWS's bucket and this one do not start at the same instant, and other callers in the
account draw on AWS's: pacing makes throttling rare, not impossible, and botocore's retry
still covers what gets through (``aws.BOTO_CONFIG``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import PacingBudgetSpent

__all__ = [
    "TokenBucket",
    "DEFAULT_ELB_DESCRIBE_RATE",
    "DEFAULT_ELB_DESCRIBE_BURST",
    "configure",
    "current",
    "reset",
    "pass_deadline",
    "pace_describe",
]

# The ELB user guide's non-mutating bucket (see the module docstring).
DEFAULT_ELB_DESCRIBE_RATE = 10.0
DEFAULT_ELB_DESCRIBE_BURST = 40


class TokenBucket:
    """``burst`` tokens at first, ``rate_per_s`` more each whole second since, never past
    ``burst``. Thread-safe; ``clock`` and ``sleep`` are injectable (tests)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_s > 0 or burst < 1:
            raise ValueError(f"a bucket needs a rate above 0 and a burst of at least 1, not {rate_per_s}/{burst}")
        self.rate_per_s = float(rate_per_s)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._start = clock()
        self._seconds = 0
        # Below zero: tokens already promised to callers that are waiting for them.
        self._tokens = float(burst)

    def _refill(self, now: float) -> None:
        seconds = int(now - self._start)
        if seconds > self._seconds:
            self._tokens = min(float(self.burst), self._tokens + (seconds - self._seconds) * self.rate_per_s)
            self._seconds = seconds

    def reserve(self, deadline: float | None = None) -> float | None:
        """Take the next token; the ``clock()`` time the caller may go at, or None (nothing
        taken) when that is after ``deadline``."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            if self._tokens >= 1:
                self._tokens -= 1
                return now
            # The whole-second refill that brings the promised tokens plus this one.
            steps = max(1, math.ceil((1.0 - self._tokens) / self.rate_per_s - 1e-9))
            ready = self._start + self._seconds + steps
            if deadline is not None and ready > deadline:
                return None
            self._tokens -= 1
            return ready

    def take(self, deadline: float | None = None) -> float | None:
        """Wait for a token; the seconds waited, or None (no wait, nothing taken) when the
        token would come after ``deadline``."""
        ready = self.reserve(deadline)
        if ready is None:
            return None
        wait = ready - self._clock()
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0

    @property
    def tokens(self) -> float:
        """Tokens left now (negative: promised to waiting callers)."""
        with self._lock:
            self._refill(self._clock())
            return self._tokens


_lock = threading.Lock()
_bucket: TokenBucket | None = None
_deadline: float | None = None


def configure(
    rate_per_s: float,
    burst: int,
    *,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> TokenBucket | None:
    """The process's bucket for ``rate_per_s`` / ``burst`` (rate 0: no pacing, None). The
    bucket a warm instance already has is kept while the figures stay the same. ``clock``
    and ``sleep`` (a test's fake time) give a new, full bucket on them."""
    global _bucket
    with _lock:
        if rate_per_s <= 0:
            _bucket = None
        elif _bucket is None or (_bucket.rate_per_s, _bucket.burst) != (float(rate_per_s), int(burst)) or clock or sleep:
            _bucket = TokenBucket(rate_per_s, burst, clock=clock or time.monotonic, sleep=sleep or time.sleep)
        return _bucket


def current() -> TokenBucket | None:
    with _lock:
        return _bucket


def reset() -> None:
    """A full bucket again, with the same figures (a test, or a benchmark standing in for
    the minute between two scheduled runs)."""
    global _bucket
    with _lock:
        if _bucket is not None:
            _bucket = TokenBucket(_bucket.rate_per_s, _bucket.burst)


@contextmanager
def pass_deadline(deadline: float | None) -> Iterator[None]:
    """While inside, no call is paced past ``deadline`` (a ``time.monotonic()`` value;
    None: no bound). One pass at a time per process, as Lambda runs one invocation at a
    time per instance."""
    global _deadline
    with _lock:
        before, _deadline = _deadline, deadline
    try:
        yield
    finally:
        with _lock:
            _deadline = before


def pace_describe(event_name: str = "", **_: Any) -> None:
    """botocore ``before-send`` handler for the controller's elbv2 client: waits for a token
    before each attempt of a ``Describe*`` call (a retry waits too); raises
    ``PacingBudgetSpent`` when the token would come after the pass's deadline."""
    operation = event_name.rsplit(".", 1)[-1]
    if not operation.startswith("Describe"):
        return
    with _lock:
        bucket, deadline = _bucket, _deadline
    if bucket is None:
        return
    if bucket.take(deadline) is None:
        raise PacingBudgetSpent(
            f"ELB Describe budget for this run spent (elb_describe_rate={bucket.rate_per_s:g}/s, "
            f"elb_describe_burst={bucket.burst}): {operation} would wait past the run's deadline; "
            "nothing written, the next run continues",
            "PacingBudgetSpent",
        )

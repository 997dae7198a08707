"""The benchmark proxy's model of AWS's documented API throttling (``benchmarks/latency.py``):
the token bucket and which calls draw on it. The clock is injected; nothing here waits."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_latency", BENCHMARKS / "latency.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_latency", module)
    spec.loader.exec_module(module)
    return module


latency = _load()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_starts_full_and_refuses_the_request_past_its_capacity() -> None:
    clock = FakeClock()
    bucket = latency.TokenBucket(40, 10, clock)
    assert [bucket.take() for _ in range(40)] == [True] * 40
    assert bucket.take() is False
    assert bucket.tokens == 0


def test_tokens_come_back_each_whole_second_and_never_past_capacity() -> None:
    clock = FakeClock()
    bucket = latency.TokenBucket(40, 10, clock)
    for _ in range(40):
        bucket.take()
    clock.now += 0.99
    assert bucket.take() is False  # the refill comes every second, not in between
    clock.now += 0.01
    assert [bucket.take() for _ in range(11)] == [True] * 10 + [False]
    clock.now += 60
    assert bucket.tokens == 40  # a minute idle fills it, no further
    assert sum(bucket.take() for _ in range(50)) == 40


def test_empty_bucket_refills_in_four_seconds_as_the_guide_says() -> None:
    clock = FakeClock()
    bucket = latency.TokenBucket(40, 10, clock)
    for _ in range(40):
        bucket.take()
    clock.now += 3
    assert bucket.tokens == 30
    clock.now += 1
    assert bucket.tokens == 40


def test_documented_profile_throttles_elb_describes_only() -> None:
    clock = FakeClock()
    throttle = latency.Throttle(latency.PROFILES["documented"], clock=clock)
    admitted = [throttle.admit("elasticloadbalancing", "DescribeTargetHealth") for _ in range(45)]
    assert admitted == [True] * 40 + [False] * 5
    # Describe* share the one bucket: DescribeTargetGroups is refused too.
    assert throttle.admit("elasticloadbalancing", "DescribeTargetGroups") is False
    # No documented figure: never throttled.
    assert all(throttle.admit("elasticloadbalancing", "RegisterTargets") for _ in range(100))
    assert all(throttle.admit("elasticloadbalancing", "ModifyListener") for _ in range(100))
    assert all(throttle.admit("elasticache", "DescribeReplicationGroups") for _ in range(100))
    assert all(throttle.admit("dynamodb", "UpdateItem") for _ in range(100))
    assert throttle.take() == {"DescribeTargetGroups": 1, "DescribeTargetHealth": 5}
    assert throttle.take() == {}


def test_other_callers_in_the_account_slow_the_refill() -> None:
    clock = FakeClock()
    throttle = latency.Throttle(latency.PROFILES["documented"], others_per_s=4, clock=clock)
    for _ in range(40):
        throttle.admit("elasticloadbalancing", "DescribeTargetHealth")
    clock.now += 1
    assert sum(throttle.admit("elasticloadbalancing", "DescribeTargetHealth") for _ in range(10)) == 6


def test_none_profile_throttles_nothing() -> None:
    throttle = latency.Throttle(latency.PROFILES["none"], clock=FakeClock())
    assert all(throttle.admit("elasticloadbalancing", "DescribeTargetHealth") for _ in range(1000))


def test_every_modelled_bucket_cites_its_source() -> None:
    for profile in latency.PROFILES.values():
        for spec in profile.values():
            assert spec.source.startswith("https://docs.aws.amazon.com/")


@pytest.mark.parametrize("capacity, refill", [(0, 10), (40, -1)])
def test_a_bucket_without_room_or_with_negative_refill_is_refused(capacity: int, refill: float) -> None:
    with pytest.raises(ValueError):
        latency.TokenBucket(capacity, refill, FakeClock())

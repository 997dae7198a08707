"""The benchmark proxy's model of AWS's documented API throttling (``benchmarks/latency.py``):
the token bucket and which calls draw on it. The clock is injected; nothing here waits."""

from __future__ import annotations

import pytest

from ..conftest import ManualClock, load_benchmark

latency = load_benchmark("latency")


def test_a_bucket_starts_full_and_refuses_the_request_past_its_capacity() -> None:
    clock = ManualClock(1000.0)
    bucket = latency.TokenBucket(40, 10, clock)
    assert [bucket.take() for _ in range(40)] == [True] * 40
    assert bucket.take() is False
    assert bucket.tokens == 0


def test_tokens_come_back_each_whole_second_and_never_past_capacity() -> None:
    clock = ManualClock(1000.0)
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
    clock = ManualClock(1000.0)
    bucket = latency.TokenBucket(40, 10, clock)
    for _ in range(40):
        bucket.take()
    clock.now += 3
    assert bucket.tokens == 30
    clock.now += 1
    assert bucket.tokens == 40


def test_documented_profile_throttles_elb_describes_only() -> None:
    clock = ManualClock(1000.0)
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
    clock = ManualClock(1000.0)
    throttle = latency.Throttle(latency.PROFILES["documented"], others_per_s=4, clock=clock)
    for _ in range(40):
        throttle.admit("elasticloadbalancing", "DescribeTargetHealth")
    clock.now += 1
    assert sum(throttle.admit("elasticloadbalancing", "DescribeTargetHealth") for _ in range(10)) == 6


def test_none_profile_throttles_nothing() -> None:
    throttle = latency.Throttle(latency.PROFILES["none"], clock=ManualClock(1000.0))
    assert all(throttle.admit("elasticloadbalancing", "DescribeTargetHealth") for _ in range(1000))


def test_every_modelled_bucket_cites_its_source() -> None:
    for profile in latency.PROFILES.values():
        for spec in profile.values():
            assert spec.source.startswith("https://docs.aws.amazon.com/")


@pytest.mark.parametrize("capacity, refill", [(0, 10), (40, -1)])
def test_a_bucket_without_room_or_with_negative_refill_is_refused(capacity: int, refill: float) -> None:
    with pytest.raises(ValueError):
        latency.TokenBucket(capacity, refill, ManualClock(1000.0))

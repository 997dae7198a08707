"""The ELB Describe* pacer (``pacing``): the token bucket with an injected clock, its
refusal past a deadline, the botocore hook, and the settings that size it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import botocore.session
from botocore.awsrequest import AWSRequest, AWSResponse
import pytest

from cachebridge import aws, pacing
from cachebridge.config import Config, Settings
from cachebridge.errors import ConfigError, PacingBudgetSpent


class FakeTime:
    """A clock that moves only when someone sleeps (or the test moves it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)


def bucket(rate: float = 10.0, burst: int = 40) -> tuple[pacing.TokenBucket, FakeTime]:
    t = FakeTime()
    return pacing.TokenBucket(rate, burst, clock=t.clock, sleep=t.sleep), t


@pytest.fixture(autouse=True)
def _process_bucket_restored() -> Iterator[None]:
    yield
    pacing.configure(0, 1)


def test_a_full_bucket_gives_its_burst_without_waiting_then_waits_for_the_refill() -> None:
    b, t = bucket()
    assert [b.reserve() for _ in range(40)] == [100.0] * 40
    # Empty: the next token comes with the refill at the next whole second.
    assert b.reserve() == 101.0
    assert b.take() == 1.0 and t.slept == [1.0]


def test_the_refill_comes_each_whole_second_and_never_past_the_burst() -> None:
    b, t = bucket()
    for _ in range(40):
        b.reserve()
    t.now = 100.9
    assert b.tokens == 0
    t.now = 101.0
    assert b.tokens == 10
    t.now = 102.5
    assert b.tokens == 20
    t.now = 200.0
    assert b.tokens == 40


def test_callers_waiting_on_an_empty_bucket_get_successive_refills() -> None:
    b, _ = bucket()
    slots = Counter(b.reserve() for _ in range(65))
    assert slots == {100.0: 40, 101.0: 10, 102.0: 10, 103.0: 5}


def test_a_slow_refill_rounds_up_to_the_second_that_brings_the_token() -> None:
    b, _ = bucket(rate=0.5, burst=1)
    assert [b.reserve() for _ in range(3)] == [100.0, 102.0, 104.0]


def test_one_bucket_is_shared_by_every_thread() -> None:
    b, t = bucket()
    barrier = threading.Barrier(8)
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait(10)
        for _ in range(10):
            ready = b.reserve()
            with lock:
                slots.append(ready)  # type: ignore[arg-type]

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # 80 tokens asked at one instant, however the threads interleaved: the burst, then
    # ten a second, none given twice.
    assert Counter(slots) == {100.0: 40, 101.0: 10, 102.0: 10, 103.0: 10, 104.0: 10}


def test_a_token_that_would_come_after_the_deadline_is_refused_and_not_taken() -> None:
    b, t = bucket()
    for _ in range(40):
        b.reserve(deadline=100.5)  # tokens there now: no wait, the deadline does not matter
    assert b.reserve(deadline=100.5) is None
    assert b.take(deadline=100.5) is None and t.slept == []
    # Nothing was promised to the refused callers: the next one gets the first refill.
    assert b.reserve(deadline=101.0) == 101.0
    assert b.tokens == -1


def test_the_hook_paces_describe_calls_only_and_refuses_past_the_pass_deadline() -> None:
    pacing.configure(0.01, 1)  # the next token 100 s away: far past the deadline below
    event = "before-send.elastic-load-balancing-v2."
    pacing.pace_describe(event + "DescribeTargetHealth")  # the one token
    bucket = pacing.current()
    assert bucket is not None and bucket.tokens == 0
    # Writes are not paced (no documented figure): they pass an empty bucket.
    pacing.pace_describe(event + "RegisterTargets")
    assert bucket.tokens == 0
    with pacing.pass_deadline(time.monotonic()), pytest.raises(PacingBudgetSpent) as raised:
        pacing.pace_describe(event + "DescribeTargetHealth")
    message = str(raised.value)
    assert "ELB Describe budget for this run spent" in message
    assert "elb_describe_rate=0.01/s" in message and "DescribeTargetHealth" in message
    assert "the next run continues" in message
    assert bucket.tokens == 0  # the refused call took nothing


def test_rate_zero_turns_pacing_off_and_same_figures_keep_the_bucket() -> None:
    first = pacing.configure(10, 40)
    assert first is not None
    assert pacing.configure(10, 40) is first  # a warm instance keeps what it spent
    assert pacing.configure(20, 40) is not first
    assert pacing.configure(0, 40) is None
    pacing.pace_describe("before-send.elastic-load-balancing-v2.DescribeTargetHealth")  # no bucket: no wait


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self.data


THROTTLED = (b"<ErrorResponse><Error><Type>Sender</Type><Code>ThrottlingException</Code>"
             b"<Message>Rate exceeded</Message></Error><RequestId>r1</RequestId></ErrorResponse>")
NO_GROUPS = (b"<DescribeTargetGroupsResponse><DescribeTargetGroupsResult><TargetGroups/>"
             b"</DescribeTargetGroupsResult></DescribeTargetGroupsResponse>")


def test_every_attempt_of_a_describe_call_takes_a_token_once_however_often_the_client_is_paced() -> None:
    elbv2 = botocore.session.Session().create_client(
        "elbv2", region_name="eu-west-1", config=aws.BOTO_CONFIG, aws_access_key_id="x", aws_secret_access_key="y",
    )
    # A refill too slow to show while the test runs: what the bucket lost is what was taken.
    settings = Settings(elb_describe_rate=0.01, elb_describe_burst=40)
    assert aws.paced_elbv2(elbv2, settings) is elbv2
    aws.paced_elbv2(elbv2, settings)  # a warm instance building its adapters again
    sent: list[str] = []

    def answer(request: AWSRequest, **_: object) -> AWSResponse:
        # AWS's answer, without a network: throttled once, then an empty list.
        sent.append("sent")
        body = THROTTLED if len(sent) == 1 else NO_GROUPS
        return AWSResponse(request.url, 400 if len(sent) == 1 else 200, {"Content-Type": "text/xml"}, _Body(body))

    elbv2.meta.events.register("before-send.elastic-load-balancing-v2", answer)
    assert elbv2.describe_target_groups()["TargetGroups"] == []
    bucket = pacing.current()
    assert bucket is not None and (bucket.rate_per_s, bucket.burst) == (0.01, 40)
    # Two attempts (the throttled one and botocore's retry), two tokens: not four.
    assert len(sent) == aws.TOTAL_MAX_ATTEMPTS == 2
    assert int(bucket.tokens) == 38


def test_settings_default_to_the_documented_bucket() -> None:
    s = Settings()
    assert (s.elb_describe_rate, s.elb_describe_burst) == (10.0, 40)
    # Left out of the Lambda's CACHEBRIDGE_BINDINGS at their defaults, as max_concurrency is.
    assert "elb_describe_rate" not in s.to_mapping() and "elb_describe_burst" not in s.to_mapping()


def test_settings_come_from_files_and_the_environment() -> None:
    config = Config.from_mapping({"settings": {"elb_describe_rate": 0, "elb_describe_burst": 20},
                                  "bindings": [{"source": "dns://a.example.internal", "target_group": "tg"}]})
    assert (config.settings.elb_describe_rate, config.settings.elb_describe_burst) == (0.0, 20)
    assert Config.from_mapping(config.to_mapping()).settings == config.settings
    env = {"CACHEBRIDGE_BINDINGS": config.bindings_json(), "CACHEBRIDGE_ELB_DESCRIBE_RATE": "2.5"}
    assert Config.from_env(env).settings.elb_describe_rate == 2.5


@pytest.mark.parametrize(("key", "value"), [("elb_describe_rate", -1), ("elb_describe_rate", "fast"), ("elb_describe_burst", 0)])
def test_bad_pacing_settings_are_refused_by_name(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_mapping({key: value})
    assert raised.value.field == f"settings.{key}"


@pytest.mark.parametrize("rate", ["0.0001", "1e-9", "0.005"])
def test_a_rate_so_low_a_call_would_wait_hours_is_refused(rate: str) -> None:
    # The CLI's passes have no deadline to cut such a wait short.
    with pytest.raises(ConfigError) as caught:
        Settings().merged({"elb_describe_rate": rate})
    assert "below 0.01" in str(caught.value) and "calls a second" in str(caught.value)

"""A call the benchmark proxy throttles (``benchmarks/latency.py``) reaches botocore as
AWS's throttling answer: the controller's retry policy (standard mode, 2 attempts) retries it
once, then raises the service's error; nothing refused reaches moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cachebridge import aws

from ..conftest import ManualClock, load_benchmark
from .conftest import controller_client

latency = load_benchmark("latency")


@pytest.fixture
def proxy(moto_server: str) -> Iterator[Any]:
    host, port = moto_server.removeprefix("http://").split(":")
    running = latency.LatencyProxy((host, int(port)), 0.0).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("code", ["ThrottlingException", "Throttling"])
def test_a_throttled_describe_is_retried_once_then_raised(proxy: Any, code: str) -> None:
    proxy.throttle = latency.Throttle(
        {"elbv2-describe": latency.BucketSpec(capacity=1, refill_per_s=0.0, source=latency.ELB_DOC)},
        clock=ManualClock(), code=code,
    )
    elbv2 = controller_client(proxy.url, "elbv2")
    attempts: list[str] = []
    elbv2.meta.events.register("before-send.elastic-load-balancing-v2.*", lambda **kw: attempts.append("sent"))

    elbv2.describe_target_groups()  # the bucket's one token
    assert proxy.take() == {"DescribeTargetGroups": 1}

    attempts.clear()
    with pytest.raises(ClientError) as raised:
        elbv2.describe_target_groups()
    error = raised.value.response
    assert error["Error"]["Code"] == code
    assert error["Error"]["Message"] == "Rate exceeded"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["RetryAttempts"] == aws.TOTAL_MAX_ATTEMPTS - 1 == 1
    assert len(attempts) == aws.TOTAL_MAX_ATTEMPTS
    # Both attempts reached the proxy and both were refused there.
    assert proxy.take() == {"DescribeTargetGroups": 2}
    assert proxy.take_throttled() == {"DescribeTargetGroups": 2}


def test_unmodelled_calls_pass_while_the_describe_bucket_is_empty(proxy: Any) -> None:
    proxy.throttle = latency.Throttle(
        {"elbv2-describe": latency.BucketSpec(capacity=1, refill_per_s=0.0, source=latency.ELB_DOC)},
        clock=ManualClock(),
    )
    elbv2 = controller_client(proxy.url, "elbv2")
    ec2 = controller_client(proxy.url, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    arn = elbv2.create_target_group(Name="throttle-writes", Protocol="TCP", Port=6379, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.describe_target_health(TargetGroupArn=arn)  # the one token
    # The guide gives no figure for mutating actions: they are not throttled here.
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.9.0.10", "Port": 6379}])
    with pytest.raises(ClientError):
        elbv2.describe_target_health(TargetGroupArn=arn)
    proxy.throttle = None
    held = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    assert [d["Target"]["Id"] for d in held] == ["10.9.0.10"]


def test_calls_through_the_proxy_keep_one_connection_and_each_is_counted(proxy: Any) -> None:
    # The sandbox server keeps connections alive, and the proxy keeps the client's
    # connection and its upstream one as long as both stay open: one connection for many
    # calls, every call still forwarded (and delayed) one by one.
    elbv2 = controller_client(proxy.url, "elbv2")
    ec2 = controller_client(proxy.url, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    arn = elbv2.create_target_group(Name="keepalive-proxy", Protocol="TCP", Port=6379, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    proxy.take()
    proxy.take_connections()
    for i in range(5):
        elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": f"10.8.0.{i + 10}", "Port": 6379}])
    held = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    assert sorted(d["Target"]["Id"] for d in held) == [f"10.8.0.{i + 10}" for i in range(5)]
    assert proxy.take() == {"DescribeTargetHealth": 1, "RegisterTargets": 5}
    assert proxy.take_connections() == 0  # the elbv2 client's connection, opened before, was reused

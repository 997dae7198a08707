"""The NLB stand-in: target states follow the modelled timings, traffic follows them too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis
from moto import mock_aws

from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.aws_server import ACCOUNT_ID
from cachebridge.sandbox.nlb_dataplane import DataPlane
from cachebridge.sandbox.redis_nodes import RedisNode, free_port

REGION = "us-east-1"
# The API's minimums (interval 5 s, timeout 2 s) run five times faster here: every
# modelled duration is scaled by SCALE, and the assertions use the scaled values.
SCALE = 0.2
REGISTRATION_DELAY = 3 * SCALE
INTERVAL = 5 * SCALE
HEALTHY = 2
UNHEALTHY = 2
DEREGISTRATION_DELAY = 10 * SCALE


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict]:
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_ext.install()
    port = free_port(("127.0.0.2", "127.0.0.3"))
    nodes = [RedisNode("127.0.0.2", port, tmp_path / "a").start(), RedisNode("127.0.0.3", port, tmp_path / "b").start()]
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        lb = elbv2.create_load_balancer(Name="nlb", Subnets=[subnet], Type="network", Scheme="internal")["LoadBalancers"][0]
        tg = elbv2.create_target_group(
            Name="tg", Protocol="TCP", Port=port, VpcId=vpc, TargetType="ip", HealthCheckProtocol="TCP",
            HealthCheckIntervalSeconds=5, HealthyThresholdCount=HEALTHY, UnhealthyThresholdCount=UNHEALTHY,
            HealthCheckTimeoutSeconds=2,
        )["TargetGroups"][0]
        elbv2.modify_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"], Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "10"},
            {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
        ])
        listener_port = free_port()
        elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=listener_port,
                              DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
        plane = DataPlane(ACCOUNT_ID, REGION, registration_delay_s=3, time_scale=SCALE).start()
        try:
            yield {"elbv2": elbv2, "tg": tg["TargetGroupArn"], "port": port, "listener": listener_port, "nodes": nodes, "plane": plane}
        finally:
            plane.stop()
            for node in nodes:
                node.stop()


def _states(world: dict) -> dict[str, tuple[str, str | None]]:
    described = world["elbv2"].describe_target_health(TargetGroupArn=world["tg"])["TargetHealthDescriptions"]
    return {f"{d['Target']['Id']}:{d['Target']['Port']}": (d["TargetHealth"]["State"], d["TargetHealth"].get("Reason")) for d in described}


def _wait_for(predicate, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def _register(world: dict, ip: str) -> None:
    world["elbv2"].register_targets(TargetGroupArn=world["tg"], Targets=[{"Id": ip, "Port": world["port"]}])


def _deregister(world: dict, ip: str) -> None:
    world["elbv2"].deregister_targets(TargetGroupArn=world["tg"], Targets=[{"Id": ip, "Port": world["port"]}])


def _client(world: dict) -> redis.Redis:
    return redis.Redis("127.0.0.1", world["listener"], socket_timeout=2, socket_connect_timeout=2)


def test_new_target_goes_initial_then_healthy_on_the_modelled_schedule(world: dict) -> None:
    key = f"127.0.0.2:{world['port']}"
    _register(world, "127.0.0.2")
    time.sleep(0.2)
    assert _states(world)[key] == ("initial", "Elb.RegistrationInProgress")
    checking = _wait_for(lambda: _states(world)[key] == ("initial", "Elb.InitialHealthChecking"), 3)
    healthy = _wait_for(lambda: _states(world)[key][0] == "healthy", 6)
    # First check after the registration delay, then one per interval until the threshold.
    expected = REGISTRATION_DELAY + (HEALTHY - 1) * INTERVAL
    assert checking + 0.2 >= REGISTRATION_DELAY - 0.15
    assert expected - 0.3 <= healthy + checking + 0.2 <= expected + 1.0


def test_failed_health_checks_make_a_target_unhealthy(world: dict) -> None:
    key = f"127.0.0.2:{world['port']}"
    _register(world, "127.0.0.2")
    _wait_for(lambda: _states(world)[key][0] == "healthy", 6)
    world["nodes"][0].stop()
    took = _wait_for(lambda: _states(world)[key] == ("unhealthy", "Target.FailedHealthChecks"), 6)
    assert took <= UNHEALTHY * INTERVAL + 1.0


def test_traffic_goes_to_the_healthy_target_and_fails_open_to_a_new_one(world: dict) -> None:
    primary, other = world["nodes"]
    primary.command("SET", "where", "a")
    other.command("SET", "where", "b")
    _register(world, "127.0.0.2")
    _wait_for(lambda: world["plane"].snapshot()["targets"].get(world["tg"]), 2)
    # Nothing healthy yet: the group fails open, so the new target already takes traffic.
    assert _client(world).get("where") == b"a"
    _wait_for(lambda: _states(world)[f"127.0.0.2:{world['port']}"][0] == "healthy", 6)
    _register(world, "127.0.0.3")
    # A healthy target exists, so the one still in initial gets no new connection.
    assert {_client(world).get("where") for _ in range(10)} == {b"a"}


def test_deregistered_target_drains_then_its_connections_are_terminated(world: dict) -> None:
    key = f"127.0.0.2:{world['port']}"
    _register(world, "127.0.0.2")
    _wait_for(lambda: _states(world)[key][0] == "healthy", 6)
    held = _client(world)
    assert held.ping()
    _deregister(world, "127.0.0.2")
    _wait_for(lambda: _states(world).get(key, (None,))[0] == "draining", 2)
    assert held.ping()  # draining keeps established connections...
    with pytest.raises(redis.exceptions.ConnectionError):
        _client(world).ping()  # ...while a new connection finds no target
    gone = _wait_for(lambda: key not in _states(world), DEREGISTRATION_DELAY + 2)
    assert gone >= DEREGISTRATION_DELAY - 1.0
    with pytest.raises(redis.exceptions.ConnectionError):
        held.ping()  # connection termination: closed at the end of the delay


def test_nothing_registered_refuses_connections(world: dict) -> None:
    with pytest.raises(redis.exceptions.ConnectionError):
        _client(world).ping()

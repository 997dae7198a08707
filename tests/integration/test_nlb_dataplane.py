"""The NLB stand-in: target states follow the modelled timings, traffic follows them too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from moto import mock_aws

from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.aws_server import ACCOUNT_ID
from cachebridge.sandbox.nlb_dataplane import DataPlane
from cachebridge.sandbox.nlb_profiles import resolve_profile
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


def _group(elbv2, vpc: str, name: str, port: int, **health) -> str:
    tg = elbv2.create_target_group(
        Name=name, Protocol="TCP", Port=port, VpcId=vpc, TargetType="ip", HealthCheckProtocol="TCP",
        HealthCheckIntervalSeconds=5, HealthyThresholdCount=HEALTHY, UnhealthyThresholdCount=UNHEALTHY,
        HealthCheckTimeoutSeconds=2, **health,
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(TargetGroupArn=tg, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "10"},
        {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
    ])
    return tg


@pytest.fixture
def aws_world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict]:
    """moto with an NLB, a target group behind a TCP listener and two redis-server nodes;
    the data plane is started by ``world`` (optimistic) or a test, with the profile it needs."""
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_ext.install()
    port = free_port(("127.0.0.2", "127.0.0.3"))
    nodes = [RedisNode("127.0.0.2", port, tmp_path / "a").start(), RedisNode("127.0.0.3", port, tmp_path / "b").start()]
    planes: list[DataPlane] = []
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        lb = elbv2.create_load_balancer(Name="nlb", Subnets=[subnet], Type="network", Scheme="internal")["LoadBalancers"][0]
        tg = _group(elbv2, vpc, "tg", port)
        listener_port = free_port()
        listener = elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=listener_port,
                                         DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])["Listeners"][0]

        def start(name: str, **overrides: float) -> DataPlane:
            plane = DataPlane(ACCOUNT_ID, REGION, profile=resolve_profile(name, **{"registration_delay_s": 3, **overrides}),
                              time_scale=SCALE).start()
            planes.append(plane)
            return plane

        try:
            yield {"elbv2": elbv2, "vpc": vpc, "lb": lb["LoadBalancerArn"], "tg": tg, "port": port,
                   "listener": listener_port, "listener_arn": listener["ListenerArn"], "nodes": nodes, "start": start}
        finally:
            for plane in planes:
                plane.stop()
            for node in nodes:
                node.stop()


@pytest.fixture
def world(aws_world: dict) -> dict:
    """The stand-in as it was first modelled (``optimistic``): the tests of its mechanics."""
    aws_world["plane"] = aws_world["start"]("optimistic")
    return aws_world


def _states(world: dict, tg: str | None = None) -> dict[str, tuple[str, str | None]]:
    described = world["elbv2"].describe_target_health(TargetGroupArn=tg or world["tg"])["TargetHealthDescriptions"]
    return {f"{d['Target']['Id']}:{d['Target']['Port']}": (d["TargetHealth"]["State"], d["TargetHealth"].get("Reason")) for d in described}


def _wait_for(predicate, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def _register(world: dict, ip: str, tg: str | None = None) -> None:
    world["elbv2"].register_targets(TargetGroupArn=tg or world["tg"], Targets=[{"Id": ip, "Port": world["port"]}])


def _deregister(world: dict, ip: str) -> None:
    world["elbv2"].deregister_targets(TargetGroupArn=world["tg"], Targets=[{"Id": ip, "Port": world["port"]}])


def _client(world: dict, port: int | None = None) -> redis.Redis:
    # No retries: a reset connection must show, not be replaced by a new one.
    return redis.Redis("127.0.0.1", port or world["listener"], socket_timeout=2, socket_connect_timeout=2,
                       retry=Retry(NoBackoff(), 0))


def _mark_nodes(world: dict) -> None:
    for node, name in zip(world["nodes"], ("a", "b")):
        node.command("SET", "where", name)


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


def test_nothing_registered_refuses_connections_under_documented(aws_world: dict) -> None:
    aws_world["start"]("documented")
    with pytest.raises(redis.exceptions.ConnectionError):
        _client(aws_world).ping()


# -- the documented profile ------------------------------------------------------------------


def test_documented_initial_target_takes_no_traffic_even_when_alone(aws_world: dict) -> None:
    plane = aws_world["start"]("documented")
    _mark_nodes(aws_world)
    key = f"127.0.0.2:{aws_world['port']}"
    _register(aws_world, "127.0.0.2")
    assert _states(aws_world)[key] == ("initial", "Elb.RegistrationInProgress")
    # The only target, and nothing healthy: still no traffic, fail-open does not cover it.
    for _ in range(3):
        with pytest.raises(redis.exceptions.ConnectionError):
            _client(aws_world).get("where")
    assert plane.snapshot()["targets"][aws_world["tg"]][key]["connections"] == 0
    _wait_for(lambda: _states(aws_world)[key] == ("initial", "Elb.InitialHealthChecking"), 5)
    with pytest.raises(redis.exceptions.ConnectionError):
        _client(aws_world).get("where")
    _wait_for(lambda: _states(aws_world)[key][0] == "healthy", 6)
    assert _client(aws_world).get("where") == b"a"


def test_documented_fail_open_covers_targets_past_initial(aws_world: dict) -> None:
    # Health checks go to a port nothing listens on: every target fails them, while the
    # traffic port serves. Once they are unhealthy (past initial), the group fails open.
    closed = free_port(("127.0.0.2", "127.0.0.3"))
    tg = _group(aws_world["elbv2"], aws_world["vpc"], "tg-closed-checks", aws_world["port"], HealthCheckPort=str(closed))
    aws_world["elbv2"].modify_listener(ListenerArn=aws_world["listener_arn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    aws_world["start"]("documented")
    _mark_nodes(aws_world)
    _register(aws_world, "127.0.0.2", tg)
    key = f"127.0.0.2:{aws_world['port']}"
    with pytest.raises(redis.exceptions.ConnectionError):
        _client(aws_world).get("where")  # initial: nothing to fail open to
    _wait_for(lambda: _states(aws_world, tg)[key] == ("unhealthy", "Target.FailedHealthChecks"), 6)
    assert _client(aws_world).get("where") == b"a"


def test_documented_listener_update_reaches_new_connections_after_propagation(aws_world: dict) -> None:
    elbv2 = aws_world["elbv2"]
    other = _group(elbv2, aws_world["vpc"], "tg-b", aws_world["port"])
    # A second listener keeps the other group in use, so it is health-checked (an unused
    # group is not).
    elbv2.create_listener(LoadBalancerArn=aws_world["lb"], Protocol="TCP", Port=free_port(),
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": other}])
    plane = aws_world["start"]("documented")
    _mark_nodes(aws_world)
    _register(aws_world, "127.0.0.2")
    _register(aws_world, "127.0.0.3", other)
    _wait_for(lambda: _states(aws_world)[f"127.0.0.2:{aws_world['port']}"][0] == "healthy"
              and _states(aws_world, other)[f"127.0.0.3:{aws_world['port']}"][0] == "healthy", 8)
    held = _client(aws_world)
    assert held.get("where") == b"a"

    elbv2.modify_listener(ListenerArn=aws_world["listener_arn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": other}])
    _wait_for(lambda: plane.snapshot()["listeners"][aws_world["listener_arn"]]["target_group"] == other, 2)
    # The API already shows the new action; new connections still follow the old one.
    assert plane.snapshot()["listeners"][aws_world["listener_arn"]]["routing_to"] == aws_world["tg"]
    assert _client(aws_world).get("where") == b"a"

    _wait_for(lambda: plane.snapshot()["listeners"][aws_world["listener_arn"]]["routing_to"] == other, 10 * SCALE + 2)
    assert {_client(aws_world).get("where") for _ in range(5)} == {b"b"}
    # An established flow never moves with a listener update.
    assert held.get("where") == b"a"


def test_optimistic_listener_update_reaches_new_connections_at_once(world: dict) -> None:
    elbv2 = world["elbv2"]
    other = _group(elbv2, world["vpc"], "tg-b", world["port"])
    _mark_nodes(world)
    _register(world, "127.0.0.2")
    _register(world, "127.0.0.3", other)
    _wait_for(lambda: _states(world)[f"127.0.0.2:{world['port']}"][0] == "healthy", 6)
    held = _client(world)
    assert held.get("where") == b"a"
    elbv2.modify_listener(ListenerArn=world["listener_arn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": other}])
    _wait_for(lambda: world["plane"].snapshot()["listeners"][world["listener_arn"]]["routing_to"] == other, 2)
    # Nothing healthy in the new group yet: optimistic fails open to its initial target.
    assert _client(world).get("where") == b"b"
    assert held.get("where") == b"a"


def test_documented_deregistered_target_takes_new_connections_during_the_lag(aws_world: dict) -> None:
    # Lag 20 s, deregistration delay 10 s (scaled): termination at the end of the delay
    # closes what was open then; connections opened later end with the lag.
    plane = aws_world["start"]("documented", deregistration_lag_s=20)
    _mark_nodes(aws_world)
    key = f"127.0.0.2:{aws_world['port']}"
    _register(aws_world, "127.0.0.2")
    _wait_for(lambda: _states(aws_world)[key][0] == "healthy", 6)
    before = _client(aws_world)
    assert before.get("where") == b"a"
    _deregister(aws_world, "127.0.0.2")
    assert _states(aws_world)[key][0] == "draining"  # the API says so at once...
    during = _client(aws_world)
    assert during.get("where") == b"a"  # ...while new connections still reach it
    _wait_for(lambda: key not in _states(aws_world), 10 * SCALE + 2)
    # Terminated at the end of the deregistration delay: nothing of before's stays open.
    assert plane.snapshot()["targets"][aws_world["tg"]][key]["connections"] == 0
    assert _client(aws_world).get("where") == b"a"  # the lag outlasts the delay
    _wait_for(lambda: key not in plane.snapshot()["targets"][aws_world["tg"]], 20 * SCALE + 2)
    with pytest.raises(redis.exceptions.ConnectionError):
        during.get("where")
    with pytest.raises(redis.exceptions.ConnectionError):
        _client(aws_world).get("where")


def test_documented_deregister_then_register_starts_over(aws_world: dict) -> None:
    # The switch layout's cut: deregister and register again within one tick of the data
    # plane. The deregistration still counts: the target starts registration over.
    aws_world["start"]("documented", deregistration_lag_s=0)
    _mark_nodes(aws_world)
    key = f"127.0.0.2:{aws_world['port']}"
    _register(aws_world, "127.0.0.2")
    _wait_for(lambda: _states(aws_world)[key][0] == "healthy", 6)
    held = _client(aws_world)
    assert held.get("where") == b"a"
    _deregister(aws_world, "127.0.0.2")
    _register(aws_world, "127.0.0.2")
    assert _states(aws_world)[key] == ("initial", "Elb.RegistrationInProgress")
    with pytest.raises(redis.exceptions.ConnectionError):
        _client(aws_world).get("where")


def test_documented_group_without_a_listener_is_unused(aws_world: dict) -> None:
    elbv2 = aws_world["elbv2"]
    lonely = _group(elbv2, aws_world["vpc"], "tg-lonely", aws_world["port"])
    aws_world["start"]("documented")
    key = f"127.0.0.3:{aws_world['port']}"
    _register(aws_world, "127.0.0.3", lonely)
    _wait_for(lambda: _states(aws_world, lonely)[key] == ("unused", "Target.NotInUse"), 2)
    time.sleep(3 * SCALE + 2 * 5 * SCALE)  # past registration and two check intervals
    assert _states(aws_world, lonely)[key] == ("unused", "Target.NotInUse")
    elbv2.create_listener(LoadBalancerArn=aws_world["lb"], Protocol="TCP", Port=free_port(),
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": lonely}])
    _wait_for(lambda: _states(aws_world, lonely)[key][0] == "healthy", 8)


def test_a_listener_whose_port_is_taken_listens_once_it_is_free(aws_world: dict) -> None:
    import socket

    # Something else holds the listener's port when the stand-in starts (an outgoing
    # connection's ephemeral port can): the listener is not given up, it listens once free.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", aws_world["listener"]))
    squatter.listen()
    try:
        plane = aws_world["start"]("optimistic")
        errors = plane.wait_listening(0.5)
        assert list(errors) == [aws_world["listener_arn"]]
        assert f"cannot listen on 127.0.0.1:{aws_world['listener']}" in errors[aws_world["listener_arn"]]
    finally:
        squatter.close()
    assert plane.wait_listening(10) == {}
    assert aws_world["listener_arn"] not in plane.listener_errors
    with socket.create_connection(("127.0.0.1", aws_world["listener"]), timeout=2):
        pass

"""The drill's own measurements against the NLB stand-in: it waits for a healthy path, and
what it reports for the listener update and the registration matches what the stand-in was
told to model (the way one drill on a real stack settles the two numbers AWS does not
publish)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from cachebridge import drill
from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.aws_server import ACCOUNT_ID
from cachebridge.sandbox.nlb_dataplane import DataPlane
from cachebridge.sandbox.nlb_profiles import resolve_profile
from cachebridge.sandbox.redis_nodes import RedisNode, free_port

REGION = "us-east-1"
SCALE = 0.2
REGISTRATION_S = 3.0  # AWS seconds; runs as 0.6 s
PROPAGATION_S = 10.0  # runs as 2 s
INTERVAL_S = 5
HEALTHY = 2
# The drill samples the API every WATCH_S and probes every 0.2 s: its figures are exact to
# about that.
WATCH_S = 0.1


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict]:
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_ext.install()
    port = free_port(("127.0.0.2", "127.0.0.3"))
    primary = RedisNode("127.0.0.2", port, tmp_path / "a").start()
    replica = RedisNode("127.0.0.3", port, tmp_path / "b").start(replica_of=primary)
    replica.wait_synced()
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        lb = elbv2.create_load_balancer(Name="nlb", Subnets=[subnet], Type="network", Scheme="internal")["LoadBalancers"][0]
        groups = []
        for name in ("node-a", "node-b"):
            arn = elbv2.create_target_group(
                Name=name, Protocol="TCP", Port=port, VpcId=vpc, TargetType="ip", HealthCheckProtocol="TCP",
                HealthCheckIntervalSeconds=INTERVAL_S, HealthyThresholdCount=HEALTHY, HealthCheckTimeoutSeconds=2,
            )["TargetGroups"][0]["TargetGroupArn"]
            elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
                {"Key": "deregistration_delay.timeout_seconds", "Value": "0"},
                {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
            ])
            groups.append(arn)
        listener_port = free_port()
        listeners = [
            elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=p,
                                  DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])["Listeners"][0]["ListenerArn"]
            for p, tg in ((listener_port, groups[0]), (free_port(), groups[0]), (free_port(), groups[1]))
        ]
        profile = resolve_profile("documented", registration_delay_s=REGISTRATION_S, listener_propagation_s=PROPAGATION_S,
                                  deregistration_lag_s=0, time_scale=SCALE)
        plane = DataPlane(ACCOUNT_ID, REGION, profile=profile).start()
        try:
            yield {"elbv2": elbv2, "groups": groups, "listener": listeners[0], "listener_port": listener_port,
                   "port": port, "primary": primary, "replica": replica, "profile": profile}
        finally:
            plane.stop()
            replica.stop()
            primary.stop()


def _register(world: dict, tg: str, node: RedisNode) -> None:
    world["elbv2"].register_targets(TargetGroupArn=tg, Targets=[{"Id": node.host, "Port": world["port"]}])


def _promote(world: dict) -> None:
    world["replica"].promote()
    world["primary"].follow(world["replica"])


def test_switch_drill_waits_for_the_path_then_measures_the_listener_update(world: dict) -> None:
    elbv2, (tg_a, tg_b) = world["elbv2"], world["groups"]
    _register(world, tg_a, world["primary"])
    _register(world, tg_b, world["replica"])
    path = drill.DrillPath("switch", listener_arn=world["listener"], node_target_groups=(tg_a, tg_b), nodes=2)
    waits: list[str] = []

    def switch() -> None:
        _promote(world)
        elbv2.modify_listener(ListenerArn=world["listener"], DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_b}])

    result = drill.run_drill(
        host="127.0.0.1", port=world["listener_port"], elbv2=elbv2, path=path, trigger=switch, kind="planned",
        rate=20, duration=7, failover_after=1.5, wait_timeout=30, on_wait=waits.append, watch_period=WATCH_S,
        context={"layout": "switch", "nlb_profile": world["profile"].as_dict()},
    )
    summary = drill.summarise(result, 20)

    # Both node targets were still registering: the drill said so and waited, and the
    # load never saw an error before the failover.
    assert waits and "initial" in waits[0]
    assert summary["waited_for_healthy_s"] >= REGISTRATION_S * SCALE
    assert all(op.outcome == "ok" for op in result.ops if op.t < result.failover_at)
    assert summary["layout"] == "switch" and summary["nlb_profile"]["listener_propagation_s"] == PROPAGATION_S

    assert summary["forward_before"] == tg_a and summary["forward_after"] == tg_b
    assert summary["listener_switched_s"] is not None
    # What the drill measured is the stand-in's propagation delay, to its sampling.
    propagation = PROPAGATION_S * SCALE
    # Never earlier than modelled; later only by how busy the machine is (a loose bound).
    assert propagation - WATCH_S - 0.05 <= summary["measured_listener_propagation_s"] <= propagation + 5.0
    # The new primary's slot was healthy all along: no registration to time.
    assert summary["measured_registration_s"] is None and summary["measured_registration_target"] is None


def test_retarget_drill_measures_registration_until_healthy(world: dict) -> None:
    elbv2, (tg_a, _) = world["elbv2"], world["groups"]
    _register(world, tg_a, world["primary"])
    path = drill.DrillPath("retarget", target_group_arn=tg_a)

    def retarget() -> None:
        _promote(world)
        _register(world, tg_a, world["replica"])
        elbv2.deregister_targets(TargetGroupArn=tg_a, Targets=[{"Id": world["primary"].host, "Port": world["port"]}])

    result = drill.run_drill(
        host="127.0.0.1", port=world["listener_port"], elbv2=elbv2, path=path, trigger=retarget, kind="planned",
        rate=20, duration=7, failover_after=1.5, wait_timeout=30, watch_period=WATCH_S,
    )
    summary = drill.summarise(result, 20)

    assert summary["measured_registration_target"] == f"{tg_a.rsplit(':', 1)[-1]} 127.0.0.3:{world['port']}"
    # Registration delay, then HEALTHY checks one interval apart (the first at the delay).
    modelled = (REGISTRATION_S + (HEALTHY - 1) * INTERVAL_S) * SCALE
    # Never earlier than modelled; later only by how busy the machine is (a loose bound).
    assert modelled - WATCH_S - 0.05 <= summary["measured_registration_s"] <= modelled + 5.0
    # Under the documented profile no new connection reached the new primary before its
    # target was healthy: the probes saw it only afterwards.
    healthy_at = result.failover_at + summary["healthy_s"]
    assert all(p.t >= healthy_at - WATCH_S - 0.05 for p in result.probes
               if p.t >= result.failover_at and p.role == "master" and p.run_id != drill._old_run_id(result))
    assert summary["listener_switched_s"] is None and summary["measured_listener_propagation_s"] is None


def test_drill_gives_up_waiting_for_a_path_that_never_gets_healthy(world: dict) -> None:
    # Nothing registered: the drill does not start, and says why, within its bound.
    path = drill.DrillPath("retarget", target_group_arn=world["groups"][0])
    with pytest.raises(RuntimeError, match="not healthy within 1 s.*has no target"):
        drill.run_drill(host="127.0.0.1", port=world["listener_port"], elbv2=world["elbv2"], path=path,
                        trigger=lambda: None, kind="planned", duration=6, failover_after=1, wait_timeout=1)

"""The NLB adapter (``cachebridge.nlb.TargetGroups``) against moto in-process.

moto runs with ``cachebridge.sandbox.moto_ext`` installed, so targets are keyed by
(IP, port), ``AvailabilityZone`` is recorded and health comes from a provider the test
chooses. API calls are observed with botocore event hooks on the real clients.
"""

from __future__ import annotations

import math
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from cachebridge import nlb
from cachebridge.errors import NlbError, TargetGroupNotFound, Throttled
from cachebridge.nlb import TargetGroups, risky_settings
from cachebridge.sandbox import moto_ext
from cachebridge.targets import Target, TargetHealth, TargetState

from .conftest import REGION, CallLog, create_target_group, registered

pytestmark = pytest.mark.timeout(60)

VPC_CIDR = "10.0.0.0/16"
SECONDARY_CIDR = "10.1.0.0/16"
UNKNOWN_ARN = f"arn:aws:elasticloadbalancing:{REGION}:123456789012:targetgroup/nope/0123456789abcdef"


@pytest.fixture
def vpc_id(ec2: Any) -> str:
    # conftest's, plus a secondary CIDR: targets in either are inside the VPC.
    vpc = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    ec2.associate_vpc_cidr_block(VpcId=vpc, CidrBlock=SECONDARY_CIDR)
    return vpc


@pytest.fixture
def groups(elbv2: Any, ec2: Any) -> TargetGroups:
    return TargetGroups(elbv2, ec2)


# -- info ----------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["name", "arn"])
def test_info_reads_the_group_its_vpc_cidrs_and_attributes(groups: TargetGroups, tg_arn: str, vpc_id: str, by: str) -> None:
    info = groups.info("orders-primary" if by == "name" else tg_arn)

    assert info.arn == tg_arn
    assert info.name == "orders-primary"
    assert (info.port, info.protocol, info.target_type, info.vpc_id) == (6379, "TCP", "ip", vpc_id)
    assert set(info.vpc_cidrs) == {VPC_CIDR, SECONDARY_CIDR}
    assert (info.health_check_interval_s, info.healthy_threshold) == (10, 2)
    assert info.attributes["deregistration_delay.timeout_seconds"] == "5"
    assert info.attributes["deregistration_delay.connection_termination.enabled"] == "true"
    assert info.in_vpc("10.0.3.4") and info.in_vpc("10.1.0.9") and not info.in_vpc("192.168.0.1")


@pytest.mark.parametrize("name_or_arn", ["no-such-group", UNKNOWN_ARN])
def test_info_of_an_unknown_group_is_target_group_not_found(groups: TargetGroups, vpc_id: str, name_or_arn: str) -> None:
    with pytest.raises(TargetGroupNotFound) as caught:
        groups.info(name_or_arn)

    assert caught.value.code == "TargetGroupNotFound"
    message = str(caught.value)
    assert name_or_arn in message
    assert "not found" in message.lower()


def test_info_refuses_a_target_group_that_is_not_an_ip_target_group(groups: TargetGroups, elbv2: Any, vpc_id: str) -> None:
    create_target_group(elbv2, vpc_id, "orders-instances", target_type="instance")

    with pytest.raises(NlbError) as caught:
        groups.info("orders-instances")

    assert not isinstance(caught.value, TargetGroupNotFound)
    assert caught.value.code == "WrongTargetType"
    assert "orders-instances" in str(caught.value)
    assert "'instance'" in str(caught.value) and "IP target group" in str(caught.value)


def test_info_is_cached_until_clear_caches(groups: TargetGroups, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    log = CallLog(elbv2, ec2)

    first = groups.info("orders-primary")
    assert log.names().count("DescribeTargetGroups") == 1
    log.clear()

    assert groups.info("orders-primary") is first
    assert log.calls == []  # no API call at all: details, attributes and CIDRs are cached

    nlb.clear_caches()
    again = groups.info("orders-primary")
    assert again == first
    assert log.names().count("DescribeTargetGroups") == 1
    assert "DescribeTargetGroupAttributes" in log.names()


def test_info_without_cache_reads_every_time(elbv2: Any, ec2: Any, tg_arn: str) -> None:
    uncached = TargetGroups(elbv2, ec2, cache=False)
    log = CallLog(elbv2)

    uncached.info(tg_arn)
    uncached.info(tg_arn)

    assert log.names().count("DescribeTargetGroups") == 2


# -- health --------------------------------------------------------------------------------


def test_health_is_keyed_by_target_ip_and_port_with_each_state(groups: TargetGroups, elbv2: Any, tg_arn: str) -> None:
    elbv2.register_targets(
        TargetGroupArn=tg_arn,
        Targets=[{"Id": "10.0.1.1", "Port": 6379}, {"Id": "10.0.1.1", "Port": 6380}, {"Id": "10.0.2.2", "Port": 6379}],
    )
    states = {
        ("10.0.1.1", 6379): moto_ext.HealthReport("healthy"),
        ("10.0.1.1", 6380): moto_ext.HealthReport("initial", "Elb.RegistrationInProgress", "Target registration is in progress"),
        ("10.0.2.2", 6379): moto_ext.HealthReport("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"),
    }

    with moto_ext.health_provider(lambda arn, ip, port: states[(ip, port)] if arn == tg_arn else None):
        actual = groups.health(tg_arn)

    assert actual == {
        Target("10.0.1.1", 6379): TargetHealth(TargetState.HEALTHY),
        Target("10.0.1.1", 6380): TargetHealth(
            TargetState.INITIAL, "Elb.RegistrationInProgress", "Target registration is in progress"
        ),
        Target("10.0.2.2", 6379): TargetHealth(
            TargetState.DRAINING, "Target.DeregistrationInProgress", "Target deregistration is in progress"
        ),
    }
    assert actual[Target("10.0.2.2", 6379)].draining
    assert not actual[Target("10.0.1.1", 6380)].serving


def test_health_of_an_empty_group_is_empty(groups: TargetGroups, tg_arn: str) -> None:
    assert groups.health(tg_arn) == {}


def test_health_of_an_unknown_group_is_target_group_not_found(groups: TargetGroups, vpc_id: str) -> None:
    with pytest.raises(TargetGroupNotFound, match="describe target health"):
        groups.health(UNKNOWN_ARN)


# -- writes --------------------------------------------------------------------------------


def test_register_sends_availability_zone_all_only_outside_the_vpc(groups: TargetGroups, elbv2: Any, tg_arn: str) -> None:
    info = groups.info(tg_arn)
    log = CallLog(elbv2)
    inside, secondary, peered = Target("10.0.1.5", 6379), Target("10.1.2.3", 6379), Target("172.31.9.9", 6379)

    groups.register(info, [inside, secondary, peered], outside_vpc=True)

    (sent,) = log.of("RegisterTargets")
    assert sent["Targets"] == [
        {"Id": "10.0.1.5", "Port": 6379},
        {"Id": "10.1.2.3", "Port": 6379},
        {"Id": "172.31.9.9", "Port": 6379, "AvailabilityZone": "all"},
    ]
    recorded = moto_ext.registered_targets(tg_arn)
    assert "AvailabilityZone" not in recorded[("10.0.1.5", 6379)]
    assert "AvailabilityZone" not in recorded[("10.1.2.3", 6379)]
    assert recorded[("172.31.9.9", 6379)]["AvailabilityZone"] == "all"
    assert set(groups.health(tg_arn)) == {inside, secondary, peered}


def test_register_sends_no_availability_zone_unless_outside_targets_are_wanted(groups: TargetGroups, elbv2: Any, tg_arn: str) -> None:
    info = groups.info(tg_arn)
    log = CallLog(elbv2)

    groups.register(info, [Target("10.0.1.5", 6379), Target("172.31.9.9", 6379)])

    (sent,) = log.of("RegisterTargets")
    assert all("AvailabilityZone" not in d for d in sent["Targets"])
    assert "AvailabilityZone" not in moto_ext.registered_targets(tg_arn)[("172.31.9.9", 6379)]


def test_same_ip_on_two_ports_are_two_targets(groups: TargetGroups, elbv2: Any, tg_arn: str) -> None:
    info = groups.info(tg_arn)
    on_6379, on_6380 = Target("10.0.1.1", 6379), Target("10.0.1.1", 6380)

    groups.register(info, [on_6379, on_6380])
    assert set(groups.health(tg_arn)) == {on_6379, on_6380}

    log = CallLog(elbv2)
    groups.deregister(info, [on_6379])

    (sent,) = log.of("DeregisterTargets")
    assert sent["Targets"] == [{"Id": "10.0.1.1", "Port": 6379}]  # the port always travels
    assert set(groups.health(tg_arn)) == {on_6380}
    assert registered(elbv2, tg_arn) == {on_6380}


def test_deregistering_a_target_that_is_not_registered_is_not_an_error(groups: TargetGroups, tg_arn: str) -> None:
    info = groups.info(tg_arn)
    kept = Target("10.0.1.1", 6379)
    groups.register(info, [kept])

    groups.deregister(info, [Target("10.0.1.1", 6380), Target("10.0.9.9", 6379)])

    assert set(groups.health(tg_arn)) == {kept}


def test_writes_to_an_unknown_group_are_target_group_not_found(groups: TargetGroups, tg_arn: str) -> None:
    info = groups.info(tg_arn)
    gone = type(info)(**{**info.__dict__, "arn": UNKNOWN_ARN})

    with pytest.raises(TargetGroupNotFound, match="10.0.1.1:6379"):
        groups.register(gone, [Target("10.0.1.1", 6379)])
    with pytest.raises(TargetGroupNotFound, match="10.0.1.1:6379"):
        groups.deregister(gone, [Target("10.0.1.1", 6379)])


@pytest.mark.parametrize("count", [1, 2, 5])
def test_writes_are_sent_in_chunks(elbv2: Any, ec2: Any, tg_arn: str, count: int) -> None:
    groups = TargetGroups(elbv2, ec2, chunk_size=2)
    info = groups.info(tg_arn)
    desired = [Target(f"10.0.1.{i}", 6379) for i in range(1, count + 1)]
    log = CallLog(elbv2)

    groups.register(info, desired)

    register_calls = log.of("RegisterTargets")
    assert len(register_calls) == math.ceil(count / 2)
    assert all(1 <= len(call["Targets"]) <= 2 for call in register_calls)
    assert [t["Id"] for call in register_calls for t in call["Targets"]] == [t.ip for t in desired]
    assert set(groups.health(tg_arn)) == set(desired)

    log.clear()
    groups.deregister(info, desired)

    assert len(log.of("DeregisterTargets")) == math.ceil(count / 2)
    assert groups.health(tg_arn) == {}


# -- risky settings ------------------------------------------------------------------------


def test_risky_settings_warns_about_each_slow_or_sticky_setting(groups: TargetGroups, elbv2: Any, vpc_id: str) -> None:
    create_target_group(
        elbv2,
        vpc_id,
        "orders-slow",
        interval=30,
        threshold=5,
        attributes={
            "deregistration_delay.timeout_seconds": "300",
            "deregistration_delay.connection_termination.enabled": "false",
        },
    )

    warnings = risky_settings(groups.info("orders-slow"))

    assert len(warnings) == 3
    assert any("deregistration_delay.timeout_seconds is 300" in w for w in warnings)
    assert any("connection_termination.enabled is off" in w for w in warnings)
    assert any("interval 30s x healthy threshold 5 = 150s" in w for w in warnings)


def test_risky_settings_counts_an_unset_connection_termination_as_off(groups: TargetGroups, elbv2: Any, vpc_id: str) -> None:
    create_target_group(elbv2, vpc_id, "orders-default-term", attributes={"deregistration_delay.timeout_seconds": "5"})

    warnings = risky_settings(groups.info("orders-default-term"))

    assert len(warnings) == 1 and "connection_termination.enabled is off" in warnings[0]


def test_risky_settings_is_silent_for_good_settings(groups: TargetGroups, tg_arn: str) -> None:
    info = groups.info(tg_arn)
    assert info.attributes["deregistration_delay.timeout_seconds"] == "5"
    assert (info.health_check_interval_s, info.healthy_threshold) == (10, 2)

    assert risky_settings(info) == []


# -- errors --------------------------------------------------------------------------------


def _throttled_client() -> tuple[Any, Stubber]:
    # moto cannot throttle: a stubbed client gives the exact error shape AWS sends.
    client = boto3.client("elbv2", region_name=REGION)
    return client, Stubber(client)


def test_throttling_becomes_throttled(aws: None) -> None:
    client, stub = _throttled_client()
    stub.add_client_error("describe_target_groups", service_error_code="Throttling", service_message="Rate exceeded", http_status_code=400)
    stub.add_client_error("describe_target_health", service_error_code="Throttling", service_message="Rate exceeded", http_status_code=400)
    groups = TargetGroups(client, None, cache=False)

    with stub:
        with pytest.raises(Throttled) as caught:
            groups.info("orders-primary")
        assert caught.value.code == "Throttling"
        assert "orders-primary" in str(caught.value) and "Rate exceeded" in str(caught.value)

        with pytest.raises(Throttled):
            groups.health(UNKNOWN_ARN)
        stub.assert_no_pending_responses()


def test_throttled_register_names_the_targets(aws: None) -> None:
    client, stub = _throttled_client()
    stub.add_client_error("register_targets", service_error_code="Throttling", service_message="Rate exceeded", http_status_code=400)
    groups = TargetGroups(client, None, cache=False)
    info = nlb.TargetGroupInfo(UNKNOWN_ARN, "nope", 6379, "TCP", "ip", "vpc-1", (VPC_CIDR,), 10, 2)

    with stub, pytest.raises(Throttled, match="register 10.0.1.1:6379"):
        groups.register(info, [Target("10.0.1.1", 6379)])

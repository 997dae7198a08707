"""The switch layout end to end: ``sync()`` against moto in-process (with ``moto_ext``), a
real replication group in moto's ElastiCache, node names on a loopback DNS server, one NLB
with a primary listener and a listener per node target group."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID

from cachebridge.config import DEFAULT_LISTENER_SETTLE_S, Config, Settings
from cachebridge.nlb import OWNER_TAG, TargetGroups
from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sources import DnsResolver, Sources
from cachebridge.switch_planner import CUT_TAG, NODE_TAG, SWITCH_TAG, SWITCH_UNKNOWN
from cachebridge.sync import SyncReport, Trigger, sync
from cachebridge.targets import Target

from .conftest import REGION, CallLog

pytestmark = pytest.mark.timeout(60)

PORT = 6379
RG = "orders"
ADDRESSES = ("10.0.1.11", "10.0.2.22", "10.0.3.33")


@dataclass
class Stack:
    listener: str
    slots: list[str]  # node target group ARNs, in configuration order
    node_ids: list[str]  # cache cluster ids, the initial primary first
    config: Config


class FailingModifyListener:
    """An elbv2 client whose ModifyListener fails; every other call goes to the real one."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def modify_listener(self, **params: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalFailure", "Message": "injected"}}, "ModifyListener")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def stack(aws: None, ec2: Any, elbv2: Any, dns_server: LoopbackDnsServer) -> Stack:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    lb = elbv2.create_load_balancer(Name="orders", Subnets=[subnet], Type="network")["LoadBalancers"][0]["LoadBalancerArn"]
    slots = []
    for i in range(3):
        arn = elbv2.create_target_group(
            Name=f"orders-n{i + 1}", Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip", HealthCheckProtocol="TCP",
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.modify_target_group_attributes(
            TargetGroupArn=arn,
            Attributes=[
                {"Key": "deregistration_delay.timeout_seconds", "Value": "0"},
                {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
            ],
        )
        elbv2.create_listener(LoadBalancerArn=lb, Protocol="TCP", Port=16379 + i, DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}])
        slots.append(arn)
    listener = elbv2.create_listener(
        LoadBalancerArn=lb, Protocol="TCP", Port=PORT, DefaultActions=[{"Type": "forward", "TargetGroupArn": slots[0]}]
    )["Listeners"][0]["ListenerArn"]
    elasticache = boto3.client("elasticache", region_name=REGION)
    elasticache.create_replication_group(
        ReplicationGroupId=RG, ReplicationGroupDescription="orders", ReplicasPerNodeGroup=1, Port=PORT, Engine="redis"
    )
    members = elasticache.describe_replication_groups(ReplicationGroupId=RG)["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
    members.sort(key=lambda m: m["CurrentRole"] != "primary")
    for m, ip in zip(members, ADDRESSES):
        dns_server.zone.set_a(m["ReadEndpoint"]["Address"], ip)
    config = Config.from_mapping({
        "settings": {"nameservers": [dns_server.address], "dns_timeout_s": 0.5, "event_wait_s": 0, "rejoin_after_s": 60},
        "bindings": [{
            "name": "orders-primary",
            "source": f"elasticache://{RG}?role=primary",
            "layout": "switch",
            "listener": listener,
            "node_target_groups": [f"orders-n{i + 1}" for i in range(3)],
            "port": PORT,
        }],
    })
    return Stack(listener, slots, [m["CacheClusterId"] for m in members], config)


class FakeTime:
    """The pass's clocks (wall and monotonic alike) and its sleep: sleeping moves time on."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run(
    stack: Stack,
    elbv2: Any,
    dry_run: bool = False,
    now: float = 1_000_000.0,
    trigger: Trigger = Trigger(),
    time: FakeTime | None = None,
    deadline_s: float | None = None,
    target_groups: TargetGroups | None = None,
) -> SyncReport:
    """One pass at ``now`` (or on ``time``), with ``deadline_s`` left in the invocation."""
    settings = stack.config.settings
    sources = Sources(DnsResolver(settings.nameservers, settings.dns_timeout_s), boto3.client("elasticache", region_name=REGION))
    from cachebridge import switch

    t = time or FakeTime(now)
    original = switch.wall_clock
    switch.wall_clock = t.time  # type: ignore[assignment]
    try:
        return sync(
            stack.config, target_groups=target_groups or TargetGroups(elbv2), sources=sources, dry_run=dry_run, trigger=trigger,
            clock=t.time, sleep=t.sleep, deadline=None if deadline_s is None else t.now + deadline_s, call_budget_s=1.0,
        )
    finally:
        switch.wall_clock = original  # type: ignore[assignment]


def forward_of(elbv2: Any, listener: str) -> str:
    return elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0]["TargetGroupArn"]


def memberships(elbv2: Any, stack: Stack) -> list[set[Target]]:
    return [
        {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}
        for arn in stack.slots
    ]


def tags(elbv2: Any, stack: Stack) -> list[dict[str, str]]:
    described = elbv2.describe_tags(ResourceArns=stack.slots)["TagDescriptions"]
    by_arn = {d["ResourceArn"]: {t["Key"]: t["Value"] for t in d["Tags"]} for d in described}
    return [by_arn[arn] for arn in stack.slots]


def fail_over(stack: Stack, to: int) -> None:
    moto_ext.failover_replication_group(DEFAULT_ACCOUNT_ID, REGION, RG, stack.node_ids[to])


P, R = Target(ADDRESSES[0], PORT), Target(ADDRESSES[1], PORT)


def test_first_run_assigns_slots_and_keeps_the_listener_on_the_primary(stack: Stack, elbv2: Any) -> None:
    report = run(stack, elbv2)
    [result] = report.bindings
    assert result.status == "changed", result.error
    assert memberships(elbv2, stack) == [{P}, {R}, set()]
    assert [t.get(NODE_TAG) for t in tags(elbv2, stack)] == [stack.node_ids[0], stack.node_ids[1], None]
    assert forward_of(elbv2, stack.listener) == stack.slots[0]
    entry = result.to_json()
    assert entry["layout"] == "switch" and entry["switched"] is False and entry["listener"] == stack.listener
    assert entry["nodes"][stack.node_ids[0]]["target_group"] == stack.slots[0]


def test_failover_switches_the_listener_then_cuts_the_demoted_primary(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    log = CallLog(elbv2)
    t = FakeTime(1_000_000.0)
    [result] = run(stack, elbv2, time=t).bindings
    assert result.status == "changed", result.error
    assert forward_of(elbv2, stack.listener) == stack.slots[1]
    # The demoted primary left its own slot (its connections are cut) once the listener
    # update had listener_settle_s to propagate; nothing else moved.
    assert memberships(elbv2, stack) == [set(), {R}, set()]
    assert t.slept == [DEFAULT_LISTENER_SETTLE_S]
    assert tags(elbv2, stack)[0][CUT_TAG] == f"{1_000_000 + DEFAULT_LISTENER_SETTLE_S:.0f}"
    assert SWITCH_TAG not in tags(elbv2, stack)[0]
    names = [n for n in log.names() if n in ("ModifyListener", "DeregisterTargets", "RegisterTargets")]
    assert names == ["ModifyListener", "DeregisterTargets"]
    entry = result.to_json()
    assert (entry["forward_before"], entry["forward_after"], entry["switched"], entry["cut"]) == (
        stack.slots[0], stack.slots[1], True, [str(P)]
    )


def test_second_run_is_a_noop(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    run(stack, elbv2)
    log = CallLog(elbv2)
    [result] = run(stack, elbv2, now=1_000_010.0).bindings
    assert result.status == "in_sync", result.reasons
    assert not [n for n in log.names() if n in ("ModifyListener", "RegisterTargets", "DeregisterTargets", "AddTags", "RemoveTags")]


def test_demoted_primary_rejoins_its_slot_after_rejoin_after_s(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    run(stack, elbv2)
    [result] = run(stack, elbv2, now=1_000_000.0 + DEFAULT_LISTENER_SETTLE_S + 60).bindings
    assert result.status == "changed" and result.register == (P,)
    assert memberships(elbv2, stack) == [{P}, {R}, set()]
    assert CUT_TAG not in tags(elbv2, stack)[0]
    assert forward_of(elbv2, stack.listener) == stack.slots[1]


def test_source_error_changes_nothing(stack: Stack, elbv2: Any, dns_server: LoopbackDnsServer) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    stack.config = stack.config.with_settings(nameservers=["127.0.0.1:9"])  # nobody answers
    log = CallLog(elbv2)
    [result] = run(stack, elbv2).bindings
    assert result.status == "error" and result.to_json()["switched"] is False
    assert forward_of(elbv2, stack.listener) == stack.slots[0]
    assert memberships(elbv2, stack) == [{P}, {R}, set()]
    assert not [n for n in log.names() if n in ("ModifyListener", "RegisterTargets", "DeregisterTargets", "AddTags", "RemoveTags")]


def test_failed_modify_listener_leaves_listener_and_memberships(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    log = CallLog(elbv2)
    settings = stack.config.settings
    sources = Sources(DnsResolver(settings.nameservers, settings.dns_timeout_s), boto3.client("elasticache", region_name=REGION))
    report = sync(stack.config, target_groups=TargetGroups(FailingModifyListener(elbv2)), sources=sources)
    [result] = report.bindings
    assert result.status == "error" and "nothing else changed" in (result.error or "")
    assert forward_of(elbv2, stack.listener) == stack.slots[0]
    assert memberships(elbv2, stack) == [{P}, {R}, set()]
    # The slot the listener was to leave was marked before the switch; the mark is gone again.
    assert CUT_TAG not in tags(elbv2, stack)[0] and SWITCH_TAG not in tags(elbv2, stack)[0]
    assert not [n for n in log.names() if n in ("RegisterTargets", "DeregisterTargets")]
    assert result.to_json()["forward_after"] == stack.slots[0]


def test_no_switch_to_an_unhealthy_slot_while_the_current_one_is_healthy(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    with moto_ext.health_provider(lambda arn, ip, port: "unhealthy" if arn == stack.slots[1] else None):
        [result] = run(stack, elbv2).bindings
    assert result.status == "in_sync"
    assert forward_of(elbv2, stack.listener) == stack.slots[0]
    assert any("held" in reason for reason in result.reasons)
    assert result.drift == 1 and any("still forwards" in w for w in result.warnings)


def test_dry_run_plans_the_switch_and_changes_nothing(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    [result] = run(stack, elbv2, dry_run=True).bindings
    assert result.status == "dry_run" and result.cut == (P,)
    assert forward_of(elbv2, stack.listener) == stack.slots[0]
    assert memberships(elbv2, stack) == [{P}, {R}, set()]


class FailingDeregister:
    """An elbv2 client whose DeregisterTargets fails; every other call goes to the real one."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def deregister_targets(self, **params: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalFailure", "Message": "injected"}}, "DeregisterTargets")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_cut_waits_for_the_listener_to_settle_or_is_left_to_a_later_run(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    # 5 s left in the invocation: the settle time does not fit, so the pass switches, records
    # the switch time on the old slot and leaves the demoted primary where it is.
    t = FakeTime(1_000_000.0)
    [result] = run(stack, elbv2, time=t, deadline_s=5).bindings
    assert result.status == "changed", result.error
    assert forward_of(elbv2, stack.listener) == stack.slots[1]
    assert memberships(elbv2, stack) == [{P}, {R}, set()]
    assert t.slept == [] and result.cut == () and result.to_json()["cut_deferred"] is True
    assert tags(elbv2, stack)[0][SWITCH_TAG] == "1000000.000" and CUT_TAG not in tags(elbv2, stack)[0]
    # A run before the settle time has passed does not cut either.
    log = CallLog(elbv2)
    [early] = run(stack, elbv2, now=1_000_004.0).bindings
    assert early.status == "in_sync", early.reasons
    assert memberships(elbv2, stack) == [{P}, {R}, set()]
    assert not [n for n in log.names() if n in ("ModifyListener", "RegisterTargets", "DeregisterTargets")]
    # The first run after it cuts, once.
    [later] = run(stack, elbv2, now=1_000_000.0 + DEFAULT_LISTENER_SETTLE_S + 1).bindings
    assert later.status == "changed" and later.cut == (P,)
    assert memberships(elbv2, stack) == [set(), {R}, set()]
    assert SWITCH_TAG not in tags(elbv2, stack)[0] and CUT_TAG in tags(elbv2, stack)[0]
    assert forward_of(elbv2, stack.listener) == stack.slots[1]


def test_failed_cut_is_retried_on_the_next_run(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    [result] = run(stack, elbv2, target_groups=TargetGroups(FailingDeregister(elbv2))).bindings
    assert result.status == "error" and "after the switch" in (result.error or "")
    assert forward_of(elbv2, stack.listener) == stack.slots[1]
    assert memberships(elbv2, stack) == [{P}, {R}, set()]
    assert SWITCH_TAG in tags(elbv2, stack)[0]
    [retry] = run(stack, elbv2, now=1_000_000.0 + DEFAULT_LISTENER_SETTLE_S + 30).bindings
    assert retry.status == "changed" and retry.cut == (P,), retry.reasons
    assert memberships(elbv2, stack) == [set(), {R}, set()]
    assert SWITCH_TAG not in tags(elbv2, stack)[0]


def test_pending_cut_is_dropped_when_the_node_is_primary_again(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    run(stack, elbv2, deadline_s=5)  # switched, cut deferred
    fail_over(stack, 0)
    [back] = run(stack, elbv2, now=1_000_000.0 + DEFAULT_LISTENER_SETTLE_S + 1, deadline_s=5).bindings
    assert back.status == "changed", back.error
    assert forward_of(elbv2, stack.listener) == stack.slots[0]
    # The primary keeps its target; the new demoted one (its cut deferred again) keeps its own.
    assert memberships(elbv2, stack) == [{P}, {R}, set()]
    assert back.cut == () and SWITCH_TAG not in tags(elbv2, stack)[0]
    assert SWITCH_TAG in tags(elbv2, stack)[1]


class FailingSwitchTimeTag:
    """An elbv2 client whose first AddTags after a ModifyListener fails once (the switch time
    is not recorded); every other call goes to the real one."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.switched = False
        self.failed = False

    def modify_listener(self, **params: Any) -> Any:
        done = self._real.modify_listener(**params)
        self.switched = True
        return done

    def add_tags(self, **params: Any) -> Any:
        if self.switched and not self.failed:
            self.failed = True
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "injected"}}, "AddTags")
        return self._real.add_tags(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_switch_time_not_recorded_is_recorded_by_the_next_run_and_the_cut_follows(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    faulty = FailingSwitchTimeTag(elbv2)
    t = FakeTime(1_000_000.0)
    [first] = run(stack, elbv2, time=t, target_groups=TargetGroups(faulty)).bindings
    assert faulty.failed
    assert first.status == "error" and "after the switch" in (first.error or "")
    assert forward_of(elbv2, stack.listener) == stack.slots[1]
    assert memberships(elbv2, stack) == [{P}, {R}, set()] and t.slept == []
    assert tags(elbv2, stack)[0][SWITCH_TAG] == SWITCH_UNKNOWN  # the mark written before the switch
    # The next run takes the switch time as unknown: it records it now and cuts nothing yet.
    log = CallLog(elbv2)
    [found] = run(stack, elbv2, now=1_000_100.0).bindings
    assert found.status == "changed", found.error
    assert any("switch time was not recorded" in w for w in found.warnings)
    assert tags(elbv2, stack)[0][SWITCH_TAG] == "1000100.000"
    assert memberships(elbv2, stack) == [{P}, {R}, set()] and found.cut == ()
    assert not [n for n in log.names() if n in ("ModifyListener", "RegisterTargets", "DeregisterTargets")]
    # listener_settle_s after that, and not before, the demoted primary is cut.
    [early] = run(stack, elbv2, now=1_000_100.0 + DEFAULT_LISTENER_SETTLE_S - 1).bindings
    assert early.status == "in_sync", early.reasons
    assert memberships(elbv2, stack) == [{P}, {R}, set()]
    [cut] = run(stack, elbv2, now=1_000_100.0 + DEFAULT_LISTENER_SETTLE_S).bindings
    assert cut.status == "changed" and cut.cut == (P,), cut.reasons
    assert memberships(elbv2, stack) == [set(), {R}, set()]
    assert SWITCH_TAG not in tags(elbv2, stack)[0] and CUT_TAG in tags(elbv2, stack)[0]
    assert forward_of(elbv2, stack.listener) == stack.slots[1]


def test_a_slot_another_stack_owns_is_not_written_unless_forced(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    elbv2.add_tags(ResourceArns=[stack.slots[1]], Tags=[{"Key": OWNER_TAG, "Value": "payments"}])
    before = memberships(elbv2, stack)
    log = CallLog(elbv2)

    [refused] = run(stack, elbv2).bindings

    assert refused.status == "error"
    assert "orders-n2" in (refused.error or "") and "'payments'" not in (refused.error or "")
    assert "--force" in (refused.error or "")
    assert any("owned by stack 'payments'" in w for w in refused.warnings)
    assert forward_of(elbv2, stack.listener) == stack.slots[0]  # not switched
    assert memberships(elbv2, stack) == before
    assert not [n for n in log.names() if n in ("ModifyListener", "RegisterTargets", "DeregisterTargets", "AddTags", "RemoveTags")]

    [planned] = run(stack, elbv2, dry_run=True).bindings
    assert planned.status == "dry_run" and any("owned by stack 'payments'" in w for w in planned.warnings)

    settings = stack.config.settings
    sources = Sources(DnsResolver(settings.nameservers, settings.dns_timeout_s), boto3.client("elasticache", region_name=REGION))
    [forced] = sync(stack.config, target_groups=TargetGroups(elbv2), sources=sources, force=True, sleep=lambda _: None).bindings
    assert forced.status == "changed", forced.error
    assert forward_of(elbv2, stack.listener) == stack.slots[1]


def test_slots_owned_by_this_controller_are_written(stack: Stack, elbv2: Any) -> None:
    for arn in stack.slots:
        elbv2.add_tags(ResourceArns=[arn], Tags=[{"Key": OWNER_TAG, "Value": "orders-stack"}])
    config = replace(stack.config, settings=replace(stack.config.settings, controller_id="orders-stack"))
    run(replace(stack, config=config), elbv2)
    fail_over(stack, 1)

    [result] = run(replace(stack, config=config), elbv2).bindings

    assert result.status == "changed", result.error
    assert forward_of(elbv2, stack.listener) == stack.slots[1]
    assert not any("owned by stack" in w for w in result.warnings)


def _answer_without(elbv2: Any, arn: str, twice_with: dict[str, str] | None = None) -> None:
    """DescribeTags answers leave ``arn`` out (or, with ``twice_with``, describe it a second
    time with those tags)."""

    def edit(parsed: dict[str, Any], **_: Any) -> None:
        described = parsed.get("TagDescriptions", [])
        if twice_with is None:
            parsed["TagDescriptions"] = [d for d in described if d["ResourceArn"] != arn]
        else:
            described.append({"ResourceArn": arn, "Tags": [{"Key": k, "Value": v} for k, v in twice_with.items()]})

    elbv2.meta.events.register("after-call.elastic-load-balancing-v2.DescribeTags", edit)


@pytest.mark.parametrize("answer", ["left out", "described twice"])
def test_a_tag_answer_that_leaves_a_slot_unknown_writes_nothing(stack: Stack, elbv2: Any, answer: str) -> None:
    # Taken for untagged, the slot would look free (no node, no hold, no owner).
    run(stack, elbv2)
    fail_over(stack, 1)
    before = memberships(elbv2, stack)
    _answer_without(elbv2, stack.slots[1], None if answer == "left out" else {OWNER_TAG: "payments"})
    log = CallLog(elbv2)

    [result] = run(stack, elbv2).bindings

    assert "DescribeTags" in log.names()
    assert result.status == "error" and stack.slots[1] in (result.error or "")
    assert ("left out" if answer == "left out" else "twice with different tags") in (result.error or "")
    assert forward_of(elbv2, stack.listener) == stack.slots[0]
    assert memberships(elbv2, stack) == before
    assert not [n for n in log.names() if n in ("ModifyListener", "RegisterTargets", "DeregisterTargets", "AddTags", "RemoveTags")]


def test_a_slot_described_twice_alike_is_read_as_usual(stack: Stack, elbv2: Any) -> None:
    run(stack, elbv2)
    fail_over(stack, 1)
    [node_tags] = [{t["Key"]: t["Value"] for t in d["Tags"]} for d in elbv2.describe_tags(ResourceArns=[stack.slots[1]])["TagDescriptions"]]
    _answer_without(elbv2, stack.slots[1], node_tags)

    [result] = run(stack, elbv2).bindings

    assert result.status == "changed", result.error
    assert forward_of(elbv2, stack.listener) == stack.slots[1]

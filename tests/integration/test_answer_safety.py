"""Answers are checked before they are acted on, optional reads fail soft, ownership is
respected, and a group is re-read before it is written: ``sync()`` against moto in-process
and a real DNS server on loopback (one that misbehaves on purpose, where needed)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.nlb import LOCK_TABLE_TAG, OWNER_TAG, TargetGroups
from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, Trigger, sync
from cachebridge.targets import Target

from .conftest import CallLog, registered

pytestmark = pytest.mark.timeout(60)

PORT = 6379
HOST = "master.orders.abc123.euw1.cache.amazonaws.com"
OLD, NEW = Target("10.0.1.11", PORT), Target("10.0.2.22", PORT)


class FlappingZone(Zone):
    """A zone whose answer for ``HOST`` alternates between two addresses on every query,
    and settles on the first one after ``settle_after`` queries when that is given."""

    def __init__(self, first: str, second: str, settle_after: int | None = None) -> None:
        super().__init__(ttl=1)
        self.answers = (first, second)
        self.flips = 0
        self.settle_after = settle_after
        self.set_a(HOST, first)

    def answer(self, request: Any) -> Any:
        settled = self.settle_after is not None and self.flips >= self.settle_after
        self.set_a(HOST, self.answers[0] if settled else self.answers[self.flips % 2])
        self.flips += 1
        return super().answer(request)


class Failing:
    """A client whose ``operation`` raises ``error``; every other call goes to the real one."""

    def __init__(self, real: Any, operation: str, error: Exception) -> None:
        self._real, self._operation, self._error = real, operation, error
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        if name == self._operation:
            def fail(**_: Any) -> Any:
                self.calls += 1
                raise self._error
            return fail
        return getattr(self._real, name)


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)


def config(dns: LoopbackDnsServer, binding: Binding | None = None, **overrides: Any) -> Config:
    values: dict[str, Any] = {"nameservers": (dns.address,), "poll_interval_s": 0.1, "dns_timeout_s": 0.3, "event_wait_s": 2.0}
    values.update(overrides)
    return Config((binding or Binding("orders-primary", DnsSourceSpec(HOST), "orders-primary", PORT),), Settings(**values))


def run(cfg: Config, elbv2: Any, ec2: Any, **kwargs: Any) -> SyncReport:
    sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s))
    return sync(cfg, target_groups=TargetGroups(elbv2, ec2), sources=sources, **kwargs)


def primary(max_targets: int | None = 1, **fields: Any) -> Binding:
    return Binding("orders-primary", DnsSourceSpec(HOST), "orders-primary", PORT, max_targets=max_targets, **fields)


# -- count ---------------------------------------------------------------------------------


def test_an_answer_with_more_targets_than_allowed_changes_nothing(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    zone.set_a(HOST, OLD.ip)
    run(config(dns_server, primary()), elbv2, ec2)
    zone.set_a(HOST, [f"10.0.3.{i}" for i in range(1, 51)])
    log = CallLog(elbv2)

    (result,) = run(config(dns_server, primary()), elbv2, ec2).bindings

    assert result.status == "error" and result.source_error
    assert "50 addresses" in (result.error or "") and "max_targets = 1" in (result.error or "")
    assert result.register == result.deregister == ()
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == {OLD}


# -- address kind and range ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("0.0.0.0", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("8.8.8.8", "publicly routable"),
        ("192.168.1.1", "outside the target group's VPC"),
    ],
)
def test_an_address_that_is_no_valid_target_changes_nothing(dns_server, zone, elbv2, ec2, tg_arn, ip, why) -> None:
    zone.set_a(HOST, OLD.ip)
    run(config(dns_server, primary()), elbv2, ec2)
    zone.set_a(HOST, ip)
    log = CallLog(elbv2)

    (result,) = run(config(dns_server, primary()), elbv2, ec2).bindings

    assert result.status == "error"
    assert ip in (result.error or "") and why in (result.error or "")
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == {OLD}


def test_an_outside_vpc_target_the_binding_asks_for_is_registered_with_every_zone(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    zone.set_a(HOST, "192.168.1.1")
    log = CallLog(elbv2)

    (result,) = run(config(dns_server, primary(allow_outside_vpc=True)), elbv2, ec2).bindings

    assert result.status == "changed"
    (sent,) = log.of("RegisterTargets")
    assert sent["Targets"] == [{"Id": "192.168.1.1", "Port": PORT, "AvailabilityZone": "all"}]
    assert moto_ext.registered_targets(tg_arn)[("192.168.1.1", PORT)]["AvailabilityZone"] == "all"


def test_allowed_target_networks_admit_loopback_nodes(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    zone.set_a(HOST, "127.0.0.2")

    (result,) = run(config(dns_server, primary(), allowed_target_networks=("127.0.0.0/8",)), elbv2, ec2).bindings

    assert result.status == "changed"
    assert registered(elbv2, tg_arn) == {Target("127.0.0.2", PORT)}


# -- agreement across reads ----------------------------------------------------------------


def test_an_answer_that_alternates_never_flips_the_group(elbv2, ec2, tg_arn) -> None:
    zone = FlappingZone(NEW.ip, OLD.ip)
    with LoopbackDnsServer(zone, host="127.0.0.1") as dns:
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": OLD.ip, "Port": PORT}])
        log = CallLog(elbv2)
        outcomes = [run(config(dns, primary()), elbv2, ec2).bindings[0] for _ in range(6)]

    # Each run reads NEW then OLD (or OLD first): never the same new answer twice in a row.
    assert all(r.status in ("in_sync", "error") for r in outcomes), [(r.status, r.error) for r in outcomes]
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == {OLD}


def test_a_change_is_applied_once_a_second_read_agrees(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    zone.set_a(HOST, OLD.ip)
    run(config(dns_server, primary()), elbv2, ec2)
    zone.set_a(HOST, NEW.ip)

    (result,) = run(config(dns_server, primary()), elbv2, ec2, trigger=Trigger(kind="schedule")).bindings

    assert (result.status, result.polls) == ("changed", 2)
    assert registered(elbv2, tg_arn) == {NEW}


def test_an_answer_that_settles_during_an_event_wait_is_applied(elbv2, ec2, tg_arn) -> None:
    # Flaps for a while, then settles on NEW: applied once two reads in a row agree.
    # Counted in queries, not seconds: NEW, OLD (disagrees), then NEW from the third on.
    zone = FlappingZone(NEW.ip, OLD.ip, settle_after=2)
    with LoopbackDnsServer(zone, host="127.0.0.1") as dns:
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": OLD.ip, "Port": PORT}])
        (result,) = run(config(dns, primary(), event_wait_s=3.0), elbv2, ec2, trigger=Trigger(kind="event", wait_for_change=True)).bindings

    assert result.status == "changed" and result.polls >= 3
    assert registered(elbv2, tg_arn) == {NEW}


# -- optional reads fail soft --------------------------------------------------------------


def test_a_failing_describe_vpcs_is_a_warning_and_the_failover_proceeds(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    zone.set_a(HOST, OLD.ip)
    run(config(dns_server, primary()), elbv2, ec2)
    zone.set_a(HOST, NEW.ip)
    from cachebridge import nlb

    nlb.clear_caches()
    failing = Failing(ec2, "describe_vpcs", client_error("UnauthorizedOperation", "DescribeVpcs"))

    (result,) = run(config(dns_server, primary()), elbv2, failing).bindings

    assert failing.calls == 1
    assert result.status == "changed"
    assert registered(elbv2, tg_arn) == {NEW}
    assert any("UnauthorizedOperation" in w for w in result.warnings)
    assert any("VPC CIDRs are unknown" in w for w in result.warnings)


def test_unknown_vpc_cidrs_still_refuse_the_never_valid_kinds(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    zone.set_a(HOST, "169.254.169.254")
    failing = Failing(ec2, "describe_vpcs", client_error("RequestLimitExceeded", "DescribeVpcs"))

    (result,) = run(config(dns_server, primary()), elbv2, failing).bindings

    assert result.status == "error" and "169.254.169.254" in (result.error or "")
    assert registered(elbv2, tg_arn) == set()


def test_failing_target_group_attributes_are_a_warning_not_an_error(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    zone.set_a(HOST, NEW.ip)
    failing = Failing(elbv2, "describe_target_group_attributes", client_error("InternalFailure", "DescribeTargetGroupAttributes"))

    (result,) = run(config(dns_server, primary()), failing, ec2).bindings

    assert result.status == "changed"
    assert any("attributes" in w and "InternalFailure" in w for w in result.warnings)
    assert registered(elbv2, tg_arn) == {NEW}


def test_an_unreachable_endpoint_is_asked_once_not_once_per_binding(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    zone.set_a(HOST, NEW.ip)
    down = Failing(elbv2, "describe_target_groups", EndpointConnectionError(endpoint_url="http://elb.invalid"))
    second = Binding("orders-replicas", DnsSourceSpec(HOST), "orders-replicas", PORT)
    cfg = Config((primary(), second), config(dns_server).settings)

    report = sync(cfg, target_groups=TargetGroups(down, ec2), sources=Sources(DnsResolver(cfg.settings.nameservers, 0.3)))

    assert [b.status for b in report.bindings] == ["error", "error"]
    assert all("elb.invalid" in (b.error or "") for b in report.bindings)
    assert down.calls == 1  # one DescribeTargetGroups for both names; botocore retried inside it


# -- ownership -----------------------------------------------------------------------------


def test_a_group_owned_by_a_stack_is_left_to_that_stack_unless_forced(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    elbv2.add_tags(ResourceArns=[tg_arn], Tags=[{"Key": OWNER_TAG, "Value": "orders-external"}])
    zone.set_a(HOST, NEW.ip)
    log = CallLog(elbv2)

    (refused,) = run(config(dns_server, primary()), elbv2, ec2).bindings
    assert refused.status == "error"
    assert "orders-external" in (refused.error or "") and "--force" in (refused.error or "")
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == set()

    (planned,) = run(config(dns_server, primary()), elbv2, ec2, dry_run=True).bindings
    assert planned.status == "dry_run" and any("orders-external" in w for w in planned.warnings)

    (owner,) = run(config(dns_server, primary(), controller_id="orders-external"), elbv2, ec2).bindings
    assert owner.status == "changed"
    elbv2.deregister_targets(TargetGroupArn=tg_arn, Targets=[{"Id": NEW.ip, "Port": PORT}])

    (forced,) = run(config(dns_server, primary()), elbv2, ec2, force=True).bindings
    assert forced.status == "changed"
    assert registered(elbv2, tg_arn) == {NEW}


def test_the_lock_table_comes_from_the_group_tag(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    import boto3

    from .conftest import REGION

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="orders-locks", KeySchema=[{"AttributeName": "lease_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lease_key", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    elbv2.add_tags(ResourceArns=[tg_arn], Tags=[{"Key": LOCK_TABLE_TAG, "Value": "orders-locks"}])
    zone.set_a(HOST, NEW.ip)
    cfg = config(dns_server, primary(), controller_id="orders-external")

    (result,) = sync(
        cfg, target_groups=TargetGroups(elbv2, ec2, dynamodb=dynamodb),
        sources=Sources(DnsResolver(cfg.settings.nameservers, 0.3)),
    ).bindings

    assert result.status == "changed"
    item = dynamodb.get_item(TableName="orders-locks", Key={"lease_key": {"S": tg_arn}})["Item"]
    assert item["last_controller"] == {"S": "orders-external"}
    assert item["last_desired"] == {"L": [{"S": str(NEW)}]}
    assert float(item["expires_at"]["N"]) == 0  # released


# -- the event path re-reads the group before writing ---------------------------------------


def test_an_event_re_reads_the_group_after_its_wait(dns_server, zone, elbv2, ec2, tg_arn) -> None:
    # A replicas-like binding holding OLD and NEW. While the event waits, another writer
    # removes NEW, then the answer becomes NEW alone. Planned from the snapshot taken before
    # the wait (NEW still there), the run would deregister OLD only and leave nothing.
    zone.set_a(HOST, [OLD.ip, NEW.ip])
    binding = primary(max_targets=None)
    run(config(dns_server, binding), elbv2, ec2)
    assert registered(elbv2, tg_arn) == {OLD, NEW}

    def meanwhile() -> None:
        elbv2.deregister_targets(TargetGroupArn=tg_arn, Targets=[{"Id": NEW.ip, "Port": PORT}])
        zone.set_a(HOST, NEW.ip)

    timer = threading.Timer(0.4, meanwhile)
    timer.start()
    try:
        (result,) = run(config(dns_server, binding, event_wait_s=3.0), elbv2, ec2, trigger=Trigger(kind="event", wait_for_change=True)).bindings
    finally:
        timer.cancel()
        timer.join(timeout=5)

    assert result.status == "changed"
    assert (result.register, result.deregister) == ((NEW,), (OLD,))
    assert registered(elbv2, tg_arn) == {NEW}

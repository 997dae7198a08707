"""``sync()`` end to end: moto in-process (with ``moto_ext``), a real loopback DNS server and
``dns://`` sources. API calls are observed with botocore event hooks on the real clients."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cachebridge.config import Binding, Config, DnsSourceSpec, ElastiCacheSourceSpec, Settings
from cachebridge.errors import ConfigError
from cachebridge.nlb import TargetGroups
from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, Trigger, sync
from cachebridge.targets import Target

from .conftest import REGION, CallLog, create_target_group, registered

pytestmark = pytest.mark.timeout(60)

PORT = 6379
ENDPOINT = "master.orders.abc123.euw1.cache.amazonaws.com"
NODE_1 = "orders-001.abc123.0001.euw1.cache.amazonaws.com"
NODE_2 = "orders-002.abc123.0001.euw1.cache.amazonaws.com"
IP_1, IP_2 = "10.0.1.11", "10.0.2.22"
OLD, NEW = Target(IP_1, PORT), Target(IP_2, PORT)


class FailingRegister:
    """An elbv2 client whose RegisterTargets fails; every other call goes to the real one."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.attempts = 0

    def register_targets(self, **params: Any) -> Any:
        self.attempts += 1
        raise ClientError(
            {"Error": {"Code": "InternalFailure", "Message": "injected register failure"}}, "RegisterTargets"
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def dns(dns_server: LoopbackDnsServer) -> LoopbackDnsServer:
    # Like ElastiCache: the primary endpoint is a CNAME to the primary node's name.
    dns_server.zone.set_a(NODE_1, IP_1)
    dns_server.zone.set_a(NODE_2, IP_2)
    dns_server.zone.set_cname(ENDPOINT, NODE_1)
    return dns_server


def settings(dns: LoopbackDnsServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "nameservers": (dns.address,),
        "max_changes": 4,
        "event_wait_s": 2.0,
        "poll_interval_s": 0.1,
        "dns_timeout_s": 0.3,
    }
    values.update(overrides)
    return Settings(**values)


def config(dns: LoopbackDnsServer, *bindings: Binding, **overrides: Any) -> Config:
    return Config(bindings=bindings or (binding(),), settings=settings(dns, **overrides))


def binding(name: str = "orders-primary", host: str = ENDPOINT, target_group: str = "orders-primary") -> Binding:
    return Binding(name=name, source=DnsSourceSpec(host), target_group=target_group, port=PORT)


def run(cfg: Config, elbv2: Any, ec2: Any, **kwargs: Any) -> SyncReport:
    sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s))
    return sync(cfg, target_groups=TargetGroups(elbv2, ec2), sources=sources, **kwargs)


# -- the happy path ------------------------------------------------------------------------


def test_first_pass_registers_the_primary(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    log = CallLog(elbv2)

    report = run(config(dns), elbv2, ec2)

    (result,) = report.bindings
    assert report.ok
    assert result.status == "changed"
    assert result.desired == (OLD,)
    assert result.register == (OLD,) and result.deregister == ()
    assert result.registered_before == () and result.registered_after == (OLD,)
    assert result.target_group_arn == tg_arn
    assert result.warnings == []
    assert log.writes() == [("RegisterTargets", [OLD])]
    assert registered(elbv2, tg_arn) == {OLD}


def test_second_pass_is_in_sync_with_no_writes_and_one_health_read_per_group(
    dns: LoopbackDnsServer, elbv2: Any, ec2: Any, vpc_id: str
) -> None:
    arns = {name: create_target_group(elbv2, vpc_id, name) for name in ("orders-primary", "carts-primary")}
    dns.zone.set_a("master.carts.abc123.euw1.cache.amazonaws.com", "10.0.3.33")
    cfg = config(
        dns,
        binding(),
        binding("carts-primary", "master.carts.abc123.euw1.cache.amazonaws.com", "carts-primary"),
    )
    assert [r.status for r in run(cfg, elbv2, ec2).bindings] == ["changed", "changed"]
    log = CallLog(elbv2, ec2)

    # Freshly registered targets stay "initial" for a while on AWS; that is not drift.
    with moto_ext.health_provider(lambda arn, ip, port: "initial"):
        report = run(cfg, elbv2, ec2)

    assert [r.status for r in report.bindings] == ["in_sync", "in_sync"]
    assert all(r.register == () and r.deregister == () and r.changes == 0 for r in report.bindings)
    assert report.bindings[0].health == {str(OLD): "initial"}
    assert log.writes() == []
    health_reads = [params["TargetGroupArn"] for params in log.of("DescribeTargetHealth")]
    assert sorted(health_reads) == sorted(arns.values())
    assert set(log.names()) == {"DescribeTargetHealth"}  # target group details came from the cache


def test_a_dns_flip_registers_the_new_primary_before_deregistering_the_old(
    dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str
) -> None:
    cfg = config(dns)
    run(cfg, elbv2, ec2)
    dns.zone.set_cname(ENDPOINT, NODE_2)
    log = CallLog(elbv2)

    report = run(cfg, elbv2, ec2)

    (result,) = report.bindings
    assert result.status == "changed"
    assert (result.registered_before, result.register, result.deregister, result.registered_after) == (
        (OLD,), (NEW,), (OLD,), (NEW,)
    )
    assert log.writes() == [("RegisterTargets", [NEW]), ("DeregisterTargets", [OLD])]
    assert registered(elbv2, tg_arn) == {NEW}
    assert run(cfg, elbv2, ec2).bindings[0].status == "in_sync"


# -- safety rules --------------------------------------------------------------------------


def _break(dns: LoopbackDnsServer, how: str) -> None:
    if how == "nxdomain":
        dns.zone.remove(ENDPOINT)
    elif how == "servfail":
        dns.zone.set_fault(ENDPOINT, "servfail")
    elif how == "timeout":
        dns.zone.set_fault(ENDPOINT, "drop")
    elif how == "server_stopped":
        dns.stop()
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["nxdomain", "servfail", "timeout", "server_stopped"])
def test_a_source_failure_deregisters_nothing(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str, how: str) -> None:
    cfg = config(dns)
    run(cfg, elbv2, ec2)
    _break(dns, how)
    log = CallLog(elbv2)

    started = time.monotonic()
    report = run(cfg, elbv2, ec2)
    elapsed = time.monotonic() - started

    (result,) = report.bindings
    assert not report.ok and report.failed == [result]
    assert result.status == "error" and result.source_error
    assert ENDPOINT in (result.error or "")
    assert result.register == () and result.deregister == ()
    assert result.registered_after == (OLD,)
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == {OLD}
    assert elapsed < 5  # bounded by dns_timeout_s, not by a default timeout


def test_an_empty_answer_deregisters_nothing(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    cfg = config(dns)
    run(cfg, elbv2, ec2)
    dns.zone.set_a(NODE_1, [])  # the name exists, with no address
    log = CallLog(elbv2)

    report = run(cfg, elbv2, ec2)

    (result,) = report.bindings
    assert not report.ok
    assert result.status in ("error", "skipped")
    assert "no A record" in (result.error or "")  # an IPv4 target group asks for A only
    assert result.deregister == ()
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == {OLD}


def test_a_failed_register_deregisters_nothing_in_that_run(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    cfg = config(dns)
    run(cfg, elbv2, ec2)
    dns.zone.set_cname(ENDPOINT, NODE_2)
    failing = FailingRegister(elbv2)
    log = CallLog(elbv2)

    report = run(cfg, failing, ec2)

    (result,) = report.bindings
    assert failing.attempts == 1
    assert result.status == "error"
    assert "injected register failure" in (result.error or "") and "nothing deregistered" in (result.error or "")
    assert result.deregister == ()
    assert log.of("DeregisterTargets") == []
    assert registered(elbv2, tg_arn) == {OLD}

    # The next run with a working client completes the move.
    healed = run(cfg, elbv2, ec2).bindings[0]
    assert (healed.status, healed.register, healed.deregister) == ("changed", (NEW,), (OLD,))


def test_max_changes_caps_a_run_and_reports_the_rest_as_deferred(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    dns.zone.set_a(NODE_1, ["10.0.1.1", "10.0.1.2", "10.0.1.3"])
    cfg = config(dns, max_changes=2)
    log = CallLog(elbv2)

    first = run(cfg, elbv2, ec2).bindings[0]

    assert first.status == "changed"
    assert first.register == (Target("10.0.1.1", PORT), Target("10.0.1.2", PORT))
    assert first.deferred == (Target("10.0.1.3", PORT),)
    assert any("deferred" in w for w in first.warnings)
    assert sum(len(targets) for _, targets in log.writes()) == 2
    assert registered(elbv2, tg_arn) == {Target("10.0.1.1", PORT), Target("10.0.1.2", PORT)}

    second = run(cfg, elbv2, ec2).bindings[0]
    assert (second.status, second.register, second.deferred) == ("changed", (Target("10.0.1.3", PORT),), ())
    assert run(cfg, elbv2, ec2).bindings[0].status == "in_sync"


def test_max_changes_registers_first_and_defers_deregistrations(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    dns.zone.set_a(NODE_1, ["10.0.1.1", "10.0.1.2"])
    run(config(dns), elbv2, ec2)
    dns.zone.set_a(NODE_1, ["10.0.2.1", "10.0.2.2"])
    log = CallLog(elbv2)

    result = run(config(dns, max_changes=2), elbv2, ec2).bindings[0]

    new = (Target("10.0.2.1", PORT), Target("10.0.2.2", PORT))
    old = (Target("10.0.1.1", PORT), Target("10.0.1.2", PORT))
    assert (result.register, result.deregister, result.deferred) == (new, (), old)
    assert log.writes() == [("RegisterTargets", list(new))]
    assert registered(elbv2, tg_arn) == set(new) | set(old)


def test_dry_run_writes_nothing_and_reports_the_plan(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    cfg = config(dns)
    run(cfg, elbv2, ec2)
    dns.zone.set_cname(ENDPOINT, NODE_2)
    log = CallLog(elbv2)

    report = run(cfg, elbv2, ec2, dry_run=True)

    (result,) = report.bindings
    assert report.ok
    assert result.status == "dry_run"
    assert (result.register, result.deregister) == ((NEW,), (OLD,))
    assert result.changes == 0
    assert result.registered_after == (OLD,)
    assert any(reason.startswith("register: ") for reason in result.reasons)
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == {OLD}


def test_two_bindings_on_one_target_group_are_refused_before_anything_is_written(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    # By name and by ARN: one group either way. Each binding would remove the other's targets.
    dns.zone.set_a("replica.orders.abc123.euw1.cache.amazonaws.com", "10.0.9.9")
    log = CallLog(elbv2)
    with pytest.raises(ConfigError) as info:
        config(
            dns,
            binding("orders-primary"),
            binding("orders-also", "replica.orders.abc123.euw1.cache.amazonaws.com", tg_arn),
        )
    assert info.value.field == "bindings[1].target_group"
    assert info.value.problem == "target group 'orders-primary' is already bound by 'orders-primary'"
    assert log.calls == []
    assert registered(elbv2, tg_arn) == set()


def test_an_unknown_target_group_fails_only_its_binding(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    cfg = config(dns, binding("missing", ENDPOINT, "no-such-group"), binding())

    missing, ok = run(cfg, elbv2, ec2).bindings

    assert missing.status == "error" and "no-such-group" in (missing.error or "")
    assert ok.status == "changed"
    assert registered(elbv2, tg_arn) == {OLD}


# -- event triggers ------------------------------------------------------------------------


def test_an_event_waits_for_the_dns_flip_then_applies(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    cfg = config(dns, event_wait_s=3.0)
    run(cfg, elbv2, ec2)
    flip = threading.Timer(0.5, dns.zone.set_cname, args=(ENDPOINT, NODE_2))
    log = CallLog(elbv2)

    started = time.monotonic()
    flip.start()
    try:
        report = run(cfg, elbv2, ec2, trigger=Trigger(kind="event", event="ElastiCache:FailoverComplete", wait_for_change=True))
    finally:
        flip.cancel()
        flip.join(timeout=5)
    elapsed = time.monotonic() - started

    (result,) = report.bindings
    assert result.status == "changed"
    assert (result.register, result.deregister) == ((NEW,), (OLD,))
    assert result.polls > 1
    assert result.polls <= 3.0 / 0.1 + 2
    assert 0.4 < elapsed < 3.0  # applied after the flip, well before the wait ran out
    assert log.writes() == [("RegisterTargets", [NEW]), ("DeregisterTargets", [OLD])]
    assert registered(elbv2, tg_arn) == {NEW}


def test_an_event_without_a_flip_returns_in_sync_after_the_wait(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    cfg = config(dns, event_wait_s=0.6)
    run(cfg, elbv2, ec2)
    log = CallLog(elbv2)

    started = time.monotonic()
    report = run(cfg, elbv2, ec2, trigger=Trigger(kind="event", wait_for_change=True))
    elapsed = time.monotonic() - started

    (result,) = report.bindings
    assert result.status == "in_sync"
    assert result.polls > 1
    assert result.polls <= 0.6 / 0.1 + 2
    assert 0.55 <= elapsed < 3.0
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == {OLD}


def test_a_schedule_reads_the_source_once(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    cfg = config(dns)
    run(cfg, elbv2, ec2)

    result = run(cfg, elbv2, ec2, trigger=Trigger(kind="schedule")).bindings[0]

    assert (result.status, result.polls) == ("in_sync", 1)


def test_bindings_not_reached_before_the_deadline_are_skipped_untouched(
    dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str, vpc_id: str
) -> None:
    second_arn = create_target_group(elbv2, vpc_id, "orders-replicas")
    first, second = binding(), binding("orders-replicas", target_group="orders-replicas")
    log = CallLog(elbv2)

    # Time runs out while the first binding is written: the clock passes the deadline at
    # its RegisterTargets call.
    report = run(
        # One binding at a time: with several in flight both are reached before the clock moves.
        config(dns, first, second, max_concurrency=1), elbv2, ec2, deadline=3.0, clock=lambda: 5.0 if log.writes() else 0.0,
        call_budget_s=0.1,
    )

    by_name = {b.name: b for b in report.bindings}
    assert by_name["orders-primary"].status == "changed"
    assert by_name["orders-replicas"].status == "skipped"
    assert "deadline" in (by_name["orders-replicas"].error or "")
    assert by_name["orders-replicas"].registered_after == ()
    assert not report.ok
    assert log.writes() == [("RegisterTargets", [OLD])]
    assert registered(elbv2, second_arn) == set()


def test_an_ipv4_target_group_gets_only_ipv4_addresses(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    dns.zone.set_a(NODE_1, [str(OLD.ip), "fd00::9"])

    report = run(config(dns), elbv2, ec2)

    (result,) = report.bindings
    assert result.status == "changed"
    assert result.desired == (OLD,)
    assert registered(elbv2, tg_arn) == {OLD}


def test_a_port_the_cache_does_not_listen_on_is_refused(dns: LoopbackDnsServer, elbv2: Any, ec2: Any, tg_arn: str) -> None:
    elasticache = boto3.client("elasticache", region_name=REGION)
    elasticache.create_replication_group(
        ReplicationGroupId="orders", ReplicationGroupDescription="orders", ReplicasPerNodeGroup=1, Port=6380
    )
    for member in elasticache.describe_replication_groups(ReplicationGroupId="orders")["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]:
        dns.zone.set_a(member["ReadEndpoint"]["Address"], str(NEW.ip))
    run(config(dns), elbv2, ec2)  # a working target on the right port, from the dns binding
    cfg = config(dns, Binding("orders-primary", ElastiCacheSourceSpec("orders"), "orders-primary", port=PORT))
    log = CallLog(elbv2)

    sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s), elasticache)
    report = sync(cfg, target_groups=TargetGroups(elbv2, ec2), sources=sources)

    (result,) = report.bindings
    assert result.status == "error"
    assert "listens on port 6380" in (result.error or "") and "set port = 6380" in (result.error or "")
    assert log.writes() == []
    assert registered(elbv2, tg_arn) == {OLD}

"""Hostile checks of the tags read in batches before writes and of the time a pass keeps
back once it finds a change. Moto in-process (with ``moto_ext``: DescribeTags refuses a
21st ARN and a deleted group), a real DNS server on loopback, ``dns://`` sources; faults
only in AWS's answers (botocore before-call / after-call hooks). Where a deadline is
involved, time is a fake clock that sleeping (and, here, AWS calls a hook marks) moves:
nothing is timed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from cachebridge import nlb
from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.nlb import LOCK_TABLE_TAG, OWNER_TAG, TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from .conftest import CallLog, registered

pytestmark = pytest.mark.timeout(120)

PORT = 6379
MINE = "orders-mine"
GROUPS = 25  # two DescribeTags calls: 20 and 5


def old_ip(i: int) -> str:
    return f"10.0.1.{i + 10}"


def new_ip(i: int) -> str:
    return f"10.0.2.{i + 10}"


def host(i: int) -> str:
    return f"g{i:02d}.cache.test"


def name(i: int) -> str:
    return f"g{i:02d}"


class FakeTime:
    """The pass's clock: sleeping moves it, and so may a hook on an AWS call."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture
def groups(elbv2: Any, ec2: Any, dns_server: LoopbackDnsServer) -> list[str]:
    """``GROUPS`` IP target groups, each holding ``old_ip(i)``, which its source gives too."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    arns = []
    for i in range(GROUPS):
        arn = elbv2.create_target_group(Name=name(i), Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": old_ip(i), "Port": PORT}])
        dns_server.zone.set_a(host(i), old_ip(i))
        arns.append(arn)
    return arns


def config(dns_server: LoopbackDnsServer, bindings: tuple[Binding, ...] | None = None, **settings: Any) -> Config:
    if bindings is None:
        bindings = tuple(Binding(name(i), DnsSourceSpec(host(i)), name(i), PORT) for i in range(GROUPS))
    base = Settings(nameservers=(dns_server.address,), dns_timeout_s=0.5, poll_interval_s=0.05, controller_id=MINE)
    return Config(bindings, base.merged(settings))


def one_pass(cfg: Config, elbv2: Any, ec2: Any, dynamodb: Any = None, **kwargs: Any) -> dict[str, Any]:
    sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s), None)
    report: SyncReport = sync(cfg, target_groups=TargetGroups(elbv2, ec2, dynamodb=dynamodb), sources=sources, **kwargs)
    return {r.name: r for r in report.bindings}


def move(dns_server: LoopbackDnsServer, *which: int) -> None:
    for i in which or range(GROUPS):
        dns_server.zone.set_a(host(i), new_ip(i))


def holds_old(elbv2: Any, groups: list[str], i: int) -> bool:
    return registered(elbv2, groups[i]) == {Target(old_ip(i), PORT)}


def holds_new(elbv2: Any, groups: list[str], i: int) -> bool:
    return registered(elbv2, groups[i]) == {Target(new_ip(i), PORT)}


@pytest.fixture
def warm(groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any) -> Config:
    """A warm instance: a first pass, in sync, cached every group's description."""
    nlb.clear_caches()
    cfg = config(dns_server)
    assert {r.status for r in one_pass(cfg, elbv2, ec2).values()} == {"in_sync"}
    return cfg


def hook(client: Any, event: str, act: Any) -> None:
    lock = threading.Lock()

    def run(**kwargs: Any) -> Any:
        with lock:
            return act(**kwargs)

    client.meta.events.register(f"{event}.elastic-load-balancing-v2.DescribeTags", run)


def error_response(code: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    error = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return AWSResponse("https://elasticloadbalancing.amazonaws.com/", status, {}, None), error


# -- the time kept back for a change, at the extremes of poll_interval_s -------------------------

# The default function: a 60 s timeout, less the handler's margin (1 s for the report and
# one call at its worst, ``aws.call_budget_s()``: 9 s with the default client policy).
LAMBDA_DEADLINE_S = 60.0 - 1.0 - 9.0
CALL_BUDGET_S = 9.0


def lock_table(dynamodb: Any, table: str = "orders-locks") -> str:
    dynamodb.create_table(
        TableName=table, KeySchema=[{"AttributeName": "lease_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lease_key", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    return table


def lambda_pass(cfg: Config, elbv2: Any, ec2: Any, dynamodb: Any = None) -> tuple[dict[str, Any], FakeTime]:
    fake = FakeTime()
    results = one_pass(cfg, elbv2, ec2, dynamodb, clock=fake.clock, sleep=fake.sleep, deadline=LAMBDA_DEADLINE_S, call_budget_s=CALL_BUDGET_S)
    return results, fake


@pytest.mark.parametrize("poll_interval_s", [0.5, 5.0, 20.0, 30.0])
def test_a_change_is_followed_in_the_first_run_at_any_poll_interval_the_deadline_holds(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any, dynamodb: Any, poll_interval_s: float
) -> None:
    """Under a lease a write is 2 calls at their worst (18 s): a confirming read up to 30 s
    after the first leaves it room in a 50 s pass, so the change is followed in the run
    that found it (the wait was once kept back after the last health read as well as
    before it: at 20 s every change was left for a next run that left it again)."""
    cfg = config(dns_server, poll_interval_s=poll_interval_s, lock_table=lock_table(dynamodb))
    move(dns_server, 3)

    results, fake = lambda_pass(cfg, elbv2, ec2, dynamodb)

    assert results[name(3)].status == "changed", results[name(3)].error
    assert holds_new(elbv2, groups, 3)
    assert fake.now <= LAMBDA_DEADLINE_S
    assert all(results[name(i)].status == "in_sync" for i in range(GROUPS) if i != 3)


@pytest.mark.parametrize(("poll_interval_s", "locked"), [(60.0, True), (35.0, True), (20.0, False), (60.0, False)])
def test_a_poll_interval_no_run_can_confirm_in_is_an_error_that_says_what_to_set_and_writes_nothing(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any, dynamodb: Any,
    poll_interval_s: float, locked: bool,
) -> None:
    """poll_interval_s 60 is valid for the CLI, but under the default 60 s function no pass
    can wait for the confirming read and still write: every run would leave the change,
    each saying "the next run reads this group first". It is an error instead, naming the
    setting and the largest interval that fits; the group keeps what it holds."""
    settings: dict[str, Any] = {"poll_interval_s": poll_interval_s}
    if locked:
        settings["lock_table"] = lock_table(dynamodb)
    cfg = config(dns_server, **settings)
    move(dns_server, 3)

    for _ in range(3):  # every run the same: an error, nothing written
        results, fake = lambda_pass(cfg, elbv2, ec2, dynamodb)

        r = results[name(3)]
        assert r.status == "error"
        assert f"poll_interval_s={poll_interval_s:g}" in (r.error or "")
        assert "next run" not in (r.error or "")
        assert ("lock table" in (r.error or "")) is not locked
        assert r.register == r.deregister == ()
        assert r.registered_before == r.registered_after == (Target(old_ip(3), PORT),)
        assert holds_old(elbv2, groups, 3)
        assert fake.now <= LAMBDA_DEADLINE_S
        assert all(results[name(i)].status == "in_sync" for i in range(GROUPS) if i != 3)

    # What the error advises is enough: the same change is followed at that interval.
    advised = float((r.error or "").split("at most ")[1].split(" s")[0]) if "at most " in (r.error or "") else None
    if advised is not None:
        cfg = config(dns_server, **{**settings, "poll_interval_s": advised})
        results, _ = lambda_pass(cfg, elbv2, ec2, dynamodb)
        assert results[name(3)].status == "changed", results[name(3)].error
        assert holds_new(elbv2, groups, 3)

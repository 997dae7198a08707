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
from cachebridge.errors import ConfigError
from cachebridge.nlb import LOCK_TABLE_TAG, OWNER_TAG, TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from .conftest import CallLog, registered
from .test_read_order import FakeTime
from .test_tag_batches import MINE, host, new_ip, old_ip

pytestmark = pytest.mark.timeout(120)

PORT = 6379
GROUPS = 25  # two DescribeTags calls: 20 and 5


def name(i: int) -> str:
    return f"g{i:02d}"


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
    # The pass runs on fake time, but DNS answers on real time: a loaded machine must not
    # turn a slow loopback answer into a failed read.
    base = Settings(nameservers=(dns_server.address,), dns_timeout_s=3.0, poll_interval_s=0.05, controller_id=MINE)
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
    assert all(results[name(i)].status == "in_sync" for i in range(GROUPS) if i != 3), {k: (r.status, r.error) for k, r in results.items() if r.status != "in_sync"}


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
        assert all(results[name(i)].status == "in_sync" for i in range(GROUPS) if i != 3), {k: (r.status, r.error) for k, r in results.items() if r.status != "in_sync"}

    # What the error advises is enough: the same change is followed at that interval.
    advised = float((r.error or "").split("at most ")[1].split(" s")[0]) if "at most " in (r.error or "") else None
    if advised is not None:
        cfg = config(dns_server, **{**settings, "poll_interval_s": advised})
        results, _ = lambda_pass(cfg, elbv2, ec2, dynamodb)
        assert results[name(3)].status == "changed", results[name(3)].error
        assert holds_new(elbv2, groups, 3)


# -- the tags read in batches before writes: hostile answers ----------------------------------


def test_an_answer_that_describes_a_group_twice_with_different_tags_leaves_it_unwritten(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    """The group is another stack's; the answer names it a second time without tags. Which
    of the two is true is unknown, so its owner is: not written. Its call's other groups are."""
    theirs = groups[1]
    elbv2.add_tags(ResourceArns=[theirs], Tags=[{"Key": OWNER_TAG, "Value": "orders-external"}])

    def twice(parsed: Any, **_: Any) -> None:
        parsed["TagDescriptions"] = list(parsed.get("TagDescriptions", [])) + [{"ResourceArn": theirs, "Tags": []}]

    hook(elbv2, "after-call", twice)
    move(dns_server)

    results = one_pass(warm, elbv2, ec2)

    r = results[name(1)]
    assert r.status == "error" and "nothing is written" in (r.error or "")
    assert holds_old(elbv2, groups, 1)
    assert all(results[name(i)].status == "changed" and holds_new(elbv2, groups, i) for i in range(GROUPS) if i != 1)


def test_an_answer_naming_groups_not_asked_for_decides_nothing_about_those_asked_for(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    """An answer that gives a group's tags under another ARN (not asked in that call) and
    leaves the group out: the group is unknown, the stranger ignored."""
    theirs = groups[2]
    elbv2.add_tags(ResourceArns=[theirs], Tags=[{"Key": OWNER_TAG, "Value": "orders-external"}])
    stranger = theirs.replace(name(2), "stranger")

    def relabel(parsed: Any, **_: Any) -> None:
        for d in parsed.get("TagDescriptions", []):
            if d.get("ResourceArn") == theirs:
                d["ResourceArn"] = stranger

    hook(elbv2, "after-call", relabel)
    move(dns_server)

    results = one_pass(warm, elbv2, ec2)

    r = results[name(2)]
    assert r.status == "error" and "answered without this target group" in (r.error or "")
    assert holds_old(elbv2, groups, 2)
    assert all(results[name(i)].status == "changed" for i in range(GROUPS) if i != 2)


def test_a_malformed_answer_or_an_exception_in_the_tag_round_writes_none_of_its_groups(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    """A tag without a key in one call's answer; a library error raised in the other's:
    neither call's groups are written, each says why, and every group holds what it held."""

    def break_answer(parsed: Any, params: Any = None, **_: Any) -> None:
        described = parsed.get("TagDescriptions", [])
        if len(described) == 20:
            described[0]["Tags"] = [{"Value": "no key"}]
        else:
            raise RuntimeError("the answer could not be parsed")

    hook(elbv2, "after-call", break_answer)
    move(dns_server)
    log = CallLog(elbv2)

    results = one_pass(warm, elbv2, ec2)

    assert {r.status for r in results.values()} == {"error"}
    assert any("KeyError" in (r.error or "") for r in results.values())
    assert any("RuntimeError" in (r.error or "") for r in results.values())
    assert all("nothing is written" in (r.error or "") for r in results.values())
    assert all(holds_old(elbv2, groups, i) for i in range(GROUPS))
    assert log.writes() == []
    assert all(r.registered_after == r.registered_before == (Target(old_ip(i), PORT),) for i, r in enumerate(results.values()))


def test_describe_tags_throttled_on_every_call_writes_nothing_and_the_next_pass_catches_up(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    throttled = {"on": True}
    asked: list[int] = []

    def throttle(params: Any, **_: Any) -> Any:
        asked.append(sum(1 for k in params["body"] if k.startswith("ResourceArns.member.")))
        return error_response("Throttling") if throttled["on"] else None

    hook(elbv2, "before-call", throttle)
    move(dns_server)

    results = one_pass(warm, elbv2, ec2)

    assert {r.status for r in results.values()} == {"error"}
    assert all("Throttling" in (r.error or "") and "nothing is written" in (r.error or "") for r in results.values())
    assert all(holds_old(elbv2, groups, i) for i in range(GROUPS))
    # A throttled call is not made again one group a call (that would be 20 more calls
    # into the same throttle).
    assert set(asked) == {20, 5}

    throttled["on"] = False
    again = one_pass(warm, elbv2, ec2)
    assert {r.status for r in again.values()} == {"changed"}
    assert all(holds_new(elbv2, groups, i) for i in range(GROUPS))
    # In sync afterwards: no tag read at all.
    asked.clear()
    assert {r.status for r in one_pass(warm, elbv2, ec2).values()} == {"in_sync"}
    assert asked == []


@pytest.mark.parametrize("past", [0.5, 30.0])
def test_a_deadline_that_falls_between_the_tag_round_and_the_writes_writes_nothing(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any, dynamodb: Any, past: float
) -> None:
    """The tag calls take the pass to ``past`` seconds short of (or past) its deadline: no
    write starts; every binding is skipped, holding what it held."""
    deadline = 40.0
    fake = FakeTime()

    def slow(**_: Any) -> None:
        fake.now = max(fake.now, deadline - 2 * CALL_BUDGET_S + 0.5 if past < 1 else deadline + past)

    hook(elbv2, "after-call", slow)
    cfg = config(dns_server, lock_table=lock_table(dynamodb))
    move(dns_server)
    log = CallLog(elbv2)

    results = one_pass(cfg, elbv2, ec2, dynamodb, clock=fake.clock, sleep=fake.sleep, deadline=deadline, call_budget_s=CALL_BUDGET_S)

    assert log.of("DescribeTags")  # the pass reached the tag round
    assert {r.status for r in results.values()} == {"skipped"}
    assert all("nothing written" in (r.error or "") for r in results.values())
    assert log.writes() == []
    assert all(holds_old(elbv2, groups, i) for i in range(GROUPS))
    assert all(r.register == r.deregister == () for r in results.values())


def test_the_same_group_behind_two_bindings_is_written_once_and_its_tags_asked_once(
    groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    """By name and by ARN: the second binding is refused before anything is read for it."""
    nlb.clear_caches()
    dns_server.zone.set_a("other.cache.test", "10.0.3.5")
    bindings = (
        Binding("first", DnsSourceSpec(host(5)), name(5), PORT),
        Binding("by-arn", DnsSourceSpec("other.cache.test"), groups[5], PORT),
        Binding("by-name", DnsSourceSpec("other.cache.test"), name(5), PORT),
        Binding("g06", DnsSourceSpec(host(6)), name(6), PORT),
    )
    # A configuration says so before anything runs...
    with pytest.raises(ConfigError, match="already bound by 'first'"):
        config(dns_server, bindings)
    # ... and a pass handed such bindings (``sync(bindings=...)``) writes the group once.
    cfg = config(dns_server, (bindings[0], bindings[3]))
    move(dns_server, 5, 6)
    log = CallLog(elbv2)

    results = one_pass(cfg, elbv2, ec2, bindings=bindings)

    assert results["first"].status == "changed" and holds_new(elbv2, groups, 5)
    for dup in ("by-arn", "by-name"):
        assert results[dup].status == "error" and "also the target of binding 'first'" in (results[dup].error or "")
        assert results[dup].register == results[dup].deregister == ()
    assert results["g06"].status == "changed"
    (asked,) = [c["ResourceArns"] for c in log.of("DescribeTags")]
    assert sorted(asked) == sorted([groups[5], groups[6]])
    assert all(t.ip != "10.0.3.5" for _, targets in log.writes() for t in targets)


def test_a_group_retagged_to_another_owner_after_the_tag_read_is_refused_from_the_next_pass(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    """The owner tag lands between this pass's tag read and its write: the write goes
    ahead (the tags said nobody else's; only a lease closes that window), never emptying
    the group; from the next pass on the group is the other stack's and left alone."""
    import boto3

    from .conftest import REGION

    admin = boto3.client("elbv2", region_name=REGION)

    def retag(**_: Any) -> None:
        admin.add_tags(ResourceArns=[groups[4]], Tags=[{"Key": OWNER_TAG, "Value": "orders-external"}])

    hook(elbv2, "after-call", retag)
    move(dns_server, 4)
    first = one_pass(warm, elbv2, ec2)
    assert first[name(4)].status == "changed" and holds_new(elbv2, groups, 4)

    dns_server.zone.set_a(host(4), old_ip(4))
    second = one_pass(warm, elbv2, ec2)

    r = second[name(4)]
    assert r.status == "error" and "orders-external" in (r.error or "")
    assert holds_new(elbv2, groups, 4)


def test_a_lock_table_tag_removed_between_passes_takes_the_write_out_of_the_lease(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any, dynamodb: Any
) -> None:
    table = lock_table(dynamodb)
    elbv2.add_tags(ResourceArns=[groups[8]], Tags=[{"Key": LOCK_TABLE_TAG, "Value": table}])
    move(dns_server, 8)
    assert one_pass(warm, elbv2, ec2, dynamodb)[name(8)].status == "changed"
    key = {"lease_key": {"S": groups[8]}}
    leased = dynamodb.get_item(TableName=table, Key=key)["Item"]
    assert leased["last_desired"] == {"L": [{"S": str(Target(new_ip(8), PORT))}]}

    elbv2.remove_tags(ResourceArns=[groups[8]], TagKeys=[LOCK_TABLE_TAG])
    dns_server.zone.set_a(host(8), old_ip(8))
    results = one_pass(warm, elbv2, ec2, dynamodb)

    assert results[name(8)].status == "changed" and holds_old(elbv2, groups, 8)
    # Written without the lease: its record is what the last leased write left.
    assert dynamodb.get_item(TableName=table, Key=key)["Item"]["last_desired"] == leased["last_desired"]


def test_two_controllers_with_their_own_caches_at_once_never_write_the_group_the_other_owns(
    groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any
) -> None:
    """Stack ``orders-mine`` owns g00..g09; ``orders-other`` binds the same groups to other
    sources and reads with a cache of its own (none). Both run three passes at once: the
    groups only ever hold what ``orders-mine``'s sources say, the other is refused each time."""
    owned = list(range(10))
    elbv2.add_tags(ResourceArns=[groups[i] for i in owned], Tags=[{"Key": OWNER_TAG, "Value": MINE}])
    for i in owned:
        dns_server.zone.set_a(f"o{i:02d}.cache.test", f"10.0.3.{i + 10}")
    nlb.clear_caches()
    mine = config(dns_server, tuple(Binding(name(i), DnsSourceSpec(host(i)), name(i), PORT) for i in owned))
    other = config(dns_server, tuple(Binding(name(i), DnsSourceSpec(f"o{i:02d}.cache.test"), name(i), PORT) for i in owned),
                   controller_id="orders-other")
    outcomes: dict[str, list[dict[str, Any]]] = {"mine": [], "other": []}
    failures: list[BaseException] = []

    def run(which: str, cfg: Config, cache: bool) -> None:
        try:
            for n in range(3):
                if which == "mine":
                    move(dns_server, *owned) if n % 2 == 0 else [dns_server.zone.set_a(host(i), old_ip(i)) for i in owned]
                sources = Sources(DnsResolver(cfg.settings.nameservers, cfg.settings.dns_timeout_s), None)
                report = sync(cfg, target_groups=TargetGroups(elbv2, ec2, cache=cache), sources=sources)
                outcomes[which].append({r.name: r for r in report.bindings})
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=("mine", mine, True)), threading.Thread(target=run, args=("other", other, False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures and not any(t.is_alive() for t in threads)

    for results in outcomes["other"]:
        for r in results.values():
            assert r.status in ("error", "in_sync"), (r.status, r.error)
            assert r.register == r.deregister == ()
            if r.status == "error":
                assert MINE in (r.error or "")
    for i in owned:
        held = registered(elbv2, groups[i])
        assert held in ({Target(old_ip(i), PORT)}, {Target(new_ip(i), PORT)}, {Target(old_ip(i), PORT), Target(new_ip(i), PORT)})
        assert all(not t.ip.startswith("10.0.3.") for t in held)


def test_a_group_whose_own_tag_names_a_lock_table_is_written_under_it_at_a_poll_only_a_lease_fits(
    warm: Config, groups: list[str], dns_server: LoopbackDnsServer, elbv2: Any, ec2: Any, dynamodb: Any
) -> None:
    """No lock table in the settings; the group's tag names one. This instance never read
    the group's tags (in sync so far), so its write was estimated at four calls, which a
    20 s poll never leaves room for: the tags are read then, and the write, two calls
    under the lease, is made in that run."""
    table = lock_table(dynamodb)
    elbv2.add_tags(ResourceArns=[groups[6]], Tags=[{"Key": LOCK_TABLE_TAG, "Value": table}])
    cfg = config(dns_server, poll_interval_s=20.0)
    move(dns_server, 6, 7)

    results, fake = lambda_pass(cfg, elbv2, ec2, dynamodb)

    assert results[name(6)].status == "changed", results[name(6)].error
    assert holds_new(elbv2, groups, 6)
    item = dynamodb.get_item(TableName=table, Key={"lease_key": {"S": groups[6]}})["Item"]
    assert item["last_desired"] == {"L": [{"S": str(Target(new_ip(6), PORT))}]}
    # Its neighbour has no lock table: four calls do not fit, it says so, nothing written.
    assert results[name(7)].status == "error" and "poll_interval_s=20" in (results[name(7)].error or "")
    assert holds_old(elbv2, groups, 7)
    assert fake.now <= LAMBDA_DEADLINE_S

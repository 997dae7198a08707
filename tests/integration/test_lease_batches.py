"""Write leases taken and given back a chunk of bindings at a time, and the re-read under
the lease skipped only when the lease record shows nobody can have written since the
pass's first read (``writes``, ``lease``). moto in-process, with ``moto_ext``."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.lease import KEY_ATTRIBUTE, LEASE_WAIT_S, Leases
from cachebridge.nlb import TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from .conftest import REGION, CallLog

PORT = 6379
TABLE = "cachebridge-locks"
ME = "controller-A"
OTHER = "controller-B"


@pytest.fixture
def dynamodb(aws: None) -> Any:
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


@pytest.fixture
def vpc_id(ec2: Any) -> str:
    return ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]


class World:
    """``n`` target groups, each holding its old node, and a DNS name per group that
    answers its new node: every binding has a register and a deregister to do."""

    def __init__(self, n: int, elbv2: Any, ec2: Any, dynamodb: Any, vpc_id: str, dns: LoopbackDnsServer) -> None:
        self.elbv2, self.ec2, self.dynamodb, self.dns = elbv2, ec2, dynamodb, dns
        self.arns: list[str] = []
        self.old: list[Target] = []
        self.new: list[Target] = []
        bindings = []
        for i in range(n):
            name = f"orders-{i}"
            arn = elbv2.create_target_group(Name=name, Protocol="TCP", Port=PORT, VpcId=vpc_id, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
            old, new = Target(f"10.0.{i}.10", PORT), Target(f"10.0.{i}.20", PORT)
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": old.ip, "Port": PORT}])
            dns.zone.set_a(f"{name}.cache.test", new.ip)
            self.arns.append(arn)
            self.old.append(old)
            self.new.append(new)
            bindings.append(Binding(name=name, source=DnsSourceSpec(f"{name}.cache.test"), target_group=name, port=PORT))
        settings = Settings(
            nameservers=(dns.address,), poll_interval_s=0.05, dns_timeout_s=0.5, lock_table=TABLE, controller_id=ME,
        )
        self.config = Config(tuple(bindings), settings)

    def sync(self, **kwargs: Any) -> SyncReport:
        groups = TargetGroups(self.elbv2, self.ec2, dynamodb=self.dynamodb)
        sources = Sources(DnsResolver(self.config.settings.nameservers, self.config.settings.dns_timeout_s))
        return sync(self.config, target_groups=groups, sources=sources, **kwargs)

    def held(self, i: int) -> set[Target]:
        health = self.elbv2.describe_target_health(TargetGroupArn=self.arns[i])["TargetHealthDescriptions"]
        return {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in health if d["TargetHealth"]["State"] != "draining"}

    def record(self, i: int) -> dict[str, Any]:
        return self.dynamodb.get_item(TableName=TABLE, Key={KEY_ATTRIBUTE: {"S": self.arns[i]}}, ConsistentRead=True).get("Item", {})

    def age_records(self, seconds: float) -> None:
        """The lease records as a pass ``seconds`` earlier left them (released then)."""
        for arn in self.arns:
            self.dynamodb.update_item(
                TableName=TABLE, Key={KEY_ATTRIBUTE: {"S": arn}},
                UpdateExpression="SET released_at = :at, last_write_at = :at",
                ExpressionAttributeValues={":at": {"N": repr(time.time() - seconds)}},
            )


@pytest.fixture
def world(elbv2: Any, ec2: Any, dynamodb: Any, vpc_id: str, dns_server: LoopbackDnsServer) -> Callable[[int], World]:
    return lambda n: World(n, elbv2, ec2, dynamodb, vpc_id, dns_server)


def health_reads(log: CallLog) -> Counter[str]:
    return Counter(p["TargetGroupArn"] for p in log.of("DescribeTargetHealth"))


def cancel_transactions(client: Any, code: str) -> None:
    """Every TransactWriteItems on ``client`` cancelled, each item with reason ``code``
    (what DynamoDB answers when another transaction holds an item: TransactionConflict)."""

    def cancelled(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        reasons = [{"Code": code, "Message": "simulated"} for _ in json.loads(params["body"])["TransactItems"]]
        body = {"Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}, "CancellationReasons": reasons,
                "ResponseMetadata": {"HTTPStatusCode": 400}}
        return type("Response", (), {"status_code": 400, "headers": {}, "content": b""})(), body

    client.meta.events.register("before-call.dynamodb.TransactWriteItems", cancelled)


# -- taking leases in batches ----------------------------------------------------------------


def test_a_changing_binding_costs_a_health_read_a_register_and_a_deregister_plus_the_batch(world: Callable[[int], World]) -> None:
    w = world(5)
    w.sync()  # the first pass registers the new nodes; move them again and age the records
    for i in range(5):
        w.dns.zone.set_a(f"orders-{i}.cache.test", f"10.0.{i}.30")
    w.age_records(60.0)  # as a scheduled run a minute earlier left them
    log = CallLog(w.elbv2, w.dynamodb)

    report = w.sync()

    calls = Counter(log.names())
    assert [b.status for b in report.bindings] == ["changed"] * 5
    for i in range(5):
        assert w.held(i) == {Target(f"10.0.{i}.30", PORT)}
    assert calls["DescribeTargetHealth"] == calls["RegisterTargets"] == calls["DeregisterTargets"] == 5
    # One transaction takes the five leases, one read returns their records, one
    # transaction gives them back: no per-binding lease call.
    assert (calls["TransactWriteItems"], calls["BatchGetItem"], calls["UpdateItem"]) == (2, 1, 0)
    # And one DescribeTags for the five groups' owner and lock table, read before writing.
    assert calls["DescribeTags"] == 1
    assert sum(calls.values()) == 3 * 5 + 3 + 1
    for i in range(5):
        record = w.record(i)
        assert record["expires_at"]["N"] == "0" and record["released_holder"] == record["holder"]
        assert [v["S"] for v in record["last_desired"]["L"]] == [f"10.0.{i}.30:{PORT}"]


def test_a_lease_held_by_another_controller_costs_only_its_own_binding(world: Callable[[int], World]) -> None:
    w = world(3)
    Leases(w.dynamodb, TABLE).acquire(w.arns[1], OTHER)  # held through the whole pass
    log = CallLog(w.dynamodb)

    started = time.monotonic()
    report = w.sync()

    assert [b.status for b in report.bindings] == ["changed", "skipped", "changed"]
    assert "another controller" in (report.bindings[1].error or "")
    assert w.held(0) == {w.new[0]} and w.held(2) == {w.new[2]}
    assert w.held(1) == {w.old[1]}  # untouched
    assert w.record(1)["controller_id"]["S"] == OTHER
    # The batch left the held one out and went through without it; that binding waited
    # for the lease alone, as it always did.
    cancelled, retried, released = log.of("TransactWriteItems")
    assert len(cancelled["TransactItems"]) == 3 and len(retried["TransactItems"]) == 2 and len(released["TransactItems"]) == 2
    assert {p["Key"][KEY_ATTRIBUTE]["S"] for p in log.of("UpdateItem")} == {w.arns[1]}
    assert time.monotonic() - started >= LEASE_WAIT_S


def test_a_transaction_conflict_falls_back_to_one_lease_per_binding(world: Callable[[int], World]) -> None:
    w = world(3)
    cancel_transactions(w.dynamodb, "TransactionConflict")
    log = CallLog(w.dynamodb)

    report = w.sync()

    assert [b.status for b in report.bindings] == ["changed"] * 3
    assert [w.held(i) for i in range(3)] == [{t} for t in w.new]
    # Taken and given back one at a time, each binding its own.
    updates = Counter(p["Key"][KEY_ATTRIBUTE]["S"] for p in log.of("UpdateItem"))
    assert updates == {arn: 2 for arn in w.arns}
    assert log.of("BatchGetItem") == []
    for i in range(3):
        assert w.record(i)["expires_at"]["N"] == "0"


def test_the_records_read_after_a_batch_drive_the_conflict_check(world: Callable[[int], World]) -> None:
    w = world(3)
    # Another controller set group 0 to a node of its own view a minute ago.
    theirs = Target("10.0.0.99", PORT)
    w.elbv2.register_targets(TargetGroupArn=w.arns[0], Targets=[{"Id": theirs.ip, "Port": PORT}])
    w.elbv2.deregister_targets(TargetGroupArn=w.arns[0], Targets=[{"Id": w.old[0].ip, "Port": PORT}])
    other = Leases(w.dynamodb, TABLE)
    other.release(other.acquire(w.arns[0], OTHER), [str(theirs)])
    log = CallLog(w.dynamodb)

    report = w.sync()

    assert report.bindings[0].status == "error" and OTHER in (report.bindings[0].error or "")
    assert w.held(0) == {theirs}  # not undone
    assert [b.status for b in report.bindings[1:]] == ["changed", "changed"]
    assert len(log.of("BatchGetItem")) == 1 and log.of("UpdateItem") == []


def test_a_lease_lost_before_the_batch_release_is_a_warning_and_the_others_are_released(world: Callable[[int], World]) -> None:
    w = world(3)
    other = Leases(w.dynamodb, TABLE)
    taken_over: list[str] = []

    def stall(params: dict[str, Any], **_: Any) -> None:
        # Binding 1 stalls past its lease as it writes; another controller takes it.
        if params["body"].get("TargetGroupArn") == w.arns[1] and not taken_over:
            w.dynamodb.update_item(
                TableName=TABLE, Key={KEY_ATTRIBUTE: {"S": w.arns[1]}}, UpdateExpression="SET expires_at = :past",
                ExpressionAttributeValues={":past": {"N": "1"}},
            )
            taken_over.append(other.acquire(w.arns[1], OTHER, wait_s=0.0).holder)

    w.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.RegisterTargets", stall)
    report = w.sync()

    assert [b.status for b in report.bindings] == ["changed"] * 3
    assert any("releasing the write lease failed" in x and "taken by another holder" in x for x in report.bindings[1].warnings)
    assert not any("lease" in x for b in (report.bindings[0], report.bindings[2]) for x in b.warnings)
    assert w.record(1)["holder"]["S"] == taken_over[0] and w.record(1)["expires_at"]["N"] != "0"  # still theirs
    for i in (0, 2):
        assert w.record(i)["expires_at"]["N"] == "0" and w.record(i)["released_holder"] == w.record(i)["holder"]


def test_release_many_reports_only_the_lease_that_was_lost(dynamodb: Any) -> None:
    mine, theirs = Leases(dynamodb, TABLE), Leases(dynamodb, TABLE)
    keys = ["tg/a", "tg/b", "tg/c"]
    taken = mine.acquire_many(keys, ME, duration_s=0.2)
    assert set(taken) == set(keys)
    time.sleep(0.3)  # all three lapse; another controller takes one
    stolen = theirs.acquire("tg/b", OTHER, wait_s=0.0)

    problems = mine.release_many([(taken[k], [f"10.0.0.{i}:{PORT}"]) for i, k in enumerate(keys)])

    assert set(problems) == {"tg/b"} and "taken by another holder" in problems["tg/b"]
    records = {k: dynamodb.get_item(TableName=TABLE, Key={KEY_ATTRIBUTE: {"S": k}}, ConsistentRead=True)["Item"] for k in keys}
    assert records["tg/b"]["holder"]["S"] == stolen.holder and records["tg/b"]["controller_id"]["S"] == OTHER
    for k in ("tg/a", "tg/c"):
        assert records[k]["expires_at"]["N"] == "0" and records[k]["released_holder"]["S"] == taken[k].holder


# -- the re-read under the lease -------------------------------------------------------------


def test_a_group_written_by_another_holder_after_the_first_read_is_read_again(world: Callable[[int], World]) -> None:
    w = world(2)
    other = Leases(w.dynamodb, TABLE)
    interfered: list[bool] = []

    def sleep(seconds: float) -> None:
        # Between this pass's first read and its writes, another lease holder moves group 0
        # to the new node itself (the same view) and releases.
        if not interfered:
            lease = other.acquire(w.arns[0], OTHER)
            w.elbv2.register_targets(TargetGroupArn=w.arns[0], Targets=[{"Id": w.new[0].ip, "Port": PORT}])
            w.elbv2.deregister_targets(TargetGroupArn=w.arns[0], Targets=[{"Id": w.old[0].ip, "Port": PORT}])
            other.release(lease, [str(w.new[0])])
            interfered.append(True)
        time.sleep(seconds)

    log = CallLog(w.elbv2)
    report = w.sync(sleep=sleep)
    reads = health_reads(log)

    assert interfered
    first, second = report.bindings
    # Group 0 was read again under the lease: the plan came from the fresh state, which
    # already holds the new node, so nothing was written and the group was never emptied.
    assert reads[w.arns[0]] == 2
    assert first.status == "in_sync" and first.register == first.deregister == ()
    assert first.registered_after == (w.new[0],)
    assert w.held(0) == {w.new[0]}
    # Group 1, whose lease nobody ever held, went on its first read.
    assert reads[w.arns[1]] == 1
    assert second.status == "changed" and (second.register, second.deregister) == ((w.new[1],), (w.old[1],))
    assert w.held(1) == {w.new[1]}


def test_a_recent_release_by_this_controller_means_a_re_read_too(world: Callable[[int], World]) -> None:
    w = world(2)
    w.sync()
    for i in range(2):
        w.dns.zone.set_a(f"orders-{i}.cache.test", f"10.0.{i}.30")
    log = CallLog(w.elbv2)

    report = w.sync()  # the first pass released its leases moments ago: within the skew allowance

    assert [b.status for b in report.bindings] == ["changed", "changed"]
    assert health_reads(log) == {arn: 2 for arn in w.arns}


def test_a_deregister_only_plan_always_reads_again(world: Callable[[int], World]) -> None:
    w = world(2)
    for i in range(2):  # the new node already registered beside the old one
        w.elbv2.register_targets(TargetGroupArn=w.arns[i], Targets=[{"Id": w.new[i].ip, "Port": PORT}])
    log = CallLog(w.elbv2)

    report = w.sync()

    assert [(b.status, b.register, b.deregister) for b in report.bindings] == [("changed", (), (w.old[i],)) for i in range(2)]
    # Nothing to register: the health states the planner's rule 5 looks at are read fresh.
    assert health_reads(log) == {arn: 2 for arn in w.arns}


def test_an_event_pass_that_waited_for_the_change_reads_again(world: Callable[[int], World]) -> None:
    w = world(2)
    for i in range(2):  # the answer has not changed yet when the event arrives
        w.dns.zone.set_a(f"orders-{i}.cache.test", w.old[i].ip)
    rounds: list[float] = []

    def sleep(seconds: float) -> None:
        rounds.append(seconds)
        if len(rounds) == 3:  # the flip arrives a few polls into the wait
            for i in range(2):
                w.dns.zone.set_a(f"orders-{i}.cache.test", w.new[i].ip)
        time.sleep(seconds)

    from cachebridge.sync import Trigger

    log = CallLog(w.elbv2)
    report = w.sync(sleep=sleep, trigger=Trigger("event", wait_for_change=True))

    assert [b.status for b in report.bindings] == ["changed", "changed"]
    assert all(b.polls > 2 for b in report.bindings)
    assert health_reads(log) == {arn: 2 for arn in w.arns}


# -- chunks written one after another, leases beside ------------------------------------------


def test_each_chunks_leases_are_taken_before_its_writes_and_given_back_after_all_of_them(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cachebridge import lease

    monkeypatch.setattr(lease, "BATCH", 3)  # 8 bindings: chunks of 3, 3 and 2
    w = world(8)
    events: list[tuple[str, str]] = []  # (what, target group ARN), in the order they happened
    guard = threading.Lock()

    def note(what: str, arns: list[str]) -> None:
        with guard:
            events.extend((what, arn) for arn in arns)

    def lease_keys(body: dict[str, Any]) -> list[str]:
        return [item["Update"]["Key"][KEY_ATTRIBUTE]["S"] for item in body.get("TransactItems", [])]

    def transaction_sent(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        text = params["body"].decode() if isinstance(params["body"], bytes) else params["body"]
        body = json.loads(text)
        context["cachebridge_test"] = ("previous_holder" in text, lease_keys(body))
        if "released_at" in text:
            note("giving back", lease_keys(body))

    def transaction_answered(http_response: Any, context: dict[str, Any], **_: Any) -> None:
        taking, keys = context.get("cachebridge_test", (False, []))
        if taking and http_response.status_code == 200:
            note("taken", keys)

    def elbv2_call(kind: str) -> Callable[..., None]:
        def hook(context: dict[str, Any], params: dict[str, Any] | None = None, **_: Any) -> None:
            if params is not None:  # the call's own parameters: remembered for its answer
                context["cachebridge_test"] = params["TargetGroupArn"]
            note(kind, [context["cachebridge_test"]])
        return hook

    w.dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", transaction_sent)
    w.dynamodb.meta.events.register("after-call.dynamodb.TransactWriteItems", transaction_answered)
    for operation in ("RegisterTargets", "DeregisterTargets"):
        w.elbv2.meta.events.register(f"provide-client-params.elastic-load-balancing-v2.{operation}", elbv2_call("writing"))
        w.elbv2.meta.events.register(f"after-call.elastic-load-balancing-v2.{operation}", elbv2_call("written"))

    log = CallLog(w.elbv2, w.dynamodb)
    report = w.sync()

    assert [b.status for b in report.bindings] == ["changed"] * 8
    for i, arn in enumerate(w.arns):
        assert w.held(i) == {w.new[i]}
        mine = [what for what, a in events if a == arn]
        # taken once, then both writes started and finished, then given back once
        assert mine[0] == "taken" and mine[-1] == "giving back", mine
        assert mine.count("taken") == mine.count("giving back") == 1, mine
        assert sorted(mine[1:-1]) == ["writing", "writing", "written", "written"], mine
        record = w.record(i)
        assert record["expires_at"] == {"N": "0"}
        assert record["last_desired"] == {"L": [{"S": str(w.new[i])}]}
    # the batches, not one call per lease: three transactions to take, three to give back
    assert Counter(log.names())["TransactWriteItems"] == 6
    assert "UpdateItem" not in log.names()

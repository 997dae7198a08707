"""Hostile checks of write leases taken a chunk at a time beside the writes (``writes``,
``lease``): every RegisterTargets/DeregisterTargets of a lease-guarded group lies inside
a holding of its lease, across chunk boundaries, slow and failing bindings, faults of
one chunk's lease calls only, a deadline between chunks, and two controllers at once.
moto in-process with ``moto_ext``; faults injected into DynamoDB's answers by botocore
event hooks."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cachebridge import lease
from cachebridge.config import Binding, Config, DnsSourceSpec, Settings
from cachebridge.lease import KEY_ATTRIBUTE, Leases
from cachebridge.nlb import TargetGroups
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.sources import DnsResolver, Sources
from cachebridge.sync import SyncReport, sync
from cachebridge.targets import Target

from .conftest import REGION
from .test_lease_batches import ME, OTHER, PORT, TABLE, World, dynamodb, vpc_id, world  # noqa: F401  (fixtures)


class Timeline:
    """Every lease take (answered), give-back (sent) and target write (sent, answered) of
    the clients it watches, in the order they happened, tagged with who made them."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str, str, str]] = []  # (order, who, what, ARN)
        self._lock = threading.Lock()

    def note(self, who: str, what: str, arns: list[str]) -> None:
        with self._lock:
            for arn in arns:
                self.events.append((len(self.events), who, what, arn))

    def watch(self, who: str, dynamodb: Any, elbv2: Any) -> None:
        def keys(body: dict[str, Any]) -> list[str]:
            if "TransactItems" in body:
                return [item["Update"]["Key"][KEY_ATTRIBUTE]["S"] for item in body["TransactItems"] if "Update" in item]
            return [body["Key"][KEY_ATTRIBUTE]["S"]] if "Key" in body else []

        def sent(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            text = params["body"].decode() if isinstance(params["body"], bytes) else params["body"]
            body = json.loads(text)
            context["hostile6"] = ("previous_holder" in text, keys(body))
            if "released_at" in text:
                self.note(who, "giving back", keys(body))

        def answered(http_response: Any, context: dict[str, Any], **_: Any) -> None:
            taking, arns = context.get("hostile6", (False, []))
            if taking and http_response.status_code == 200:
                self.note(who, "taken", arns)

        def write(kind: str) -> Callable[..., None]:
            def hook(context: dict[str, Any], params: dict[str, Any] | None = None, **_: Any) -> None:
                if params is not None:
                    context["hostile6"] = params["TargetGroupArn"]
                self.note(who, kind, [context["hostile6"]])
            return hook

        for operation in ("TransactWriteItems", "UpdateItem"):
            dynamodb.meta.events.register(f"before-call.dynamodb.{operation}", sent)
            dynamodb.meta.events.register(f"after-call.dynamodb.{operation}", answered)
        for operation in ("RegisterTargets", "DeregisterTargets"):
            elbv2.meta.events.register(f"provide-client-params.elastic-load-balancing-v2.{operation}", write("writing"))
            elbv2.meta.events.register(f"after-call.elastic-load-balancing-v2.{operation}", write("written"))

    def violations(self) -> list[str]:
        """Writes made by someone not holding the group's lease, and takes of a lease someone
        else holds."""
        holder: dict[str, str | None] = {}
        found: list[str] = []
        for order, who, what, arn in self.events:
            if what == "taken":
                if holder.get(arn) not in (None, who):
                    found.append(f"#{order} {who} took {arn} held by {holder[arn]}")
                holder[arn] = who
            elif what == "giving back":
                if holder.get(arn) != who:
                    found.append(f"#{order} {who} gave back {arn} it did not hold")
                holder[arn] = None
            elif holder.get(arn) != who:
                found.append(f"#{order} {who} {what} {arn} without its lease (held by {holder.get(arn)})")
        return found

    def of(self, arn: str) -> list[str]:
        return [what for _, _, what, a in self.events if a == arn]


def watched(w: World, who: str = ME) -> Timeline:
    timeline = Timeline()
    timeline.watch(who, w.dynamodb, w.elbv2)
    return timeline


def sync_with(w: World, concurrency: int, **kwargs: Any) -> SyncReport:
    w.config = Config(w.config.bindings, dataclasses.replace(w.config.settings, max_concurrency=concurrency))
    return w.sync(**kwargs)


def assert_all_written_under_their_leases(w: World, timeline: Timeline, report: SyncReport) -> None:
    assert timeline.violations() == []
    for i, arn in enumerate(w.arns):
        mine = timeline.of(arn)
        assert mine.count("taken") == mine.count("giving back") == 1, (i, mine)
        assert w.record(i)["expires_at"] == {"N": "0"}, i
        assert w.held(i), f"group {i} emptied"


# -- chunk boundaries -----------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 2, 8])
@pytest.mark.parametrize("n", [6, 7])  # chunks of 3: a last chunk full, and one of a single binding
def test_every_write_across_chunk_boundaries_lies_inside_its_lease(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch, concurrency: int, n: int
) -> None:
    monkeypatch.setattr(lease, "BATCH", 3)
    w = world(n)
    timeline = watched(w)

    report = sync_with(w, concurrency)

    assert [b.status for b in report.bindings] == ["changed"] * n
    assert [w.held(i) for i in range(n)] == [{t} for t in w.new]
    assert_all_written_under_their_leases(w, timeline, report)


def test_201_bindings_at_the_real_batch_size_take_three_batches_and_write_each_group_under_its_lease(
    world: Callable[[int], World],
) -> None:
    w = world(201)
    timeline = watched(w)

    report = sync_with(w, 8)

    assert [b.status for b in report.bindings] == ["changed"] * 201
    assert all(w.held(i) == {w.new[i]} for i in range(201))
    assert_all_written_under_their_leases(w, timeline, report)
    takes = [e for e in timeline.events if e[2] == "taken"]
    assert Counter(e[3] for e in takes) == {arn: 1 for arn in w.arns}


# -- a slow binding and a failing binding in one chunk while the next is written ------------------


@pytest.mark.parametrize("concurrency", [2, 8])
def test_a_slow_and_a_failing_binding_of_one_chunk_keep_its_leases_until_they_end(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    monkeypatch.setattr(lease, "BATCH", 3)
    w = world(9)
    slow, failing = w.arns[2], w.arns[1]  # both in chunk 0
    later_started = threading.Event()

    def stall(params: dict[str, Any], **_: Any) -> None:
        arn = params["body"].get("TargetGroupArn")
        if arn in w.arns[3:]:
            later_started.set()
        if arn == slow:
            later_started.wait(10)  # held until a later chunk writes: no timing assumed

    def refuse(params: dict[str, Any], **_: Any) -> Any:
        if params["body"].get("TargetGroupArn") != failing:
            return None
        body = {"Error": {"Code": "AccessDenied", "Message": "by the test"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return type("Response", (), {"status_code": 403, "headers": {}, "content": b""})(), body

    w.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.RegisterTargets", stall)
    w.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.DeregisterTargets", refuse)
    timeline = watched(w)

    report = sync_with(w, concurrency)

    statuses = [b.status for b in report.bindings]
    assert statuses == ["changed", "error"] + ["changed"] * 7, [b.error for b in report.bindings]
    assert later_started.is_set()
    assert w.held(1) == {w.old[1], w.new[1]}  # registered, the failed deregister left both
    assert all(w.held(i) == {w.new[i]} for i in range(9) if i != 1)
    assert_all_written_under_their_leases(w, timeline, report)
    # chunk 0 went back after its slow binding's last write, not before
    order = [(what, arn) for _, _, what, arn in timeline.events]
    slow_done = max(i for i, (what, arn) in enumerate(order) if arn == slow and what == "written")
    assert order.index(("giving back", w.arns[0])) > slow_done


# -- one chunk's lease calls failing --------------------------------------------------------------


def test_a_later_chunks_take_throttled_and_partly_held_by_another_controller_writes_only_what_it_holds(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "BATCH", 3)
    w = world(9)
    other = Leases(w.dynamodb, TABLE)
    theirs = {4: other.acquire(w.arns[4], OTHER), 5: other.acquire(w.arns[5], OTHER)}  # in chunk 1
    chunk2 = set(w.arns[6:])

    def throttle_chunk2_take(params: dict[str, Any], **_: Any) -> Any:
        text = params["body"].decode() if isinstance(params["body"], bytes) else params["body"]
        body = json.loads(text)
        if "previous_holder" not in text or "TransactItems" not in body:
            return None
        if not {item["Update"]["Key"][KEY_ATTRIBUTE]["S"] for item in body["TransactItems"]} <= chunk2:
            return None
        answer = {"Error": {"Code": "ThrottlingException", "Message": "by the test"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return type("Response", (), {"status_code": 400, "headers": {}, "content": b""})(), answer

    w.dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", throttle_chunk2_take)
    timeline = watched(w)

    report = sync_with(w, 8)

    assert [b.status for b in report.bindings] == ["changed"] * 4 + ["skipped", "skipped"] + ["changed"] * 3
    for i in (4, 5):
        assert w.held(i) == {w.old[i]}  # untouched
        record = w.record(i)
        assert record["holder"]["S"] == theirs[i].holder and record["controller_id"]["S"] == OTHER
        assert all(what not in ("writing", "written") for what in timeline.of(w.arns[i]))
    assert all(w.held(i) == {w.new[i]} for i in (0, 1, 2, 3, 6, 7, 8))
    assert timeline.violations() == []
    for i in (0, 1, 2, 3, 6, 7, 8):
        assert w.record(i)["expires_at"] == {"N": "0"}


def test_a_malformed_record_read_after_a_take_costs_no_binding_its_lease(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BatchGetItem answer whose item lacks the key attribute (not something DynamoDB
    sends, but an answer the controller did not ask for) must not strand the chunk's
    leases: the bindings would each wait for their own lease and skip."""
    monkeypatch.setattr(lease, "BATCH", 3)
    w = world(6)

    def mangle(parsed: dict[str, Any], **_: Any) -> None:
        for items in parsed.get("Responses", {}).values():
            for item in items:
                item.pop(KEY_ATTRIBUTE, None)

    w.dynamodb.meta.events.register("after-call.dynamodb.BatchGetItem", mangle)
    timeline = watched(w)

    report = sync_with(w, 8)

    assert [b.status for b in report.bindings] == ["changed"] * 6, [b.error for b in report.bindings]
    assert [w.held(i) for i in range(6)] == [{t} for t in w.new]
    assert timeline.violations() == []
    for i in range(6):
        assert w.record(i)["expires_at"] == {"N": "0"}


# -- the deadline arriving between chunks -----------------------------------------------------------


def test_the_deadline_arriving_between_chunks_writes_no_later_binding_and_gives_every_lease_back(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "BATCH", 3)
    w = world(9)
    now = [0.0]
    deadline = 1000.0
    last_of_chunk0 = w.arns[2]

    def clock() -> float:
        return now[0]

    def jump(http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if context.get("hostile6") == last_of_chunk0:
            now[0] = deadline  # nothing more fits
    timeline = watched(w)
    w.elbv2.meta.events.register("after-call.elastic-load-balancing-v2.DeregisterTargets", jump)

    report = sync_with(w, 1, clock=clock, deadline=deadline, call_budget_s=1.0)

    assert [b.status for b in report.bindings] == ["changed"] * 3 + ["skipped"] * 6
    assert all(w.held(i) == {w.new[i]} for i in range(3))
    assert all(w.held(i) == {w.old[i]} for i in range(3, 9))
    assert all(what not in ("writing", "written") for arn in w.arns[3:] for what in timeline.of(arn))
    assert timeline.violations() == []
    for i, arn in enumerate(w.arns):
        mine = timeline.of(arn)
        assert mine.count("taken") == mine.count("giving back"), (i, mine)
        if "taken" in mine:
            assert w.record(i)["expires_at"] == {"N": "0"}


# -- two controllers at once on the same groups and table ---------------------------------------------


@pytest.mark.parametrize("force", [False, True])
def test_two_controllers_writing_the_same_groups_at_once_never_overlap_nor_empty_a_group(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    monkeypatch.setattr(lease, "BATCH", 3)
    n = 8
    w = world(n)
    theirs = [Target(f"10.0.{i}.40", PORT) for i in range(n)]
    zone = Zone()
    for i in range(n):
        zone.set_a(f"orders-{i}.cache.test", theirs[i].ip)
    server = LoopbackDnsServer(zone, host="127.0.0.2").start()
    try:
        b_dynamodb = boto3.client("dynamodb", region_name=REGION)
        b_elbv2 = boto3.client("elbv2", region_name=REGION)
        b_ec2 = boto3.client("ec2", region_name=REGION)
        settings_b = Settings(
            nameservers=(server.address,), poll_interval_s=0.05, dns_timeout_s=0.5, lock_table=TABLE, controller_id=OTHER,
            max_concurrency=8,
        )
        config_b = Config(w.config.bindings, settings_b)
        timeline = Timeline()
        timeline.watch(ME, w.dynamodb, w.elbv2)
        timeline.watch(OTHER, b_dynamodb, b_elbv2)
        reports: dict[str, SyncReport] = {}
        go = threading.Barrier(2)
        b_taking = threading.Event()

        def b_takes(**_: Any) -> None:
            b_taking.set()

        def a_writes(params: dict[str, Any], **_: Any) -> None:
            # A writes its first chunk only once B is taking leases: the passes overlap.
            if params["body"].get("TargetGroupArn") == w.arns[0]:
                b_taking.wait(10)

        b_dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", b_takes)
        b_dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", b_takes)
        w.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.RegisterTargets", a_writes)

        def run_a() -> None:
            go.wait(10)
            reports[ME] = sync_with(w, 8, force=force)

        def run_b() -> None:
            go.wait(10)
            groups = TargetGroups(b_elbv2, b_ec2, dynamodb=b_dynamodb)
            sources = Sources(DnsResolver(settings_b.nameservers, settings_b.dns_timeout_s))
            reports[OTHER] = sync(config_b, target_groups=groups, sources=sources, force=force)

        threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
    finally:
        server.stop()

    assert timeline.violations() == []
    a, b = reports[ME].bindings, reports[OTHER].bindings
    for i in range(n):
        held = w.held(i)
        assert held, f"group {i} emptied"
        # One controller's view stands; the other refused to undo it or could not get the lease.
        assert held in ({w.new[i]}, {theirs[i]}), (i, held, a[i].status, b[i].status)
        statuses = {a[i].status, b[i].status}
        assert "changed" in statuses and statuses <= {"changed", "error", "skipped"}, (a[i], b[i])
        record = w.record(i)
        assert record["expires_at"] == {"N": "0"}
        winner = ME if held == {w.new[i]} else OTHER
        assert record["last_controller"]["S"] == winner


def test_a_chunk_whose_bindings_all_skip_neither_stalls_the_lease_thread_nor_strands_a_lease(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "BATCH", 3)
    monkeypatch.setattr(lease, "LEASE_WAIT_S", 0.2)
    w = world(9)
    other = Leases(w.dynamodb, TABLE)
    theirs = {i: other.acquire(w.arns[i], OTHER) for i in (3, 4, 5)}  # the whole of chunk 1
    timeline = watched(w)

    report = sync_with(w, 1)

    assert [b.status for b in report.bindings] == ["changed"] * 3 + ["skipped"] * 3 + ["changed"] * 3
    for i in (3, 4, 5):
        assert w.held(i) == {w.old[i]}
        assert w.record(i)["holder"]["S"] == theirs[i].holder and w.record(i)["expires_at"] != {"N": "0"}
        assert timeline.of(w.arns[i]) == []  # neither taken, nor given back, nor written
    for i in (0, 1, 2, 6, 7, 8):
        assert w.held(i) == {w.new[i]} and w.record(i)["expires_at"] == {"N": "0"}
    assert timeline.violations() == []


def test_a_failed_give_back_of_one_chunk_warns_its_bindings_only_and_later_chunks_go_back(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "BATCH", 3)
    w = world(9)
    chunk1 = set(w.arns[3:6])

    def refuse_chunk1_release(params: dict[str, Any], **_: Any) -> Any:
        text = params["body"].decode() if isinstance(params["body"], bytes) else params["body"]
        if "released_at" not in text or not any(arn in text for arn in chunk1):
            return None
        body = {"Error": {"Code": "InternalServerError", "Message": "by the test"}, "ResponseMetadata": {"HTTPStatusCode": 500}}
        return type("Response", (), {"status_code": 500, "headers": {}, "content": b""})(), body

    for operation in ("TransactWriteItems", "UpdateItem"):
        w.dynamodb.meta.events.register(f"before-call.dynamodb.{operation}", refuse_chunk1_release)
    timeline = watched(w)

    report = sync_with(w, 8)

    assert [b.status for b in report.bindings] == ["changed"] * 9
    assert [w.held(i) for i in range(9)] == [{t} for t in w.new]
    for i, b in enumerate(report.bindings):
        failed = any("releasing the write lease failed" in x for x in b.warnings)
        assert failed == (i in (3, 4, 5)), (i, b.warnings)
        assert (w.record(i)["expires_at"] == {"N": "0"}) == (i not in (3, 4, 5))
    # the writes of chunk 1 all came before its (failed) give-back was tried
    assert timeline.violations() == []


# -- the sandbox's DynamoDB: parsed expressions kept, every answer as DynamoDB's ---------------------


def _table(client: Any, name: str, key: str) -> None:
    client.create_table(
        TableName=name, KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )


def _code(call: Callable[[], Any]) -> tuple[str, list[str]]:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"], [r["Code"] for r in exc.response.get("CancellationReasons") or []]
    return "ok", []


def test_a_transaction_naming_one_item_twice_is_refused_every_time_and_changes_nothing(aws: None) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    _table(client, "T", "k")
    client.put_item(TableName="T", Item={"k": {"S": "x"}, "h": {"S": "old"}})

    def update(key: str, holder: str) -> dict[str, Any]:
        return {"Update": {"TableName": "T", "Key": {"k": {"S": key}}, "UpdateExpression": "SET h = :h",
                           "ConditionExpression": "attribute_not_exists(h) OR h <> :h", "ExpressionAttributeValues": {":h": {"S": holder}}}}

    assert _code(lambda: client.transact_write_items(TransactItems=[update("y", "a")])) == ("ok", [])  # the text is known now
    for _ in range(2):
        assert _code(lambda: client.transact_write_items(TransactItems=[update("x", "a"), update("z", "a"), update("x", "b")]))[0] == "ValidationException"
    assert client.get_item(TableName="T", Key={"k": {"S": "x"}})["Item"]["h"] == {"S": "old"}
    assert "Item" not in client.get_item(TableName="T", Key={"k": {"S": "z"}})


def test_one_condition_text_across_tables_values_and_names_is_evaluated_each_time_on_the_stored_item(aws: None) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    _table(client, "A", "k")
    _table(client, "B", "pk")
    client.put_item(TableName="A", Item={"k": {"S": "1"}, "a": {"N": "1"}, "b": {"N": "2"}})
    client.put_item(TableName="B", Item={"pk": {"S": "1"}, "a": {"N": "2"}, "b": {"N": "1"}})
    text = "#x = :v"

    def check(table: str, key: dict[str, Any], name: str, value: str) -> str:
        item = {"ConditionCheck": {"TableName": table, "Key": key, "ConditionExpression": text,
                                   "ExpressionAttributeNames": {"#x": name}, "ExpressionAttributeValues": {":v": {"N": value}}}}
        return _code(lambda: client.transact_write_items(TransactItems=[item]))[0]

    a, b = {"k": {"S": "1"}}, {"pk": {"S": "1"}}
    assert [check("A", a, "a", "1"), check("B", b, "a", "1"), check("B", b, "b", "1"), check("A", a, "b", "1"), check("A", a, "b", "2")] == [
        "ok", "TransactionCanceledException", "ok", "TransactionCanceledException", "ok"]
    # the attribute changes between two transactions with the same text, names and values
    client.update_item(TableName="A", Key=a, UpdateExpression="SET a = :two", ExpressionAttributeValues={":two": {"N": "2"}})
    assert check("A", a, "a", "1") == "TransactionCanceledException"
    assert check("A", a, "a", "2") == "ok"


def test_set_add_and_delete_apply_each_time_to_the_set_as_stored(aws: None) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    _table(client, "S", "k")
    key = {"k": {"S": "s"}}
    client.put_item(TableName="S", Item={**key, "ss": {"SS": ["a"]}, "ns": {"NS": ["1"]}})

    def update(expression: str, values: dict[str, Any], condition: str | None = None) -> tuple[str, list[str]]:
        item: dict[str, Any] = {"TableName": "S", "Key": key, "UpdateExpression": expression, "ExpressionAttributeValues": values}
        if condition:
            item["ConditionExpression"] = condition
        return _code(lambda: client.transact_write_items(TransactItems=[{"Update": item}]))

    for letter in ("b", "c", "b"):
        assert update("ADD ss :v", {":v": {"SS": [letter]}}) == ("ok", [])
    assert update("ADD ns :n", {":n": {"NS": ["2", "3"]}}) == ("ok", [])
    # removed while present, then refused by a condition on the set once it is gone
    removing = ("DELETE ss :v", {":v": {"SS": ["a"]}, ":e": {"S": "a"}}, "contains(ss, :e)")
    assert update(*removing) == ("ok", [])
    assert update(*removing) == ("TransactionCanceledException", ["ConditionalCheckFailed"])
    item = client.get_item(TableName="S", Key=key, ConsistentRead=True)["Item"]
    assert sorted(item["ss"]["SS"]) == ["b", "c"] and sorted(item["ns"]["NS"]) == ["1", "2", "3"]
    # a wrong type is refused every time, the text being known
    for _ in range(2):
        assert update("ADD ss :v", {":v": {"NS": ["1"]}})[0] in ("ValidationException", "TransactionCanceledException")
    assert sorted(client.get_item(TableName="S", Key=key, ConsistentRead=True)["Item"]["ss"]["SS"]) == ["b", "c"]


def test_an_update_of_a_key_is_refused_on_the_table_whose_key_it_is_after_passing_on_another(aws: None) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    _table(client, "A", "k")
    _table(client, "B", "pk")
    client.put_item(TableName="A", Item={"k": {"S": "1"}})
    client.put_item(TableName="B", Item={"pk": {"S": "1"}})

    def update(table: str, key: dict[str, Any]) -> tuple[str, list[str]]:
        item = {"TableName": table, "Key": key, "UpdateExpression": "SET #n = :v", "ExpressionAttributeNames": {"#n": "pk"},
                "ExpressionAttributeValues": {":v": {"S": "2"}}}
        return _code(lambda: client.transact_write_items(TransactItems=[{"Update": item}]))

    assert update("A", {"k": {"S": "1"}}) == ("ok", [])
    for _ in range(2):
        assert update("B", {"pk": {"S": "1"}})[0] in ("ValidationException", "TransactionCanceledException")
    assert client.get_item(TableName="B", Key={"pk": {"S": "1"}})["Item"] == {"pk": {"S": "1"}}
    assert client.get_item(TableName="A", Key={"k": {"S": "1"}})["Item"]["pk"] == {"S": "2"}


@pytest.mark.parametrize("in_transaction", [True, False])
def test_an_unused_name_is_refused_every_time_after_the_same_text_passed(aws: None, in_transaction: bool) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    _table(client, "A", "k")
    key = {"k": {"S": "1"}}
    client.put_item(TableName="A", Item={**key, "a": {"N": "1"}})

    def run(names: dict[str, str], value: dict[str, str]) -> str:
        request = {"TableName": "A", "Key": key, "UpdateExpression": "SET z = :v", "ConditionExpression": "#x = :v",
                   "ExpressionAttributeNames": names, "ExpressionAttributeValues": {":v": value}}
        if in_transaction:
            return _code(lambda: client.transact_write_items(TransactItems=[{"Update": request}]))[0]
        return _code(lambda: client.update_item(**request))[0]

    refused = "TransactionCanceledException" if in_transaction else "ConditionalCheckFailedException"
    assert run({"#x": "a"}, {"N": "1"}) == "ok"
    assert [run({"#x": "a", "#y": "b"}, {"N": "1"}) for _ in range(2)] == ["ValidationException"] * 2
    assert run({"#x": "a"}, {"S": "1"}) == refused  # a string is not the number 1
    assert run({"#x": "a"}, {"N": "1"}) == "ok"
    assert client.get_item(TableName="A", Key=key)["Item"]["z"] == {"N": "1"}


def test_a_chunks_leases_taken_ahead_and_aged_by_a_slow_chunk_before_it_are_renewed_not_left_to_skip(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's leases are taken when the chunk before it starts writing; a slow chunk
    before it (slow AWS answers, retries, concurrency 1) ages them past what a write needs
    (two calls of ``call_budget_s``). Taken again under the same holder id, they are
    written this run, as a chunk taken right before its writes would be; left as they are,
    every binding of that chunk was skipped, on every run as slow."""
    monkeypatch.setattr(lease, "BATCH", 3)
    w = world(6)
    budget = (lease.LEASE_S - 3.0) / 2  # a write needs the lease for 57 s more: 3 s after taking it
    slow = w.arns[2]  # chunk 0's last binding

    def stall(params: dict[str, Any], **_: Any) -> None:
        if params["body"].get("TargetGroupArn") == slow:
            time.sleep(4.0)  # after its own lease check: chunk 1's leases, taken at chunk 0's start, age

    w.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.DeregisterTargets", stall)
    timeline = watched(w)

    report = sync_with(w, 1, call_budget_s=budget)

    assert [b.status for b in report.bindings] == ["changed"] * 6, [b.error for b in report.bindings]
    assert [w.held(i) for i in range(6)] == [{t} for t in w.new]
    assert timeline.violations() == []
    for i in range(6):
        record = w.record(i)
        assert record["expires_at"] == {"N": "0"} and record["released_holder"] == record["holder"]


def test_an_aged_lease_that_cannot_be_renewed_writes_nothing_and_says_why(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "BATCH", 3)
    w = world(6)
    budget = (lease.LEASE_S - 3.0) / 2
    slow = w.arns[2]

    def stall(params: dict[str, Any], **_: Any) -> None:
        if params["body"].get("TargetGroupArn") == slow:
            time.sleep(4.0)

    def refuse_renewal(params: dict[str, Any], **_: Any) -> Any:
        text = params["body"].decode() if isinstance(params["body"], bytes) else params["body"]
        if "previous_holder" not in text:
            return None  # a give-back goes through
        body = {"Error": {"Code": "InternalServerError", "Message": "by the test"}, "ResponseMetadata": {"HTTPStatusCode": 500}}
        return type("Response", (), {"status_code": 500, "headers": {}, "content": b""})(), body

    w.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.DeregisterTargets", stall)
    w.dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", refuse_renewal)
    timeline = watched(w)

    report = sync_with(w, 1, call_budget_s=budget)

    assert [b.status for b in report.bindings] == ["changed"] * 3 + ["skipped"] * 3
    for b in report.bindings[3:]:
        assert "write lease" in (b.error or "") and "lapse" in (b.error or "") and "deadline" not in (b.error or "")
        assert b.register == b.deregister == ()
    assert all(w.held(i) == {w.old[i]} for i in range(3, 6))
    assert all(what not in ("writing", "written") for arn in w.arns[3:] for what in timeline.of(arn))
    assert timeline.violations() == []
    for i in range(6):
        assert w.record(i)["expires_at"] == {"N": "0"}  # the aged ones went back with their chunk


# -- two controllers against one moto server (its own process: their calls really interleave) ---------


@pytest.mark.parametrize("force", [False, True])
def test_two_controllers_over_chunks_against_a_moto_server_never_write_outside_their_leases_nor_empty_a_group(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    from cachebridge import nlb

    from .conftest import controller_client, server_client

    monkeypatch.setattr(lease, "BATCH", 3)
    nlb.clear_caches()
    n = 7
    run = f"h6{int(force)}{int(time.time() * 1000) % 100000}"
    table = f"locks-{run}"
    admin = {s: server_client(moto_server, s) for s in ("elbv2", "ec2", "dynamodb")}
    admin["dynamodb"].create_table(
        TableName=table, KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    vpc = admin["ec2"].create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    arns, old = [], []
    views = {ME: [Target(f"10.0.{i}.20", PORT) for i in range(n)], OTHER: [Target(f"10.0.{i}.40", PORT) for i in range(n)]}
    for i in range(n):
        arn = admin["elbv2"].create_target_group(
            Name=f"{run}-{i}", Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        admin["elbv2"].register_targets(TargetGroupArn=arn, Targets=[{"Id": f"10.0.{i}.10", "Port": PORT}])
        arns.append(arn)
        old.append(Target(f"10.0.{i}.10", PORT))
    bindings = tuple(
        Binding(name=f"b{i}", source=DnsSourceSpec(f"g{i}.cache.test"), target_group=f"{run}-{i}", port=PORT) for i in range(n)
    )
    timeline = Timeline()
    emptied: list[str] = []
    servers = {who: LoopbackDnsServer(Zone(ttl=1), host=host).start() for who, host in ((ME, "127.0.0.1"), (OTHER, "127.0.0.2"))}
    try:
        controllers = {}
        for who, server in servers.items():
            for i in range(n):
                server.zone.set_a(f"g{i}.cache.test", views[who][i].ip)
            clients = {s: controller_client(moto_server, s) for s in ("elbv2", "ec2", "dynamodb")}
            timeline.watch(who, clients["dynamodb"], clients["elbv2"])

            def check_not_empty(context: dict[str, Any], **_: Any) -> None:
                arn = context["hostile6"]
                health = admin["elbv2"].describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
                if not [d for d in health if d["TargetHealth"]["State"] != "draining"]:
                    emptied.append(arn)

            clients["elbv2"].meta.events.register("after-call.elastic-load-balancing-v2.DeregisterTargets", check_not_empty)
            settings = Settings(nameservers=(server.address,), poll_interval_s=0.05, dns_timeout_s=0.5, lock_table=table,
                                controller_id=who, max_concurrency=4)
            controllers[who] = (Config(bindings, settings), TargetGroups(clients["elbv2"], clients["ec2"], dynamodb=clients["dynamodb"]))
        reports: dict[str, list[SyncReport]] = {ME: [], OTHER: []}
        go = threading.Barrier(2)

        def passes(who: str) -> None:
            config, groups = controllers[who]
            sources = Sources(DnsResolver(config.settings.nameservers, config.settings.dns_timeout_s))
            go.wait(30)
            for _ in range(3):
                reports[who].append(sync(config, target_groups=groups, sources=sources, force=force))

        threads = [threading.Thread(target=passes, args=(who,)) for who in (ME, OTHER)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        assert not any(t.is_alive() for t in threads)
    finally:
        for server in servers.values():
            server.stop()

    assert timeline.violations() == []
    assert emptied == []
    for i, arn in enumerate(arns):
        health = admin["elbv2"].describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        held = {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in health if d["TargetHealth"]["State"] != "draining"}
        assert held in ({views[ME][i]}, {views[OTHER][i]}), (i, held)
        record = admin["dynamodb"].get_item(TableName=table, Key={KEY_ATTRIBUTE: {"S": arn}}, ConsistentRead=True)["Item"]
        assert record["expires_at"] == {"N": "0"}
        assert record["last_controller"]["S"] == (ME if held == {views[ME][i]} else OTHER)
    writers = {who for who, what in ((e[1], e[2]) for e in timeline.events) if what == "written"}
    if force:
        assert writers == {ME, OTHER}  # each undid the other, one lease holding at a time
    else:
        assert writers  # the first writer's view stands; the other refused to undo it


def test_an_aged_lease_taken_over_by_another_controller_is_not_renewed_and_its_group_not_written(
    world: Callable[[int], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "BATCH", 3)
    w = world(6)
    budget = (lease.LEASE_S - 3.0) / 2
    slow, lost = w.arns[2], w.arns[4]  # chunk 0's last binding; a group of chunk 1
    other = Leases(w.dynamodb, TABLE)
    taken_over: list[str] = []

    def stall(params: dict[str, Any], **_: Any) -> None:
        if params["body"].get("TargetGroupArn") == slow and not taken_over:
            time.sleep(4.0)
            # Meanwhile chunk 1's lease on ``lost`` lapses (as if the stall were a minute) and
            # another controller takes it.
            w.dynamodb.update_item(
                TableName=TABLE, Key={KEY_ATTRIBUTE: {"S": lost}}, UpdateExpression="SET expires_at = :past",
                ExpressionAttributeValues={":past": {"N": "1"}},
            )
            taken_over.append(other.acquire(lost, OTHER, wait_s=0.0).holder)

    w.elbv2.meta.events.register("before-call.elastic-load-balancing-v2.DeregisterTargets", stall)
    timeline = watched(w)

    report = sync_with(w, 1, call_budget_s=budget)

    assert [b.status for b in report.bindings] == ["changed"] * 4 + ["skipped", "changed"], [b.error for b in report.bindings]
    assert "another controller" in (report.bindings[4].error or "")
    assert w.held(4) == {w.old[4]}
    assert all(what not in ("writing", "written") for what in timeline.of(lost))
    record = w.record(4)
    assert record["holder"]["S"] == taken_over[0] and record["controller_id"]["S"] == OTHER and record["expires_at"] != {"N": "0"}
    assert any("releasing the write lease failed" in x for x in report.bindings[4].warnings)
    assert all(w.held(i) == {w.new[i]} and w.record(i)["expires_at"] == {"N": "0"} for i in (0, 1, 2, 3, 5))

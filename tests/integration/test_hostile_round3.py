"""Hostile checks of the write step: a group's owner and lock table must guard a write even
when reading them fails, leases taken in batches under faults and rival controllers never
leave a group empty, VPC CIDRs from the settings never let an unchecked address through,
and the ELB Describe pacing refuses figures it cannot honour. Moto in-process, a real DNS
server on loopback, an ElastiCache source."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cachebridge.config import Config
from cachebridge.lease import BATCH, KEY_ATTRIBUTE, Leases
from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.targets import Target

from .conftest import PRIMARY_IP, REGION, CallLog, orders_config, registered, sync_pass
from .test_lease_batches import TABLE, World

pytestmark = pytest.mark.timeout(60)

PORT = 6379
MOVED_IP = "10.0.1.20"


def fail_operation(client: Any, operation: str, code: str) -> None:
    """Every call of ``operation`` answers ``code`` (what AWS says to a throttled or denied caller)."""

    def fail(params: dict[str, Any], **_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": f"{operation} refused by the test"}}, operation)

    client.meta.events.register(f"before-call.*.{operation}", fail)


# A DescribeTags that fails before a write must not read as 'no owner, no lock table'.


@pytest.mark.usefixtures("owned_elsewhere")
@pytest.mark.parametrize("code", ["Throttling", "AccessDenied"])
def test_a_foreign_owner_whose_tags_cannot_be_read_is_not_written(
    code: str, dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    cfg = orders_config(dns_server, controller_id="orders-mine")
    (first,) = sync_pass(cfg, elbv2, ec2, elasticache, cold=True).bindings
    assert first.status == "in_sync"

    dns_server.zone.set_a(primary_name, MOVED_IP)
    fail_operation(elbv2, "DescribeTags", code)
    log = CallLog(elbv2)
    (result,) = sync_pass(cfg, elbv2, ec2, elasticache).bindings

    assert log.writes() == [], f"wrote a group owned by another stack without knowing its owner: {result}"
    assert registered(elbv2, bare_tg_arn) == {Target(PRIMARY_IP, PORT)}
    assert result.status in ("error", "skipped") and "tags" in (result.error or "")


@pytest.mark.usefixtures("lock_table_tagged")
def test_a_lock_table_tag_that_cannot_be_read_never_lets_a_write_go_unleased(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, dynamodb: Any, bare_tg_arn: str
) -> None:
    cfg = orders_config(dns_server, controller_id="orders-mine")
    (first,) = sync_pass(cfg, elbv2, ec2, elasticache, dynamodb, cold=True).bindings
    assert first.status == "in_sync"

    dns_server.zone.set_a(primary_name, MOVED_IP)
    fail_operation(elbv2, "DescribeTags", "Throttling")
    log = CallLog(elbv2, dynamodb)
    (result,) = sync_pass(cfg, elbv2, ec2, elasticache, dynamodb).bindings

    names = log.names()
    deregistered = [t for verb, ts in log.writes() if verb.startswith("Deregister") for t in ts]
    assert not deregistered or "UpdateItem" in names or "TransactWriteItems" in names, (
        f"deregistered {deregistered} from a lock-table group without the lease: {result}"
    )


# -- DynamoDB faults while leases are taken and given back in batches -------------------------


N = BATCH + 20  # a full batch and a remainder


@pytest.fixture
def locks(dynamodb: Any) -> Any:
    dynamodb.create_table(
        TableName=TABLE, KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


def answer(client: Any, operation: str, respond: Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None]) -> None:
    """``respond(request body)`` stands in for DynamoDB's answer to ``operation`` (None: the real one)."""

    def hook(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        made = respond(json.loads(params["body"]))
        if made is None:
            return None
        status, body = made
        body.setdefault("ResponseMetadata", {"HTTPStatusCode": status})
        return type("Response", (), {"status_code": status, "headers": {}, "content": b""})(), body

    client.meta.events.register(f"before-call.dynamodb.{operation}", hook)


def error(code: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return 400, {"Error": {"Code": code, "Message": "by the test"}, **extra}


def releasing(body: dict[str, Any]) -> bool:
    return "released_at" in json.dumps(body)


FAULTS: dict[str, list[tuple[str, Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None]]]] = {
    "transaction throttled": [("TransactWriteItems", lambda b: error("ThrottlingException"))],
    "transaction conflict": [("TransactWriteItems", lambda b: error(
        "TransactionCanceledException", CancellationReasons=[{"Code": "TransactionConflict"} for _ in b["TransactItems"]]))],
    "transaction invalid": [("TransactWriteItems", lambda b: error("ValidationException"))],
    "cancellation reasons missing": [("TransactWriteItems", lambda b: error("TransactionCanceledException"))],
    "batch get fails": [("BatchGetItem", lambda b: error("ProvisionedThroughputExceededException"))],
    "batch get leaves every key": [("BatchGetItem", lambda b: (200, {"Responses": {}, "UnprocessedKeys": b["RequestItems"]}))],
    "batch release fails": [("TransactWriteItems", lambda b: error("InternalServerError") if releasing(b) else None)],
    "every release fails": [
        ("TransactWriteItems", lambda b: error("InternalServerError") if releasing(b) else None),
        ("UpdateItem", lambda b: error("InternalServerError") if releasing(b) else None),
    ],
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_dynamodb_faults_mid_batch_never_deregister_without_the_lease_nor_empty_a_group(
    fault: str, elbv2: Any, ec2: Any, locks: Any, dns_server: LoopbackDnsServer
) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    w = World(N, elbv2, ec2, locks, vpc, dns_server)
    unleased: list[str] = []
    deregistered: list[str] = []

    def deregistering(params: dict[str, Any], **_: Any) -> None:
        # The moment of the write: the group's lease must be held, by a holder of this pass.
        arn = params["TargetGroupArn"]
        deregistered.append(arn)
        item = locks.get_item(TableName=TABLE, Key={KEY_ATTRIBUTE: {"S": arn}}, ConsistentRead=True).get("Item", {})
        if not item or float(item["expires_at"]["N"]) <= time.time():
            unleased.append(arn)

    # Its parameters as the controller gave them, just before the request is built and sent.
    elbv2.meta.events.register("before-parameter-build.elastic-load-balancing-v2.DeregisterTargets", deregistering)
    for operation, respond in FAULTS[fault]:
        answer(locks, operation, respond)

    report = w.sync()

    assert len(deregistered) >= N  # every group's deregister was checked at its moment
    assert unleased == []
    assert all(w.held(i) for i in range(N)), [i for i in range(N) if not w.held(i)]
    assert [b.status for b in report.bindings] == ["changed"] * N, {b.status: b.error for b in report.bindings}
    assert all(w.held(i) == {w.new[i]} for i in range(N))
    if fault == "every release fails":
        assert all(any("releasing the write lease failed" in x for x in b.warnings) for b in report.bindings)
    else:
        assert all(w.record(i)["expires_at"]["N"] == "0" for i in range(N))




def test_a_batch_whose_answer_was_lost_still_writes_under_its_own_leases(
    elbv2: Any, ec2: Any, locks: Any, dns_server: LoopbackDnsServer
) -> None:
    from botocore.exceptions import ReadTimeoutError

    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    w = World(3, elbv2, ec2, locks, vpc, dns_server)
    behind = boto3.client("dynamodb", region_name=REGION)
    lost: list[bool] = []

    def applied_then_lost(params: dict[str, Any], **_: Any) -> None:
        body = json.loads(params["body"])
        if lost or releasing(body):
            return
        behind.transact_write_items(**body)  # DynamoDB applies the leases...
        lost.append(True)
        raise ReadTimeoutError(endpoint_url="https://dynamodb.test")  # ...and the answer never comes

    locks.meta.events.register("before-call.dynamodb.TransactWriteItems", applied_then_lost)

    report = w.sync()

    assert lost
    assert [b.status for b in report.bindings] == ["changed"] * 3, [b.error for b in report.bindings]
    assert all(w.held(i) == {w.new[i]} for i in range(3))


# -- ELB Describe pacing ------------------------------------------------------------------------


def test_a_spent_bucket_past_the_deadline_skips_the_binding_and_writes_nothing(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, bare_tg_arn: str
) -> None:
    from cachebridge import aws, pacing

    elbv2.register_targets(TargetGroupArn=bare_tg_arn, Targets=[{"Id": PRIMARY_IP, "Port": PORT}])
    dns_server.zone.set_a(primary_name, MOVED_IP)
    cfg = orders_config(dns_server, elb_describe_rate=10, elb_describe_burst=1)
    log = CallLog(elbv2)
    paced = aws.paced_elbv2(elbv2, cfg.settings)
    pacing.reset()
    try:
        with pacing.pass_deadline(time.monotonic() - 1):  # the deadline already past
            (result,) = sync_pass(cfg, paced, ec2, elasticache, cold=True).bindings
    finally:
        pacing.configure(0, 1)

    # One token: DescribeTargetGroups had it; the health read would wait past the deadline.
    assert result.status == "skipped" and "elb_describe_burst=1" in (result.error or "")
    assert log.writes() == []
    assert registered(elbv2, bare_tg_arn) == {Target(PRIMARY_IP, PORT)}


def test_many_threads_never_get_more_tokens_than_the_bucket_holds() -> None:
    import threading

    from cachebridge.pacing import TokenBucket

    now = [0.0]
    bucket = TokenBucket(10, 40, clock=lambda: now[0], sleep=lambda s: None)
    granted: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        for _ in range(10):
            ready = bucket.reserve(deadline=5.0)
            if ready is not None:
                with lock:
                    granted.append(ready)

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    # 40 at once, 10 more at each whole second up to the deadline: 90 of the 200 asked.
    assert len(granted) == 90
    for second in range(6):
        assert sum(1 for g in granted if g <= second) <= 40 + 10 * second
    assert bucket.tokens == -50  # promised to the callers still to go, none past the deadline


@pytest.mark.parametrize(("name", "value"), [
    ("CACHEBRIDGE_ELB_DESCRIBE_BURST", "0"), ("CACHEBRIDGE_ELB_DESCRIBE_BURST", "-1"),
    ("CACHEBRIDGE_ELB_DESCRIBE_BURST", "1e9"), ("CACHEBRIDGE_ELB_DESCRIBE_RATE", "-1"),
    ("CACHEBRIDGE_ELB_DESCRIBE_RATE", "nan"), ("CACHEBRIDGE_VPC_CIDRS", "vpc-0a1b2c3d"),
    ("CACHEBRIDGE_VPC_CIDRS", "vpc-0a1b2c3d="), ("CACHEBRIDGE_VPC_CIDRS", "vpc-0A1B2C3D=10.0.0.0/16"),
    ("CACHEBRIDGE_VPC_CIDRS", "vpc-0a1b2c3d=10.0.0.0/16 10.1.0.0/16"), ("CACHEBRIDGE_VPC_CIDRS", "10.0.0.0/16"),
])
def test_malformed_pacing_and_vpc_settings_in_the_environment_are_refused_by_name(name: str, value: str) -> None:
    from cachebridge.errors import ConfigError

    bindings = '[{"name": "b", "source": "dns://x.test", "target_group": "tg", "port": 6379}]'
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"CACHEBRIDGE_BINDINGS": bindings, name: value})
    assert caught.value.field == name


# -- a rival lease holder whose clock runs behind ----------------------------------------------


@pytest.mark.parametrize("same_view", [True, False])
def test_a_rival_with_a_slow_clock_writing_after_the_first_read_is_neither_undone_nor_emptied(
    same_view: bool, elbv2: Any, ec2: Any, locks: Any, dns_server: LoopbackDnsServer
) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    w = World(2, elbv2, ec2, locks, vpc, dns_server)
    # Its release looks 15 s older than it is: past this controller's skew allowance, so
    # the record says nobody wrote since the first read and the re-read is skipped.
    rival = Leases(locks, TABLE, clock=lambda: time.time() - 15)
    theirs = w.new[0] if same_view else Target("10.0.0.99", PORT)
    interfered: list[bool] = []
    emptied: list[str] = []

    def sleep(seconds: float) -> None:
        if not interfered:
            lease = rival.acquire(w.arns[0], "controller-B")
            elbv2.register_targets(TargetGroupArn=w.arns[0], Targets=[{"Id": theirs.ip, "Port": PORT}])
            elbv2.deregister_targets(TargetGroupArn=w.arns[0], Targets=[{"Id": w.old[0].ip, "Port": PORT}])
            rival.release(lease, [str(theirs)])
            interfered.append(True)
        time.sleep(seconds)

    def after_deregister(**_: Any) -> None:
        if interfered and not w.held(0):
            emptied.append(w.arns[0])

    elbv2.meta.events.register("after-call.elastic-load-balancing-v2.DeregisterTargets", after_deregister)
    report = w.sync(sleep=sleep)

    assert interfered and emptied == []
    first, second = report.bindings
    if same_view:
        assert first.status in ("changed", "in_sync") and w.held(0) == {w.new[0]}
    else:
        # The rival's change is recent: not undone, whatever the first read said.
        assert first.status == "error" and "controller-B" in (first.error or "")
        assert w.held(0) == {theirs}
    assert second.status == "changed" and w.held(1) == {w.new[1]}


@pytest.mark.usefixtures("owned_elsewhere")
def test_a_pacing_budget_spent_at_the_tags_read_does_not_write_a_foreign_group(
    dns_server: LoopbackDnsServer, primary_name: str, elbv2: Any, ec2: Any, elasticache: Any, locks: Any, bare_tg_arn: str
) -> None:
    from cachebridge import aws, pacing

    dns_server.zone.set_a(primary_name, MOVED_IP)
    # Two tokens: the group's description and its health. Under the lease, with a record
    # nobody wrote, the re-read is skipped: no Describe call is left to notice the budget.
    cfg = orders_config(dns_server, controller_id="orders-mine", lock_table=TABLE, elb_describe_rate=10, elb_describe_burst=2)
    log = CallLog(elbv2)
    paced = aws.paced_elbv2(elbv2, cfg.settings)
    pacing.reset()
    try:
        with pacing.pass_deadline(time.monotonic() - 1):
            (result,) = sync_pass(cfg, paced, ec2, elasticache, locks, cold=True).bindings
    finally:
        pacing.configure(0, 1)

    assert log.writes() == [], f"wrote a group owned by another stack: {result.status}, {result.warnings[:2]}"
    assert registered(elbv2, bare_tg_arn) == {Target(PRIMARY_IP, PORT)}

"""The sandbox's AWS server (``sandbox.aws_server``): kept-alive connections, routing, and
state under concurrent calls, as clients see them through the server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions
import pytest

from cachebridge.sandbox.aws_server import AwsServer
from cachebridge.sandbox.moto_ext import atomic

from .conftest import controller_client


@pytest.fixture(scope="module")
def server() -> Iterator[AwsServer]:
    server = AwsServer().start()
    try:
        yield server
    finally:
        server.stop()


def client(server: AwsServer, service: str) -> Any:
    # The controller's client configuration: its pool is what keeps connections.
    return controller_client(server.endpoint_url, service)


class PortRecorder:
    """Wraps the server's WSGI application; records the client port of every request."""

    def __init__(self, server: AwsServer) -> None:
        self.server = server
        self.inner = server.app
        self.ports: list[int] = []

    def __enter__(self) -> "PortRecorder":
        self.server.app = self
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.app = self.inner

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.ports.append(int(environ["REMOTE_PORT"]))
        return self.inner(environ, start_response)


def make_target_groups(server: AwsServer, n: int, prefix: str) -> list[str]:
    vpc = client(server, "ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elbv2 = client(server, "elbv2")
    return [
        elbv2.create_target_group(Name=f"{prefix}-{i}", Protocol="TCP", Port=6379, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        for i in range(n)
    ]


def targets_of(elbv2: Any, arn: str) -> set[tuple[str, int]]:
    return {(d["Target"]["Id"], d["Target"]["Port"]) for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}


def test_one_client_s_calls_share_one_kept_alive_connection(server: AwsServer) -> None:
    (arn,) = make_target_groups(server, 1, "keepalive")
    elbv2 = client(server, "elbv2")
    with PortRecorder(server) as recorder:
        for i in range(10):
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": f"10.0.0.{i + 1}", "Port": 6379}])
        response = elbv2.describe_target_health(TargetGroupArn=arn)
    assert len(recorder.ports) == 11
    assert len(set(recorder.ports)) == 1  # one TCP connection for every call
    assert response["ResponseMetadata"]["HTTPHeaders"].get("connection", "").lower() != "close"
    assert {d["Target"]["Id"] for d in response["TargetHealthDescriptions"]} == {f"10.0.0.{i + 1}" for i in range(10)}


def test_each_service_is_routed_to_its_own_backend_on_every_call(server: AwsServer) -> None:
    # The dispatcher remembers which backend serves a host: calls to several services,
    # interleaved on kept-alive connections, each reach the right one.
    (arn,) = make_target_groups(server, 1, "routing")
    elbv2, dynamodb, elasticache = client(server, "elbv2"), client(server, "dynamodb"), client(server, "elasticache")
    dynamodb.create_table(
        TableName="routing", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    for i in range(3):
        elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": f"10.0.1.{i + 1}", "Port": 6379}])
        dynamodb.put_item(TableName="routing", Item={"k": {"S": f"k{i}"}})
        elasticache.create_replication_group(ReplicationGroupId=f"routing-{i}", ReplicationGroupDescription="routing")
    assert targets_of(elbv2, arn) == {(f"10.0.1.{i + 1}", 6379) for i in range(3)}
    assert dynamodb.scan(TableName="routing")["Count"] == 3
    groups = {g["ReplicationGroupId"] for g in elasticache.describe_replication_groups()["ReplicationGroups"]}
    assert {f"routing-{i}" for i in range(3)} <= groups


def test_concurrent_writes_to_different_target_groups_leave_each_group_its_own_last_target(server: AwsServer) -> None:
    arns = make_target_groups(server, 8, "concurrent")
    elbv2 = client(server, "elbv2")
    rounds = 15

    def move(index: int) -> set[tuple[str, int]]:
        arn, previous = arns[index], None
        for r in range(rounds):
            target = {"Id": f"10.{index}.{r}.1", "Port": 6379}
            elbv2.register_targets(TargetGroupArn=arn, Targets=[target])
            if previous is not None:
                elbv2.deregister_targets(TargetGroupArn=arn, Targets=[previous])
            targets_of(elbv2, arn)  # reads interleaved with the other groups' writes
            previous = target
        return targets_of(elbv2, arn)

    with ThreadPoolExecutor(8) as pool:
        finals = list(pool.map(move, range(8)))
    assert finals == [{(f"10.{i}.{rounds - 1}.1", 6379)} for i in range(8)]


def test_a_write_to_one_target_group_does_not_wait_for_another_group_s_lock(server: AwsServer) -> None:
    busy, free = make_target_groups(server, 2, "locks")
    elbv2 = client(server, "elbv2")
    done: dict[str, BaseException | None] = {}

    def register(name: str, arn: str) -> None:
        try:
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.0.9.1", "Port": 6379}])
            done[name] = None
        except BaseException as error:  # recorded for the assert below
            done[name] = error

    lock = atomic._group_lock(busy)
    lock.acquire()
    try:
        waiting = threading.Thread(target=register, args=("busy", busy))
        waiting.start()
        register("free", free)  # would block here if target writes shared one lock
        assert done == {"free": None}
        assert waiting.is_alive()  # the busy group's write waits for its own group's lock
    finally:
        lock.release()
    waiting.join(30)
    assert done == {"free": None, "busy": None}
    assert targets_of(elbv2, busy) == targets_of(elbv2, free) == {("10.0.9.1", 6379)}


@pytest.fixture(scope="module")
def leases(server: AwsServer) -> Any:
    dynamodb = client(server, "dynamodb")
    dynamodb.create_table(
        TableName="leases", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.create_table(
        TableName="ranged",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}, {"AttributeName": "r", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}, {"AttributeName": "r", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


def items(dynamodb: Any, table: str) -> dict[tuple[str, ...], dict[str, Any]]:
    out = {}
    for item in dynamodb.scan(TableName=table)["Items"]:
        key = (item["k"]["S"],) + ((item["r"]["N"],) if "r" in item else ())
        out[key] = item
    return out


def holder_update(table: str, key: dict[str, Any], holder: str, expected: str | None) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": table, "Key": key, "UpdateExpression": "SET holder = :holder",
        "ExpressionAttributeValues": {":holder": {"S": holder}},
    }
    if expected is not None:
        update["ConditionExpression"] = "holder = :expected"
        update["ExpressionAttributeValues"][":expected"] = {"S": expected}
    return {"Update": update}


def test_a_cancelled_transaction_leaves_every_item_as_it_was(leases: Any) -> None:
    leases.transact_write_items(TransactItems=[
        {"Put": {"TableName": "leases", "Item": {"k": {"S": f"tx{i}"}, "holder": {"S": "a"}}}} for i in range(6)
    ])
    before = items(leases, "leases")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        leases.transact_write_items(TransactItems=[
            holder_update("leases", {"k": {"S": "tx0"}}, "b", "a"),  # would pass
            {"Put": {"TableName": "leases", "Item": {"k": {"S": "tx-new"}, "holder": {"S": "b"}}}},
            {"Delete": {"TableName": "leases", "Key": {"k": {"S": "tx1"}}}},
            holder_update("leases", {"k": {"S": "tx2"}}, "b", "nobody"),  # fails: cancels all
        ])
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert items(leases, "leases") == before  # tx0 not updated, tx-new not put, tx1 not deleted

    leases.transact_write_items(TransactItems=[
        holder_update("leases", {"k": {"S": "tx0"}}, "b", "a"),
        {"Delete": {"TableName": "leases", "Key": {"k": {"S": "tx1"}}}},
    ])
    after = items(leases, "leases")
    assert after[("tx0",)]["holder"] == {"S": "b"}
    assert ("tx1",) not in after
    assert {k: v for k, v in after.items() if k not in {("tx0",), ("tx1",)}} == {k: v for k, v in before.items() if k not in {("tx0",), ("tx1",)}}


def test_a_cancelled_transaction_on_a_table_with_a_range_key_leaves_every_item_as_it_was(leases: Any) -> None:
    leases.transact_write_items(TransactItems=[
        {"Put": {"TableName": "ranged", "Item": {"k": {"S": "h"}, "r": {"N": str(r)}, "holder": {"S": "a"}}}} for r in range(4)
    ])
    before = items(leases, "ranged")
    with pytest.raises(botocore.exceptions.ClientError):
        leases.transact_write_items(TransactItems=[
            holder_update("ranged", {"k": {"S": "h"}, "r": {"N": "0"}}, "b", "a"),
            {"Put": {"TableName": "ranged", "Item": {"k": {"S": "h"}, "r": {"N": "9"}, "holder": {"S": "b"}}}},
            holder_update("ranged", {"k": {"S": "h"}, "r": {"N": "1"}}, "b", "nobody"),
        ])
    assert items(leases, "ranged") == before

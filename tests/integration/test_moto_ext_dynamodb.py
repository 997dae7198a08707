"""moto's DynamoDB with ``moto_ext``'s shortcuts (``update_validation``,
``condition_expressions``, ``attribute_values``, ``transactions``) answers as moto does:
every condition evaluated on the item as stored, every item-dependent check per item, a
cancelled transaction changing nothing and naming the items that failed, expressions and
errors unaffected by what was parsed before. moto in-process, with ``moto_ext``."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

TABLE = "Leases"
UPDATE = "SET previous_holder = if_not_exists(holder, :nobody), holder = :holder, expires_at = :expires"
CONDITION = "attribute_not_exists(lease_key) OR expires_at < :now OR holder = :holder"


@pytest.fixture
def table(dynamodb: Any) -> Any:
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "lease_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lease_key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


def put(client: Any, key: str, holder: str, expires: int) -> None:
    client.put_item(TableName=TABLE, Item={"lease_key": {"S": key}, "holder": {"S": holder}, "expires_at": {"N": str(expires)}})


def stored(client: Any, key: str) -> dict[str, Any] | None:
    return client.get_item(TableName=TABLE, Key={"lease_key": {"S": key}}, ConsistentRead=True).get("Item")


def take(key: str, holder: str, now: int, expires: int) -> dict[str, Any]:
    return {"Update": {
        "TableName": TABLE,
        "Key": {"lease_key": {"S": key}},
        "UpdateExpression": UPDATE,
        "ConditionExpression": CONDITION,
        "ExpressionAttributeValues": {
            ":holder": {"S": holder}, ":nobody": {"S": ""}, ":now": {"N": str(now)}, ":expires": {"N": str(expires)},
        },
    }}


def cancellation(client: Any, items: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(ClientError) as caught:
        client.transact_write_items(TransactItems=items)
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    return [reason["Code"] for reason in caught.value.response["CancellationReasons"]]


def test_one_expression_shared_by_many_items_updates_each_with_its_own_values_and_stored_state(table: Any) -> None:
    for i in range(0, 100, 2):
        put(table, f"k{i}", f"old{i}", 10)  # lapsed: every other item exists
    table.transact_write_items(TransactItems=[take(f"k{i}", f"new{i}", 100, 160 + i) for i in range(100)])
    for i in range(100):
        item = stored(table, f"k{i}")
        assert item is not None
        assert item["holder"] == {"S": f"new{i}"}
        assert item["expires_at"] == {"N": str(160 + i)}
        # if_not_exists read this item's own stored holder, or the value when it had none
        assert item["previous_holder"] == {"S": f"old{i}" if i % 2 == 0 else ""}


def test_a_cancelled_transaction_changes_nothing_and_names_each_item_whose_condition_failed(table: Any) -> None:
    put(table, "k0", "a", 10)
    put(table, "k1", "b", 500)  # held until 500
    put(table, "k2", "c", 10)
    put(table, "k3", "d", 500)  # held until 500
    before = {k: stored(table, k) for k in ("k0", "k1", "k2", "k3", "k4")}
    # The same condition and (apart from the key) the same values for every item: the
    # outcome differs only by what each item holds.
    items = [take(k, "x", 100, 160) for k in ("k0", "k1", "k2", "k3", "k4")]
    assert cancellation(table, items) == ["None", "ConditionalCheckFailed", "None", "ConditionalCheckFailed", "None"]
    assert {k: stored(table, k) for k in before} == before
    assert before["k4"] is None


def test_a_condition_seen_before_is_evaluated_on_the_item_as_stored_now(table: Any) -> None:
    put(table, "k0", "a", 10)
    table.transact_write_items(TransactItems=[take("k0", "x", 100, 160)])
    assert stored(table, "k0")["holder"] == {"S": "x"}  # type: ignore[index]
    put(table, "k0", "a", 500)  # someone else holds it now
    # The very same request as before: the condition is answered from today's item.
    assert cancellation(table, [take("k0", "x", 100, 160)]) == ["ConditionalCheckFailed"]
    assert stored(table, "k0") == {"lease_key": {"S": "k0"}, "holder": {"S": "a"}, "expires_at": {"N": "500"}}
    put(table, "k0", "a", 10)
    table.transact_write_items(TransactItems=[take("k0", "x", 100, 160)])
    assert stored(table, "k0")["previous_holder"] == {"S": "a"}  # type: ignore[index]


def test_a_condition_with_other_values_is_its_own(table: Any) -> None:
    put(table, "k0", "a", 150)
    assert cancellation(table, [take("k0", "x", 100, 160)]) == ["ConditionalCheckFailed"]
    table.transact_write_items(TransactItems=[take("k0", "x", 200, 260)])  # same text, :now past 150
    assert stored(table, "k0")["expires_at"] == {"N": "260"}  # type: ignore[index]


def test_an_update_of_the_key_is_refused_every_time_and_the_same_text_with_other_names_is_not(table: Any) -> None:
    put(table, "k0", "a", 10)
    request = {
        "TableName": TABLE, "Key": {"lease_key": {"S": "k0"}}, "UpdateExpression": "SET #n = :v",
        "ExpressionAttributeValues": {":v": {"S": "z"}},
    }
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            table.update_item(**request, ExpressionAttributeNames={"#n": "lease_key"})
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        assert "lease_key" in caught.value.response["Error"]["Message"]
    table.update_item(**request, ExpressionAttributeNames={"#n": "note"})
    assert stored(table, "k0")["note"] == {"S": "z"}  # type: ignore[index]
    with pytest.raises(ClientError):
        table.update_item(**request, ExpressionAttributeNames={"#n": "lease_key"})
    assert stored(table, "k0")["lease_key"] == {"S": "k0"}  # type: ignore[index]


def test_checks_of_the_stored_item_run_for_each_item_of_a_transaction(table: Any) -> None:
    table.put_item(TableName=TABLE, Item={"lease_key": {"S": "k0"}, "doc": {"M": {"a": {"S": "1"}}}})
    table.put_item(TableName=TABLE, Item={"lease_key": {"S": "k1"}})

    def nested(key: str) -> dict[str, Any]:
        return {"Update": {
            "TableName": TABLE, "Key": {"lease_key": {"S": key}}, "UpdateExpression": "SET doc.b = :v",
            "ExpressionAttributeValues": {":v": {"S": "2"}},
        }}

    table.transact_write_items(TransactItems=[nested("k0")])
    assert stored(table, "k0")["doc"] == {"M": {"a": {"S": "1"}, "b": {"S": "2"}}}  # type: ignore[index]
    # k1 has no doc: the same expression's path is invalid for it, and nothing is written.
    with pytest.raises(ClientError):
        table.transact_write_items(TransactItems=[nested("k0"), nested("k1")])
    assert stored(table, "k1") == {"lease_key": {"S": "k1"}}
    assert stored(table, "k0")["doc"] == {"M": {"a": {"S": "1"}, "b": {"S": "2"}}}  # type: ignore[index]


def test_an_undefined_value_is_refused_every_time(table: Any) -> None:
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            table.update_item(
                TableName=TABLE, Key={"lease_key": {"S": "k0"}}, UpdateExpression="SET holder = :missing",
                ExpressionAttributeValues={":other": {"S": "v"}},
            )
        assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert stored(table, "k0") is None


def test_a_malformed_condition_is_refused_every_time(table: Any) -> None:
    # moto in-process raises its parser's error as it is (moto server answers a 500).
    for _ in range(2):
        with pytest.raises(ValueError, match="Bad comparison"):
            table.update_item(
                TableName=TABLE, Key={"lease_key": {"S": "k0"}}, UpdateExpression="SET holder = :v",
                ConditionExpression="holder = = :v", ExpressionAttributeValues={":v": {"S": "v"}},
            )
    assert stored(table, "k0") is None


def test_every_attribute_type_reads_back_as_written(table: Any) -> None:
    item = {
        "lease_key": {"S": "k0"},
        "s": {"S": "text"}, "n": {"N": "12.5"}, "t": {"BOOL": True}, "f": {"BOOL": False}, "null": {"NULL": True},
        "b": {"B": b"\x00\x01bytes"}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": [b"x", b"y"]},
        "l": {"L": [{"S": "a"}, {"N": "1"}, {"BOOL": False}, {"L": [{"NULL": True}]}]},
        "m": {"M": {"S": {"S": "nested key named S"}, "inner": {"M": {"n": {"N": "3"}}}}},
    }
    table.put_item(TableName=TABLE, Item=item)
    got = stored(table, "k0")
    assert got is not None
    assert {k: v for k, v in got.items() if k not in ("ss", "ns", "bs")} == {k: v for k, v in item.items() if k not in ("ss", "ns", "bs")}
    assert sorted(got["ss"]["SS"]) == ["a", "b"] and sorted(got["ns"]["NS"]) == ["1", "2"] and sorted(got["bs"]["BS"]) == [b"x", b"y"]
    batch = table.batch_get_item(RequestItems={TABLE: {"Keys": [{"lease_key": {"S": "k0"}}], "ConsistentRead": True}})
    assert batch["Responses"][TABLE] == [got]


def test_a_set_used_in_a_condition_and_then_changed_in_the_item_does_not_change_the_condition(table: Any) -> None:
    # The condition's value is also what the update stores; the stored set then grows.
    request = {
        "TableName": TABLE, "Key": {"lease_key": {"S": "k0"}}, "UpdateExpression": "SET tags = :tags",
        "ConditionExpression": "attribute_not_exists(tags) OR tags = :tags",
        "ExpressionAttributeValues": {":tags": {"SS": ["a"]}},
    }
    table.update_item(**request)
    table.update_item(TableName=TABLE, Key={"lease_key": {"S": "k0"}}, UpdateExpression="ADD tags :more",
                      ExpressionAttributeValues={":more": {"SS": ["b"]}})
    assert sorted(stored(table, "k0")["tags"]["SS"]) == ["a", "b"]  # type: ignore[index]
    # The same request again: {"a"} is not the stored {"a", "b"}, so the condition fails.
    with pytest.raises(ClientError) as caught:
        table.update_item(**request)
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert sorted(stored(table, "k0")["tags"]["SS"]) == ["a", "b"]  # type: ignore[index]

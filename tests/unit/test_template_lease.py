"""The template's part of the write lease and ownership: a lock table, the target group's
tags, the permissions the lease needs, and the controller's name."""

from __future__ import annotations

from cachebridge import lease, nlb
from cachebridge.config import ENV_BINDINGS, Config
from cachebridge.deploy.template import build

TEMPLATE = build()
RESOURCES = TEMPLATE["Resources"]


def test_the_stack_has_a_lock_table_keyed_as_the_lease_expects() -> None:
    table = RESOURCES["LockTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["Properties"]["KeySchema"] == [{"AttributeName": lease.KEY_ATTRIBUTE, "KeyType": "HASH"}]
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert "TableName" not in table["Properties"]  # any number of stacks per account
    assert table["DeletionPolicy"] == "Delete"


def test_the_target_group_names_its_owner_and_its_lock_table() -> None:
    tags = {t["Key"]: t["Value"] for t in RESOURCES["TargetGroup"]["Properties"]["Tags"]}
    assert tags == {nlb.OWNER_TAG: {"Ref": "AWS::StackName"}, nlb.LOCK_TABLE_TAG: {"Ref": "LockTable"}}


def test_the_lease_needs_conditional_updates_and_batch_reads_on_its_own_table() -> None:
    statements = [
        s for p in RESOURCES["ControllerRole"]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]
        if "Action" in s  # the rest are Fn::If choices of other parts
    ]
    (lease_statement,) = [s for s in statements if any(str(a).startswith("dynamodb:") for a in s["Action"])]
    # UpdateItem covers the Update actions of TransactWriteItems; BatchGetItem reads the
    # records a batch took (no old values from a transaction).
    assert lease_statement["Action"] == ["dynamodb:UpdateItem", "dynamodb:BatchGetItem"]
    assert lease_statement["Resource"] == {"Fn::GetAtt": ["LockTable", "Arn"]}
    reads = next(s for s in statements if s["Resource"] == "*")
    assert "elasticloadbalancing:DescribeTags" in reads["Action"]


def test_the_controller_is_named_after_its_stack_the_owner_the_tag_names() -> None:
    variables = RESOURCES["ControllerFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["CACHEBRIDGE_CONTROLLER_ID"] == {"Ref": "AWS::StackName"}
    bindings = '[{"source": "elasticache://orders", "target_group": "tg"}]'
    config = Config.from_env({ENV_BINDINGS: bindings, "CACHEBRIDGE_CONTROLLER_ID": "orders-external"})
    assert config.settings.controller_id == "orders-external"


def test_the_controller_knows_its_lock_table_without_reading_the_groups_tags() -> None:
    # A throttled DescribeTags must not turn the stack's writes into unleased ones: the
    # table also reaches the function through its environment.
    variables = RESOURCES["ControllerFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["CACHEBRIDGE_LOCK_TABLE"] == {"Ref": "LockTable"}
    bindings = '[{"source": "elasticache://orders", "target_group": "tg"}]'
    config = Config.from_env({ENV_BINDINGS: bindings, "CACHEBRIDGE_LOCK_TABLE": "orders-external-LockTable-1ABC"})
    assert config.settings.lock_table == "orders-external-LockTable-1ABC"

"""The write lease's lock table: one controller at a time writes a target group
(``cachebridge.lease``); the table, the tags that name it, the statement and the
environment that let the controller use it."""

from __future__ import annotations

from typing import Any

from .cfn import _get_att, _ref, _skip

__all__: list[str] = []


def _lease_resources() -> dict[str, Any]:
    """The lock table: one small item per target group, written with conditional updates."""
    return {
        "LockTable": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Metadata": _skip(
                ("CKV_AWS_28", "holds a short-lived write lease per target group, nothing to restore"),
                ("CKV_AWS_119", "holds a lease holder's name and target addresses, nothing secret; encrypted at rest with an AWS owned key"),
            ),
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "lease_key", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "lease_key", "KeyType": "HASH"}],
            },
        },
    }


def _lease_tags() -> list[dict[str, Any]]:
    # nlb.OWNER_TAG and nlb.LOCK_TABLE_TAG: a CLI sync refuses a group another stack owns.
    return [
        {"Key": "cachebridge:owner", "Value": _ref("AWS::StackName")},
        {"Key": "cachebridge:lock-table", "Value": _ref("LockTable")},
    ]


def _lease_statement() -> dict[str, Any]:
    # lease.py takes and gives back leases with UpdateItem, or many at once with
    # TransactWriteItems of Update actions, whose records it reads with BatchGetItem.
    # "Permissions for Put, Update, Delete, and Get actions are governed by the permissions
    # used for the underlying PutItem, UpdateItem, DeleteItem, and GetItem operations"
    # (DynamoDB Developer Guide, "Using IAM with DynamoDB transactions"): no action of its
    # own for the transaction. BatchGetItem is an action of its own, dynamodb:BatchGetItem
    # ("IAM policy to grant read-only permissions on items in a DynamoDB table").
    return {
        "Sid": "WriteLeaseOnly",
        "Effect": "Allow",
        "Action": ["dynamodb:UpdateItem", "dynamodb:BatchGetItem"],
        "Resource": _get_att("LockTable", "Arn"),
    }


def _lease_environment() -> dict[str, Any]:
    # The controller's name is the stack's: the owner the target group's tag names. The
    # table comes in the environment too, not only from the group's tag: a tag read that
    # fails (throttled) must not turn the controller's writes into unleased ones.
    return {"CACHEBRIDGE_CONTROLLER_ID": _ref("AWS::StackName"), "CACHEBRIDGE_LOCK_TABLE": _ref("LockTable")}

"""TransactWriteItems at a cost per item, as on AWS.

moto 5.2.1's ``transact_write_items`` snapshots every table a transaction touches, to roll
back if an item fails, by deep-copying the whole table once per item of the transaction
(the same table again for each item, all before the first write). A 100-item transaction
on a lock table of 1,000 leases copied the table 100 times; copied once, it is still every
lease of the table, hundreds of milliseconds a call, under the DynamoDB lock (``atomic``)
that serves each call whole. AWS's documented cost is per item ("TransactWriteItems ...
groups up to 100 action requests"; each transactional write consumes capacity per item,
DynamoDB Developer Guide, "Capacity management for transactions"). cachebridge takes its
write leases 100 at a time, so a benchmark over 1,000 bindings would measure moto's
copying rather than the controller.

Here the snapshot a table gets within one ``transact_write_items`` call holds a deep copy
of only the items the transaction names (its ``Key``s, a ``Put``'s key attributes) and
shares every other item with the live table: a transaction writes no item it does not
name, and the call runs under ``atomic``'s DynamoDB lock, so nothing else writes them
meanwhile. Rolling back to it (moto puts the snapshot in the table's place) gives every
named item its state before the call, and every other item is as it was. A table with a
stream gets its own copy of the record list too, so a cancelled transaction leaves no
stream record (AWS writes none). Where the keys cannot be read (a malformed request moto
refuses later), the whole table is copied as moto does. Every other ``deepcopy`` in moto's
DynamoDB backend is left as it is.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

__all__ = ["install", "installed"]

_MARK = "_cachebridge_snapshot_named_items"
_active = threading.local()


class _Transaction:
    """What one ``transact_write_items`` call names, and the snapshots taken for it."""

    def __init__(self, transact_items: Any) -> None:
        self.keys: dict[str, list[dict[str, Any]]] = {}
        self.snapshots: dict[int, tuple[Any, Any]] = {}  # id(table) -> (table, snapshot)
        for item in transact_items if isinstance(transact_items, list) else ():
            if not isinstance(item, dict):
                continue
            for op_type, op in item.items():
                if isinstance(op, dict) and op.get("TableName"):
                    key = op.get("Item") if op_type == "Put" else op.get("Key")
                    self.keys.setdefault(op["TableName"], []).append(key if isinstance(key, dict) else {})


def _named(table: Any, keys: list[dict[str, Any]]) -> list[tuple[Any, Any]] | None:
    """The (hash, range) keys of ``table`` the transaction names; None if one is unreadable."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    named = []
    try:
        for key in keys:
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            named.append((hash_key, range_key))
    except (KeyError, TypeError, AttributeError):
        return None
    return named


def _snapshot(table: Any, keys: list[dict[str, Any]]) -> Any:
    named = _named(table, keys)
    if named is None:
        return copy.deepcopy(table)
    snapshot = copy.copy(table)
    live = table.items
    if table.range_key_attr:
        items: Any = defaultdict(dict, {h: dict(by_range) for h, by_range in live.items()})
        for hash_key, range_key in named:
            if hash_key in live and range_key in live[hash_key]:
                items[hash_key][range_key] = copy.deepcopy(live[hash_key][range_key])
    else:
        items = defaultdict(dict, live)
        for hash_key, _ in named:
            if hash_key in live:
                items[hash_key] = copy.deepcopy(live[hash_key])
    snapshot.items = items
    if getattr(table, "stream_shard", None) is not None:
        shard = copy.copy(table.stream_shard)
        shard.items = list(table.stream_shard.items)
        snapshot.stream_shard = shard
    return snapshot


class _SnapshotNamedItems:
    """Stands in for the ``copy`` module in moto's DynamoDB models module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        transaction = getattr(_active, "transaction", None)
        if transaction is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) not in transaction.snapshots:
            transaction.snapshots[id(value)] = (value, _snapshot(value, transaction.keys.get(value.name, [])))
        return transaction.snapshots[id(value)][1]


def _snapshot_named_items(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def transact_write_items(self: Any, transact_items: Any, *args: Any, **kwargs: Any) -> Any:
        outer = getattr(_active, "transaction", None)
        _active.transaction = _Transaction(transact_items)
        try:
            return method(self, transact_items, *args, **kwargs)
        finally:
            _active.transaction = outer

    setattr(transact_write_items, _MARK, True)
    return transact_write_items


def install() -> None:
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    if not isinstance(models.copy, _SnapshotNamedItems):
        models.copy = _SnapshotNamedItems()  # type: ignore[assignment]
    if not getattr(DynamoDBBackend.transact_write_items, _MARK, False):
        DynamoDBBackend.transact_write_items = _snapshot_named_items(DynamoDBBackend.transact_write_items)  # type: ignore[method-assign]


def installed() -> bool:
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    return isinstance(models.copy, _SnapshotNamedItems) and getattr(DynamoDBBackend.transact_write_items, _MARK, False)

"""TransactWriteItems at a cost per item, as on AWS.

moto 5.2.1's ``transact_write_items`` snapshots every table a transaction touches, to roll
back if an item fails, by deep-copying the table once per item of the transaction (the
same table again for each item, all before the first write). A 100-item transaction on a
lock table of 1,000 leases copies the table 100 times: seconds per call, where AWS's
documented cost is per item ("TransactWriteItems ... groups up to 100 action requests";
each transactional write consumes capacity per item, DynamoDB Developer Guide, "Capacity
management for transactions"). cachebridge takes its write leases 100 at a time, so a
benchmark over 1,000 bindings would measure moto's copying rather than the controller.

Here, within one ``transact_write_items`` call, each table is copied once: the copies
moto took were identical (no write happens between them), so the rollback state is the
same. Every other ``deepcopy`` in moto's DynamoDB backend is left as it is.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["install", "installed"]

_MARK = "_cachebridge_one_snapshot_per_table"
_active = threading.local()


class _CopyOncePerTable:
    """Stands in for the ``copy`` module in moto's DynamoDB models module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        snapshots = getattr(_active, "snapshots", None)
        if snapshots is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) not in snapshots:
            snapshots[id(value)] = (value, copy.deepcopy(value, memo))
        return snapshots[id(value)][1]


def _one_snapshot_per_table(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def transact_write_items(*args: Any, **kwargs: Any) -> Any:
        outer = getattr(_active, "snapshots", None)
        _active.snapshots = {}
        try:
            return method(*args, **kwargs)
        finally:
            _active.snapshots = outer

    setattr(transact_write_items, _MARK, True)
    return transact_write_items


def install() -> None:
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    if not isinstance(models.copy, _CopyOncePerTable):
        models.copy = _CopyOncePerTable()  # type: ignore[assignment]
    if not getattr(DynamoDBBackend.transact_write_items, _MARK, False):
        DynamoDBBackend.transact_write_items = _one_snapshot_per_table(DynamoDBBackend.transact_write_items)  # type: ignore[method-assign]


def installed() -> bool:
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    return isinstance(models.copy, _CopyOncePerTable) and getattr(DynamoDBBackend.transact_write_items, _MARK, False)

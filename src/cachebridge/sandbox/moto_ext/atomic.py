"""Requests that AWS serves atomically, served atomically.

moto 5.2.1 handles concurrent requests (threads of one process, or moto server's threads)
without a lock around its backends:

1. DynamoDB conditional writes. ``update_item``/``put_item``/``delete_item`` evaluate the
   condition, then write; two threads can both pass the check. On AWS a conditional write
   is atomic: "the write succeeds only if the condition evaluates to true" (DynamoDB
   Developer Guide, "Condition expressions"; UpdateItem API reference). cachebridge's write
   lease (``cachebridge.lease``) relies on exactly that.
2. elbv2 targets. RegisterTargets/DeregisterTargets change a dict that DescribeTargetHealth
   iterates; a concurrent write can fail the read ("dictionary changed size during
   iteration"). AWS answers each call from one consistent state.

Each of those backend methods runs under one lock per service here. Reads and writes of
other services are untouched.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["install", "installed"]

_MARK = "_cachebridge_atomic"
_DYNAMODB_METHODS = ("put_item", "update_item", "delete_item", "get_item", "transact_write_items")
_ELBV2_METHODS = ("register_targets", "deregister_targets", "describe_target_health")
_dynamodb_lock = threading.RLock()
_elbv2_lock = threading.RLock()


def _locked(method: Callable[..., Any], lock: Any) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    setattr(locked, _MARK, True)
    return locked


def _wrap(cls: type, names: tuple[str, ...], lock: Any) -> None:
    for name in names:
        method = getattr(cls, name)
        if not getattr(method, _MARK, False):
            setattr(cls, name, _locked(method, lock))


def install() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.elbv2.models import ELBv2Backend

    _wrap(DynamoDBBackend, _DYNAMODB_METHODS, _dynamodb_lock)
    _wrap(ELBv2Backend, _ELBV2_METHODS, _elbv2_lock)


def installed() -> bool:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.elbv2.models import ELBv2Backend

    return all(getattr(getattr(DynamoDBBackend, n), _MARK, False) for n in _DYNAMODB_METHODS) and all(
        getattr(getattr(ELBv2Backend, n), _MARK, False) for n in _ELBV2_METHODS
    )

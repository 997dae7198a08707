"""Requests that AWS serves atomically, served atomically.

moto 5.2.1 handles concurrent requests (threads of one process, or moto server's threads)
without a lock around its backends:

1. DynamoDB conditional writes. ``update_item``/``put_item``/``delete_item`` evaluate the
   condition, then write; two threads can both pass the check. On AWS a conditional write
   is atomic: "the write succeeds only if the condition evaluates to true" (DynamoDB
   Developer Guide, "Condition expressions"; UpdateItem API reference). cachebridge's write
   lease (``cachebridge.lease``) relies on exactly that.
2. elbv2 targets. RegisterTargets/DeregisterTargets change a target group's dict of
   targets that DescribeTargetHealth iterates; a concurrent write can fail the read
   ("dictionary changed size during iteration"). AWS answers each call from one
   consistent state of the target group it names.

The DynamoDB methods run under one lock for the service (a transaction spans items). The
elbv2 ones run under one lock per target group: each of those calls names exactly one
(``TargetGroupArn``), and nothing in the API or its documentation makes writes to one
target group wait for another's, so a process-wide lock would serialize what AWS serves
side by side. Reads and writes of other services are untouched.
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
_group_locks: dict[str, threading.RLock] = {}
_group_locks_guard = threading.Lock()


def _group_lock(target_group_arn: str) -> threading.RLock:
    """The lock of one target group (made on first use; a deleted group's stays, a few
    hundred bytes, as long as the process)."""
    with _group_locks_guard:
        lock = _group_locks.get(target_group_arn)
        if lock is None:
            lock = _group_locks[target_group_arn] = threading.RLock()
        return lock


def _locked(method: Callable[..., Any], lock: Any) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    setattr(locked, _MARK, True)
    return locked


def _locked_per_group(method: Callable[..., Any]) -> Callable[..., Any]:
    # Backend methods called as method(self, target_group_arn, ...), by moto's responses
    # positionally; by keyword too, for safety.
    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        arn = kwargs["target_group_arn"] if "target_group_arn" in kwargs else args[0]
        with _group_lock(str(arn)):
            return method(self, *args, **kwargs)

    setattr(locked, _MARK, True)
    return locked


def _wrap(cls: type, names: tuple[str, ...], lock: Any) -> None:
    for name in names:
        method = getattr(cls, name)
        if not getattr(method, _MARK, False):
            setattr(cls, name, _locked_per_group(method) if lock is None else _locked(method, lock))


def install() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.elbv2.models import ELBv2Backend

    _wrap(DynamoDBBackend, _DYNAMODB_METHODS, _dynamodb_lock)
    _wrap(ELBv2Backend, _ELBV2_METHODS, None)


def installed() -> bool:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.elbv2.models import ELBv2Backend

    return all(getattr(getattr(DynamoDBBackend, n), _MARK, False) for n in _DYNAMODB_METHODS) and all(
        getattr(getattr(ELBv2Backend, n), _MARK, False) for n in _ELBV2_METHODS
    )

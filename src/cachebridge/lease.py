"""Write leases: one controller at a time writes a target group.

Why a lease, and not only a careful protocol. Two controllers whose views disagree (a stale
resolver during a failover, a CLI run beside the Lambda) each want to remove the other's
target. Re-reading the group before deregistering narrows the window but cannot close it:
both re-reads can happen before both deregistrations, and the group ends empty. Checking
after the write and re-registering leaves it empty for that moment. The target group API
has no conditional write, so mutual exclusion has to come from a service that has one:
DynamoDB's conditional writes are atomic ("the write succeeds only if the condition
evaluates to true", DynamoDB Developer Guide, "Condition expressions"; UpdateItem is
strongly consistent for its item). With the lease held, the holder re-reads the group
(or keeps this pass's read when the record shows nobody can have written since, see
``writes``), plans, registers, then deregisters; nobody else deregisters meanwhile, and
the planner never deregisters the last desired target, so a live target always remains.

The lease is one item per target group in a small table (``lock_table``; the template
creates it and tags the target group ``cachebridge:lock-table``):

    lease_key       the target group ARN
    holder          a random id per acquisition; controller_id the holder's controller
    expires_at      epoch seconds; a crashed holder's lease lapses after LEASE_S (0 once
                    released)
    previous_expires_at, previous_holder
                    expires_at and holder as the holder found them when acquiring: the
                    previous holder's expiry if it never released (crashed), else 0
    released_at, released_holder
                    epoch seconds when a holder last gave the lease back (after its
                    writes), and which holder that was
    last_controller, last_desired, last_write_at
                    who last changed the group, to what, and when

``Lease.written_until`` is, from that record, the latest moment a previous holder could
have written the group: its ``released_at``, or its ``expires_at`` if it never released.
``writes`` uses it to skip the re-read of a group nobody can have written since this pass
read it.

Many at once. ``acquire_many`` takes up to ``BATCH`` leases in one ``TransactWriteItems``
(each item the same conditional update as ``acquire``), then reads their records in one
``BatchGetItem`` (a transaction returns no old values); ``release_many`` gives them back
the same way. A transaction is all or nothing, so an item whose condition failed (held
by someone else) is left out and the rest retried; anything else falls back to one
``acquire``/``release`` per item. Each key's outcome is its own: one group's busy lease
never costs another group its lease.

Failure modes, each safe: the table unavailable (throttled, denied, unreachable) means
``LeaseUnavailable``, on which ``sync`` registers but never deregisters; a lease held by
someone else past ``LEASE_WAIT_S`` means ``LeaseBusy`` and nothing written (the next run
retries). A holder stalled past its lease cannot be fenced (the NLB API takes no token),
so the holder checks, before every write, that its lease outlives the write's worst-case
duration (``aws.call_budget_s``); ``LEASE_S`` exceeds a whole critical section (health read,
register, deregister) with room for clock skew between machines.

Never fighting. Under the lease, the previous writer's record says whether another
controller set the group to something else within ``CONFLICT_HOLD_S``; if so this controller
refuses (an error naming the other controller) instead of undoing it, unless forced. Two
controllers that disagree therefore converge on the first writer's view with the second
reporting the conflict, rather than flipping the group on every run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .errors import LeaseBusy, LeaseUnavailable

__all__ = ["Lease", "LastWrite", "Leases", "LEASE_S", "LEASE_WAIT_S", "CONFLICT_HOLD_S", "KEY_ATTRIBUTE", "BATCH"]

# Longer than a critical section's worst case (three calls of aws.call_budget_s = 42 s).
LEASE_S = 60.0
# How long a controller waits for another's lease before giving up for this run.
LEASE_WAIT_S = 5.0
# How long a change made by another controller is not undone.
CONFLICT_HOLD_S = 300.0
KEY_ATTRIBUTE = "lease_key"
_POLL_S = 0.05
# TransactWriteItems "groups up to 100 action requests"; BatchGetItem "can contain as many
# as 100 items" (DynamoDB API Reference, TransactWriteItems and BatchGetItem).
BATCH = 100
# A BatchGetItem answer may leave keys unprocessed (throttling, size); asked again this
# many times, then the lease is taken again one at a time, which returns the record.
_BATCH_GET_TRIES = 3
# The acquire update. The copies of the old expires_at and holder come first, so they read
# the old values whether the actions apply in order or against the item as it was.
_ACQUIRE_UPDATE = (
    "SET previous_expires_at = if_not_exists(expires_at, :zero), previous_holder = if_not_exists(holder, :nobody), "
    "holder = :holder, "
    "controller_id = :controller, expires_at = :expires"
)
# The holder's own id keeps a retried call (response lost) from locking itself out.
_ACQUIRE_CONDITION = f"attribute_not_exists({KEY_ATTRIBUTE}) OR expires_at < :now OR holder = :holder"


@dataclass(frozen=True)
class LastWrite:
    controller: str
    desired: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class Lease:
    key: str
    holder: str
    controller: str
    acquired_monotonic: float
    duration_s: float
    last: LastWrite | None
    # Epoch seconds by which every earlier holder's writes ended; None when unknown.
    written_until: float | None = None

    def outlives(self, seconds: float, now_monotonic: float) -> bool:
        """Whether the lease is still held ``seconds`` from now (own clock, no skew)."""
        return now_monotonic + seconds < self.acquired_monotonic + self.duration_s


class Leases:
    """Leases in DynamoDB table ``table`` through ``client`` (a boto3 DynamoDB client)."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.table = table
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep

    def acquire(
        self, key: str, controller: str, *, wait_s: float = LEASE_WAIT_S, duration_s: float = LEASE_S, holder: str | None = None
    ) -> Lease:
        """Take the lease on ``key``, waiting up to ``wait_s`` for another holder.
        ``holder`` re-takes a lease this controller already holds (its record unread)."""
        holder = holder or uuid.uuid4().hex
        give_up = self.monotonic() + wait_s
        while True:
            started = self.monotonic()
            now = self.clock()
            try:
                response = self.client.update_item(
                    TableName=self.table,
                    Key={KEY_ATTRIBUTE: {"S": key}},
                    UpdateExpression=_ACQUIRE_UPDATE,
                    ConditionExpression=_ACQUIRE_CONDITION,
                    ExpressionAttributeValues=_acquire_values(holder, controller, now, duration_s),
                    ReturnValues="ALL_NEW",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise LeaseUnavailable(_describe(exc, self.table)) from None
                if self.monotonic() >= give_up:
                    raise LeaseBusy(f"target group {key} is being written by another controller; nothing written") from None
                self.sleep(_POLL_S)
                continue
            except BotoCoreError as exc:
                raise LeaseUnavailable(f"lock table {self.table}: {exc}") from None
            item = response.get("Attributes", {})
            return Lease(key, holder, controller, started, duration_s, _last_write(item), _written_until(item))

    def acquire_many(self, keys: Sequence[str], controller: str, *, duration_s: float = LEASE_S) -> dict[str, Lease]:
        """The leases on ``keys`` that could be taken at once, without waiting; a key left
        out is for its caller to ``acquire`` alone (held elsewhere, or the batch failed)."""
        taken: dict[str, Lease] = {}
        for start in range(0, len(keys), BATCH):
            taken.update(self._acquire_batch(list(dict.fromkeys(keys[start:start + BATCH])), controller, duration_s))
        return taken

    def _acquire_batch(self, keys: list[str], controller: str, duration_s: float) -> dict[str, Lease]:
        holders = {key: uuid.uuid4().hex for key in keys}
        pending = list(keys)
        while pending:
            started = self.monotonic()
            now = self.clock()
            items = [
                {"Update": {
                    "TableName": self.table,
                    "Key": {KEY_ATTRIBUTE: {"S": key}},
                    "UpdateExpression": _ACQUIRE_UPDATE,
                    "ConditionExpression": _ACQUIRE_CONDITION,
                    "ExpressionAttributeValues": _acquire_values(holders[key], controller, now, duration_s),
                }}
                for key in pending
            ]
            failed = self._transact(items)
            if failed is None:
                break
            if not failed:
                # Not a condition: the transaction may have been applied with its answer lost
                # (a read timeout), so each key is tried alone with the holder id it was
                # given, which passes the condition if the lease is already ours.
                return self._acquire_alone(pending, holders, controller, duration_s)
            pending = [key for i, key in enumerate(pending) if i not in failed]
        if not pending:
            return {}
        records = self._records(pending)
        taken: dict[str, Lease] = {}
        for key in pending:
            item = records.get(key)
            if item is not None and item.get("holder", {}).get("S") == holders[key]:
                taken[key] = Lease(key, holders[key], controller, started, duration_s, _last_write(item), _written_until(item))
                continue
            # Ours, record unread: take it again alone with the same holder id, which
            # passes the condition and returns the record (the copied expiry is then
            # ours, so written_until says "now": the group is re-read, never skipped).
            try:
                taken[key] = self.acquire(key, controller, wait_s=0.0, duration_s=duration_s, holder=holders[key])
            except (LeaseBusy, LeaseUnavailable):
                pass  # the caller tries it alone; an unreleased lease lapses by itself
        return taken

    def _acquire_alone(self, keys: list[str], holders: dict[str, str], controller: str, duration_s: float) -> dict[str, Lease]:
        taken: dict[str, Lease] = {}
        for key in keys:
            try:
                taken[key] = self.acquire(key, controller, wait_s=0.0, duration_s=duration_s, holder=holders[key])
            except (LeaseBusy, LeaseUnavailable):
                pass  # the caller tries it alone; an unreleased lease lapses by itself
        return taken

    def _transact(self, items: list[dict[str, Any]]) -> set[int] | None:
        """Run one transaction: None when it went through, else the positions whose
        condition failed (empty: it failed for another reason)."""
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                return set()
            reasons = exc.response.get("CancellationReasons") or []
            codes = [r.get("Code", "None") for r in reasons]
            failed = {i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"}
            # Only condition failures can be left out and the rest retried; a conflict,
            # throttling or a reason list that does not match the items cannot.
            if len(codes) != len(items) or any(code not in ("None", "ConditionalCheckFailed") for code in codes):
                return set()
            return failed
        except BotoCoreError:
            return set()
        return None

    def _records(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The lease records of ``keys`` (strongly consistent), as far as they could be read."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), BATCH):
            request: dict[str, Any] = {
                self.table: {"Keys": [{KEY_ATTRIBUTE: {"S": k}} for k in keys[start:start + BATCH]], "ConsistentRead": True}
            }
            for _ in range(_BATCH_GET_TRIES):
                try:
                    response = self.client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError):
                    break
                for item in response.get("Responses", {}).get(self.table, []):
                    # An item that does not name its key is not read: its lease is taken
                    # again alone (which returns the record), never stranded by a KeyError.
                    key = item.get(KEY_ATTRIBUTE, {}).get("S") if isinstance(item, dict) else None
                    if isinstance(key, str):
                        found[key] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                self.sleep(_POLL_S)
        return found

    def release(self, lease: Lease, wrote: Sequence[str] | None = None) -> None:
        """Give the lease back; ``wrote`` (the desired targets) records a change made."""
        update, names, values = _release_update(lease, wrote, self.clock())
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY_ATTRIBUTE: {"S": lease.key}},
                UpdateExpression=update,
                ConditionExpression="holder = :holder",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            raise LeaseUnavailable(_describe(exc, self.table)) from None
        except BotoCoreError as exc:
            raise LeaseUnavailable(f"lock table {self.table}: {exc}") from None

    def release_many(self, leases: Sequence[tuple[Lease, Sequence[str] | None]]) -> dict[str, str]:
        """Give leases back (each with what ``release`` takes), up to ``BATCH`` per
        transaction; returns, per key not released, why (the lease then lapses by itself)."""
        problems: dict[str, str] = {}
        for start in range(0, len(leases), BATCH):
            pending = list(leases[start:start + BATCH])
            while pending:
                items = []
                for lease, wrote in pending:
                    update, names, values = _release_update(lease, wrote, self.clock())
                    items.append({"Update": {
                        "TableName": self.table,
                        "Key": {KEY_ATTRIBUTE: {"S": lease.key}},
                        "UpdateExpression": update,
                        "ConditionExpression": "holder = :holder",
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }})
                failed = self._transact(items)
                if failed is None:
                    break
                if not failed:
                    for lease, wrote in pending:
                        try:
                            self.release(lease, wrote)
                        except LeaseUnavailable as exc:
                            problems[lease.key] = str(exc)
                    break
                for i in sorted(failed):
                    problems[pending[i][0].key] = (
                        f"lock table {self.table}: the lease on {pending[i][0].key} had lapsed and was taken by another holder"
                    )
                pending = [p for i, p in enumerate(pending) if i not in failed]
        return problems

    def conflict(self, lease: Lease, desired: Sequence[str]) -> str | None:
        """Why this controller must not undo another's recent change, or None."""
        last = lease.last
        if last is None or last.controller == lease.controller or set(last.desired) == set(desired):
            return None
        age = self.clock() - last.at
        if age >= CONFLICT_HOLD_S:
            return None
        return (
            f"controller {last.controller!r} set this target group to {', '.join(last.desired) or 'nothing'} "
            f"{max(age, 0):.0f} s ago and this controller's answer differs; not undoing it for another "
            f"{CONFLICT_HOLD_S - age:.0f} s (or until the views agree; --force overrides)"
        )


def _acquire_values(holder: str, controller: str, now: float, duration_s: float) -> dict[str, Any]:
    return {
        ":holder": {"S": holder},
        ":controller": {"S": controller},
        ":expires": {"N": repr(now + duration_s)},
        ":now": {"N": repr(now)},
        ":zero": {"N": "0"},
        ":nobody": {"S": ""},
    }


def _release_update(lease: Lease, wrote: Sequence[str] | None, now: float) -> tuple[str, dict[str, str], dict[str, Any]]:
    names = {"#expires": "expires_at"}
    values: dict[str, Any] = {":holder": {"S": lease.holder}, ":zero": {"N": "0"}, ":released": {"N": repr(now)}}
    update = "SET #expires = :zero, released_at = :released, released_holder = :holder"
    if wrote is not None:
        update += ", last_controller = :controller, last_desired = :desired, last_write_at = :at"
        values[":controller"] = {"S": lease.controller}
        values[":desired"] = {"L": [{"S": t} for t in sorted(wrote)]}
        values[":at"] = {"N": repr(now)}
    return update, names, values


def _written_until(item: dict[str, Any]) -> float | None:
    """From a record just acquired: when the previous holders' writes ended at the latest,
    or None when the record cannot tell."""
    try:
        previous = item["previous_holder"]["S"]
        expired = float(item["previous_expires_at"]["N"])
        if not previous:
            return 0.0  # nobody held this lease before
        if expired > 0:
            return expired  # never released (crashed, or a lost response of our own)
        if item.get("released_holder", {}).get("S") == previous:
            return float(item["released_at"]["N"])
    except (KeyError, TypeError, ValueError):
        pass
    # Released by a holder that records no release time (an older cachebridge): unknown.
    return None


def _last_write(item: dict[str, Any]) -> LastWrite | None:
    try:
        return LastWrite(
            item["last_controller"]["S"],
            tuple(v["S"] for v in item["last_desired"]["L"]),
            float(item["last_write_at"]["N"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _describe(exc: ClientError, table: str) -> str:
    error = exc.response.get("Error", {})
    return f"lock table {table}: {error.get('Code', '')}: {error.get('Message', '') or exc}"

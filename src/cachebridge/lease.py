"""Write leases: one controller at a time writes a target group.

Why a lease, and not only a careful protocol. Two controllers whose views disagree (a stale
resolver during a failover, a CLI run beside the Lambda) each want to remove the other's
target. Re-reading the group before deregistering narrows the window but cannot close it:
both re-reads can happen before both deregistrations, and the group ends empty. Checking
after the write and re-registering leaves it empty for that moment. The target group API
has no conditional write, so mutual exclusion has to come from a service that has one:
DynamoDB's conditional writes are atomic ("the write succeeds only if the condition
evaluates to true", DynamoDB Developer Guide, "Condition expressions"; UpdateItem is
strongly consistent for its item). With the lease held, the holder re-reads the group,
plans, registers, then deregisters; nobody else deregisters meanwhile, and the planner
never deregisters the last desired target, so a live target always remains.

The lease is one item per target group in a small table (``lock_table``; the template
creates it and tags the target group ``cachebridge:lock-table``):

    lease_key       the target group ARN
    holder          a random id per acquisition; controller_id the holder's controller
    expires_at      epoch seconds; a crashed holder's lease lapses after LEASE_S
    last_controller, last_desired, last_write_at
                    who last changed the group, to what, and when

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

__all__ = ["Lease", "LastWrite", "Leases", "LEASE_S", "LEASE_WAIT_S", "CONFLICT_HOLD_S", "KEY_ATTRIBUTE"]

# Longer than a critical section's worst case (three calls of aws.call_budget_s = 42 s).
LEASE_S = 60.0
# How long a controller waits for another's lease before giving up for this run.
LEASE_WAIT_S = 5.0
# How long a change made by another controller is not undone.
CONFLICT_HOLD_S = 300.0
KEY_ATTRIBUTE = "lease_key"
_POLL_S = 0.05


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

    def acquire(self, key: str, controller: str, *, wait_s: float = LEASE_WAIT_S, duration_s: float = LEASE_S) -> Lease:
        """Take the lease on ``key``, waiting up to ``wait_s`` for another holder."""
        holder = uuid.uuid4().hex
        give_up = self.monotonic() + wait_s
        while True:
            started = self.monotonic()
            now = self.clock()
            try:
                response = self.client.update_item(
                    TableName=self.table,
                    Key={KEY_ATTRIBUTE: {"S": key}},
                    UpdateExpression="SET holder = :holder, controller_id = :controller, expires_at = :expires",
                    # The holder's own id keeps a retried call (response lost) from locking
                    # itself out.
                    ConditionExpression=f"attribute_not_exists({KEY_ATTRIBUTE}) OR expires_at < :now OR holder = :holder",
                    ExpressionAttributeValues={
                        ":holder": {"S": holder},
                        ":controller": {"S": controller},
                        ":expires": {"N": repr(now + duration_s)},
                        ":now": {"N": repr(now)},
                    },
                    ReturnValues="ALL_OLD",
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
            return Lease(key, holder, controller, started, duration_s, _last_write(response.get("Attributes", {})))

    def release(self, lease: Lease, wrote: Sequence[str] | None = None) -> None:
        """Give the lease back; ``wrote`` (the desired targets) records a change made."""
        names = {"#expires": "expires_at"}
        values: dict[str, Any] = {":holder": {"S": lease.holder}, ":zero": {"N": "0"}}
        update = "SET #expires = :zero"
        if wrote is not None:
            update += ", last_controller = :controller, last_desired = :desired, last_write_at = :at"
            values[":controller"] = {"S": lease.controller}
            values[":desired"] = {"L": [{"S": t} for t in sorted(wrote)]}
            values[":at"] = {"N": repr(self.clock())}
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

"""The CloudFormation verbs cachebridge needs (``Stacks``: change sets, events, deletion),
and the stack events and failures they report."""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from ..errors import DeployError
from .clients import _code, _message

__all__ = ["DEFAULT_POLL_S", "DEFAULT_TIMEOUT_S", "StackEvent", "ResourceFailure", "Stacks"]


DEFAULT_POLL_S = 5.0
DEFAULT_TIMEOUT_S = 3600.0
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


@dataclass(frozen=True)
class StackEvent:
    event_id: str
    timestamp: datetime | None
    logical_id: str
    resource_type: str
    status: str
    reason: str | None = None
    physical_id: str | None = None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> StackEvent:
        return cls(
            event_id=raw.get("EventId", ""),
            timestamp=raw.get("Timestamp"),
            logical_id=raw.get("LogicalResourceId", ""),
            resource_type=raw.get("ResourceType", ""),
            status=raw.get("ResourceStatus", ""),
            reason=raw.get("ResourceStatusReason") or None,
            physical_id=raw.get("PhysicalResourceId") or None,
        )

    @property
    def is_stack(self) -> bool:
        return self.resource_type == "AWS::CloudFormation::Stack"

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "logical_id": self.logical_id,
            "resource_type": self.resource_type,
            "status": self.status,
            "reason": self.reason,
            "physical_id": self.physical_id,
        }


@dataclass(frozen=True)
class ResourceFailure:
    logical_id: str
    resource_type: str
    status: str
    reason: str

    def __str__(self) -> str:
        return f"{self.logical_id} ({self.resource_type}) {self.status}: {self.reason}"

    def to_json(self) -> dict[str, str]:
        return {"logical_id": self.logical_id, "resource_type": self.resource_type, "status": self.status, "reason": self.reason}


_CANCELLED = ("Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled")


def _failures(events: Sequence[StackEvent]) -> tuple[ResourceFailure, ...]:
    """Failing resources, the cause first: resources that failed on their own before those
    cancelled because of them, and the stack's own reason only when no resource says more."""
    resources = [e for e in events if e.failed and not e.is_stack]
    own = [e for e in resources if (e.reason or "") not in _CANCELLED]
    chosen = own + [e for e in resources if e not in own]
    if not chosen:
        chosen = [e for e in events if e.is_stack and (e.failed or e.status.endswith("ROLLBACK_IN_PROGRESS")) and e.reason]
    seen: set[str] = set()
    failures = []
    for e in chosen:
        if e.logical_id in seen:
            continue
        seen.add(e.logical_id)
        failures.append(ResourceFailure(e.logical_id, e.resource_type, e.status, e.reason or "no reason given"))
    return tuple(failures)


class Stacks:
    """CloudFormation verbs cachebridge needs, over one injected client."""

    def __init__(
        self,
        cloudformation: Any,
        *,
        poll_s: float = DEFAULT_POLL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfn = cloudformation
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.clock = clock

    def describe(self, name_or_id: str) -> dict[str, Any] | None:
        try:
            stacks = self.cfn.describe_stacks(StackName=name_or_id)["Stacks"]
        except ClientError as exc:
            if _code(exc) == "ValidationError" and "does not exist" in _message(exc):
                return None
            raise DeployError(f"DescribeStacks {name_or_id}: {_message(exc)}") from None
        return stacks[0] if stacks else None

    @staticmethod
    def outputs(stack: Mapping[str, Any]) -> dict[str, str]:
        return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}

    @staticmethod
    def parameters(stack: Mapping[str, Any]) -> dict[str, str]:
        return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}

    def event_ids(self, stack_id: str) -> set[str]:
        return {e.event_id for e in self._events(stack_id, set())}

    def _events(self, stack_id: str, seen: set[str], max_pages: int = 50) -> list[StackEvent]:
        """Events not in ``seen``, oldest first (the API pages newest first)."""
        found: list[StackEvent] = []
        token: str | None = None
        for _ in range(max_pages):
            kwargs: dict[str, Any] = {"StackName": stack_id}
            if token:
                kwargs["NextToken"] = token
            try:
                page = self.cfn.describe_stack_events(**kwargs)
            except ClientError as exc:
                raise DeployError(f"DescribeStackEvents {stack_id}: {_message(exc)}") from None
            reached_seen = False
            for raw in page.get("StackEvents", []):
                event = StackEvent.from_api(raw)
                if event.event_id in seen:
                    reached_seen = True
                    break
                found.append(event)
            token = page.get("NextToken")
            if reached_seen or not token:
                break
        return list(reversed(found))

    def follow(self, stack_id: str, seen: set[str], on_event: Callable[[StackEvent], None] | None) -> tuple[str, list[StackEvent]]:
        """Report new events until the stack reaches a final status; return it and the events."""
        collected: list[StackEvent] = []
        deadline = self.clock() + self.timeout_s
        while True:
            for event in self._events(stack_id, seen):
                seen.add(event.event_id)
                collected.append(event)
                if on_event is not None:
                    on_event(event)
            stack = self.describe(stack_id)
            status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
            # Anything *_IN_PROGRESS is still moving, REVIEW_IN_PROGRESS included: right
            # after ExecuteChangeSet a new stack may still say that.
            if not status.endswith("_IN_PROGRESS"):
                for event in self._events(stack_id, seen) if stack else []:  # the final events
                    seen.add(event.event_id)
                    collected.append(event)
                    if on_event is not None:
                        on_event(event)
                return status, collected
            if self.clock() >= deadline:
                raise DeployError(f"stack {stack_id}: still {status} after {self.timeout_s:g} s", _failures(collected), status)
            self.sleep(self.poll_s)

    def create_change_set(
        self,
        stack_name: str,
        change_set_type: str,
        template_source: Mapping[str, str],
        parameters: Mapping[str, str],
    ) -> tuple[str | None, str | None, str | None]:
        """``(change set id, stack id, None)``, or ``(None, stack id, reason)`` when there
        is nothing to change."""
        name = f"cachebridge-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        try:
            created = self.cfn.create_change_set(
                StackName=stack_name,
                ChangeSetName=name,
                ChangeSetType=change_set_type,
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
                Capabilities=["CAPABILITY_IAM"],
                Description="cachebridge deploy",
                **template_source,
            )
        except ClientError as exc:
            if any(text in _message(exc) for text in _NO_CHANGES):
                return None, None, _message(exc)
            raise DeployError(f"CreateChangeSet for {stack_name}: {_message(exc)}") from None
        change_set_id = created["Id"]
        delay = max(1, math.ceil(self.poll_s))
        try:
            self.cfn.get_waiter("change_set_create_complete").wait(
                ChangeSetName=change_set_id,
                StackName=stack_name,
                WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(self.timeout_s / delay))},
            )
        except WaiterError:
            described = self.cfn.describe_change_set(ChangeSetName=change_set_id, StackName=stack_name)
            reason = described.get("StatusReason") or described.get("Status", "FAILED")
            if any(text in reason for text in _NO_CHANGES):
                self.delete_change_set(change_set_id)
                return None, created.get("StackId"), reason
            self.delete_change_set(change_set_id)
            raise DeployError(f"change set for {stack_name} failed: {reason}") from None
        return change_set_id, created.get("StackId"), None

    def changes(self, change_set_id: str) -> list[dict[str, str]]:
        """``{"action", "logical_id", "resource_type", "replacement"}`` per planned change."""
        try:
            described = self.cfn.describe_change_set(ChangeSetName=change_set_id)
        except ClientError as exc:
            raise DeployError(f"DescribeChangeSet: {_message(exc)}") from None
        planned = []
        for change in described.get("Changes", []):
            resource = change.get("ResourceChange") or {}
            planned.append(
                {
                    "action": resource.get("Action", "?"),
                    "logical_id": resource.get("LogicalResourceId", "?"),
                    "resource_type": resource.get("ResourceType", ""),
                    "replacement": resource.get("Replacement", ""),
                }
            )
        return planned

    def discard_review_stack(self, stack_name: str) -> None:
        """Delete the empty stack a failed CREATE change set leaves (REVIEW_IN_PROGRESS)."""
        stack = self.describe(stack_name)
        if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
            with contextlib.suppress(ClientError):
                self.cfn.delete_stack(StackName=stack["StackId"])

    def delete_change_set(self, change_set_id: str) -> None:
        with contextlib.suppress(ClientError):
            self.cfn.delete_change_set(ChangeSetName=change_set_id)

    def execute(self, change_set_id: str) -> None:
        try:
            self.cfn.execute_change_set(ChangeSetName=change_set_id)
        except ClientError as exc:
            raise DeployError(f"ExecuteChangeSet: {_message(exc)}") from None

    def delete(self, stack_id: str) -> None:
        try:
            self.cfn.delete_stack(StackName=stack_id)
        except ClientError as exc:
            raise DeployError(f"DeleteStack {stack_id}: {_message(exc)}") from None

"""Read-only typed views over the events the Lambda function receives.

Three kinds of event reach the handler:

- an EventBridge **schedule** (``source`` ``aws.events``, ``detail-type`` ``Scheduled
  Event``): the safety net, a plain sync of every binding;
- an **SNS notification** from ElastiCache (node-based clusters publish their events to
  SNS only, one topic per cluster): a topology event syncs the bindings that follow the
  named replication group, re-reading the source for a bounded time because
  ``FailoverComplete`` can arrive before DNS and ``CurrentRole`` flip;
- a **direct invoke**: ``{"action": "sync", "dry_run": false}`` or ``{"action": "status"}``.

Each view is an immutable ``Mapping`` over the raw payload (``raw_event``) with snake_case
properties nested like the payload (``SNSEvent.records -> SNSRecord.sns -> SNSMessage``).
``parse_event`` reads any of them into a ``ParsedEvent`` that carries the ``Trigger`` for
``sync()``; anything malformed or unknown raises ``EventError``.

The ElastiCache SNS ``Message`` is a JSON object whose one ``ElastiCache:*`` key is the
event name and whose value names the replication group or cache cluster, sometimes with
more keys::

    {"ElastiCache:FailoverComplete": "orders", "Cache Cluster ID": "orders-002"}

The documented plain-text form ``ElastiCache:FailoverComplete : orders`` is read too
(ElastiCache User Guide, "Event Notifications and Amazon SNS": the table's Message column
reads ``ElastiCache:AddCacheNodeComplete : cache-cluster``).

A notification topic can be shared (the account's ops topic, a test publish from the
console). A message that does not name an ElastiCache event at all is someone else's: it
is reported in ``ParsedEvent.foreign`` and ignored, so it never fails the invocation nor
triggers Lambda's retries. A message that names an ``ElastiCache:`` event but cannot be
read is still an ``EventError``: it may be a failover the controller would miss.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import EventError
from .inputs import InputRejected, check_tree, load_json
from .sync import Trigger

__all__ = [
    "TOPOLOGY_EVENTS",
    "KNOWN_EVENTS",
    "DictWrapper",
    "ScheduledEvent",
    "SNSEvent",
    "SNSRecord",
    "SNSMessage",
    "ElastiCacheNotification",
    "DirectInvokeEvent",
    "ParsedEvent",
    "parse_event",
]

EVENT_PREFIX = "ElastiCache:"

# Events after which a member's role or address can differ, so the bindings that follow
# the named group are synced, re-reading the source until it changes (bounded wait):
TOPOLOGY_EVENTS: frozenset[str] = frozenset({
    "ElastiCache:FailoverComplete",                   # a replica was promoted to primary
    "ElastiCache:CacheNodeReplaceComplete",           # a node's host was replaced: its IP can change
    "ElastiCache:CacheClusterProvisioningComplete",   # a new member (e.g. an added replica) is ready
    "ElastiCache:ReplicationGroupIncreaseReplicaCountFinished",
    "ElastiCache:ReplicationGroupDecreaseReplicaCountFinished",
    "ElastiCache:AddCacheNodeComplete",
    "ElastiCache:RemoveCacheNodeComplete",
    "ElastiCache:DeleteCacheClusterComplete",         # a member (e.g. a replica) is gone
    "ElastiCache:CacheClusterScalingComplete",        # a node type change replaces the nodes
    "ElastiCache:ReplicationGroupScalingComplete",
    "ElastiCache:ModifyReplicationGroupShardConfigurationComplete",
    "ElastiCache:CreateReplicationGroupComplete",     # the group's first primary exists
})

# The other documented ElastiCache events: acknowledged and ignored (no sync). Any other
# ``ElastiCache:*`` name is ignored too; the list only lets the plain-text form omit the
# ``ElastiCache:`` prefix, as some of the documented messages do.
KNOWN_EVENTS: frozenset[str] = TOPOLOGY_EVENTS | frozenset({
    "ElastiCache:AddCacheNodeFailed",
    "ElastiCache:CacheClusterParametersChanged",
    "ElastiCache:CacheClusterProvisioningFailed",
    "ElastiCache:CacheClusterScalingFailed",
    "ElastiCache:CacheClusterSecurityGroupModified",
    "ElastiCache:CacheNodeReplaceStarted",
    "ElastiCache:CacheNodesRebooted",
    "ElastiCache:CertificateRenewalComplete",
    "ElastiCache:NodeReplacementCanceled",
    "ElastiCache:NodeReplacementRescheduled",
    "ElastiCache:NodeReplacementScheduled",
    "ElastiCache:ReplicationGroupIncreaseReplicaCountStarted",
    "ElastiCache:ReplicationGroupDecreaseReplicaCountStarted",
    "ElastiCache:ReplicationGroupScalingFailed",
    "ElastiCache:ServiceUpdateAvailableForNode",
    "ElastiCache:SnapshotComplete",
    "ElastiCache:SnapshotFailed",
})

_SOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,99}$")
# "ElastiCache:Name : source", "ElastiCache:Name source", "Name : source" or "ElastiCache:Name".
_PLAIN = re.compile(
    r"^(?P<prefix>ElastiCache:)?(?P<name>[A-Za-z][A-Za-z0-9]*)(?:(?:\s*:\s*|\s+)(?P<source>[^\s:]\S*))?(?:\s*:)?$"
)
_MASK = "*****"
# SNS messages are at most 256 KB (https://docs.aws.amazon.com/sns/latest/dg/large-message-payloads.html);
# an ElastiCache notification is a few hundred bytes.
MAX_MESSAGE_BYTES = 256 * 1024
# An SNS event is five levels deep (Records[i].Sns.MessageAttributes.NAME.Value).
MAX_EVENT_DEPTH = 16


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        keys = ", ".join(sorted(map(str, value))[:8])
        return f"an object with keys [{keys}]" if keys else "an empty object"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


class DictWrapper(Mapping[str, Any]):
    """An immutable view over one raw event (or part of one).

    ``raw_event`` is the payload as received. ``str()`` masks ``_sensitive_keys``."""

    __slots__ = ("_data",)
    _sensitive_keys: frozenset[str] = frozenset()

    def __init__(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise EventError(f"{type(self).__name__}: expected an object, got {_describe(data)}")
        object.__setattr__(self, "_data", data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    @property
    def raw_event(self) -> Mapping[str, Any]:
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __str__(self) -> str:
        shown = {k: (_MASK if k in self._sensitive_keys else v) for k, v in self._data.items()}
        return f"{type(self).__name__}({shown!r})"

    __repr__ = __str__


# -- EventBridge schedule -------------------------------------------------------------------


class ScheduledEvent(DictWrapper):
    """An EventBridge ``Scheduled Event`` (a rule with ``rate(...)`` or ``cron(...)``)."""

    __slots__ = ()

    @property
    def get_id(self) -> str | None:
        """The event id (named so it does not shadow the ``id`` builtin)."""
        return self.get("id")

    @property
    def version(self) -> str | None:
        return self.get("version")

    @property
    def source(self) -> str | None:
        return self.get("source")

    @property
    def detail_type(self) -> str | None:
        return self.get("detail-type")

    @property
    def account(self) -> str | None:
        return self.get("account")

    @property
    def region(self) -> str | None:
        return self.get("region")

    @property
    def time(self) -> str | None:
        return self.get("time")

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(self.get("resources") or ())

    @property
    def rule_arn(self) -> str | None:
        return self.resources[0] if self.resources else None

    @property
    def detail(self) -> Mapping[str, Any]:
        return self.get("detail") or {}

    @property
    def trigger(self) -> Trigger:
        return Trigger(kind="schedule")


# -- SNS --------------------------------------------------------------------------------------


class SNSMessage(DictWrapper):
    """The ``Sns`` object of a record."""

    __slots__ = ()
    _sensitive_keys = frozenset({"Signature", "SigningCertUrl", "SigningCertURL", "UnsubscribeUrl", "UnsubscribeURL"})

    @property
    def type(self) -> str | None:
        return self.get("Type")

    @property
    def message_id(self) -> str | None:
        return self.get("MessageId")

    @property
    def topic_arn(self) -> str | None:
        return self.get("TopicArn")

    @property
    def subject(self) -> str | None:
        return self.get("Subject")

    @property
    def message(self) -> str:
        return self["Message"]

    @property
    def timestamp(self) -> str | None:
        return self.get("Timestamp")

    @property
    def signature_version(self) -> str | None:
        return self.get("SignatureVersion")

    @property
    def signature(self) -> str | None:
        return self.get("Signature")

    @property
    def signing_cert_url(self) -> str | None:
        return self.get("SigningCertUrl", self.get("SigningCertURL"))

    @property
    def unsubscribe_url(self) -> str | None:
        return self.get("UnsubscribeUrl", self.get("UnsubscribeURL"))

    @property
    def message_attributes(self) -> Mapping[str, Any]:
        return self.get("MessageAttributes") or {}


class SNSRecord(DictWrapper):
    """One entry of ``Records``."""

    __slots__ = ()

    @property
    def event_source(self) -> str | None:
        return self.get("EventSource")

    @property
    def event_version(self) -> str | None:
        return self.get("EventVersion")

    @property
    def event_subscription_arn(self) -> str | None:
        return self.get("EventSubscriptionArn")

    @property
    def sns(self) -> SNSMessage:
        return SNSMessage(self["Sns"])


class SNSEvent(DictWrapper):
    """What Lambda receives from an SNS subscription (one record in practice)."""

    __slots__ = ()

    @property
    def records(self) -> Iterator[SNSRecord]:
        for record in self["Records"]:
            yield SNSRecord(record)

    @property
    def record(self) -> SNSRecord:
        """The first record."""
        return next(self.records)

    @property
    def sns_message(self) -> str:
        """The first record's ``Message``."""
        return self.record.sns.message


class ElastiCacheNotification(DictWrapper):
    """An ElastiCache event read from an SNS ``Message``.

    The mapping is the message object (``{"ElastiCache:FailoverComplete": "orders", ...}``);
    the plain-text form is read into the same shape."""

    __slots__ = ()

    @classmethod
    def from_message(cls, message: Any) -> "ElastiCacheNotification":
        if not isinstance(message, str) or not message.strip():
            raise EventError(f"SNS Message: expected a non-empty string, got {_describe(message)}")
        text = message.strip()
        if text.startswith("{"):
            try:
                data = load_json(text, max_bytes=MAX_MESSAGE_BYTES)
            except InputRejected as exc:
                raise EventError(f"SNS Message: {exc}") from None
            if not isinstance(data, dict):
                raise EventError(f"SNS Message: expected a JSON object, got {_describe(data)}")
        else:
            data = cls._parse_plain(text)
        return cls(data)

    @staticmethod
    def _parse_plain(text: str) -> dict[str, str]:
        match = _PLAIN.match(text)
        name = f"{EVENT_PREFIX}{match['name']}" if match else None
        if match is None or (not match["prefix"] and name not in KNOWN_EVENTS):
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise EventError(
                f"SNS Message {shown!r} is not an ElastiCache notification "
                "(expected a JSON object such as {\"ElastiCache:FailoverComplete\": \"my-group\"} "
                "or the text 'ElastiCache:FailoverComplete : my-group')"
            )
        return {name: match["source"] or ""}

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        names = [k for k in data if isinstance(k, str) and k.startswith(EVENT_PREFIX)]
        if not names:
            keys = ", ".join(sorted(map(str, data))[:8]) or "none"
            raise EventError(f"SNS Message is not an ElastiCache notification: no 'ElastiCache:<Event>' key (keys: {keys})")
        if len(names) > 1:
            raise EventError(f"SNS Message names more than one ElastiCache event: {', '.join(sorted(names))}")
        name = names[0]
        if not re.fullmatch(r"ElastiCache:[A-Za-z][A-Za-z0-9]*", name):
            raise EventError(f"SNS Message: {name!r} is not an ElastiCache event name")
        value = data[name]
        if not isinstance(value, str):
            raise EventError(f"SNS Message: {name} names {_describe(value)}, expected a replication group or cluster id")
        value = value.strip()
        if value and not _SOURCE_ID.match(value):
            raise EventError(f"SNS Message: {name} names {value!r}, which is not a replication group or cluster id")
        if not value and name in TOPOLOGY_EVENTS:
            raise EventError(f"SNS Message: {name} does not name a replication group or cluster")

    @property
    def event_name(self) -> str:
        """The full name, e.g. ``ElastiCache:FailoverComplete``."""
        return next(k for k in self if k.startswith(EVENT_PREFIX))

    @property
    def event(self) -> str:
        """The short name, e.g. ``FailoverComplete``."""
        return self.event_name[len(EVENT_PREFIX):]

    @property
    def source_id(self) -> str | None:
        """The replication group or cache cluster the event is about."""
        return self[self.event_name].strip() or None

    @property
    def cache_cluster_id(self) -> str | None:
        value = self.get("Cache Cluster ID")
        return value if isinstance(value, str) and value else None

    @property
    def details(self) -> Mapping[str, Any]:
        """Every key besides the event name."""
        return {k: v for k, v in self.items() if k != self.event_name}

    @property
    def is_topology(self) -> bool:
        return self.event_name in TOPOLOGY_EVENTS

    @property
    def trigger(self) -> Trigger | None:
        """The sync this event asks for, or ``None`` when it is acknowledged and ignored."""
        if not self.is_topology:
            return None
        return Trigger(kind="event", replication_group=self.source_id, event=self.event_name, wait_for_change=True)


# -- direct invoke ------------------------------------------------------------------------------

ACTIONS = ("sync", "status")
_ACTION_KEYS = {"sync": frozenset({"action", "dry_run"}), "status": frozenset({"action"})}


class DirectInvokeEvent(DictWrapper):
    """``{"action": "sync", "dry_run": false}`` or ``{"action": "status"}``.

    ``status`` reads everything and changes nothing, like a dry run."""

    __slots__ = ()

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        action = data.get("action")
        if action not in ACTIONS:
            raise EventError(f"direct invoke: unknown action {action!r} (accepted: {', '.join(ACTIONS)})")
        unknown = sorted(set(map(str, data)) - _ACTION_KEYS[action])
        if unknown:
            accepted = ", ".join(sorted(_ACTION_KEYS[action]))
            raise EventError(f"direct invoke: unknown key(s) {unknown} for action {action!r} (accepted: {accepted})")
        if "dry_run" in data and not isinstance(data["dry_run"], bool):
            raise EventError(f"direct invoke: dry_run must be true or false, not {data['dry_run']!r}")

    @property
    def action(self) -> Literal["sync", "status"]:
        return self["action"]

    @property
    def dry_run(self) -> bool:
        return self.action == "status" or bool(self.get("dry_run", False))

    @property
    def trigger(self) -> Trigger:
        return Trigger(kind="invoke")


# -- parse_event --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedEvent:
    """What an event asks for.

    ``trigger`` is ``None`` when the event is acknowledged and ignored (``reason`` says
    why). ``direct`` events return the full report; ``raise_on_failure`` is false only for
    ``status``, whose purpose is to show failures."""

    kind: Literal["schedule", "sns", "invoke"]
    view: DictWrapper
    trigger: Trigger | None
    action: Literal["sync", "status"] = "sync"
    dry_run: bool = False
    reason: str | None = None
    notifications: tuple[ElastiCacheNotification, ...] = ()
    foreign: tuple[str, ...] = ()  # SNS messages that are not ElastiCache notifications

    @property
    def ignored(self) -> bool:
        return self.trigger is None

    @property
    def direct(self) -> bool:
        return self.kind == "invoke"

    @property
    def raise_on_failure(self) -> bool:
        return self.action != "status"

    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(n.event_name for n in self.notifications)


def parse_event(raw: Any) -> ParsedEvent:
    """Read a raw Lambda event. Raises ``EventError`` for anything malformed or unknown."""
    if not isinstance(raw, Mapping):
        raise EventError(f"unsupported event: expected a JSON object, got {_describe(raw)}")
    try:
        check_tree(raw, max_depth=MAX_EVENT_DEPTH)
    except InputRejected as exc:
        raise EventError(f"event{'.' + exc.path if exc.path else ''}: {exc}") from None
    if "Records" in raw:
        return _parse_sns(raw)
    if "detail-type" in raw or raw.get("source") == "aws.events":
        return _parse_eventbridge(raw)
    if "action" in raw:
        view = DirectInvokeEvent(raw)
        return ParsedEvent("invoke", view, view.trigger, view.action, view.dry_run)
    raise EventError(
        f"unsupported event: {_describe(raw)}; expected an EventBridge schedule, an SNS notification "
        "from ElastiCache, or a direct invoke {\"action\": \"sync\" | \"status\"}"
    )


def _parse_eventbridge(raw: Mapping[str, Any]) -> ParsedEvent:
    view = ScheduledEvent(raw)
    if view.source != "aws.events" or view.detail_type != "Scheduled Event":
        raise EventError(
            f"unsupported EventBridge event: source {view.source!r}, detail-type {view.detail_type!r} "
            "(expected source 'aws.events', detail-type 'Scheduled Event')"
        )
    return ParsedEvent("schedule", view, view.trigger)


def _parse_sns(raw: Mapping[str, Any]) -> ParsedEvent:
    records = raw["Records"]
    if not isinstance(records, list) or not records:
        raise EventError("SNS event: Records must be a non-empty list")
    view = SNSEvent(raw)
    notifications: list[ElastiCacheNotification] = []
    foreign: list[str] = []
    for i, item in enumerate(records):
        if not isinstance(item, Mapping):
            raise EventError(f"Records[{i}]: expected an object, got {_describe(item)}")
        record = SNSRecord(item)
        if record.event_source != "aws:sns":
            raise EventError(f"Records[{i}]: unsupported event source {record.event_source!r} (expected 'aws:sns')")
        if not isinstance(item.get("Sns"), Mapping):
            raise EventError(f"Records[{i}]: missing the Sns object")
        sns = record.sns
        if sns.type != "Notification":
            raise EventError(f"Records[{i}].Sns.Type is {sns.type!r}, expected 'Notification'")
        if "Message" not in sns:
            raise EventError(f"Records[{i}].Sns: missing Message")
        if _is_foreign(sns.message):
            foreign.append(_foreign_description(i, sns))
            continue
        try:
            notifications.append(ElastiCacheNotification.from_message(sns.message))
        except EventError as exc:
            raise EventError(f"Records[{i}]: {exc}") from None

    topology = [n for n in notifications if n.is_topology]
    if not topology:
        reasons = []
        if notifications:
            reasons.append("not a topology event: " + ", ".join(n.event_name for n in notifications))
        if foreign:
            reasons.append("not an ElastiCache notification: " + "; ".join(foreign))
        return ParsedEvent(
            "sns", view, None, reason="; ".join(reasons), notifications=tuple(notifications), foreign=tuple(foreign)
        )
    groups = {n.source_id for n in topology}
    # Lambda delivers one SNS record per invocation; should several arrive, events about
    # different groups sync every binding rather than pick one.
    group = groups.pop() if len(groups) == 1 else None
    events = sorted({n.event_name for n in topology})
    trigger = Trigger(kind="event", replication_group=group, event=",".join(events), wait_for_change=True)
    return ParsedEvent("sns", view, trigger, notifications=tuple(notifications), foreign=tuple(foreign))


def _is_foreign(message: Any) -> bool:
    """True for a string Message that names no ElastiCache event: not ``ElastiCache:``
    anywhere in it, and not one of the documented names written without the prefix."""
    if not isinstance(message, str):
        return False  # SNS always sends a string: anything else is a malformed event
    if EVENT_PREFIX.lower() in message.lower():
        return False
    match = _PLAIN.match(message.strip())
    return not (match and f"{EVENT_PREFIX}{match['name']}" in KNOWN_EVENTS)


def _foreign_description(index: int, sns: SNSMessage) -> str:
    # The message itself is not repeated: on a shared topic it may hold anything.
    return f"Records[{index}] message {sns.message_id or '?'} on {sns.topic_arn or '?'} ({len(sns.message)} characters)"

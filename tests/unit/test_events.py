import copy
import json
from pathlib import Path

import pytest

from cachebridge.config import Config
from cachebridge.errors import EventError
from cachebridge.events import (
    KNOWN_EVENTS,
    TOPOLOGY_EVENTS,
    DirectInvokeEvent,
    ElastiCacheNotification,
    ScheduledEvent,
    SNSEvent,
    SNSMessage,
    parse_event,
)
from cachebridge.sync import Trigger, select_bindings

EVENTS = Path(__file__).parent.parent / "events"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def sns_with_message(message: str) -> dict:
    event = load("sns_failover_complete.json")
    event["Records"][0]["Sns"]["Message"] = message
    return event


# -- schedule -------------------------------------------------------------------------------


def test_schedule_event_is_a_plain_sync_of_every_binding():
    parsed = parse_event(load("schedule.json"))
    assert parsed.kind == "schedule"
    assert parsed.trigger == Trigger(kind="schedule")
    assert not parsed.ignored and not parsed.dry_run and not parsed.direct
    view = parsed.view
    assert isinstance(view, ScheduledEvent)
    assert view.detail_type == "Scheduled Event"
    assert view.source == "aws.events"
    assert view.get_id == "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"
    assert view.rule_arn == "arn:aws:events:us-east-1:123456789012:rule/cachebridge-orders-schedule"
    assert view.region == "us-east-1" and view.account == "123456789012"
    assert view.detail == {}


def test_views_are_read_only_mappings_over_the_raw_event():
    raw = load("schedule.json")
    view = parse_event(raw).view
    assert view.raw_event is raw
    assert dict(view) == raw and len(view) == len(raw)
    with pytest.raises(TypeError):
        view["source"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        view.extra = 1  # type: ignore[attr-defined]


# -- SNS ------------------------------------------------------------------------------------


def test_sns_failover_complete_triggers_a_waiting_sync_of_the_named_group():
    raw = load("sns_failover_complete.json")
    parsed = parse_event(raw)
    assert parsed.kind == "sns"
    assert parsed.trigger == Trigger(
        kind="event", replication_group="orders", event="ElastiCache:FailoverComplete", wait_for_change=True
    )
    assert parsed.event_names == ("ElastiCache:FailoverComplete",)
    (note,) = parsed.notifications
    assert note.event == "FailoverComplete"
    assert note.source_id == "orders"
    assert note.cache_cluster_id == "orders-002"
    assert note.details == {"Cache Cluster ID": "orders-002"}


def test_sns_view_nests_like_the_payload():
    raw = load("sns_failover_complete.json")
    event = SNSEvent(raw)
    records = list(event.records)
    assert len(records) == 1
    record = event.record
    assert record.event_source == "aws:sns"
    assert record.event_version == "1.0"
    assert record.event_subscription_arn.startswith("arn:aws:sns:us-east-1:123456789012:cachebridge-orders-events:")
    sns = record.sns
    assert isinstance(sns, SNSMessage)
    assert sns.type == "Notification"
    assert sns.topic_arn == "arn:aws:sns:us-east-1:123456789012:cachebridge-orders-events"
    assert sns.message_id == "95df01b4-ee98-5cb9-9903-4c221d41eb5e"
    assert sns.subject is None
    assert sns.timestamp == "2025-11-20T09:14:07.231Z"
    assert sns.message_attributes == {}
    assert sns.signing_cert_url.endswith(".pem")
    assert event.sns_message == raw["Records"][0]["Sns"]["Message"]


def test_str_masks_the_sns_signature_and_unsubscribe_url():
    sns = SNSEvent(load("sns_failover_complete.json")).record.sns
    text = str(sns)
    assert sns.signature not in text
    assert sns.unsubscribe_url not in text
    assert "Action=Unsubscribe" not in text
    assert "*****" in text
    assert "cachebridge-orders-events" in text


def test_cache_node_replace_complete_names_a_node_of_the_group():
    parsed = parse_event(load("sns_cache_node_replace_complete.json"))
    assert parsed.trigger is not None
    assert parsed.trigger.replication_group == "orders-0001-002"
    assert parsed.trigger.event == "ElastiCache:CacheNodeReplaceComplete"
    assert parsed.trigger.wait_for_change


def test_snapshot_complete_is_acknowledged_and_ignored():
    parsed = parse_event(load("sns_snapshot_complete.json"))
    assert parsed.ignored
    assert parsed.trigger is None
    assert parsed.event_names == ("ElastiCache:SnapshotComplete",)
    assert "SnapshotComplete" in parsed.reason


def test_plain_text_message_is_read_like_the_json_form():
    parsed = parse_event(load("sns_failover_complete_plain_text.json"))
    assert parsed.trigger == Trigger(
        kind="event", replication_group="orders", event="ElastiCache:FailoverComplete", wait_for_change=True
    )
    assert parsed.view.record.sns.message_attributes["source"]["Value"] == "elasticache"


@pytest.mark.parametrize(
    ("message", "event_name", "source_id"),
    [
        ('{"ElastiCache:FailoverComplete":"orders"}', "ElastiCache:FailoverComplete", "orders"),
        ("ElastiCache:FailoverComplete : orders", "ElastiCache:FailoverComplete", "orders"),
        ("ElastiCache:FailoverComplete:orders", "ElastiCache:FailoverComplete", "orders"),
        ("ElastiCache:CacheClusterProvisioningComplete orders-0001-005", "ElastiCache:CacheClusterProvisioningComplete", "orders-0001-005"),
        ("CacheClusterScalingComplete : orders", "ElastiCache:CacheClusterScalingComplete", "orders"),
        ("SnapshotFailed : orders-002", "ElastiCache:SnapshotFailed", "orders-002"),
        ("ElastiCache:CertificateRenewalComplete", "ElastiCache:CertificateRenewalComplete", None),
        ('  {"Cache Cluster ID":"orders-002","ElastiCache:FailoverComplete":"orders"}  ', "ElastiCache:FailoverComplete", "orders"),
    ],
)
def test_notification_forms(message, event_name, source_id):
    note = ElastiCacheNotification.from_message(message)
    assert note.event_name == event_name
    assert note.source_id == source_id


@pytest.mark.parametrize("event_name", sorted(TOPOLOGY_EVENTS))
def test_every_topology_event_triggers_a_waiting_sync(event_name):
    parsed = parse_event(sns_with_message(json.dumps({event_name: "orders"})))
    assert parsed.trigger is not None
    assert parsed.trigger.kind == "event"
    assert parsed.trigger.wait_for_change
    assert parsed.trigger.replication_group == "orders"


@pytest.mark.parametrize("event_name", sorted(KNOWN_EVENTS - TOPOLOGY_EVENTS) + ["ElastiCache:SomethingNew"])
def test_other_elasticache_events_are_ignored(event_name):
    parsed = parse_event(sns_with_message(json.dumps({event_name: "orders"})))
    assert parsed.ignored


def test_topology_set_holds_the_events_that_move_addresses():
    for name in ("FailoverComplete", "CacheNodeReplaceComplete", "ReplicationGroupIncreaseReplicaCountFinished",
                 "ReplicationGroupDecreaseReplicaCountFinished", "AddCacheNodeComplete", "RemoveCacheNodeComplete",
                 "CacheClusterScalingComplete"):
        assert f"ElastiCache:{name}" in TOPOLOGY_EVENTS
    assert "ElastiCache:SnapshotComplete" not in TOPOLOGY_EVENTS


def test_records_about_different_groups_sync_every_binding():
    raw = load("sns_failover_complete.json")
    second = copy.deepcopy(raw["Records"][0])
    second["Sns"]["Message"] = json.dumps({"ElastiCache:FailoverComplete": "billing"})
    raw["Records"].append(second)
    parsed = parse_event(raw)
    assert parsed.trigger == Trigger(kind="event", replication_group=None, event="ElastiCache:FailoverComplete", wait_for_change=True)


def test_a_topology_record_among_ignored_ones_still_triggers():
    raw = load("sns_snapshot_complete.json")
    second = copy.deepcopy(raw["Records"][0])
    second["Sns"]["Message"] = json.dumps({"ElastiCache:FailoverComplete": "orders"})
    raw["Records"].append(second)
    parsed = parse_event(raw)
    assert parsed.trigger is not None and parsed.trigger.replication_group == "orders"


# -- direct invoke --------------------------------------------------------------------------


def test_direct_dry_run():
    parsed = parse_event(load("invoke_dry_run.json"))
    assert parsed.kind == "invoke" and parsed.direct
    assert parsed.action == "sync"
    assert parsed.dry_run is True
    assert parsed.trigger == Trigger(kind="invoke")
    assert parsed.raise_on_failure


def test_direct_sync_defaults_to_writing():
    assert parse_event(load("invoke_sync.json")).dry_run is False
    assert parse_event({"action": "sync"}).dry_run is False


def test_status_reads_without_writing_and_only_reports():
    parsed = parse_event(load("invoke_status.json"))
    assert isinstance(parsed.view, DirectInvokeEvent)
    assert parsed.action == "status"
    assert parsed.dry_run is True
    assert not parsed.raise_on_failure


# -- malformed or unknown -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "says"),
    [
        ("malformed_sns_message_not_json.json", "not valid JSON"),
        ("malformed_sns_failover_without_group.json", "does not name a replication group"),
        ("malformed_sns_empty_records.json", "non-empty list"),
        ("malformed_sqs_record.json", "unsupported event source"),
        ("malformed_eventbridge_not_schedule.json", "Scheduled Event"),
        ("malformed_invoke_unknown_action.json", "unknown action 'resync'"),
        ("malformed_invoke_dry_run_string.json", "dry_run must be true or false"),
        ("malformed_unknown_shape.json", "unsupported event"),
    ],
)
def test_malformed_fixtures_raise_a_clear_event_error(fixture, says):
    with pytest.raises(EventError, match=says):
        parse_event(load(fixture))


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (None, "expected a JSON object, got null"),
        ([], "expected a JSON object, got a list"),
        ("sync", "expected a JSON object, got a string"),
        ({"Records": "x"}, "non-empty list"),
        ({"Records": ["x"]}, r"Records\[0\]: expected an object"),
        ({"Records": [{"EventSource": "aws:sns"}]}, "missing the Sns object"),
        ({"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification"}}]}, "missing Message"),
        ({"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "SubscriptionConfirmation", "Message": "x"}}]}, "expected 'Notification'"),
        ({"action": "sync", "dryrun": True}, r"unknown key\(s\) \['dryrun'\]"),
        ({"action": "status", "dry_run": False}, r"unknown key\(s\) \['dry_run'\]"),
        ({"action": None}, "unknown action None"),
        ({"source": "aws.events", "detail-type": "Object Created"}, "unsupported EventBridge event"),
    ],
)
def test_malformed_shapes(raw, says):
    with pytest.raises(EventError, match=says):
        parse_event(raw)


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ('["ElastiCache:FailoverComplete"]', "not an ElastiCache notification"),
        ('{"ElastiCache:FailoverComplete": 7}', "names a number"),
        ('{"ElastiCache:FailoverComplete": "orders", "ElastiCache:SnapshotComplete": "orders"}', "more than one"),
        ('{"ElastiCache:FailoverComplete": "orders; rm -rf"}', "not a replication group or cluster id"),
        ("ElastiCache:FailoverComplete : ", "does not name a replication group"),
    ],
)
def test_malformed_messages(message, says):
    with pytest.raises(EventError, match=says):
        parse_event(sns_with_message(message))


@pytest.mark.parametrize(
    "message",
    [
        "Hello from a test publish on the topic",
        "",
        "[1, 2]",
        '{"AlarmName": "orders-cpu", "NewStateValue": "ALARM"}',
        '{"Cache Cluster ID": "orders-002"}',
        "FailoverHappened : orders",
        "{not json at all",
    ],
)
def test_a_message_that_is_not_an_elasticache_notification_is_ignored(message):
    # A shared topic carries other publishers' messages: they are not ours to fail on.
    parsed = parse_event(sns_with_message(message))
    assert parsed.ignored and parsed.trigger is None
    assert parsed.notifications == ()
    (foreign,) = parsed.foreign
    assert foreign.startswith("Records[0] message 95df01b4-ee98-5cb9-9903-4c221d41eb5e on arn:aws:sns:us-east-1:")
    assert parsed.reason.startswith("not an ElastiCache notification: Records[0]")
    # The message itself stays out of the reason (it is logged): it may hold anything.
    assert not message or message not in parsed.reason


def test_shared_topic_fixture_is_ignored():
    parsed = parse_event(load("sns_shared_topic_other_message.json"))
    assert parsed.ignored
    assert len(parsed.foreign) == 1 and "1a2b3c4d-0000-5000-8000-000000000002" in parsed.foreign[0]


def test_a_failover_among_foreign_messages_still_triggers():
    raw = load("sns_shared_topic_other_message.json")
    failover = copy.deepcopy(raw["Records"][0])
    failover["Sns"]["Message"] = "ElastiCache:FailoverComplete : orders"
    raw["Records"].append(failover)
    parsed = parse_event(raw)
    assert parsed.trigger == Trigger(kind="event", replication_group="orders", event="ElastiCache:FailoverComplete", wait_for_change=True)
    assert len(parsed.foreign) == 1


@pytest.mark.parametrize(
    "message",
    ['{"ElastiCache:FailoverComplete": "orders"', "ElastiCache:FailoverComplete : orders; rm", "elasticache:failovercomplete"],
)
def test_a_message_naming_an_elasticache_event_must_be_readable(message):
    # It may be a failover the controller would otherwise miss: fail loudly, Lambda retries.
    with pytest.raises(EventError):
        parse_event(sns_with_message(message))


def test_errors_name_the_record():
    with pytest.raises(EventError, match=r"^Records\[0\]: SNS Message"):
        parse_event(sns_with_message('{"ElastiCache:FailoverComplete": broken'))


# -- which bindings an event concerns -------------------------------------------------------


CONFIG = Config.from_mapping([
    {"name": "orders-primary", "source": "elasticache://orders?role=primary", "target_group": "orders-primary"},
    {"name": "orders-dns", "source": "dns://master.orders.abc123.use1.cache.amazonaws.com", "target_group": "orders-dns"},
    {"name": "orders-node", "source": "dns://orders-002.abc123.0001.use1.cache.amazonaws.com", "target_group": "orders-node"},
    {"name": "archive", "source": "elasticache://orders-archive", "target_group": "archive"},
    {"name": "archive-dns", "source": "dns://master.orders-archive.abc123.use1.cache.amazonaws.com", "target_group": "archive-dns"},
    {"name": "other-host", "source": "dns://orders.example.com", "target_group": "other-host"},
])


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        ("orders", ["orders-primary", "orders-dns", "orders-node"]),
        ("orders-002", ["orders-primary", "orders-dns", "orders-node"]),
        ("orders-0001-002", ["orders-primary", "orders-dns"]),
        ("orders-archive", ["archive", "archive-dns"]),
        ("orders-archive-001", ["archive", "archive-dns"]),
        ("billing", []),
    ],
)
def test_select_bindings_follows_the_named_group_only(named, expected):
    trigger = parse_event(sns_with_message(json.dumps({"ElastiCache:FailoverComplete": named}))).trigger
    assert [b.name for b in select_bindings(CONFIG, trigger)] == expected


def test_select_bindings_without_a_group_selects_all_in_order():
    assert select_bindings(CONFIG, Trigger(kind="schedule")) == CONFIG.bindings

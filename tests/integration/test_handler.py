"""The Lambda handler in-process against moto (in-process) and a real loopback DNS server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cachebridge import aws
from cachebridge import handler as lambda_handler
from cachebridge.errors import ConfigError, EventError, SyncFailed
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone

pytestmark = pytest.mark.timeout(120)

EVENTS = Path(__file__).parent.parent / "events"
REGION = "us-east-1"
PORT = 6379

PRIMARY_ENDPOINT = "master.orders.abc123.use1.cache.amazonaws.com"
READER_ENDPOINT = "replica.orders.abc123.use1.cache.amazonaws.com"
NODE_1 = "orders-001.abc123.0001.use1.cache.amazonaws.com"
NODE_2 = "orders-002.abc123.0001.use1.cache.amazonaws.com"
IP_1 = "10.0.1.10"
IP_2 = "10.0.2.20"

EVENT_WAIT_S = 3.0
POLL_INTERVAL_S = 0.1
DNS_TIMEOUT_S = 0.5
FLIP_AFTER_S = 0.5


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def failover_event(group: str) -> dict[str, Any]:
    event = load("sns_failover_complete.json")
    event["Records"][0]["Sns"]["Message"] = json.dumps({"ElastiCache:FailoverComplete": group})
    return event


@dataclass
class FakeContext:
    remaining_ms: int = 60_000
    function_name: str = "cachebridge-orders"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Cloud:
    elbv2: Any
    arns: dict[str, str]

    def registered(self, tg: str) -> set[str]:
        health = self.elbv2.describe_target_health(TargetGroupArn=self.arns[tg])["TargetHealthDescriptions"]
        return {f"{d['Target']['Id']}:{d['Target']['Port']}" for d in health if d["TargetHealth"]["State"] != "draining"}

    def snapshot(self) -> dict[str, set[str]]:
        return {tg: self.registered(tg) for tg in self.arns}


def split_output(out: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(log lines, EMF lines) of captured stdout; every line must be one JSON object."""
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [d for d in docs if "_aws" not in d], [d for d in docs if "_aws" in d]


@pytest.fixture
def dns(dns_server: LoopbackDnsServer, zone: Zone) -> LoopbackDnsServer:
    zone.set_a(NODE_1, IP_1)
    zone.set_a(NODE_2, IP_2)
    zone.set_cname(PRIMARY_ENDPOINT, NODE_1)
    zone.set_cname(READER_ENDPOINT, NODE_2)
    return dns_server


def failover(zone: Zone) -> None:
    """What ElastiCache does to the endpoints when orders-002 is promoted."""
    zone.set_cname(PRIMARY_ENDPOINT, NODE_2)
    zone.set_cname(READER_ENDPOINT, NODE_1)


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Cloud]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
                 "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_ELASTICACHE", "AWS_SESSION_TOKEN",
                 "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    aws.clear_caches()
    lambda_handler.clear_caches()
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        arns = {}
        for name in ("orders-primary", "orders-replicas"):
            tg = elbv2.create_target_group(
                Name=name, Protocol="TCP", Port=PORT, VpcId=vpc_id, TargetType="ip",
                HealthCheckIntervalSeconds=10, HealthyThresholdCount=2,
            )["TargetGroups"][0]
            elbv2.modify_target_group_attributes(
                TargetGroupArn=tg["TargetGroupArn"],
                Attributes=[
                    {"Key": "deregistration_delay.timeout_seconds", "Value": "10"},
                    {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
                ],
            )
            arns[name] = tg["TargetGroupArn"]
        yield Cloud(elbv2, arns)
    aws.clear_caches()
    lambda_handler.clear_caches()


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, dns: LoopbackDnsServer, cloud: Cloud) -> Cloud:
    monkeypatch.setenv("CACHEBRIDGE_BINDINGS", json.dumps({
        "bindings": [
            {"name": "orders-primary", "source": f"dns://{PRIMARY_ENDPOINT}", "target_group": "orders-primary", "port": PORT},
            {"name": "orders-replicas", "source": f"dns://{READER_ENDPOINT}", "target_group": "orders-replicas", "port": PORT},
        ],
        "settings": {"nameservers": [dns.address]},
    }))
    monkeypatch.setenv("CACHEBRIDGE_EVENT_WAIT_S", str(EVENT_WAIT_S))
    monkeypatch.setenv("CACHEBRIDGE_POLL_INTERVAL_S", str(POLL_INTERVAL_S))
    monkeypatch.setenv("CACHEBRIDGE_DNS_TIMEOUT_S", str(DNS_TIMEOUT_S))
    return cloud


def invoke(event: dict[str, Any], context: FakeContext | None = None) -> dict[str, Any]:
    return lambda_handler.handler(event, context or FakeContext())


def test_schedule_event_registers_the_targets_and_reports_each_binding(configured: Cloud, capsys):
    context = FakeContext()
    response = invoke(load("schedule.json"), context)

    assert response["ok"] is True
    assert response["trigger"] == "schedule"
    assert response["bindings"] == {"orders-primary": "changed", "orders-replicas": "changed"}
    assert response["changes"] == 2
    assert configured.snapshot() == {"orders-primary": {f"{IP_1}:{PORT}"}, "orders-replicas": {f"{IP_2}:{PORT}"}}

    log_lines, emf = split_output(capsys.readouterr().out)
    binding_logs = {line["binding"]: line for line in log_lines if "binding" in line}
    assert set(binding_logs) == {"orders-primary", "orders-replicas"}
    primary = binding_logs["orders-primary"]
    assert primary["level"] == "INFO"
    assert primary["status"] == "changed"
    assert primary["register"] == [f"{IP_1}:{PORT}"]
    assert primary["request_id"] == context.aws_request_id
    assert primary["function_name"] == context.function_name
    assert primary["trigger"] == "schedule"

    assert [d["Binding"] for d in emf] == ["orders-primary", "orders-replicas"]
    for doc in emf:
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "CacheBridge"
        assert directive["Dimensions"] == [["FunctionName", "Binding"]]
        assert {m["Name"] for m in directive["Metrics"]} == {"Changes", "Drift", "SourceErrors", "Skipped", "SyncDuration"}
        assert doc["FunctionName"] == "cachebridge-orders"
        assert doc["Changes"] == 1 and doc["Drift"] == 1 and doc["SourceErrors"] == 0 and doc["Skipped"] == 0
        assert doc["RequestId"] == context.aws_request_id

    # A second run is a no-op.
    again = invoke(load("schedule.json"))
    assert again["bindings"] == {"orders-primary": "in_sync", "orders-replicas": "in_sync"}
    assert again["changes"] == 0


def test_failover_event_waits_for_the_dns_flip_then_moves_the_targets(configured: Cloud, dns: LoopbackDnsServer, capsys):
    invoke(load("schedule.json"))
    capsys.readouterr()

    flip = threading.Timer(FLIP_AFTER_S, failover, args=(dns.zone,))
    started = time.monotonic()
    flip.start()
    try:
        response = invoke(load("sns_failover_complete.json"))
    finally:
        flip.cancel()
        flip.join(timeout=5)
    elapsed = time.monotonic() - started

    assert response["ok"] is True
    assert response["trigger"] == "event"
    assert response["event"] == "ElastiCache:FailoverComplete"
    assert response["replication_group"] == "orders"
    assert response["bindings"] == {"orders-primary": "changed", "orders-replicas": "changed"}
    assert configured.snapshot() == {"orders-primary": {f"{IP_2}:{PORT}"}, "orders-replicas": {f"{IP_1}:{PORT}"}}
    # It waited for the flip, and stopped waiting once it came.
    assert FLIP_AFTER_S * 0.8 <= elapsed < EVENT_WAIT_S

    log_lines, emf = split_output(capsys.readouterr().out)
    primary = next(line for line in log_lines if line.get("binding") == "orders-primary")
    assert primary["register"] == [f"{IP_2}:{PORT}"]
    assert primary["deregister"] == [f"{IP_1}:{PORT}"]
    assert primary["polls"] > 1
    assert primary["event"] == "ElastiCache:FailoverComplete"
    assert {d["Binding"]: d["Changes"] for d in emf} == {"orders-primary": 2, "orders-replicas": 2}


def test_plain_text_failover_message_works_the_same(configured: Cloud, dns: LoopbackDnsServer):
    invoke(load("schedule.json"))
    failover(dns.zone)
    response = invoke(load("sns_failover_complete_plain_text.json"))
    assert response["bindings"] == {"orders-primary": "changed", "orders-replicas": "changed"}
    assert configured.registered("orders-primary") == {f"{IP_2}:{PORT}"}


def test_remaining_lambda_time_bounds_the_event_wait(configured: Cloud):
    invoke(load("schedule.json"))
    short = FakeContext(remaining_ms=int((lambda_handler.DEADLINE_MARGIN_S + 0.3) * 1000))
    started = time.monotonic()
    response = invoke(load("sns_failover_complete.json"), short)
    elapsed = time.monotonic() - started
    # DNS never flips: without the deadline the handler would wait EVENT_WAIT_S.
    assert elapsed < EVENT_WAIT_S - 1
    assert response["bindings"] == {"orders-primary": "in_sync", "orders-replicas": "in_sync"}
    assert configured.registered("orders-primary") == {f"{IP_1}:{PORT}"}


def test_direct_dry_run_returns_the_report_and_writes_nothing(configured: Cloud, capsys):
    before = configured.snapshot()
    response = invoke(load("invoke_dry_run.json"))

    assert configured.snapshot() == before == {"orders-primary": set(), "orders-replicas": set()}
    assert response["ok"] is True
    assert response["action"] == "sync"
    assert response["dry_run"] is True
    bindings = {b["name"]: b for b in response["bindings"]}
    assert set(bindings) == {"orders-primary", "orders-replicas"}
    primary = bindings["orders-primary"]
    assert primary["status"] == "dry_run"
    assert primary["source"] == f"dns://{PRIMARY_ENDPOINT}"
    assert primary["desired"] == [f"{IP_1}:{PORT}"]
    assert primary["register"] == [f"{IP_1}:{PORT}"]
    assert primary["registered_before"] == [] and primary["registered_after"] == []
    assert primary["target_group_arn"] == configured.arns["orders-primary"]
    json.dumps(response)  # a Lambda response must serialise

    _, emf = split_output(capsys.readouterr().out)
    assert [d["Changes"] for d in emf] == [0, 0]
    assert all(d["DryRun"] is True for d in emf)


def test_direct_sync_writes_and_returns_the_report(configured: Cloud):
    response = invoke(load("invoke_sync.json"))
    assert response["dry_run"] is False
    assert [b["status"] for b in response["bindings"]] == ["changed", "changed"]
    assert configured.registered("orders-primary") == {f"{IP_1}:{PORT}"}


@pytest.mark.parametrize(
    "fixture",
    ["malformed_sns_message_not_json.json", "malformed_sqs_record.json",
     "malformed_invoke_unknown_action.json", "malformed_eventbridge_not_schedule.json"],
)
def test_malformed_event_is_logged_and_rejected_without_changes(configured: Cloud, capsys, fixture):
    with pytest.raises(EventError):
        invoke(load(fixture))
    assert configured.snapshot() == {"orders-primary": set(), "orders-replicas": set()}
    log_lines, emf = split_output(capsys.readouterr().out)
    assert emf == []
    (rejected,) = log_lines
    assert rejected["level"] == "ERROR"
    assert rejected["message"] == "event rejected"
    assert rejected["error"]


@pytest.mark.parametrize("group", ["billing", "orders-archive"])
def test_event_for_an_unrelated_group_does_nothing(configured: Cloud, capsys, group):
    invoke(load("schedule.json"))
    before = configured.snapshot()
    capsys.readouterr()

    started = time.monotonic()
    response = invoke(failover_event(group))
    elapsed = time.monotonic() - started

    assert response["ok"] is True
    assert response["replication_group"] == group
    assert response["bindings"] == {}
    assert response["changes"] == 0
    assert configured.snapshot() == before
    assert elapsed < EVENT_WAIT_S / 2  # nothing to wait for
    log_lines, emf = split_output(capsys.readouterr().out)
    assert emf == []
    assert [line["message"] for line in log_lines] == ["no binding follows this event"]


def test_ignored_elasticache_event_reads_nothing(configured: Cloud, capsys):
    response = invoke(load("sns_snapshot_complete.json"))
    assert response == {
        "ok": True,
        "ignored": True,
        "events": ["ElastiCache:SnapshotComplete"],
        "reason": "not a topology event: ElastiCache:SnapshotComplete",
    }
    assert configured.snapshot() == {"orders-primary": set(), "orders-replicas": set()}
    _, emf = split_output(capsys.readouterr().out)
    assert emf == []


def test_other_message_on_a_shared_topic_is_logged_and_ignored(configured: Cloud, capsys):
    invoke(load("schedule.json"))
    before = configured.snapshot()
    capsys.readouterr()

    response = invoke(load("sns_shared_topic_other_message.json"))

    assert response["ok"] is True and response["ignored"] is True
    assert response["events"] == []
    assert response["reason"].startswith("not an ElastiCache notification: Records[0] message 1a2b3c4d-0000-5000-8000-000000000002")
    assert configured.snapshot() == before
    log_lines, emf = split_output(capsys.readouterr().out)
    assert emf == []
    warning, ignored = log_lines
    assert warning["level"] == "WARNING"
    assert warning["message"] == "SNS message ignored: not an ElastiCache notification"
    assert "Hello from a test publish" not in json.dumps(log_lines)
    assert ignored["message"] == "event ignored"


def test_dns_down_raises_after_reporting_and_changes_nothing(configured: Cloud, dns: LoopbackDnsServer, capsys):
    invoke(load("schedule.json"))
    before = configured.snapshot()
    capsys.readouterr()
    dns.stop()

    with pytest.raises(SyncFailed) as caught:
        invoke(load("schedule.json"))

    assert set(caught.value.failed) == {"orders-primary", "orders-replicas"}
    assert "2 of 2 binding(s) failed" in str(caught.value)
    assert configured.snapshot() == before == {"orders-primary": {f"{IP_1}:{PORT}"}, "orders-replicas": {f"{IP_2}:{PORT}"}}

    log_lines, emf = split_output(capsys.readouterr().out)
    failed = [line for line in log_lines if "binding" in line]
    assert {line["binding"] for line in failed} == {"orders-primary", "orders-replicas"}
    assert all(line["level"] == "ERROR" and line["status"] == "error" and line["error"] for line in failed)
    assert all(line["deregister"] == [] for line in failed)
    assert {d["Binding"]: d["SourceErrors"] for d in emf} == {"orders-primary": 1, "orders-replicas": 1}
    assert all(d["Changes"] == 0 for d in emf)


def test_status_reports_failures_without_raising(configured: Cloud, dns: LoopbackDnsServer):
    invoke(load("schedule.json"))
    dns.stop()
    response = invoke(load("invoke_status.json"))
    assert response["ok"] is False
    assert response["action"] == "status"
    assert [b["status"] for b in response["bindings"]] == ["error", "error"]
    assert configured.registered("orders-primary") == {f"{IP_1}:{PORT}"}


def test_missing_configuration_is_logged_and_raised(cloud: Cloud, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.delenv("CACHEBRIDGE_BINDINGS", raising=False)
    with pytest.raises(ConfigError, match="CACHEBRIDGE_BINDINGS"):
        invoke(load("schedule.json"))
    log_lines, _ = split_output(capsys.readouterr().out)
    assert log_lines[-1]["message"] == "configuration rejected"


def test_changed_environment_is_read_again_between_warm_invocations(configured: Cloud, monkeypatch, dns):
    invoke(load("schedule.json"))
    monkeypatch.setenv("CACHEBRIDGE_BINDINGS", json.dumps({
        "bindings": [{"name": "orders-primary", "source": f"dns://{NODE_2}", "target_group": "orders-primary"}],
        "settings": {"nameservers": [dns.address]},
    }))
    response = invoke(load("schedule.json"))
    assert response["bindings"] == {"orders-primary": "changed"}
    assert configured.registered("orders-primary") == {f"{IP_2}:{PORT}"}


def test_paced_reads_stop_at_the_handlers_deadline_instead_of_waiting(configured: Cloud, monkeypatch: pytest.MonkeyPatch):
    # One ELB Describe* token, the next 100 s away: past the pass's deadline (60 s left,
    # less the handler's margin), so the reads that would need it are not made at all.
    monkeypatch.setenv("CACHEBRIDGE_ELB_DESCRIBE_RATE", "0.01")
    monkeypatch.setenv("CACHEBRIDGE_ELB_DESCRIBE_BURST", "1")

    # A direct invoke is told (a scheduled run is not failed for it: the schedule retries).
    with pytest.raises(SyncFailed) as raised:
        invoke(load("invoke_sync.json"), FakeContext(remaining_ms=60_000))

    report = raised.value.report
    assert report is not None
    results = {b.name: b for b in report.bindings}  # type: ignore[attr-defined]
    assert {b.status for b in results.values()} <= {"skipped", "error"}
    assert all("ELB Describe budget for this run spent (elb_describe_rate=0.01/s" in (b.error or "") for b in results.values())
    assert configured.snapshot() == {"orders-primary": set(), "orders-replicas": set()}

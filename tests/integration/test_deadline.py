"""The Lambda handler against a slow AWS endpoint (a moto server behind a proxy that delays
every response) and a context whose remaining time is short: it returns before its
deadline, and its report is honest about every binding and every write."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.config import Config as BotoConfig

from cachebridge import aws
from cachebridge import handler as lambda_handler
from cachebridge.errors import SyncFailed
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.targets import Target

from .conftest import SERVER_REGION, server_client
from .delaying_proxy import DelayingProxy

pytestmark = pytest.mark.timeout(180)

PORT = 6379
DELAY_S = 0.3  # every AWS response
# A tight policy, so the budgets are small enough to see several outcomes in seconds:
# one attempt, 0.5 s to connect, 1 s to read: 1.5 s per call at worst.
TIGHT = BotoConfig(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=0.5, read_timeout=1.0)
BINDINGS = ("orders", "carts", "sessions")


class DeadlineContext:
    """A Lambda context whose remaining time runs down with the real clock."""

    function_name = "cachebridge-deadline"

    def __init__(self, remaining_s: float) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.end = time.monotonic() + remaining_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.end - time.monotonic()) * 1000))


@pytest.fixture
def dns() -> Iterator[LoopbackDnsServer]:
    server = LoopbackDnsServer(Zone(ttl=1), host="127.0.0.1").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(moto_server: str) -> Iterator[DelayingProxy]:
    parts = urlsplit(moto_server)
    with DelayingProxy((parts.hostname or "127.0.0.1", parts.port or 80), DELAY_S) as running:
        yield running


@pytest.fixture
def site(moto_server: str, dns: LoopbackDnsServer, proxy: DelayingProxy, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Three bindings, each needing a registration; the handler's AWS calls go through the
    slow proxy. Returns binding name -> target group ARN."""
    ec2, elbv2 = server_client(moto_server, "ec2"), server_client(moto_server, "elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    arns: dict[str, str] = {}
    bindings = []
    for i, name in enumerate(BINDINGS, start=1):
        tg = f"{name}-{uuid.uuid4().hex[:8]}"
        arns[name] = elbv2.create_target_group(Name=tg, Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        host = f"master.{name}.abc123.euw1.cache.amazonaws.com"
        dns.zone.set_a(host, f"10.0.{i}.10")
        bindings.append({"name": name, "source": f"dns://{host}", "target_group": arns[name], "port": PORT})
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", SERVER_REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", SERVER_REGION)
    monkeypatch.setenv("CACHEBRIDGE_BINDINGS", json.dumps({
        "bindings": bindings,
        "settings": {"nameservers": [dns.address], "poll_interval_s": 0.05, "dns_timeout_s": 0.5},
    }))
    monkeypatch.setattr(aws, "BOTO_CONFIG", TIGHT)
    lambda_handler.clear_caches()
    yield arns
    lambda_handler.clear_caches()


def registered(moto_server: str, arn: str) -> tuple[Target, ...]:
    health = server_client(moto_server, "elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return tuple(sorted(Target(d["Target"]["Id"], d["Target"]["Port"]) for d in health))


def invoke(context: DeadlineContext) -> tuple[dict[str, Any], float]:
    """The report of a direct ``sync`` invoke (raised with SyncFailed when a binding did not
    finish), and the context's time left when the handler returned."""
    try:
        response = lambda_handler.handler({"action": "sync"}, context)
        bindings = response["bindings"]
    except SyncFailed as failed:
        bindings = failed.report.to_json()["bindings"]  # type: ignore[union-attr]
    left = context.end - time.monotonic()
    return {b["name"]: b for b in bindings}, left


@pytest.mark.parametrize("remaining_s", [4.0, 10.5, 30.0])
def test_the_handler_ends_before_its_deadline_with_an_honest_report(moto_server, proxy, site, remaining_s) -> None:
    assert aws.call_budget_s() == 1.5

    report, left = invoke(DeadlineContext(remaining_s))

    assert left > 0, f"returned {-left:.2f} s after the Lambda's deadline"
    assert set(report) == set(BINDINGS)
    for name, binding in report.items():
        assert binding["status"] in ("in_sync", "changed", "skipped"), binding
        after = [str(t) for t in registered(moto_server, site[name])]
        # What the report says the group holds is what it holds ...
        assert binding["registered_after"] == after, binding
        if binding["status"] == "skipped":
            # ... and a skipped binding was left exactly as it was, with the reason given.
            assert binding["register"] == binding["deregister"] == []
            assert after == binding["registered_before"] == []
            assert "deadline" in binding["error"]
        else:
            assert after == binding["desired"]
    # Every write AWS received is in the report, and nothing else.
    assert proxy.actions["RegisterTargets"] == sum(1 for b in report.values() if b["register"])
    assert proxy.actions["DeregisterTargets"] == sum(1 for b in report.values() if b["deregister"])
    statuses = [b["status"] for b in report.values()]
    if remaining_s == 30.0:
        assert statuses == ["changed"] * len(BINDINGS)
    if remaining_s == 4.0:
        # Reading three target groups through the slow endpoint alone outlasts the
        # deadline: what was not finished is skipped, not half-done.
        assert "skipped" in statuses


def test_the_function_timeout_covers_the_event_wait_and_the_writes() -> None:
    from cachebridge.config import DEFAULT_EVENT_WAIT_S
    from cachebridge.deploy.template import FUNCTION_TIMEOUT_S

    # The handler's deadline is the timeout less its margin; the event wait ends two
    # worst-case calls (a register and a deregister) before that.
    reserve = lambda_handler.DEADLINE_MARGIN_S + 2 * aws.call_budget_s()
    assert FUNCTION_TIMEOUT_S >= DEFAULT_EVENT_WAIT_S + reserve


def _event(name: str) -> dict[str, Any]:
    from pathlib import Path

    return json.loads((Path(__file__).parents[1] / "events" / name).read_text())


def test_a_scheduled_run_that_skips_bindings_does_not_fail_but_says_so_in_its_metrics(moto_server, proxy, site, capsys) -> None:
    # Four seconds do not cover three target groups through the slow endpoint: some
    # bindings are skipped. The schedule is their retry; the run itself succeeds.
    response = lambda_handler.handler(_event("schedule.json"), DeadlineContext(4.0))

    statuses = response["bindings"]
    assert "skipped" in statuses.values(), statuses
    assert response["ok"] is False  # not everything was checked, and the summary says so
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    skipped = {doc["Binding"]: doc["Skipped"] for doc in emf}
    assert skipped == {name: int(status == "skipped") for name, status in statuses.items()}
    for name, status in statuses.items():
        if status == "skipped":
            assert registered(moto_server, site[name]) == ()  # nothing written


def test_a_direct_sync_that_skips_bindings_still_fails(moto_server, proxy, site) -> None:
    # Only the schedule retries itself; a direct invoke (and an SNS event) is told.
    with pytest.raises(SyncFailed) as raised:
        lambda_handler.handler({"action": "sync"}, DeadlineContext(4.0))
    assert "skipped" in {b.status for b in raised.value.report.bindings}  # type: ignore[union-attr]

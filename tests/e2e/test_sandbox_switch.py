"""The switch layout in the sandbox: a planned failover switches the primary listener to
the new primary's node target group, the demoted primary's open connections are cut, and
new connections through the primary port write to the new primary."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import boto3
import pytest
import redis

from cachebridge.sandbox.control import read_state

from .conftest import run_cli

pytestmark = pytest.mark.timeout(300)

EVENT_WAIT_S = 10.0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state_dir = tmp_path_factory.mktemp("sandbox-switch")
    env = {"PATH": os.environ["PATH"]}
    up = run_cli(env, "sandbox", "up", "--state-dir", str(state_dir), "--layout", "switch", "--registration-delay", "1",
                 "--event-wait", str(EVENT_WAIT_S), "--json", timeout=300)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        yield {"state_dir": state_dir, "env": env, "state": json.loads(up.stdout)}
    finally:
        run_cli(env, "sandbox", "down", "--state-dir", str(state_dir), timeout=120)


def _elbv2(state: dict) -> object:
    return boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=state["region"]).client(
        "elbv2", endpoint_url=state["aws_endpoint_url"]
    )


def _forward(state: dict) -> str:
    listener = _elbv2(state).describe_listeners(ListenerArns=[state["primary_listener_arn"]])["Listeners"][0]  # type: ignore[attr-defined]
    return listener["DefaultActions"][0]["TargetGroupArn"]


def _role_through(host: str, port: int) -> str | None:
    try:
        client = redis.Redis(host, port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return str(client.info("replication")["role"])
        finally:
            client.close()
    except redis.RedisError:
        return None


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def test_sandbox_reports_the_switch_layout_and_its_listeners(sandbox: dict) -> None:
    state = sandbox["state"]
    assert state["layout"] == "switch"
    listeners = state["listeners"]
    assert listeners["primary"] == state["nlb"]["port"]
    assert len(listeners["nodes"]) == len(state["nodes"]) + 2
    assert listeners["nodes"] == list(range(listeners["nodes"][0], listeners["nodes"][0] + len(listeners["nodes"])))


def test_planned_failover_switches_the_listener_and_cuts_the_old_primary(sandbox: dict) -> None:
    state = read_state(sandbox["state_dir"])
    assert state is not None
    host, port = state["nlb"]["host"], int(state["nlb"]["port"])
    _wait(lambda: _role_through(host, port) == "master", 60, "the primary listener reaches the primary")
    before = _forward(state)
    # A connection opened through the primary listener before the failover (one raw
    # connection: a client with retries would hide the reset by reconnecting).
    held = redis.Connection(host=host, port=port, socket_timeout=2, socket_connect_timeout=2, retry=None)
    held.connect()
    held.send_command("SET", "before", "1")
    assert held.read_response() in (b"OK", "OK", True)

    elasticache = boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=state["region"]).client(
        "elasticache", endpoint_url=state["aws_endpoint_url"]
    )
    elasticache.test_failover(ReplicationGroupId=state["replication_group"], NodeGroupId="0001")

    _wait(lambda: _forward(state) != before, EVENT_WAIT_S + 30, "the primary listener switched")
    # The old connection was reset by the cut: it cannot go on writing to the demoted node.
    def held_is_cut() -> bool:
        try:
            held.send_command("PING")
            held.read_response()
        except redis.ConnectionError:
            return True
        return False

    _wait(held_is_cut, 15, "the connection to the demoted primary was cut")
    # New connections through the primary port reach the new primary and write.
    _wait(lambda: _role_through(host, port) == "master", 30, "new connections reach the new primary")
    fresh = redis.Redis(host, port, socket_timeout=2, socket_connect_timeout=2)
    assert fresh.set("after", "2") and fresh.get("before") == b"1"
    fresh.close()

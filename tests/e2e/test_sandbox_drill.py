"""The sandbox end to end: up, a planned and an unplanned failover measured by the drill,
and down leaving no process or port behind."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from .conftest import run_cli

EVENT_WAIT_S = 10.0
POLL_S = 0.5
TIME_SCALE = 0.05


def _alive(pid: int) -> bool:
    """Running: a zombie waiting for init to reap it is not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _accepts(host: str, port: int, within_s: float = 10.0) -> bool:
    """Whether a connection is accepted within ``within_s``: on a busy machine one probe
    can miss a listener whose accept queue is momentarily full."""
    deadline = time.monotonic() + within_s
    while True:
        if _listening(host, port):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state_dir = tmp_path_factory.mktemp("sandbox")
    env = {"PATH": os.environ["PATH"]}
    # The retarget layout under the documented NLB profile, twenty times faster:
    # registration and the deregistration lag take 6 s, a listener update 0.5 s.
    up = run_cli(env, "sandbox", "up", "--state-dir", str(state_dir), "--layout", "retarget", "--time-scale", str(TIME_SCALE),
                 "--event-wait", str(EVENT_WAIT_S), "--detect-delay", "1", "--json", timeout=300)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        yield {"state_dir": state_dir, "env": env, "up": json.loads(up.stdout)}
    finally:
        run_cli(env, "sandbox", "down", "--state-dir", str(state_dir), timeout=120)


def _drill(sandbox: dict, *extra: str) -> dict:
    result = run_cli(sandbox["env"], "drill", "--state-dir", str(sandbox["state_dir"]), "--duration", "16",
                     "--failover-after", "3", "--rate", "40", "--json", *extra, timeout=180)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_status_reports_endpoints_and_processes(sandbox: dict) -> None:
    status = run_cli(sandbox["env"], "sandbox", "status", "--state-dir", str(sandbox["state_dir"]), "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["nlb_profile"] == {
        "name": "documented", "registration_delay_s": 120.0, "deregistration_lag_s": 120.0,
        "listener_propagation_s": 10.0, "initial_takes_traffic": False, "unused_when_unattached": True,
        "time_scale": TIME_SCALE,
    }
    assert state["dataplane"]["profile"] == state["nlb_profile"]
    assert state["layout"] == "retarget"
    human = run_cli(sandbox["env"], "sandbox", "status", "--state-dir", str(sandbox["state_dir"]))
    assert "NLB profile documented: registration 120 s, deregistration lag 120 s, listener propagation 10 s" in human.stdout
    assert state["stack_name"] and state["aws_endpoint_url"].startswith("http://127.0.0.1:")
    assert state["dns"].startswith("127.0.0.1:")
    assert _accepts(state["nlb"]["host"], state["nlb"]["port"]), json.dumps(state.get("dataplane"))[:3000]
    assert _alive(state["pid"])
    assert all(node["alive"] and _alive(node["pid"]) for node in state["nodes"])


def _assert_followed(summary: dict) -> None:
    assert summary["layout"] == "retarget"
    assert summary["nlb_profile"]["name"] == "documented" and summary["nlb_profile"]["time_scale"] == TIME_SCALE
    assert summary["new_target"] and summary["new_target"] != summary["old_target"]
    # The new primary's registration was seen and timed: the profile's delay (scaled) and
    # then the health checks, never less than the delay.
    assert summary["measured_registration_target"].endswith(summary["new_target"])
    assert summary["measured_registration_s"] >= 120 * TIME_SCALE
    assert summary["new_primary_reached_s"] is not None
    assert summary["waited_for_healthy_s"] >= 0
    assert summary["detect_s"] is not None and summary["retarget_s"] is not None
    # The controller acts within event_wait_s plus one poll of the notification.
    assert summary["detect_s"] - summary["notification_s"] <= EVENT_WAIT_S + POLL_S
    assert summary["retarget_s"] >= summary["detect_s"]
    assert summary["readonly_after_termination"] == 0
    assert summary["writes"] > 100


def test_planned_failover_loses_no_acknowledged_write(sandbox: dict) -> None:
    summary = _drill(sandbox)
    _assert_followed(summary)
    assert summary["lost_acknowledged_writes"] == 0
    assert summary["acknowledged_writes"] > 100


def test_unplanned_failover_is_followed(sandbox: dict) -> None:
    summary = _drill(sandbox, "--kill-primary")
    _assert_followed(summary)
    # Asynchronous replication may lose a few writes; the drill counts them.
    assert summary["lost_acknowledged_writes"] >= 0
    assert summary["errors"].get("connection", 0) + summary["errors"].get("timeout", 0) > 0


def test_down_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    state_dir = tmp_path / "sandbox"
    env = {"PATH": os.environ["PATH"]}
    up = run_cli(env, "sandbox", "up", "--state-dir", str(state_dir), "--json", timeout=300)
    assert up.returncode == 0, up.stderr + up.stdout
    status = json.loads(run_cli(env, "sandbox", "status", "--state-dir", str(state_dir), "--json").stdout)
    pids = [status["pid"], *(n["pid"] for n in status["nodes"])]
    ports = [(status["nlb"]["host"], status["nlb"]["port"]), *((n["host"], n["port"]) for n in status["nodes"])]
    host, port = status["aws_endpoint_url"].split("//")[1].split(":")
    ports.append((host, int(port)))
    assert all(_alive(pid) for pid in pids)
    down = run_cli(env, "sandbox", "down", "--state-dir", str(state_dir), "--json", timeout=120)
    assert down.returncode == 0, down.stderr
    stopped = json.loads(down.stdout)
    assert stopped["stopped"] is True and stopped["ports_still_open"] == [], stopped
    assert not any(_alive(pid) for pid in pids)
    assert not any(_listening(h, p) for h, p in ports)

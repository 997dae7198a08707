"""The drill on the switch layout under the documented NLB profile (scaled): it waits for
every node's target group, watches the primary listener's default action, and measures how
long the listener update took to reach new connections."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from .conftest import run_cli

TIME_SCALE = 0.05
PROPAGATION_S = 10.0  # the documented profile's; runs as 0.5 s
WATCH_S = 0.1  # the drill's sampling period in the sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state_dir = tmp_path_factory.mktemp("sandbox-switch-drill")
    env = {"PATH": os.environ["PATH"]}
    up = run_cli(env, "sandbox", "up", "--state-dir", str(state_dir), "--layout", "switch", "--time-scale", str(TIME_SCALE),
                 "--detect-delay", "1", "--json", timeout=300)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        yield {"state_dir": state_dir, "env": env, "up": json.loads(up.stdout)}
    finally:
        run_cli(env, "sandbox", "down", "--state-dir", str(state_dir), timeout=120)


def test_switch_drill_reports_the_listener_switch_and_its_propagation(sandbox: dict) -> None:
    result = run_cli(sandbox["env"], "drill", "--state-dir", str(sandbox["state_dir"]), "--duration", "15",
                     "--failover-after", "3", "--rate", "40", "--json", timeout=240)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads(result.stdout)
    assert summary["layout"] == "switch"
    assert summary["nlb_profile"]["name"] == "documented"
    assert summary["nlb_profile"]["listener_propagation_s"] == PROPAGATION_S
    # Right after up, every node's target is still registering: the drill waited, and said so.
    assert summary["waited_for_healthy_s"] > 0
    assert "not yet:" in result.stderr and "path healthy after" in result.stderr
    # The drill times the switch from the primary listener's default action.
    assert summary["forward_before"] and summary["forward_after"] and summary["forward_before"] != summary["forward_after"]
    assert summary["listener_switched_s"] is not None
    assert summary["measured_listener_propagation_s"] >= PROPAGATION_S * TIME_SCALE - WATCH_S - 0.05
    assert summary["new_primary_reached_s"] >= summary["listener_switched_s"]
    assert summary["lost_acknowledged_writes"] == 0 and summary["acknowledged_writes"] > 100

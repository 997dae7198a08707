"""A short soak in the sandbox: ten consecutive failovers, alternating planned and
unplanned, under write load through the NLB. Every one is followed (the target group
ends holding only the node that answers ROLE master), no planned failover loses an
acknowledged write, and no target is deregistered while its node is the master.
``benchmarks/soak.py`` runs the long version (100 failovers)."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachebridge.sandbox.control import down, up
from cachebridge.sandbox.soak import SoakReport, run_soak, soak_options
from cachebridge.sandbox.supervisor import STATE_FILE, TOKEN_FILE

COUNT = 10
TIME_SCALE = 0.5


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state_dir = tmp_path_factory.mktemp("soak")
    state = up(soak_options(state_dir, TIME_SCALE))
    try:
        yield state
    finally:
        result = down(state_dir)
        assert result["stopped"] and result["ports_still_open"] == []


def test_the_state_directory_is_the_owners_alone(sandbox: dict) -> None:
    state_dir = Path(sandbox["state_dir"])
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    for name in (STATE_FILE, TOKEN_FILE, "supervisor.log", "supervisor.pid", "deploy.log"):
        assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600, name


def test_the_running_control_api_refuses_a_request_without_the_token(sandbox: dict) -> None:
    request = urllib.request.Request(sandbox["control_url"] + "/kill-primary", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 401
    # Nothing was killed: the supervisor's own view still has every node up.
    token = (Path(sandbox["state_dir"]) / TOKEN_FILE).read_text()
    authorised = urllib.request.Request(sandbox["control_url"] + "/state", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(authorised, timeout=10) as response:
        live = json.loads(response.read())
    assert all(node["alive"] for node in live["nodes"])


def test_ten_consecutive_failovers_are_followed_without_a_wrong_deregistration(sandbox: dict) -> None:
    report: SoakReport = run_soak(sandbox, count=COUNT, time_scale=TIME_SCALE)
    summary = report.summary()
    assert summary["failovers"] == COUNT and summary["planned"] == summary["unplanned"] == COUNT // 2
    assert [o.kind for o in report.outcomes[:2]] == ["planned", "unplanned"]
    # Each failover moved the primary, and the group ended holding exactly that node.
    assert all(o.live_after == (o.new_primary,) for o in report.outcomes), [vars(o) for o in report.outcomes]
    primaries = [o.new_primary for o in report.outcomes]
    assert all(a != b for a, b in zip(primaries, primaries[1:]))
    assert summary["failovers_followed"] == COUNT
    assert summary["lost_acknowledged_writes_planned"] == 0
    assert summary["wrong_deregistrations"] == 0, report.wrong_deregistrations
    # The sampler saw the group change on every failover: the check had something to check.
    assert summary["deregistrations_seen"] >= COUNT
    assert summary["acknowledged_writes"] > COUNT * 100

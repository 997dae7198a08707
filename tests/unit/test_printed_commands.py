"""The commands ``sandbox up`` prints, for each layout's state, without a running sandbox."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cachebridge.sandbox.commands import printed_commands


def _state(target_group_arn: str | None) -> dict:
    return {
        "nlb": {"host": "127.0.0.1", "port": 40001},
        "region": "us-east-1",
        "aws_endpoint_url": "http://127.0.0.1:40002",
        "replication_group": "sandbox",
        "target_group_arn": target_group_arn,
        "nodes": [{"port": 40003}],
        "dns": "127.0.0.1:40004",
    }


@pytest.mark.parametrize("arn", [None, ""])
def test_switch_layout_prints_no_status_line_without_a_target_group(arn: str | None, tmp_path: Path) -> None:
    watch = printed_commands(_state(arn), state_dir=tmp_path, cli="cachebridge")["watch"]
    assert watch == [f"cachebridge sandbox status --state-dir {shlex.quote(str(tmp_path))}"]
    assert not any("--target-group" in line for line in watch)


def test_retarget_layout_prints_a_status_line_for_its_target_group(tmp_path: Path) -> None:
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/sb/0123456789abcdef"
    watch = printed_commands(_state(arn), state_dir=tmp_path, cli="cachebridge")["watch"]
    assert len(watch) == 2
    argv = shlex.split(watch[1])
    assert argv[argv.index("--target-group") + 1] == arn
    assert argv[argv.index("--source") + 1] == "elasticache://sandbox?role=primary"

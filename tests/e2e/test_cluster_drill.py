"""``cachebridge drill --cluster-mode`` end to end: a real Redis cluster behind the NLB
stand-in, redis-py RedisCluster through the address map on every shard, one shard failed
over; the figures it reports."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cachebridge.cli import cli

pytestmark = [pytest.mark.timeout(240), pytest.mark.redis]


@pytest.mark.parametrize("kind", ["planned", "kill"])
def test_cluster_drill_fails_one_shard_over_and_the_others_never_notice(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    args = ["drill", "--cluster-mode", "--duration", "8", "--failover-after", "2", "--json"]
    if kind == "kill":
        args.append("--kill-primary")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["kind"] == kind and report["failed_shard"] == "0001"
    shards = report["shards"]
    assert set(shards) == {"0001", "0002", "0003"}  # every slot range written
    assert all(s["writes"] > 0 for s in shards.values())
    assert shards["0001"]["failed_over"] and not shards["0002"]["failed_over"]
    assert shards["0002"]["errors"] == shards["0003"]["errors"] == 0
    assert report["nlb_changed"] is False
    if kind == "planned":
        assert report["lost"] == 0

"""``sandbox up --cluster-mode``: a real Redis cluster (3 shards x 2 nodes) behind the
deployed stack's cluster layout; the redis-py snippet 'cachebridge endpoints' prints writes
to every shard through the NLB stand-in, across TestFailover of a shard and a killed
primary, and the NLB does not change."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from .conftest import run_cli

pytestmark = [pytest.mark.timeout(400), pytest.mark.redis]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state_dir = tmp_path_factory.mktemp("sandbox-cluster")
    env = {"PATH": os.environ["PATH"]}
    up = run_cli(env, "sandbox", "up", "--state-dir", str(state_dir), "--cluster-mode", "--registration-delay", "1", "--json", timeout=300)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        state = json.loads(up.stdout)
        aws = {"AWS_ENDPOINT_URL": state["aws_endpoint_url"], "AWS_REGION": state["region"], "AWS_DEFAULT_REGION": state["region"],
               "AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}
        yield {"state_dir": state_dir, "env": env, "aws": {**env, **aws}, "state": state}
    finally:
        run_cli(env, "sandbox", "down", "--state-dir", str(state_dir), timeout=120)


def _map(sandbox: dict) -> dict[str, Any]:
    shown = run_cli(sandbox["aws"], "endpoints", "--stack-name", sandbox["state"]["stack_name"], "--nlb-host", "127.0.0.1", "--json", timeout=60)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["cluster_maps"][sandbox["state"]["stack_name"]]


def _until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except redis.RedisError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def _write_all(rc: Any, keys: list[str], value: str, timeout: float = 60.0) -> None:
    for key in keys:
        _until(lambda k=key: rc.set(k, value), timeout, f"SET {key}")


def test_cluster_clients_reach_every_shard_through_the_sandbox_nlb_across_failovers(sandbox: dict) -> None:
    state = sandbox["state"]
    assert state["layout"] == "cluster" and len(state["listeners"]["nodes"]) == 8
    nodes = {n["cluster_id"]: n for n in state["nodes"]}
    m = _map(sandbox)
    _until(lambda: all(n["health"] == "healthy" for n in _map(sandbox)["nodes"].values()), 60, "every node listener healthy")
    assert set(m["map"]) == {f"{n['host']}:{n['port']}" for n in nodes.values()}
    # The configuration listener's group is a retarget binding over every node: its targets
    # are registered on the controller's first pass that confirms them (two reads a poll
    # apart), so it may turn healthy a little after the node listeners.
    config = redis.Redis("127.0.0.1", m["config_port"], socket_timeout=1)
    started = time.monotonic()
    _until(lambda: config.ping(), 60, "the configuration listener answers")
    print(f"configuration listener answered {time.monotonic() - started:.1f} s after the node listeners were healthy")
    config.close()
    scope: dict[str, Any] = {}
    exec(m["clients"]["redis-py"]["code"], scope)
    rc = scope["rc"]
    try:
        assert {(n.host, n.port) for n in rc.get_nodes()} <= {("127.0.0.1", int(v.rsplit(":", 1)[1])) for v in m["map"].values()} | {("127.0.0.1", m["config_port"])}
        keys = [f"key:{i}" for i in range(200)]
        assert len({rc.keyslot(k) * 3 // 16384 for k in keys}) == 3  # every shard's slot range
        _write_all(rc, keys, "v0")

        # TestFailover of node group 0001: its replica takes over.
        replica = nodes["sandbox-0001-002"]
        import boto3

        boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=state["region"]).client(
            "elasticache", endpoint_url=state["aws_endpoint_url"]
        ).test_failover(ReplicationGroupId=state["replication_group"], NodeGroupId="0001")
        direct = redis.Redis(replica["host"], replica["port"], socket_timeout=1)
        _until(lambda: direct.execute_command("ROLE")[0] == b"master", 30, "the replica of 0001 is primary")
        _write_all(rc, keys, "v1")
        assert all(rc.get(k) == b"v1" for k in keys)  # nothing acknowledged lost

        # A killed primary (shard 0001 again, now the former replica): the other node is elected.
        killed = run_cli(sandbox["env"], "sandbox", "kill-primary", "--state-dir", str(sandbox["state_dir"]), timeout=60)
        assert killed.returncode == 0, killed.stderr
        _write_all(rc, keys, "v2", timeout=90)
        assert all(rc.get(k) == b"v2" for k in keys)
        # The NLB did not change: the same map, node IPs being stable.
        assert _map(sandbox)["map"] == m["map"]
    finally:
        rc.close()

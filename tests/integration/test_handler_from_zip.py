"""The function as Lambda runs it: the zip unpacked on its own, beside boto3 and nothing
else, no bytecode written, its handler called against a moto server and a DNS server on
loopback. It syncs, writes and reads DNS failures with the dnspython the zip ships (the zip
leaves out the parts of dnspython that need what Lambda lacks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from cachebridge.config import Binding, Config, DnsSourceSpec, ElastiCacheSourceSpec, Settings
from cachebridge.deploy import package
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.targets import Target

from ..conftest import LambdaTask, run_in_lambda_task, unpack_lambda_zip
from .conftest import lambda_env, server_client

pytestmark = pytest.mark.timeout(120)

PORT = 6379
CNAME = "master.cold.abc123.euw1.cache.amazonaws.com"

SCRIPT = r"""
import io, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import cachebridge.handler as h
sys.stdout = io.StringIO()
try:
    result = h.handler({"action": "sync"}, None)
except h.SyncFailed as exc:
    result = {"bindings": [b.to_json() for b in exc.report.bindings]}
sys.stdout = sys.__stdout__
import cachebridge, dns
print(json.dumps({
    "bindings": {b["name"]: {"status": b["status"], "error": b["error"], "registered_after": b["registered_after"]}
                 for b in result["bindings"]},
    "files": sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)
                     and m.__name__.split(".")[0] in ("cachebridge", "dns")}),
    "bytecode": sys.dont_write_bytecode,
}))
"""


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> LambdaTask:
    root = tmp_path_factory.mktemp("lambda")
    return unpack_lambda_zip(package.build().write(root / "lambda.zip"), root)


@pytest.fixture
def dns_server() -> Iterator[LoopbackDnsServer]:
    server = LoopbackDnsServer(Zone(ttl=1), host="127.0.0.1").start()
    try:
        yield server
    finally:
        server.stop()


def invoke(task: LambdaTask, endpoint: str, config: Config) -> dict[str, Any]:
    done = run_in_lambda_task(task, SCRIPT, env=lambda_env(task, endpoint, config))
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["bytecode"] is True
    assert all(f.startswith(str(task.code)) for f in out["files"]), [f for f in out["files"] if not f.startswith(str(task.code))]
    assert not any(task.code.rglob("__pycache__"))
    return out


def test_the_unpacked_zip_syncs_writes_and_reports_dns_failures(task: LambdaTask, moto_server: str, dns_server: LoopbackDnsServer) -> None:
    ec2, elbv2, elasticache = (server_client(moto_server, s) for s in ("ec2", "elbv2", "elasticache"))
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elasticache.create_replication_group(ReplicationGroupId="cold", ReplicationGroupDescription="cold", ReplicasPerNodeGroup=1)
    members = elasticache.describe_replication_groups(ReplicationGroupId="cold")["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
    primary = next(m["ReadEndpoint"]["Address"] for m in members if m["CurrentRole"] == "primary")
    for m in members:
        dns_server.zone.set_a(m["ReadEndpoint"]["Address"], "10.0.1.10" if m["ReadEndpoint"]["Address"] == primary else "10.0.1.11")
    dns_server.zone.set_cname(CNAME, primary)
    arns = {}
    for name in ("zip-primary", "zip-endpoint"):
        arns[name] = elbv2.create_target_group(Name=name, Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=arns["zip-primary"], Targets=[{"Id": "10.0.1.10", "Port": PORT}])
    config = Config(
        (
            Binding("zip-primary", ElastiCacheSourceSpec("cold", "primary"), "zip-primary", PORT),
            Binding("zip-endpoint", DnsSourceSpec(CNAME), "zip-endpoint", PORT),  # a CNAME chain
        ),
        Settings(nameservers=(dns_server.address,), dns_timeout_s=0.5, poll_interval_s=0.05),
    )
    target = str(Target("10.0.1.10", PORT))

    first = invoke(task, moto_server, config)["bindings"]
    assert first["zip-primary"] == {"status": "in_sync", "error": None, "registered_after": [target]}
    assert first["zip-endpoint"] == {"status": "changed", "error": None, "registered_after": [target]}

    dns_server.zone.set_a(primary, "10.0.1.20")  # the node replaced: both follow it
    moved = invoke(task, moto_server, config)["bindings"]
    assert {b["status"] for b in moved.values()} == {"changed"}
    assert all(b["registered_after"] == [str(Target("10.0.1.20", PORT))] for b in moved.values())

    dns_server.zone.remove(CNAME)
    dns_server.zone.set_fault(primary, "drop")
    failed = invoke(task, moto_server, config)["bindings"]
    assert failed["zip-endpoint"]["status"] == "error" and "NXDOMAIN" in failed["zip-endpoint"]["error"]
    assert failed["zip-primary"]["status"] == "error" and "in time" in failed["zip-primary"]["error"]
    # Nothing was deregistered for a failed source.
    assert all(b["registered_after"] == [str(Target("10.0.1.20", PORT))] for b in failed.values())

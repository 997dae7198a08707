"""The zip built with bytecode runs from its bytecode as built: unpacked, its sources
damaged afterwards, the handler still imports and syncs, so the runtime loads the unchecked
hash-based pycs without reading a source. Built for the interpreter running the tests (the
runtime's version given as its own), so no Python 3.13 is needed here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from cachebridge.config import Binding, Config, ElastiCacheSourceSpec, Settings
from cachebridge.deploy import package
from cachebridge.sandbox.dns import LoopbackDnsServer, Zone
from cachebridge.targets import Target

from ..conftest import run_in_lambda_task, unpack_lambda_zip
from .conftest import lambda_env, server_client

pytestmark = pytest.mark.timeout(180)

PORT = 6379
DAMAGED = b"raise ImportError('this source was compiled: its bytecode was not used')\n"

SCRIPT = r"""
import importlib.util, io, json, os, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import cachebridge.handler as h
sys.stdout = io.StringIO()
result = h.handler({"action": "sync"}, None)
sys.stdout = sys.__stdout__
ours = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) and m.__name__.split(".")[0] in ("cachebridge", "dns")]
print(json.dumps({
    "bindings": {b["name"]: {"status": b["status"], "error": b["error"], "registered_after": b["registered_after"]} for b in result["bindings"]},
    "files": sorted(m.__file__ for m in ours),
    "without_bytecode": sorted(m.__name__ for m in ours if not (m.__file__.endswith(".pyc") or
                               (getattr(m, "__cached__", None) and os.path.isfile(m.__cached__)))),
}))
"""


@pytest.mark.parametrize("keep_sources", [True, False], ids=["sources-kept", "sourceless"])
def test_the_bytecode_zip_syncs_from_its_bytecode_with_its_sources_damaged(
    tmp_path: Path, moto_server: str, keep_sources: bool
) -> None:
    runtime_python = package.find_runtime_python(sys.executable, (sys.version_info[0], sys.version_info[1]))
    built = package.build(bytecode=package.BytecodeOptions(runtime_python, "imported", keep_sources))
    task = unpack_lambda_zip(built.write(tmp_path / "lambda.zip"), tmp_path)
    code = task.code
    # Damage every source that has bytecode, after the build: only the pycs can work now.
    damaged = 0
    for pyc in code.rglob("*.pyc"):
        source = pyc.with_suffix(".py") if not keep_sources else pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
        if source.exists():
            source.write_bytes(DAMAGED)
            damaged += 1
    assert damaged == (len([n for n in built.entries if n.endswith(".pyc")]) if keep_sources else 0)

    ec2, elbv2, elasticache = (server_client(moto_server, s) for s in ("ec2", "elbv2", "elasticache"))
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = f"pyc-{'kept' if keep_sources else 'bare'}"
    elasticache.create_replication_group(ReplicationGroupId=group, ReplicationGroupDescription="pyc", ReplicasPerNodeGroup=1)
    members = elasticache.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
    primary = next(m["ReadEndpoint"]["Address"] for m in members if m["CurrentRole"] == "primary")
    arn = elbv2.create_target_group(Name=group, Protocol="TCP", Port=PORT, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    server = LoopbackDnsServer(Zone(ttl=1), host="127.0.0.1").start()
    try:
        server.zone.set_a(primary, "10.0.1.10")
        config = Config(
            (Binding(group, ElastiCacheSourceSpec(group, "primary"), group, PORT),),
            Settings(nameservers=(server.address,), dns_timeout_s=1.0),
        )
        done = run_in_lambda_task(task, SCRIPT, env=lambda_env(task, moto_server, config), timeout=120)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    # The first pass registered the primary: the handler ran end to end from bytecode.
    assert out["bindings"][group] == {"status": "changed", "error": None, "registered_after": [str(Target("10.0.1.10", PORT))]}
    assert all(f.startswith(str(code)) for f in out["files"])
    # Every module the pass imported, the DNS answer's record type included, had bytecode.
    assert out["without_bytecode"] == []
    assert any(f.endswith(("dns/rdtypes/IN/A.py", "dns/rdtypes/IN/A.pyc")) for f in out["files"])
    held = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    assert [(d["Target"]["Id"], d["Target"]["Port"]) for d in held] == [("10.0.1.10", PORT)]

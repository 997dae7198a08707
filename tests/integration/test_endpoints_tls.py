"""Verified TLS through the NLB stand-in, for both listener kinds, as ``cachebridge
endpoints`` says to connect.

A real ``redis-server`` speaks TLS only (``--port 0 --tls-port``) with a certificate from a
local CA that names the replication group's endpoints as ElastiCache's does
(``*.<group>.<id>.use1.cache.amazonaws.com``). The stand-in's TCP listener passes TLS
through; its TLS listener terminates TLS with a certificate for the user's own name
(imported into ACM) and opens TLS to the target. Clients verify (``ssl_cert_reqs=
"required"`` and the local CA). ``localhost`` stands for the NLB's DNS name and for the
user's own name pointing at it: both reach the stand-in on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from click.testing import CliRunner
from moto import mock_aws

from cachebridge import endpoints
from cachebridge.cli import cli
from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.aws_server import ACCOUNT_ID
from cachebridge.sandbox.local_ca import LocalCA
from cachebridge.sandbox.nlb_dataplane import DataPlane
from cachebridge.sandbox.nlb_profiles import resolve_profile
from cachebridge.sandbox.redis_nodes import free_port, redis_server_binary

pytestmark = pytest.mark.redis

REGION = "us-east-1"
NLB_NAME = "localhost"  # where the stand-in listens (127.0.0.1), by name
OWN_NAME = "localhost"  # the user's name for the TLS listener, pointing at the NLB


def _start_tls_redis(host: str, port: int, cert: Any, ca_file: Path, workdir: Path) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [redis_server_binary(), "--bind", host, "--port", "0", "--tls-port", str(port),
         "--tls-cert-file", str(cert.cert_file), "--tls-key-file", str(cert.key_file),
         "--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
         "--logfile", str(workdir / "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}; see {workdir / 'redis.log'}")
        try:
            client = redis.Redis(host, port, ssl=True, ssl_cert_reqs="required", ssl_ca_certs=str(ca_file),
                                 ssl_check_hostname=False, socket_timeout=1)
            if client.ping():
                client.close()
                return process
        except redis.RedisError:
            time.sleep(0.05)
    process.terminate()
    process.wait(5)
    raise RuntimeError("TLS redis-server did not answer PING within 10 s")


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    moto_ext.install()
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        elasticache = boto3.client("elasticache", region_name=REGION)
        acm = boto3.client("acm", region_name=REGION)
        port = free_port(("127.0.0.2",))
        elasticache.create_replication_group(
            ReplicationGroupId="orders", ReplicationGroupDescription="tls", Engine="redis", NumCacheClusters=1,
            Port=port, TransitEncryptionEnabled=True,
        )
        primary = elasticache.describe_replication_groups(ReplicationGroupId="orders")["ReplicationGroups"][0]["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
        domain = primary.split(".", 1)[1]  # orders.<id>.use1.cache.amazonaws.com

        ca = LocalCA(tmp_path / "pki")
        cache_cert = ca.issue("cache", [f"*.{domain}"])
        own_cert = ca.issue("own", [OWN_NAME])
        server = _start_tls_redis("127.0.0.2", port, cache_cert, ca.ca_file, tmp_path / "redis")

        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        lb = elbv2.create_load_balancer(Name="nlb", Subnets=[subnet], Type="network", Scheme="internal")["LoadBalancers"][0]
        certificate_arn = acm.import_certificate(
            Certificate=own_cert.cert_pem(), PrivateKey=own_cert.key_pem(), CertificateChain=ca.ca_file.read_bytes(),
        )["CertificateArn"]
        groups, listeners = {}, {}
        for kind, target_protocol, listener_protocol in (("pass-through", "TCP", "TCP"), ("tls-listener", "TLS", "TLS")):
            tg = elbv2.create_target_group(
                Name=f"tg-{kind}", Protocol=target_protocol, Port=port, VpcId=vpc, TargetType="ip",
                HealthCheckProtocol="TCP", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
            )["TargetGroups"][0]["TargetGroupArn"]
            elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": "127.0.0.2", "Port": port}])
            listener_port = free_port()
            extra: dict[str, Any] = {"Certificates": [{"CertificateArn": certificate_arn}]} if listener_protocol == "TLS" else {}
            elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol=listener_protocol, Port=listener_port,
                                  DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}], **extra)
            groups[kind], listeners[kind] = tg, listener_port
        # TLS is the subject here, not the NLB's timings: the fast profile.
        plane = DataPlane(ACCOUNT_ID, REGION, profile=resolve_profile("optimistic"), registration_delay_s=0, time_scale=0.1).start()
        try:
            _wait_listening(plane, len(listeners))
            yield {
                "elbv2": elbv2, "elasticache": elasticache, "acm": acm, "ca": ca, "groups": groups,
                "listeners": listeners, "primary": primary, "lb_dns": lb["DNSName"], "tmp": tmp_path,
            }
        finally:
            plane.stop()
            server.terminate()
            server.wait(10)


def _wait_listening(plane: DataPlane, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listeners = plane.snapshot()["listeners"]
        errors = [v["error"] for v in listeners.values() if v["error"]]
        assert not errors, errors
        if len(listeners) == count:
            return
        time.sleep(0.05)
    raise AssertionError(f"the stand-in did not open {count} listeners within {timeout}s")


def _facts(world: dict[str, Any], kind: str) -> endpoints.Endpoint:
    return endpoints.from_binding(
        "elasticache://orders?role=primary", world["groups"][kind],
        elbv2=world["elbv2"], elasticache=world["elasticache"], acm=world["acm"],
    )


def _as_reached_here(found: endpoints.Endpoint, world: dict[str, Any]) -> endpoints.Endpoint:
    """The same advice with the NLB's DNS name as it resolves here (moto's name does not)."""
    return endpoints.describe(
        nlb_dns_name=NLB_NAME, port=found.port, listener_protocol=found.listener_protocol, cache_tls=found.cache_tls,
        cache_endpoint=found.server_name if found.listener_protocol == "TCP" else None,
        certificate_name=found.server_name if found.listener_protocol == "TLS" else None,
        ca_file=str(world["ca"].ca_file),
    )


def _snippet(e: endpoints.Endpoint, client: str) -> str:
    return next(how.code for how in e.clients if how.client == client)


def _run_redis_py(e: endpoints.Endpoint, key: str) -> str | None:
    namespace: dict[str, Any] = {}
    exec(_snippet(e, "redis-py"), namespace)  # the snippet as printed, unchanged
    client = namespace["r"]
    try:
        client.set(key, "verified")
        return client.get(key).decode()
    finally:
        client.close()


def _run_redis_cli(e: endpoints.Endpoint) -> subprocess.CompletedProcess[str]:
    assert shutil.which("redis-cli"), "redis-cli comes with redis-server"
    return subprocess.run(["bash", "-c", _snippet(e, "redis-cli")], capture_output=True, text=True, timeout=30)


def test_pass_through_verifies_the_cache_name(world: dict[str, Any]) -> None:
    found = _facts(world, "pass-through")
    assert (found.listener_protocol, found.tls, found.cache_tls) == ("TCP", True, True)
    assert found.host == world["lb_dns"]
    assert found.server_name == world["primary"]
    here = _as_reached_here(found, world)
    assert _run_redis_py(here, "through:tcp") == "verified"
    cli = _run_redis_cli(here)
    assert (cli.returncode, cli.stdout.strip()) == (0, "PONG"), cli.stderr
    assert f"--sni {world['primary']}" in _snippet(here, "redis-cli")


def test_pass_through_by_the_nlb_name_fails_verification(world: dict[str, Any]) -> None:
    # What a client does with rediss://<NLB DNS name>: verify the NLB's name; the cache's
    # certificate does not name it.
    client = redis.Redis(NLB_NAME, world["listeners"]["pass-through"], ssl=True, ssl_cert_reqs="required",
                         ssl_ca_certs=str(world["ca"].ca_file), socket_timeout=5)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client.ping()


def test_tls_listener_verifies_your_own_name(world: dict[str, Any]) -> None:
    found = _facts(world, "tls-listener")
    assert (found.listener_protocol, found.tls) == ("TLS", True)
    assert found.host == found.server_name == OWN_NAME  # the certificate's DomainName, from ACM
    here = _as_reached_here(found, world)
    assert _run_redis_py(here, "through:tls") == "verified"
    cli = _run_redis_cli(here)
    assert (cli.returncode, cli.stdout.strip()) == (0, "PONG"), cli.stderr
    # The stand-in presents the user's certificate, not the cache's: verifying the cache's
    # name on this listener fails.
    cache_name = endpoints.describe(nlb_dns_name=NLB_NAME, port=found.port, listener_protocol="TCP", cache_tls=True,
                                    cache_endpoint=world["primary"], ca_file=str(world["ca"].ca_file))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        _run_redis_py(cache_name, "through:tls:wrong-name")


def test_endpoints_command_reads_the_bindings(world: dict[str, Any]) -> None:
    config = world["tmp"] / "cachebridge.json"
    config.write_text(json.dumps({"bindings": [
        {"name": "tcp", "source": "elasticache://orders?role=primary", "target_group": world["groups"]["pass-through"]},
        {"name": "tls", "source": "elasticache://orders?role=primary", "target_group": world["groups"]["tls-listener"]},
    ]}))
    result = CliRunner().invoke(cli, ["endpoints", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)["endpoints"]
    assert (out["tcp"]["host"], out["tcp"]["server_name"]) == (world["lb_dns"], world["primary"])
    assert (out["tls"]["host"], out["tls"]["server_name"]) == (OWN_NAME, OWN_NAME)
    assert set(out["tcp"]["clients"]) == set(endpoints.CLIENTS)
    assert f'ServerName: "{world["primary"]}"' in out["tcp"]["clients"]["go-redis"]["code"]
    assert f'servername: "{world["primary"]}"' in out["tcp"]["clients"]["ioredis"]["code"]


def test_endpoints_command_names_a_missing_target_group(aws: None, tmp_path: Path) -> None:
    config = tmp_path / "cachebridge.json"
    config.write_text(json.dumps({"bindings": [{"source": "elasticache://orders", "target_group": "no-such-group"}]}))
    result = CliRunner().invoke(cli, ["endpoints", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: AWS:") and "TargetGroupNotFound" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)

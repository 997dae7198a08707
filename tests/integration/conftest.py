"""What the integration tests share: moto in-process with cachebridge's extensions, its
elbv2 and ec2 clients, a log of the API calls a client makes, a DNS server on loopback,
and a moto server in a process of its own (for tests whose threads must really interleave,
or that put something between the client and AWS)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cachebridge import nlb
from cachebridge.sandbox import moto_ext
from cachebridge.sandbox.dns import DEFAULT_TTL, LoopbackDnsServer, Zone
from cachebridge.targets import Target

# The region of the in-process moto that ``aws`` sets up.
REGION = "eu-west-1"
WRITES = ("RegisterTargets", "DeregisterTargets")


class CallLog:
    """Every API call a client makes, in order, with the parameters it was given."""

    def __init__(self, *clients: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        for client in clients:
            client.meta.events.register("before-parameter-build", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def writes(self) -> list[tuple[str, list[Target]]]:
        return [
            (name, [Target(t["Id"], t["Port"]) for t in params["Targets"]])
            for name, params in self.calls
            if name in WRITES
        ]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process for ``REGION``, with ``moto_ext`` installed and moto's own target
    health (no provider); cached target group details are dropped before and after."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", "AWS_ENDPOINT_URL_EC2", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    moto_ext.install()
    nlb.clear_caches()
    previous = moto_ext.set_health_provider(None)
    try:
        with mock_aws():
            yield
    finally:
        moto_ext.set_health_provider(previous)
        nlb.clear_caches()


@pytest.fixture
def ec2(aws: None) -> Any:
    return boto3.client("ec2", region_name=REGION)


@pytest.fixture
def elbv2(aws: None) -> Any:
    return boto3.client("elbv2", region_name=REGION)


@pytest.fixture
def zone_ttl() -> int:
    """The TTL of the loopback zone's records; a module that checks TTLs overrides it."""
    return DEFAULT_TTL


@pytest.fixture
def dns_server(zone_ttl: int) -> Iterator[LoopbackDnsServer]:
    server = LoopbackDnsServer(Zone(ttl=zone_ttl), host="127.0.0.1").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zone(dns_server: LoopbackDnsServer) -> Zone:
    return dns_server.zone


SERVER_REGION = "eu-west-1"


@pytest.fixture
def vpc_id(ec2: Any) -> str:
    return ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]


def create_target_group(
    elbv2: Any,
    vpc_id: str,
    name: str = "orders-primary",
    *,
    target_type: str = "ip",
    interval: int = 10,
    threshold: int = 2,
    attributes: dict[str, str] | None = None,
) -> str:
    """An IP target group on 6379, as the stack makes one: TCP health checks, and (unless
    ``attributes`` says otherwise) a 5 s deregistration delay with connection termination."""
    arn = elbv2.create_target_group(
        Name=name,
        Protocol="TCP",
        Port=6379,
        VpcId=vpc_id,
        TargetType=target_type,
        HealthCheckProtocol="TCP",
        HealthCheckIntervalSeconds=interval,
        HealthyThresholdCount=threshold,
    )["TargetGroups"][0]["TargetGroupArn"]
    if attributes is None:
        attributes = {
            "deregistration_delay.timeout_seconds": "5",
            "deregistration_delay.connection_termination.enabled": "true",
        }
    elbv2.modify_target_group_attributes(
        TargetGroupArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in attributes.items()]
    )
    return arn


@pytest.fixture
def tg_arn(elbv2: Any, vpc_id: str) -> str:
    """The primary's target group, ``orders-primary``."""
    return create_target_group(elbv2, vpc_id)


def registered(elbv2: Any, arn: str) -> set[Target]:
    """The targets ``arn`` holds, in any state."""
    descriptions = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {Target(d["Target"]["Id"], d["Target"]["Port"]) for d in descriptions}


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server (with ``moto_ext``) in a process of its own."""
    from cachebridge.sandbox.redis_nodes import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachebridge.sandbox.aws_server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), f"moto server did not start (exit {proc.poll()})"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def server_client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=SERVER_REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )

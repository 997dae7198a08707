"""What the integration tests share: moto in-process with cachebridge's extensions, its
elbv2 and ec2 clients, a log of the API calls a client makes, and a DNS server on
loopback."""

from __future__ import annotations

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

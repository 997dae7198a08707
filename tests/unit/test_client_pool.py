"""The controller's clients hold as many kept-alive connections as a pass has threads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cachebridge import aws
from cachebridge.config import MAX_CONCURRENCY_LIMIT


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws.clear_caches()
    yield
    aws.clear_caches()


@pytest.mark.parametrize("service", ["elbv2", "elasticache", "ec2", "dynamodb"])
def test_a_controller_client_keeps_a_connection_for_every_worker_thread(clients: None, service: str) -> None:
    # A pass runs up to max_concurrency calls at once on one client; a smaller pool would
    # discard and reopen (a TLS handshake on AWS) a connection per call beyond it.
    assert aws.client(service, controller=True).meta.config.max_pool_connections >= MAX_CONCURRENCY_LIMIT

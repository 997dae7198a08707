"""Real parts for end-to-end tests: moto server (own process), loopback DNS, redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from cachebridge.sandbox.dns import LoopbackDnsServer
from cachebridge.sandbox.redis_nodes import RedisNode, free_port, redis_server_binary

from ..conftest import aws_server_process

REGION = "us-east-1"


def _aws_env(url: str) -> dict[str, str]:
    """What the CLI's environment needs to reach the moto server at ``url``."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }


@pytest.fixture(scope="session")
def aws_env() -> Iterator[dict[str, str]]:
    with aws_server_process() as url:
        yield _aws_env(url)


@pytest.fixture(scope="module")
def fresh_aws_env() -> Iterator[dict[str, str]]:
    """A moto server of its own for one test module: an account where nothing was created
    before, for tests that assert what exists afterwards (no stack, no bucket)."""
    with aws_server_process() as url:
        yield _aws_env(url)


def aws_client(env: dict[str, str], service: str) -> object:
    """A boto3 client for the moto server behind ``env``."""
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def aws_clients(aws_env: dict[str, str]) -> dict[str, object]:
    return {name: aws_client(aws_env, name) for name in ("elbv2", "ec2", "elasticache")}


@pytest.fixture
def dns_server() -> Iterator[LoopbackDnsServer]:
    server = LoopbackDnsServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_pair(tmp_path: Path) -> Iterator[tuple[RedisNode, RedisNode]]:
    redis_server_binary()  # a clear error, not a skip, when redis-server is missing
    port = free_port(("127.0.0.2", "127.0.0.3"))
    primary = RedisNode("127.0.0.2", port, tmp_path / "node-1").start()
    replica = RedisNode("127.0.0.3", port, tmp_path / "node-2")
    try:
        replica.start(replica_of=primary)
        replica.wait_synced()
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def _cli(env: dict[str, str], args: tuple[str, ...], timeout: float, stdin_text: str | None) -> subprocess.CompletedProcess[str]:
    # Only the given AWS settings: none of the caller's credentials, profile or endpoint.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "cachebridge.cli", *args],
        env=full_env,
        input=stdin_text,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = _cli(env, args, timeout, None)
    result.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    return result


def run_cli_with_input(env: dict[str, str], *args: str, stdin_text: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``run_cli`` with ``stdin_text`` on the command's standard input (never the terminal)."""
    return _cli(env, args, timeout, stdin_text)

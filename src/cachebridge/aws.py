"""The one place that builds boto3 clients.

Region, credentials and endpoint come from the standard AWS settings (``AWS_REGION`` /
``AWS_DEFAULT_REGION``, profiles, ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``),
so emulators need no special flag. boto3 itself reads only ``AWS_DEFAULT_REGION`` (and the
profile); ``resolve_region`` also honours ``AWS_REGION``, which the AWS CLI v2, the other
SDKs and the Lambda runtime set, and which wins when both are set. Clients are cached per
(service, region, profile) for a warm Lambda; ``clear_caches()`` drops them (tests, or a
changed environment).

The controller's clients come from one botocore session per profile, not from boto3:
boto3's import pulls in s3transfer and its resource layer (about a third of the
function's import time) for nothing the controller calls, and one session loads the
SDK's shared data (endpoints, partitions, defaults) once for all clients. Deploy clients
still come from boto3 (its S3 customizations).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config as BotoConfig

if TYPE_CHECKING:
    from .config import Settings
    from .nlb import TargetGroups
    from .sources import Sources

__all__ = [
    "client",
    "adapters",
    "paced_elbv2",
    "clear_caches",
    "resolve_region",
    "call_budget_s",
    "BOTO_CONFIG",
    "DEPLOY_BOTO_CONFIG",
    "CONNECT_TIMEOUT_S",
    "READ_TIMEOUT_S",
    "TOTAL_MAX_ATTEMPTS",
]

# The one retry policy: botocore's, here. Nothing above it retries the same call again
# (a second layer multiplies waits: 5 retries x 2 layers was 30 s against a dead endpoint).
# Standard mode, not adaptive: adaptive's client-side rate limiter can sleep for an
# unbounded time, which a run with a deadline cannot afford; throttling is retried once with
# backoff and the next scheduled run retries the rest.
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 3.0
TOTAL_MAX_ATTEMPTS = 2

# The controller's clients (``adapters``): every call bounded, so a binding's writes fit the
# time ``sync`` reserves for them (``call_budget_s``).
BOTO_CONFIG = BotoConfig(
    retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    user_agent_extra="cachebridge",
    # One kept-alive connection per worker thread, up to config.MAX_CONCURRENCY_LIMIT:
    # botocore's default pool of 10 would make a pass above 10 at once open (TLS handshake)
    # and throw away a connection per call, with a "Connection pool is full" warning each.
    # Connections are opened only as threads need them.
    max_pool_connections=64,
)


def call_budget_s(config: BotoConfig | None = None) -> float:
    """The longest one AWS call through a client built with ``config`` (default
    ``BOTO_CONFIG``) can take, every attempt timing out: what ``sync`` reserves before it
    starts a write it must be able to finish.

    botocore's standard backoff before retry i (1-based) is at most min(2 ** (i - 1), 20) s
    (botocore/retries/standard.py, ExponentialBackoff); its opt-in new retry behaviour
    (AWS_NEW_RETRIES_2026=true) may wait up to 5 s more when a service sends
    x-amz-retry-after."""
    config = config or BOTO_CONFIG
    attempts = int((config.retries or {}).get("total_max_attempts", 1))
    extra = 5.0 if os.environ.get("AWS_NEW_RETRIES_2026", "").lower() == "true" else 0.0
    backoff = sum(min(2.0 ** (i - 1), 20.0) + extra for i in range(1, attempts))
    return attempts * (float(config.connect_timeout) + float(config.read_timeout)) + backoff


# Deploying (CloudFormation, S3 uploads) has no Lambda deadline and slower calls.
DEPLOY_BOTO_CONFIG = BotoConfig(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=5,
    read_timeout=60,
    user_agent_extra="cachebridge",
)

_lock = threading.Lock()
_clients: dict[tuple[str, str | None, str | None, bool], Any] = {}
_sessions: dict[str | None, Any] = {}


def resolve_region(region: str | None = None) -> str | None:
    """The region a client is built for: ``region`` when given, else ``AWS_REGION``, else
    ``AWS_DEFAULT_REGION``; ``None`` leaves it to boto3 (the profile's region)."""
    for candidate in (region, os.environ.get("AWS_REGION"), os.environ.get("AWS_DEFAULT_REGION")):
        if candidate and candidate.strip():
            return candidate.strip()
    return None


def client(service: str, region: str | None = None, profile: str | None = None, *, controller: bool = False) -> Any:
    """A cached client; ``controller=True`` gives the controller's bounded retry policy
    (``BOTO_CONFIG``), otherwise the deploy policy (``DEPLOY_BOTO_CONFIG``)."""
    region = resolve_region(region)
    key = (service, region, profile, controller)
    with _lock:
        cached = _clients.get(key)
        if cached is None:
            if controller:
                session = _sessions.get(profile)
                if session is None:
                    session = _sessions[profile] = botocore.session.Session(profile=profile)
                # BOTO_CONFIG read now: tests may swap it.
                cached = session.create_client(service, region_name=region, config=BOTO_CONFIG)
            else:
                import boto3

                session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
                cached = session.client(service, region_name=region, config=DEPLOY_BOTO_CONFIG)
            _clients[key] = cached
        return cached


def adapters(settings: "Settings", profile: str | None = None) -> "tuple[TargetGroups, Sources]":
    """The adapters every entry point (CLI, Lambda) uses, over clients from ``client``.
    The ElastiCache client is built on first use: ``dns://`` bindings never need it."""
    from .nlb import TargetGroups
    from .sources import DnsResolver, Sources

    region = settings.region
    target_groups = TargetGroups(
        paced_elbv2(client("elbv2", region, profile, controller=True), settings),
        lambda: client("ec2", region, profile, controller=True),  # only when a write needs the VPC
        dynamodb=lambda: client("dynamodb", region, profile, controller=True),
    )
    sources = Sources(
        DnsResolver(settings.nameservers, settings.dns_timeout_s),
        lambda: client("elasticache", region, profile, controller=True),
    )
    return target_groups, sources


def paced_elbv2(elbv2: Any, settings: "Settings") -> Any:
    """``elbv2`` with its ``Describe*`` calls paced to the process's one token bucket
    (``pacing``), sized by ``settings.elb_describe_rate`` / ``elb_describe_burst`` (rate 0:
    not paced). The hook is on ``before-send``, which botocore emits for every attempt, so
    a retry waits for a token too; registered once per client."""
    from . import pacing

    pacing.configure(settings.elb_describe_rate, settings.elb_describe_burst)
    service_id = elbv2.meta.service_model.service_id.hyphenize()  # "elastic-load-balancing-v2"
    elbv2.meta.events.register(f"before-send.{service_id}", pacing.pace_describe, unique_id="cachebridge-pacing")
    return elbv2


def clear_caches() -> None:
    with _lock:
        _clients.clear()
        _sessions.clear()

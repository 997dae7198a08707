"""The one place that builds boto3 clients.

Region, credentials and endpoint come from the standard AWS settings (``AWS_REGION`` /
``AWS_DEFAULT_REGION``, profiles, ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``),
so emulators need no special flag. boto3 itself reads only ``AWS_DEFAULT_REGION`` (and the
profile); ``resolve_region`` also honours ``AWS_REGION``, which the AWS CLI v2, the other
SDKs and the Lambda runtime set, and which wins when both are set. Clients are cached per
(service, region, profile) for a warm Lambda; ``clear_caches()`` drops them (tests, or a
changed environment).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config as BotoConfig

if TYPE_CHECKING:
    from .config import Settings
    from .nlb import TargetGroups
    from .sources import Sources

__all__ = ["client", "adapters", "clear_caches", "resolve_region", "BOTO_CONFIG"]

# Adaptive mode adds client-side rate limiting on top of retries, which is what a burst
# of failover-driven syncs against a throttled ELB API wants.
BOTO_CONFIG = BotoConfig(
    # Few attempts: a Lambda run has a deadline, and the next scheduled run retries anyway.
    retries={"mode": "adaptive", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=10,
    user_agent_extra="cachebridge",
)

_lock = threading.Lock()
_clients: dict[tuple[str, str | None, str | None], Any] = {}


def resolve_region(region: str | None = None) -> str | None:
    """The region a client is built for: ``region`` when given, else ``AWS_REGION``, else
    ``AWS_DEFAULT_REGION``; ``None`` leaves it to boto3 (the profile's region)."""
    for candidate in (region, os.environ.get("AWS_REGION"), os.environ.get("AWS_DEFAULT_REGION")):
        if candidate and candidate.strip():
            return candidate.strip()
    return None


def client(service: str, region: str | None = None, profile: str | None = None) -> Any:
    region = resolve_region(region)
    key = (service, region, profile)
    with _lock:
        cached = _clients.get(key)
        if cached is None:
            session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
            cached = session.client(service, region_name=region, config=BOTO_CONFIG)
            _clients[key] = cached
        return cached


def adapters(settings: "Settings", profile: str | None = None) -> "tuple[TargetGroups, Sources]":
    """The adapters every entry point (CLI, Lambda) uses, over clients from ``client``.
    The ElastiCache client is built on first use: ``dns://`` bindings never need it."""
    from .nlb import TargetGroups
    from .sources import DnsResolver, Sources

    region = settings.region
    target_groups = TargetGroups(client("elbv2", region, profile), client("ec2", region, profile))
    sources = Sources(
        DnsResolver(settings.nameservers, settings.dns_timeout_s),
        lambda: client("elasticache", region, profile),
    )
    return target_groups, sources


def clear_caches() -> None:
    with _lock:
        _clients.clear()

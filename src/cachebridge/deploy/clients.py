"""boto3 clients for deploy and destroy, and how their errors read in messages."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, NoRegionError, ProfileNotFound

from .. import aws
from ..errors import ConfigError

__all__ = ["Clients"]


class Clients:
    """boto3 clients by service name, all from ``aws.client`` (one region, one profile)."""

    def __init__(self, region: str | None = None, profile: str | None = None) -> None:
        self.region = region
        self.profile = profile

    def __call__(self, service: str) -> Any:
        try:
            return aws.client(service, self.region, self.profile)
        except NoRegionError:
            raise ConfigError("AWS settings", "no region", "AWS_REGION, a profile with a region, or --region") from None
        except ProfileNotFound as exc:
            raise ConfigError("--profile", str(exc), "a profile from your AWS config") from None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', '?')}: {error.get('Message', '') or exc}"


def _region(client: Any) -> str:
    return getattr(getattr(client, "meta", None), "region_name", None) or "this region"

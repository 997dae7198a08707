"""What deploy reads from the replication group (``read_cache``), and the checks of the
VPC, subnets and security group against it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ConfigError, DeployError, SourceError, SourceNotFound
from ..sources import describe_replication_group
from . import template as cfn_template
from .clients import _code, _message, _region
from .request import DeployRequest

__all__ = ["CacheFacts", "read_cache"]


@dataclass(frozen=True)
class CacheFacts:
    """What deploy reads from the replication group and one of its members."""

    replication_group_id: str
    port: int
    transit_encryption: bool
    security_group_ids: tuple[str, ...]
    notification_topic_arn: str | None
    notification_topic_active: bool
    members: tuple[str, ...]
    availability_zones: dict[str, str] = field(default_factory=dict)  # member -> its AZ
    cluster_enabled: bool = False


def read_cache(elasticache: Any, replication_group_id: str) -> CacheFacts:
    """Read the replication group; ``ConfigError`` (field ``--replication-group``) when it
    does not exist or has cluster mode enabled."""
    rg_id = replication_group_id.strip().lower()
    try:
        rg = describe_replication_group(elasticache, rg_id)
    except SourceNotFound:
        raise ConfigError("--replication-group", f"no replication group {rg_id!r} in {_region(elasticache)}", "the id of an existing replication group") from None
    except SourceError as exc:
        raise DeployError(str(exc)) from None
    if rg.cluster_mode == "compatible":
        raise ConfigError(
            "--replication-group",
            f"{rg_id!r} is migrating between cluster modes (ClusterMode compatible)",
            "finish the migration (ClusterMode enabled), or set it back to disabled, then deploy",
        )
    if rg.cluster_enabled and len(rg.members) > cfn_template.MAX_NODE_SLOTS:
        raise ConfigError(
            "--replication-group",
            f"{rg_id!r} has {len(rg.members)} nodes; one NLB has 50 listeners, so a stack reaches at most "
            f"{cfn_template.MAX_NODE_SLOTS} nodes (one listener each, plus the configuration listener)",
            f"a group of at most {cfn_template.MAX_NODE_SLOTS} nodes (fewer replicas per shard, or fewer, larger shards)",
        )
    members = tuple(m.cache_cluster_id for m in rg.members) or tuple(rg.raw.get("MemberClusters", []))
    port = rg.port or next((m.port for m in rg.members if m.port), None)
    security_groups: tuple[str, ...] = ()
    topic: str | None = None
    topic_active = False
    zones: dict[str, str] = {}
    for member in members:
        try:
            clusters = elasticache.describe_cache_clusters(CacheClusterId=member)["CacheClusters"]
        except ClientError as exc:
            if _code(exc) in ("CacheClusterNotFound", "CacheClusterNotFoundFault"):
                continue
            raise DeployError(f"DescribeCacheClusters {member}: {_message(exc)}") from None
        for cluster in clusters:
            if cluster.get("PreferredAvailabilityZone"):
                zones[member] = cluster["PreferredAvailabilityZone"]
            security_groups = security_groups or tuple(sg["SecurityGroupId"] for sg in cluster.get("SecurityGroups", []) if sg.get("SecurityGroupId"))
            port = port or (cluster.get("ConfigurationEndpoint") or {}).get("Port")
            notification = cluster.get("NotificationConfiguration") or {}
            if notification.get("TopicArn") and topic is None:
                topic = notification["TopicArn"]
                topic_active = notification.get("TopicStatus", "active") == "active"
    return CacheFacts(
        replication_group_id=rg.replication_group_id,
        port=int(port or 6379),
        transit_encryption=rg.transit_encryption,
        security_group_ids=security_groups,
        notification_topic_arn=topic,
        notification_topic_active=topic_active,
        members=members,
        availability_zones=zones,
        cluster_enabled=rg.cluster_enabled,
    )


def _cache_security_group(request: DeployRequest, cache: CacheFacts) -> str:
    chosen = request.cache_security_group_id or (cache.security_group_ids[0] if cache.security_group_ids else None)
    if not chosen:
        raise ConfigError(
            "--cache-security-group",
            f"replication group {cache.replication_group_id!r} reports no security group",
            "the id of the replication group's security group",
        )
    return chosen


def _check_security_group(ec2: Any, group_id: str, vpc_id: str) -> None:
    try:
        groups = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    except ClientError as exc:
        if "NotFound" in _code(exc):
            raise ConfigError("--cache-security-group", f"no security group {group_id!r} in {_region(ec2)}", "the replication group's security group") from None
        raise DeployError(f"DescribeSecurityGroups: {_message(exc)}") from None
    if groups and groups[0].get("VpcId") != vpc_id:
        raise ConfigError("--vpc", f"the cache's security group {group_id} is in {groups[0].get('VpcId')}, not {vpc_id}", "the VPC of the replication group")


def _check_zones(cache: CacheFacts, subnet_zones: Sequence[str]) -> None:
    """Every member must sit in an Availability Zone the NLB has a subnet in: a promoted
    replica in another zone would be registered but stay ``unused`` (Target.NotInUse), and
    the NLB would have nothing to route to after that failover."""
    uncovered = {m: z for m, z in cache.availability_zones.items() if z not in set(subnet_zones)}
    if uncovered:
        where = ", ".join(f"{m} in {z}" for m, z in sorted(uncovered.items()))
        raise ConfigError(
            "--subnets",
            f"no subnet in the Availability Zone of {where}; after a failover to it the NLB could not reach it",
            "a subnet in each Availability Zone where the replication group has a node",
        )


def _check_network(ec2: Any, vpc_id: str, subnet_ids: Sequence[str]) -> list[str]:
    try:
        ec2.describe_vpcs(VpcIds=[vpc_id])
    except ClientError as exc:
        if "NotFound" in _code(exc):
            raise ConfigError("--vpc", f"no VPC {vpc_id!r} in {_region(ec2)}", "an existing VPC id") from None
        raise DeployError(f"DescribeVpcs: {_message(exc)}") from None
    try:
        subnets = ec2.describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]
    except ClientError as exc:
        if "NotFound" in _code(exc):
            raise ConfigError("--subnets", _message(exc), "existing subnets of --vpc") from None
        raise DeployError(f"DescribeSubnets: {_message(exc)}") from None
    outside = sorted(s["SubnetId"] for s in subnets if s.get("VpcId") != vpc_id)
    if outside:
        raise ConfigError("--subnets", f"{', '.join(outside)} not in {vpc_id}", "subnets of --vpc")
    zones = [s.get("AvailabilityZone") for s in subnets]
    if len(set(zones)) != len(zones):
        raise ConfigError("--subnets", "two subnets in one Availability Zone", "at most one subnet per Availability Zone")
    return [z for z in zones if z]

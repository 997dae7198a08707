"""Create, update and delete one cachebridge stack (the logic behind ``cachebridge deploy``
and ``cachebridge destroy``; no click here).

``deploy`` in order, refusing bad input before it creates anything:

1. Check the request (``validate_request``): stack name, allowed CIDRs (0.0.0.0/0 only with
   ``allow_any_source``), listener protocol and certificate, subnets, VPC, and the
   controller's options (idle timeout, reserved concurrency, its subnets and endpoints).
2. Read the replication group (``read_cache``): it must exist and have cluster mode
   disabled; its port and in-transit encryption come from DescribeReplicationGroups, its
   security group and notification topic from DescribeCacheClusters of a member (the
   replication group call has neither). Check the subnets are in the VPC, the template
   accepts the parameter values (``template.validate_parameters``), and an existing stack
   of that name is a cachebridge stack that can be updated. A function in the VPC needs
   subnets of that VPC (``deploy.vpc``); a given notification topic must be one ElastiCache
   can publish to: same account and Region, unencrypted, with the documented policy
   statement (``deploy.notifications``).
3. Ensure the artifact bucket ``cachebridge-artifacts-<account>-<region>`` (private: public
   access blocked, owner-enforced; encrypted; versioned) and upload the Lambda zip under its
   content-addressed key, only if that key is absent.
4. Create a change set (CREATE when there is no stack, UPDATE otherwise), wait for it with
   boto3's waiter; "no changes" deletes the empty change set and ends as a no-op. Otherwise
   execute it, report each new stack event as it appears, wait for a final status, and on
   failure raise ``DeployError`` naming each failing resource with CloudFormation's reason.
5. When the stack created the notification topic, set it on the replication group
   (ModifyReplicationGroup, ApplyImmediately) if the caller agreed.
6. Run one sync: ``invoke="lambda"`` invokes the function with ``{"action": "sync"}``;
   ``invoke="local"`` reads the deployed function's environment and runs
   ``cachebridge.handler.handler`` in this process with exactly that environment
   (``deploy.local``; moto cannot invoke a Lambda without Docker); ``invoke="none"``
   skips it.

Every AWS client comes from ``aws.client`` (standard AWS settings, ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError, ProfileNotFound, WaiterError

from .. import aws
from ..config import Binding
from ..errors import CacheBridgeError, ConfigError, DeployError, SourceError, SourceNotFound
from ..nlb import vpc_cidr_blocks
from ..sources import describe_replication_group
from . import allow_list, more_bindings
from . import package as packaging
from . import template as cfn_template
from .local import LocalFunction
from .notifications import check_topic
from .vpc import check_lambda_network

__all__ = [
    "DEFAULT_POLL_S",
    "DEFAULT_TIMEOUT_S",
    "INVOKE_MODES",
    "DeployRequest",
    "CacheFacts",
    "StackEvent",
    "ResourceFailure",
    "DeployResult",
    "DestroyResult",
    "Clients",
    "validate_request",
    "read_cache",
    "artifact_bucket_name",
    "ensure_artifact_bucket",
    "upload_package",
    "stack_parameters",
    "Stacks",
    "deploy",
    "destroy",
    "run_sync",
]

DEFAULT_POLL_S = 5.0
DEFAULT_TIMEOUT_S = 3600.0
INVOKE_MODES = ("lambda", "local", "none")
InvokeMode = Literal["lambda", "local", "none"]
SCHEMES = ("internet-facing", "internal")
PROTOCOLS = ("TCP", "TLS")
TEMPLATE_BODY_LIMIT = 51_200
BUCKET_FORMAT = "cachebridge-artifacts-{account}-{region}"
# Parameters a cachebridge stack has and no other stack is likely to: how an existing stack
# of the requested name is recognised before it is updated.
_SIGNATURE_PARAMETERS = frozenset({"ReplicationGroupId", "CacheSecurityGroupId", "CodeBucket", "CodeKey"})
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
# Which flag a template parameter or rule comes from, so its problems name what the user typed.
_FLAG_OF = {
    "VpcId": "--vpc",
    "SubnetIds": "--subnets",
    "Scheme": "--scheme",
    "ListenerPort": "--listener-port",
    "ListenerProtocol": "--listener-protocol",
    "CertificateArn": "--certificate-arn",
    "TlsListenerNeedsCertificate": "--certificate-arn",
    "AllowedCidrs": "--allowed-cidr",
    "AllowAnySource": "--allow-any-source",
    "AllowAnySourceOnPurpose": "--allow-any-source",
    "ReplicationGroupId": "--replication-group",
    "CacheSecurityGroupId": "--cache-security-group",
    "ScheduleExpression": "--schedule",
    "ScheduleRuleName": "--schedule-rule-name",
    "NotificationTopicArn": "--notification-topic-arn",
    "HealthCheckIntervalSeconds": "--health-check-interval",
    "HealthyThreshold": "--healthy-threshold",
    "DeregistrationDelaySeconds": "--deregistration-delay",
    "Layout": "--layout",
    "ReaderPort": "--reader-port",
    "NodePorts": "--node-port-base",
    "TcpIdleTimeoutSeconds": "--tcp-idle-timeout",
    "ReservedConcurrency": "--reserved-concurrency",
    "LambdaSubnetIds": "--lambda-subnets",
    "LambdaSecurityGroupId": "--lambda-security-group",
    "CreateVpcEndpoints": "--create-vpc-endpoints",
    "VpcOptionsNeedLambdaSubnets": "--lambda-subnets",
}


# -- what the caller asks for ----------------------------------------------------------------


@dataclass(frozen=True)
class DeployRequest:
    """One stack as the user describes it. ``None`` means: read it from the replication
    group (port, security group, topic, target protocol) or use the template's default."""

    stack_name: str
    replication_group_id: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    allowed_cidrs: tuple[str, ...]
    allow_any_source: bool = False
    scheme: str = "internet-facing"
    listener_protocol: str = "TCP"
    listener_port: int | None = None
    certificate_arn: str | None = None
    cache_security_group_id: str | None = None
    schedule_expression: str | None = None
    schedule_rule_name: str | None = None
    notification_topic_arn: str | None = None
    health_check_interval_s: int | None = None
    healthy_threshold: int | None = None
    deregistration_delay_s: int | None = None
    # None: the stack's current layout on an update; for a new stack, cluster for a
    # cluster-mode-enabled group, switch otherwise (``_with_layout``).
    layout: str | None = None
    reader_port: int | None = None
    node_port_base: int | None = None
    tcp_idle_timeout_s: int | None = None
    reserved_concurrency: int | None = None  # None or 0: no reservation
    lambda_subnet_ids: tuple[str, ...] = ()  # empty: the function runs outside the VPC
    lambda_security_group_id: str | None = None
    create_vpc_endpoints: bool = False
    # Bindings the controller follows besides the stack's own (``deploy --config``); their
    # target groups are tagged cachebridge:owner=<stack name> (``more_bindings``).
    extra_bindings: tuple[Binding, ...] = ()


def validate_request(request: DeployRequest) -> None:
    """Refuse what is wrong with the request itself, before any AWS call."""
    if not _STACK_NAME.match(request.stack_name or ""):
        raise ConfigError("--stack-name", f"{request.stack_name!r} is not a stack name", "1-128 letters, digits and hyphens, starting with a letter")
    if not request.replication_group_id:
        raise ConfigError("--replication-group", "missing", "the id of a replication group")
    if not _VPC_ID.match(request.vpc_id or ""):
        raise ConfigError("--vpc", f"{request.vpc_id!r} is not a VPC id", "vpc-0123456789abcdef0")
    if not request.subnet_ids:
        raise ConfigError("--subnets", "missing", "comma-separated subnet ids, one per Availability Zone")
    for subnet in request.subnet_ids:
        if not _SUBNET_ID.match(subnet):
            raise ConfigError("--subnets", f"{subnet!r} is not a subnet id", "subnet-0123456789abcdef0,subnet-...")
    if len(set(request.subnet_ids)) != len(request.subnet_ids):
        raise ConfigError("--subnets", "a subnet is listed twice", "each subnet once")
    _validate_cidrs(request.allowed_cidrs, request.allow_any_source)
    if request.scheme not in SCHEMES:
        raise ConfigError("--scheme", f"{request.scheme!r} is not a scheme", ", ".join(SCHEMES))
    if request.listener_protocol not in PROTOCOLS:
        raise ConfigError("--listener-protocol", f"{request.listener_protocol!r} is not a protocol", ", ".join(PROTOCOLS))
    if request.listener_protocol == "TLS" and not request.certificate_arn:
        raise ConfigError(
            "--certificate-arn",
            "a TLS listener needs a certificate",
            "an ACM certificate ARN for a name of yours that points at the NLB",
        )
    if request.certificate_arn and request.listener_protocol != "TLS":
        raise ConfigError("--certificate-arn", "only a TLS listener uses a certificate", "--listener-protocol TLS, or no --certificate-arn")
    if request.cache_security_group_id is not None and not _SG_ID.match(request.cache_security_group_id):
        raise ConfigError("--cache-security-group", f"{request.cache_security_group_id!r} is not a security group id", "sg-0123456789abcdef0")
    if request.listener_port is not None and not 1 <= request.listener_port <= 65535:
        raise ConfigError("--listener-port", f"{request.listener_port} is out of range", "1..65535")
    _validate_layout(request)
    _validate_controller_options(request)


def _validate_controller_options(request: DeployRequest) -> None:
    low, high = cfn_template.TCP_IDLE_TIMEOUT_RANGE
    if request.tcp_idle_timeout_s is not None:
        if request.listener_protocol == "TLS":
            raise ConfigError("--tcp-idle-timeout", "a TLS listener's idle timeout is fixed at 350 s", "--listener-protocol TCP, or no --tcp-idle-timeout")
        if not low <= request.tcp_idle_timeout_s <= high:
            raise ConfigError("--tcp-idle-timeout", f"{request.tcp_idle_timeout_s} is out of range", f"{low}..{high} seconds")
    if request.reserved_concurrency is not None and request.reserved_concurrency < 0:
        raise ConfigError("--reserved-concurrency", f"{request.reserved_concurrency} is negative", "0 (no reservation) or a positive count")
    for subnet in request.lambda_subnet_ids:
        if not _SUBNET_ID.match(subnet):
            raise ConfigError("--lambda-subnets", f"{subnet!r} is not a subnet id", "subnet-0123456789abcdef0,subnet-...")
    if len(set(request.lambda_subnet_ids)) != len(request.lambda_subnet_ids):
        raise ConfigError("--lambda-subnets", "a subnet is listed twice", "each subnet once")
    if request.lambda_security_group_id is not None:
        if not request.lambda_subnet_ids:
            raise ConfigError("--lambda-security-group", "only a function in the VPC has a security group", "--lambda-subnets too")
        if not _SG_ID.match(request.lambda_security_group_id):
            raise ConfigError("--lambda-security-group", f"{request.lambda_security_group_id!r} is not a security group id", "sg-0123456789abcdef0")
    if request.create_vpc_endpoints and not request.lambda_subnet_ids:
        raise ConfigError("--create-vpc-endpoints", "the endpoints are for a function in the VPC", "--lambda-subnets too")


def _validate_cidrs(cidrs: Sequence[str], allow_any_source: bool) -> None:
    if not cidrs:
        raise ConfigError(
            "--allowed-cidr",
            "missing: say who may connect to the NLB",
            "one or more IPv4 ranges, e.g. --allowed-cidr 203.0.113.0/24 (repeatable)",
        )
    limit = cfn_template.MAX_ALLOWED_CIDRS
    if len(cidrs) > limit:
        raise ConfigError("--allowed-cidr", f"{len(cidrs)} ranges given", f"at most {limit}")
    seen: set[ipaddress.IPv4Network] = set()
    for text in cidrs:
        try:
            network = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as exc:
            raise ConfigError("--allowed-cidr", f"{text!r} is not a CIDR range ({exc})", "an IPv4 range such as 203.0.113.0/24") from None
        if network.version != 4:
            raise ConfigError("--allowed-cidr", f"{text!r} is an IPv6 range", "IPv4 ranges (the NLB listens on IPv4)")
        if network.prefixlen == 0 and not allow_any_source:
            raise ConfigError(
                "--allowed-cidr",
                f"{text} lets any address on the internet connect",
                "narrower ranges, or --allow-any-source to allow any source on purpose",
            )
        if network in seen:
            raise ConfigError("--allowed-cidr", f"{text} is given twice", "each range once")
        seen.add(network)  # type: ignore[arg-type]
    # Count addresses, not spellings: 0.0.0.0/1 + 128.0.0.0/1 is 0.0.0.0/0.
    networks = sorted(seen)
    nested = allow_list.nested_range(networks)
    if nested:
        inner, outer = nested
        raise ConfigError("--allowed-cidr", f"{inner} lies inside {outer}", "each address in one range only: give the wider range once")
    if allow_list.too_broad(networks) and not allow_any_source:
        covered = allow_list.covered_addresses(networks)
        raise ConfigError(
            "--allowed-cidr",
            f"the ranges together cover {covered:,} addresses, more than a /8 ({allow_list.MAX_UNION_ADDRESSES:,})",
            "narrower ranges, or --allow-any-source to allow that on purpose",
        )


# -- the replication group -------------------------------------------------------------------


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


# -- the artifact bucket ---------------------------------------------------------------------


def artifact_bucket_name(account_id: str, region: str) -> str:
    return BUCKET_FORMAT.format(account=account_id, region=region)


def ensure_artifact_bucket(s3: Any, account_id: str, region: str) -> tuple[str, bool]:
    """The artifact bucket's name, and whether it was created now. A new bucket is made
    private (public access blocked, objects owned by the bucket owner), encrypted and
    versioned before anything is put in it."""
    bucket = artifact_bucket_name(account_id, region)
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account_id)
        return bucket, False
    except ClientError as exc:
        if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"artifact bucket {bucket}: {_message(exc)} (it may belong to another account)") from None
    try:
        kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
            },
        )
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    except ClientError as exc:
        raise DeployError(f"artifact bucket {bucket}: {_message(exc)}") from None
    return bucket, True


def upload_package(s3: Any, bucket: str, built: packaging.LambdaPackage) -> bool:
    """Put the zip under its content-addressed key unless that key exists. True if uploaded."""
    try:
        s3.head_object(Bucket=bucket, Key=built.key)
        return False
    except ClientError as exc:
        if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise DeployError(f"s3://{bucket}/{built.key}: {_message(exc)}") from None
    try:
        s3.put_object(Bucket=bucket, Key=built.key, Body=built.data, ContentType="application/zip", Metadata={"sha256": built.sha256})
    except ClientError as exc:
        raise DeployError(f"upload s3://{bucket}/{built.key}: {_message(exc)}") from None
    return True


# -- parameters ------------------------------------------------------------------------------


def stack_parameters(
    request: DeployRequest,
    cache: CacheFacts,
    bucket: str,
    key: str,
    notification_topic_arn: str = "",
    node_slots: int | None = None,
) -> dict[str, str]:
    """The stack's parameter values (strings, lists comma-separated). Options left out
    take the template's defaults, so the same command always describes the same stack."""
    security_group = _cache_security_group(request, cache)
    # A TLS listener re-encrypts towards a TLS cache; a TCP listener passes TLS through.
    target_protocol = "TLS" if cache.transit_encryption and request.listener_protocol == "TLS" else "TCP"
    values: dict[str, str] = {
        "VpcId": request.vpc_id,
        "SubnetIds": ",".join(request.subnet_ids),
        "Scheme": request.scheme,
        "ReplicationGroupId": cache.replication_group_id,
        "CacheSecurityGroupId": security_group,
        "CachePort": str(cache.port),
        "AllowedCidrs": ",".join(c.strip() for c in request.allowed_cidrs),
        "AllowAnySource": "true" if request.allow_any_source else "false",
        "ListenerPort": str(request.listener_port or cache.port),
        "ListenerProtocol": request.listener_protocol,
        "CertificateArn": request.certificate_arn or "",
        "TargetProtocol": target_protocol,
        "NotificationTopicArn": notification_topic_arn,
        "CodeBucket": bucket,
        "CodeKey": key,
    }
    optional = {
        "ScheduleExpression": request.schedule_expression,
        "ScheduleRuleName": request.schedule_rule_name,
        "HealthCheckIntervalSeconds": request.health_check_interval_s,
        "HealthyThreshold": request.healthy_threshold,
        "DeregistrationDelaySeconds": request.deregistration_delay_s,
        "TcpIdleTimeoutSeconds": request.tcp_idle_timeout_s,
        "ReservedConcurrency": request.reserved_concurrency,
        "LambdaSecurityGroupId": request.lambda_security_group_id,
    }
    if request.lambda_subnet_ids:
        values["LambdaSubnetIds"] = ",".join(request.lambda_subnet_ids)
    if request.create_vpc_endpoints:
        values["CreateVpcEndpoints"] = "true"
    values.update({name: str(value) for name, value in optional.items() if value is not None})
    values.update(_layout_parameters(request, cache, node_slots or cfn_template.node_slots_for(len(cache.members))))
    return values


def _validate_layout(request: DeployRequest) -> None:
    if request.layout is not None and request.layout not in cfn_template.LAYOUTS:
        raise ConfigError("--layout", f"{request.layout!r} is not a layout", ", ".join(cfn_template.LAYOUTS))
    for flag, port in (("--reader-port", request.reader_port), ("--node-port-base", request.node_port_base)):
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(flag, f"{port} is out of range", "1..65535")


def _with_layout(request: DeployRequest, current: Mapping[str, Any] | None, cache: CacheFacts) -> DeployRequest:
    """An update keeps the stack's layout unless one is asked for: moving a stack from one
    layout to the other points the primary listener at target groups the controller has
    not filled yet (until its next run and the NLB's registration), which should be a
    choice. A stack from before layouts existed is a retarget stack. A new stack takes the
    cluster layout for a cluster-mode-enabled group, the switch layout otherwise."""
    if request.layout is not None:
        return request
    if current is None:
        return replace(request, layout="cluster" if cache.cluster_enabled else "switch")
    return replace(request, layout=Stacks.parameters(current).get("Layout") or "retarget")


def _node_slots(request: DeployRequest, cache: CacheFacts, current: Mapping[str, Any] | None) -> int:
    """The group's members plus room to grow, and never fewer than the stack has: a slot
    removed by an update could be the one the primary listener forwards to."""
    slots = cfn_template.node_slots_for(len(cache.members))
    if current is not None:
        existing = [p for p in Stacks.parameters(current).get("NodePorts", "").split(",") if p.strip()]
        slots = max(slots, min(len(existing), cfn_template.MAX_NODE_SLOTS))
    return slots


def _layout_parameters(request: DeployRequest, cache: CacheFacts, node_slots: int) -> dict[str, str]:
    """Layout, ReaderPort and NodePorts: by default the reader listens on the primary
    listener's port + 1 and the node slots on the ports after it."""
    listener_port = request.listener_port or cache.port
    reader_port = request.reader_port or listener_port + 1
    base = request.node_port_base or max(listener_port, reader_port) + 1
    try:
        ports = cfn_template.node_ports(base, node_slots)
    except ValueError as exc:
        raise ConfigError("--node-port-base", str(exc), f"a port with {node_slots} free ports from it") from None
    if reader_port > 65535:
        raise ConfigError("--reader-port", f"{reader_port} is out of range", "1..65535")
    return {"Layout": effective_layout(request, cache), "ReaderPort": str(reader_port), "NodePorts": ",".join(map(str, ports))}


def effective_layout(request: DeployRequest, cache: CacheFacts) -> str:
    """The layout asked for, or the group's default; a layout that cannot serve the group's
    cluster mode is refused."""
    if cache.cluster_enabled:
        if request.layout not in (None, "cluster"):
            raise ConfigError(
                "--layout",
                f"{cache.replication_group_id!r} has cluster mode enabled: no single primary to follow, and clients must reach every node",
                "--layout cluster, or leave --layout out",
            )
        return "cluster"
    if request.layout == "cluster":
        raise ConfigError("--layout", f"{cache.replication_group_id!r} has cluster mode disabled", "switch or retarget")
    return request.layout or "switch"


def _check_parameters(values: Mapping[str, str], stack_name: str, template: Mapping[str, Any]) -> None:
    declared = set(template["Parameters"])
    unknown = sorted(set(values) - declared)
    if unknown:
        raise DeployError(f"the template has no parameter(s) {', '.join(unknown)}; cachebridge and its template disagree")
    problems = cfn_template.validate_parameters(values, stack_name=stack_name, template=template)
    if problems:
        first = problems[0].split(":", 1)[0]
        raise ConfigError(_FLAG_OF.get(first, first), "; ".join(problems))


# -- stack events and results ----------------------------------------------------------------


@dataclass(frozen=True)
class StackEvent:
    event_id: str
    timestamp: datetime | None
    logical_id: str
    resource_type: str
    status: str
    reason: str | None = None
    physical_id: str | None = None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> StackEvent:
        return cls(
            event_id=raw.get("EventId", ""),
            timestamp=raw.get("Timestamp"),
            logical_id=raw.get("LogicalResourceId", ""),
            resource_type=raw.get("ResourceType", ""),
            status=raw.get("ResourceStatus", ""),
            reason=raw.get("ResourceStatusReason") or None,
            physical_id=raw.get("PhysicalResourceId") or None,
        )

    @property
    def is_stack(self) -> bool:
        return self.resource_type == "AWS::CloudFormation::Stack"

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "logical_id": self.logical_id,
            "resource_type": self.resource_type,
            "status": self.status,
            "reason": self.reason,
            "physical_id": self.physical_id,
        }


@dataclass(frozen=True)
class ResourceFailure:
    logical_id: str
    resource_type: str
    status: str
    reason: str

    def __str__(self) -> str:
        return f"{self.logical_id} ({self.resource_type}) {self.status}: {self.reason}"

    def to_json(self) -> dict[str, str]:
        return {"logical_id": self.logical_id, "resource_type": self.resource_type, "status": self.status, "reason": self.reason}


_CANCELLED = ("Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled")


def _failures(events: Sequence[StackEvent]) -> tuple[ResourceFailure, ...]:
    """Failing resources, the cause first: resources that failed on their own before those
    cancelled because of them, and the stack's own reason only when no resource says more."""
    resources = [e for e in events if e.failed and not e.is_stack]
    own = [e for e in resources if (e.reason or "") not in _CANCELLED]
    chosen = own + [e for e in resources if e not in own]
    if not chosen:
        chosen = [e for e in events if e.is_stack and (e.failed or e.status.endswith("ROLLBACK_IN_PROGRESS")) and e.reason]
    seen: set[str] = set()
    failures = []
    for e in chosen:
        if e.logical_id in seen:
            continue
        seen.add(e.logical_id)
        failures.append(ResourceFailure(e.logical_id, e.resource_type, e.status, e.reason or "no reason given"))
    return tuple(failures)


@dataclass
class DeployResult:
    stack_name: str
    stack_id: str | None
    action: Literal["create", "update", "none"]
    status: str
    outputs: dict[str, str]
    bucket: str
    key: str
    uploaded: bool
    bucket_created: bool
    events: list[StackEvent] = field(default_factory=list)
    notifications: str = "not-needed"  # wired | already-wired | declined | not-wired | existing-topic | given-topic | failed
    notification_topic_arn: str | None = None
    sync: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.notifications != "failed" and (self.sync is None or bool(self.sync.get("ok")))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "stack_name": self.stack_name,
            "stack_id": self.stack_id,
            "action": self.action,
            "status": self.status,
            "outputs": self.outputs,
            "artifact": {"bucket": self.bucket, "key": self.key, "uploaded": self.uploaded, "bucket_created": self.bucket_created},
            "notifications": {"state": self.notifications, "topic_arn": self.notification_topic_arn},
            "sync": self.sync,
            "events": [e.to_json() for e in self.events],
            "notes": self.notes,
        }


@dataclass
class DestroyResult:
    stack_name: str
    existed: bool
    status: str
    events: list[StackEvent] = field(default_factory=list)
    leftovers: tuple[ResourceFailure, ...] = ()
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack_name": self.stack_name,
            "existed": self.existed,
            "status": self.status,
            "leftovers": [f.to_json() for f in self.leftovers],
            "events": [e.to_json() for e in self.events],
            "notes": self.notes,
        }


# -- clients ---------------------------------------------------------------------------------


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


# -- the stack adapter -----------------------------------------------------------------------


class Stacks:
    """CloudFormation verbs cachebridge needs, over one injected client."""

    def __init__(
        self,
        cloudformation: Any,
        *,
        poll_s: float = DEFAULT_POLL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfn = cloudformation
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.clock = clock

    def describe(self, name_or_id: str) -> dict[str, Any] | None:
        try:
            stacks = self.cfn.describe_stacks(StackName=name_or_id)["Stacks"]
        except ClientError as exc:
            if _code(exc) == "ValidationError" and "does not exist" in _message(exc):
                return None
            raise DeployError(f"DescribeStacks {name_or_id}: {_message(exc)}") from None
        return stacks[0] if stacks else None

    @staticmethod
    def outputs(stack: Mapping[str, Any]) -> dict[str, str]:
        return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}

    @staticmethod
    def parameters(stack: Mapping[str, Any]) -> dict[str, str]:
        return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}

    def event_ids(self, stack_id: str) -> set[str]:
        return {e.event_id for e in self._events(stack_id, set())}

    def _events(self, stack_id: str, seen: set[str], max_pages: int = 50) -> list[StackEvent]:
        """Events not in ``seen``, oldest first (the API pages newest first)."""
        found: list[StackEvent] = []
        token: str | None = None
        for _ in range(max_pages):
            kwargs: dict[str, Any] = {"StackName": stack_id}
            if token:
                kwargs["NextToken"] = token
            try:
                page = self.cfn.describe_stack_events(**kwargs)
            except ClientError as exc:
                raise DeployError(f"DescribeStackEvents {stack_id}: {_message(exc)}") from None
            reached_seen = False
            for raw in page.get("StackEvents", []):
                event = StackEvent.from_api(raw)
                if event.event_id in seen:
                    reached_seen = True
                    break
                found.append(event)
            token = page.get("NextToken")
            if reached_seen or not token:
                break
        return list(reversed(found))

    def follow(self, stack_id: str, seen: set[str], on_event: Callable[[StackEvent], None] | None) -> tuple[str, list[StackEvent]]:
        """Report new events until the stack reaches a final status; return it and the events."""
        collected: list[StackEvent] = []
        deadline = self.clock() + self.timeout_s
        while True:
            for event in self._events(stack_id, seen):
                seen.add(event.event_id)
                collected.append(event)
                if on_event is not None:
                    on_event(event)
            stack = self.describe(stack_id)
            status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
            # Anything *_IN_PROGRESS is still moving, REVIEW_IN_PROGRESS included: right
            # after ExecuteChangeSet a new stack may still say that.
            if not status.endswith("_IN_PROGRESS"):
                for event in self._events(stack_id, seen) if stack else []:  # the final events
                    seen.add(event.event_id)
                    collected.append(event)
                    if on_event is not None:
                        on_event(event)
                return status, collected
            if self.clock() >= deadline:
                raise DeployError(f"stack {stack_id}: still {status} after {self.timeout_s:g} s", _failures(collected), status)
            self.sleep(self.poll_s)

    def create_change_set(
        self,
        stack_name: str,
        change_set_type: str,
        template_source: Mapping[str, str],
        parameters: Mapping[str, str],
    ) -> tuple[str | None, str | None, str | None]:
        """``(change set id, stack id, None)``, or ``(None, stack id, reason)`` when there
        is nothing to change."""
        name = f"cachebridge-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        try:
            created = self.cfn.create_change_set(
                StackName=stack_name,
                ChangeSetName=name,
                ChangeSetType=change_set_type,
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
                Capabilities=["CAPABILITY_IAM"],
                Description="cachebridge deploy",
                **template_source,
            )
        except ClientError as exc:
            if any(text in _message(exc) for text in _NO_CHANGES):
                return None, None, _message(exc)
            raise DeployError(f"CreateChangeSet for {stack_name}: {_message(exc)}") from None
        change_set_id = created["Id"]
        delay = max(1, math.ceil(self.poll_s))
        try:
            self.cfn.get_waiter("change_set_create_complete").wait(
                ChangeSetName=change_set_id,
                StackName=stack_name,
                WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(self.timeout_s / delay))},
            )
        except WaiterError:
            described = self.cfn.describe_change_set(ChangeSetName=change_set_id, StackName=stack_name)
            reason = described.get("StatusReason") or described.get("Status", "FAILED")
            if any(text in reason for text in _NO_CHANGES):
                self.delete_change_set(change_set_id)
                return None, created.get("StackId"), reason
            self.delete_change_set(change_set_id)
            raise DeployError(f"change set for {stack_name} failed: {reason}") from None
        return change_set_id, created.get("StackId"), None

    def changes(self, change_set_id: str) -> list[dict[str, str]]:
        """``{"action", "logical_id", "resource_type", "replacement"}`` per planned change."""
        try:
            described = self.cfn.describe_change_set(ChangeSetName=change_set_id)
        except ClientError as exc:
            raise DeployError(f"DescribeChangeSet: {_message(exc)}") from None
        planned = []
        for change in described.get("Changes", []):
            resource = change.get("ResourceChange") or {}
            planned.append(
                {
                    "action": resource.get("Action", "?"),
                    "logical_id": resource.get("LogicalResourceId", "?"),
                    "resource_type": resource.get("ResourceType", ""),
                    "replacement": resource.get("Replacement", ""),
                }
            )
        return planned

    def discard_review_stack(self, stack_name: str) -> None:
        """Delete the empty stack a failed CREATE change set leaves (REVIEW_IN_PROGRESS)."""
        stack = self.describe(stack_name)
        if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
            with contextlib.suppress(ClientError):
                self.cfn.delete_stack(StackName=stack["StackId"])

    def delete_change_set(self, change_set_id: str) -> None:
        with contextlib.suppress(ClientError):
            self.cfn.delete_change_set(ChangeSetName=change_set_id)

    def execute(self, change_set_id: str) -> None:
        try:
            self.cfn.execute_change_set(ChangeSetName=change_set_id)
        except ClientError as exc:
            raise DeployError(f"ExecuteChangeSet: {_message(exc)}") from None

    def delete(self, stack_id: str) -> None:
        try:
            self.cfn.delete_stack(StackName=stack_id)
        except ClientError as exc:
            raise DeployError(f"DeleteStack {stack_id}: {_message(exc)}") from None


# -- deploy ----------------------------------------------------------------------------------


_UPDATABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE")


def deploy(
    request: DeployRequest,
    *,
    clients: Callable[[str], Any] | None = None,
    built: packaging.LambdaPackage | None = None,
    invoke: InvokeMode = "lambda",
    nameservers: Sequence[str] = (),
    wire_notifications: bool | None = None,
    confirm_wiring: Callable[[str, str], bool] | None = None,
    on_event: Callable[[StackEvent], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    poll_s: float = DEFAULT_POLL_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DeployResult:
    """Create or update the stack ``request`` describes; see the module docstring."""
    if invoke not in INVOKE_MODES:
        raise ConfigError("--invoke", f"{invoke!r} is not a mode", ", ".join(INVOKE_MODES))
    if nameservers and invoke != "local":
        raise ConfigError("--nameserver", "only the local sync uses it", "--invoke local")
    validate_request(request)
    clients = clients or Clients()
    step = on_step or (lambda text: None)

    # Read everything first: nothing is created until the input is known to be good.
    step(f"reading replication group {request.replication_group_id}")
    try:
        cache = read_cache(clients("elasticache"), request.replication_group_id)
        _check_zones(cache, _check_network(clients("ec2"), request.vpc_id, request.subnet_ids))
        _check_security_group(clients("ec2"), _cache_security_group(request, cache), request.vpc_id)
        check_lambda_network(clients("ec2"), request.vpc_id, request.lambda_subnet_ids, request.lambda_security_group_id)
        vpc_cidrs = vpc_cidr_blocks(clients("ec2"), request.vpc_id)
        account_id = clients("sts").get_caller_identity()["Account"]
        region = _region(clients("s3"))
        if request.notification_topic_arn:
            step(f"checking notification topic {request.notification_topic_arn}")
            check_topic(clients("sns"), request.notification_topic_arn, account_id, region)
    except ClientError as exc:
        raise DeployError(f"AWS: {_message(exc)}") from None
    except BotoCoreError as exc:
        raise DeployError(f"AWS: {exc}") from None
    stacks = Stacks(clients("cloudformation"), poll_s=poll_s, timeout_s=timeout_s)
    existing = stacks.describe(request.stack_name)
    change_set_type = _change_set_type(request.stack_name, existing)
    current = existing if change_set_type == "UPDATE" else None
    topic, notifications, notes = _topic_parameter(request, cache, current)
    node_slots = _node_slots(request, cache, current)
    request = _with_layout(request, current, cache)
    template = cfn_template.build(node_slots=node_slots, replicas=len(cache.members) > 1)
    own_binding = cfn_template.binding_name_sub().replace("${ReplicationGroupId}", cache.replication_group_id)
    placement = more_bindings.place(request.extra_bindings, template, own_binding=own_binding)
    if placement.config is not None:
        built = packaging.build(config=placement.config)  # the file changes the zip, hence its key
    built = built or packaging.build()
    bucket = artifact_bucket_name(account_id, region)
    values = stack_parameters(request, cache, bucket, built.key, topic, node_slots)
    values.update(placement.parameters)
    values["VpcCidrs"] = ",".join(vpc_cidrs)
    if request.extra_bindings:
        notes.append(placement.describe(len(request.extra_bindings)))
    _check_parameters(values, request.stack_name, template)

    step(f"artifact bucket {bucket}")
    s3 = clients("s3")
    bucket, bucket_created = ensure_artifact_bucket(s3, account_id, region)
    uploaded = upload_package(s3, bucket, built)
    template_source = _template_source(s3, bucket, template)

    step(f"change set ({change_set_type}) for stack {request.stack_name}")
    try:
        change_set_id, stack_id, no_change = stacks.create_change_set(request.stack_name, change_set_type, template_source, values)
    except DeployError:
        if change_set_type == "CREATE":
            stacks.discard_review_stack(request.stack_name)
        raise
    if change_set_id is not None and change_set_type == "UPDATE":
        planned = stacks.changes(change_set_id)
        step("changes: " + (", ".join(f"{c['action']} {c['logical_id']}" for c in planned) or "none listed"))
    result = DeployResult(
        stack_name=request.stack_name,
        stack_id=(current or {}).get("StackId") or stack_id,
        action="none",
        status=(current or {}).get("StackStatus", ""),
        outputs=Stacks.outputs(current) if current else {},
        bucket=bucket,
        key=built.key,
        uploaded=uploaded,
        bucket_created=bucket_created,
        notifications=notifications,
        notes=notes,
    )
    if change_set_id is None:
        result.notes.append(f"no changes: {no_change}")
        if wire_notifications and current is not None:
            _wire(result, clients, cache, wire_notifications, confirm_wiring, Stacks.parameters(current))
        return result

    seen = stacks.event_ids(stack_id) if stack_id else set()
    step(f"executing change set on {request.stack_name}")
    stacks.execute(change_set_id)
    status, events = stacks.follow(stack_id or request.stack_name, seen, on_event)
    result.action = "create" if change_set_type == "CREATE" else "update"
    result.status = status
    result.events = events
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        failures = _failures(events)
        details = "; ".join(str(f) for f in failures) or "no failure reported"
        raise DeployError(f"stack {request.stack_name} ended {status}: {details}", failures, status)
    final = stacks.describe(stack_id or request.stack_name) or {}
    result.stack_id = final.get("StackId", result.stack_id)
    result.outputs = Stacks.outputs(final)

    _wire(result, clients, cache, wire_notifications, confirm_wiring, Stacks.parameters(final))
    if invoke != "none":
        function_name = result.outputs.get("FunctionName")
        if not function_name:
            raise DeployError(f"stack {request.stack_name} has no FunctionName output; cannot run the first sync")
        step(f"first sync ({invoke})")
        result.sync = run_sync(invoke, function_name, clients=clients, region=region, nameservers=nameservers, code=built.data)
    return result


def _change_set_type(stack_name: str, existing: Mapping[str, Any] | None) -> str:
    if existing is None:
        return "CREATE"
    status = existing["StackStatus"]
    if status == "REVIEW_IN_PROGRESS":  # a create change set was made and never executed
        return "CREATE"
    if not set(Stacks.parameters(existing)) >= _SIGNATURE_PARAMETERS:
        raise DeployError(f"stack {stack_name} exists and is not a cachebridge stack; choose another --stack-name")
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"):
        raise DeployError(
            f"stack {stack_name} is {status} (a failed create or delete) and cannot be updated; "
            f"run `cachebridge destroy --stack-name {stack_name}`, then deploy again",
            stack_status=status,
        )
    if status.endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {stack_name} is {status}; wait for that operation to end", stack_status=status)
    if status not in _UPDATABLE:
        raise DeployError(f"stack {stack_name} is {status} and cannot be updated", stack_status=status)
    return "UPDATE"


def _topic_parameter(request: DeployRequest, cache: CacheFacts, current: Mapping[str, Any] | None) -> tuple[str, str, list[str]]:
    """The NotificationTopicArn parameter: the one given; else the topic the replication
    group already has, unless that is the topic this stack created; else empty (the stack
    creates one)."""
    notes: list[str] = []
    if request.notification_topic_arn:
        return request.notification_topic_arn, "given-topic", notes
    own_topic = None
    if current is not None and Stacks.parameters(current).get("NotificationTopicArn", "") == "":
        own_topic = Stacks.outputs(current).get("NotificationTopicArn")
    if cache.notification_topic_arn and cache.notification_topic_arn != own_topic:
        if cache.notification_topic_active:
            notes.append(f"using the replication group's notification topic {cache.notification_topic_arn}")
            return cache.notification_topic_arn, "existing-topic", notes
        notes.append(f"the replication group's topic {cache.notification_topic_arn} is inactive; the stack creates its own")
    return "", "not-wired", notes


def _template_source(s3: Any, bucket: str, template: Mapping[str, Any]) -> dict[str, str]:
    body = json.dumps(template, separators=(",", ":"))
    if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body}
    import hashlib

    key = f"{packaging.KEY_PREFIX}/template-{hashlib.sha256(body.encode()).hexdigest()[:16]}.json"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
    except ClientError as exc:
        raise DeployError(f"upload s3://{bucket}/{key}: {_message(exc)}") from None
    region = _region(s3)
    return {"TemplateURL": f"https://{bucket}.s3.{region}.amazonaws.com/{key}"}


def _wire(
    result: DeployResult,
    clients: Callable[[str], Any],
    cache: CacheFacts,
    wire: bool | None,
    confirm: Callable[[str, str], bool] | None,
    parameters: Mapping[str, str],
) -> None:
    """Set the stack's own topic on the replication group, if the caller agrees."""
    if parameters.get("NotificationTopicArn", ""):
        result.notification_topic_arn = parameters["NotificationTopicArn"]
        return
    topic = result.outputs.get("NotificationTopicArn")
    result.notification_topic_arn = topic
    if not topic:
        return
    if cache.notification_topic_arn == topic and cache.notification_topic_active:
        result.notifications = "already-wired"
        return
    agreed = wire if wire is not None else (confirm(cache.replication_group_id, topic) if confirm else False)
    if not agreed:
        result.notifications = "declined"
        result.notes.append(
            f"failover notifications are not wired: set {topic} as the notification topic of "
            f"{cache.replication_group_id} (deploy again with --wire-notifications); until then only the schedule syncs"
        )
        return
    try:
        clients("elasticache").modify_replication_group(
            ReplicationGroupId=cache.replication_group_id,
            NotificationTopicArn=topic,
            ApplyImmediately=True,
        )
    except (ClientError, BotoCoreError) as exc:
        result.notifications = "failed"
        reason = _message(exc) if isinstance(exc, ClientError) else str(exc)
        result.notes.append(f"could not set {topic} on {cache.replication_group_id}: {reason}")
        return
    result.notifications = "wired"


# -- the first sync --------------------------------------------------------------------------


def run_sync(
    mode: InvokeMode,
    function_name: str,
    *,
    clients: Callable[[str], Any] | None = None,
    region: str | None = None,
    nameservers: Sequence[str] = (),
    code: bytes | None = None,
) -> dict[str, Any] | None:
    """One sync by the deployed controller. Returns ``{"mode", "ok", "report" | "error"}``.
    ``code`` (the function's zip) lets a local run read the files the zip ships."""
    clients = clients or Clients()
    if mode == "none":
        return None
    lam = clients("lambda")
    if mode == "lambda":
        try:
            response = lam.invoke(FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps({"action": "sync"}).encode())
        except ClientError as exc:
            return {"mode": mode, "ok": False, "error": _message(exc)}
        payload_text = response["Payload"].read().decode("utf-8", "replace")
        try:
            payload = json.loads(payload_text) if payload_text else None
        except json.JSONDecodeError:
            payload = payload_text
        if response.get("FunctionError"):
            message = payload.get("errorMessage") if isinstance(payload, dict) else payload
            return {"mode": mode, "ok": False, "error": str(message), "report": payload}
        return {"mode": mode, "ok": bool(isinstance(payload, dict) and payload.get("ok")), "report": payload}
    if mode != "local":
        raise ConfigError("--invoke", f"{mode!r} is not a mode", ", ".join(INVOKE_MODES))
    try:
        configuration = lam.get_function_configuration(FunctionName=function_name)
    except ClientError as exc:
        return {"mode": mode, "ok": False, "error": _message(exc)}
    return _run_local(configuration, region or _region(lam), nameservers, code)


def _run_local(configuration: Mapping[str, Any], region: str, nameservers: Sequence[str], code: bytes | None = None) -> dict[str, Any]:
    from ..errors import SyncFailed

    overrides: dict[str, str] = {}
    if nameservers:
        overrides["CACHEBRIDGE_NAMESERVERS"] = ",".join(nameservers)
    # Lambda sets the region itself; here it is the region the function was read from.
    function = LocalFunction(configuration, {"AWS_REGION": region, "AWS_DEFAULT_REGION": region, **overrides}, cold_start=True, code=code)
    logs = io.StringIO()
    result: dict[str, Any] = {
        "mode": "local",
        "function_environment": sorted(function.variables),
        "overrides": overrides,
    }
    try:
        with contextlib.redirect_stdout(logs):
            payload = function.invoke({"action": "sync"})
        result.update(ok=bool(payload.get("ok")), report=payload)
    except SyncFailed as exc:
        report = exc.report.to_json() if hasattr(exc.report, "to_json") else None  # type: ignore[union-attr]
        result.update(ok=False, error=str(exc), report=report)
    except CacheBridgeError as exc:
        result.update(ok=False, error=str(exc))
    result["log_lines"] = [line for line in logs.getvalue().splitlines() if line.strip()]
    return result


# -- destroy ---------------------------------------------------------------------------------


def destroy(
    stack_name: str,
    *,
    clients: Callable[[str], Any] | None = None,
    on_event: Callable[[StackEvent], None] | None = None,
    poll_s: float = DEFAULT_POLL_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DestroyResult:
    """Delete the stack and wait. ``DeployError`` (with the resources left behind) when
    the deletion fails."""
    if not _STACK_NAME.match(stack_name or ""):
        raise ConfigError("--stack-name", f"{stack_name!r} is not a stack name", "1-128 letters, digits and hyphens, starting with a letter")
    clients = clients or Clients()
    stacks = Stacks(clients("cloudformation"), poll_s=poll_s, timeout_s=timeout_s)
    existing = stacks.describe(stack_name)
    if existing is None:
        return DestroyResult(stack_name=stack_name, existed=False, status="DOES_NOT_EXIST")
    parameters = Stacks.parameters(existing)
    if existing["StackStatus"] != "REVIEW_IN_PROGRESS" and not set(parameters) >= _SIGNATURE_PARAMETERS:
        raise DeployError(f"stack {stack_name} is not a cachebridge stack; delete it with the tool that made it")
    stack_id = existing["StackId"]
    notes = _orphaned_topic_note(clients, existing)
    seen = stacks.event_ids(stack_id)
    stacks.delete(stack_id)
    status, events = stacks.follow(stack_id, seen, on_event)
    skipped = tuple(
        ResourceFailure(e.logical_id, e.resource_type, e.status, e.reason or "left behind")
        for e in events
        if e.status == "DELETE_SKIPPED"
    )
    if status != "DELETE_COMPLETE":
        failures = _failures(events) + skipped
        details = "; ".join(str(f) for f in failures) or "no failure reported"
        raise DeployError(f"stack {stack_name} ended {status}; left behind: {details}", failures, status)
    result = DestroyResult(stack_name=stack_name, existed=True, status=status, events=events, leftovers=skipped, notes=notes)
    return result


def _orphaned_topic_note(clients: Callable[[str], Any], stack: Mapping[str, Any]) -> list[str]:
    parameters = Stacks.parameters(stack)
    topic = Stacks.outputs(stack).get("NotificationTopicArn")
    if parameters.get("NotificationTopicArn", "") or not topic or not parameters.get("ReplicationGroupId"):
        return []
    try:
        cache = read_cache(clients("elasticache"), parameters["ReplicationGroupId"])
    except (CacheBridgeError, ClientError, BotoCoreError):
        return []
    if cache.notification_topic_arn == topic:
        return [
            f"replication group {cache.replication_group_id} still names {topic} as its notification topic, "
            "which is deleted with the stack; set another topic on it (or none) when you no longer need it"
        ]
    return []

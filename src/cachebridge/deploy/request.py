"""What the caller asks for (``DeployRequest``), and the checks on it that need no AWS call
(``validate_request``)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Binding
from ..errors import ConfigError
from . import allow_list
from . import template as cfn_template

__all__ = ["SCHEMES", "PROTOCOLS", "DeployRequest", "validate_request"]


SCHEMES = ("internet-facing", "internal")
PROTOCOLS = ("TCP", "TLS")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")


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


def _validate_layout(request: DeployRequest) -> None:
    if request.layout is not None and request.layout not in cfn_template.LAYOUTS:
        raise ConfigError("--layout", f"{request.layout!r} is not a layout", ", ".join(cfn_template.LAYOUTS))
    for flag, port in (("--reader-port", request.reader_port), ("--node-port-base", request.node_port_base)):
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(flag, f"{port} is out of range", "1..65535")

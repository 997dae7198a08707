"""The NLB adapter: target groups read and written with (IP, port) identity.

Thin on purpose: it turns elbv2/ec2 responses into ``Target``/``TargetHealth`` and
``TargetGroupInfo``, chunks writes, and turns ``ClientError`` codes into cachebridge
exceptions. Deciding *what* to write is the planner's job.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from .errors import AccessDenied, NlbError, TargetGroupNotFound, Throttled
from .targets import Target, TargetHealth, TargetState

__all__ = [
    "forget",
    "TargetGroupInfo",
    "TargetGroups",
    "risky_settings",
    "clear_caches",
    "WRITE_CHUNK",
    "MAX_SAFE_DEREGISTRATION_DELAY_S",
    "ListenerInfo",
]

# RegisterTargets / DeregisterTargets accept many targets per call; keep requests small.
WRITE_CHUNK = 200
MAX_SAFE_DEREGISTRATION_DELAY_S = 30
# Worst-case seconds for a new target to turn healthy above which we warn:
# AWS's TCP defaults (interval 30 s x healthy threshold 5) give 150 s.
SLOW_HEALTH_CHECK_S = 60

_THROTTLE_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


@dataclass(frozen=True)
class TargetGroupInfo:
    arn: str
    name: str
    port: int | None
    protocol: str | None
    target_type: str
    vpc_id: str | None
    vpc_cidrs: tuple[str, ...]
    health_check_interval_s: int | None
    healthy_threshold: int | None
    attributes: dict[str, str] = field(default_factory=dict)
    ip_address_type: str = "ipv4"

    @property
    def families(self) -> tuple[int, ...]:
        """The IP versions this target group accepts: an IPv4 group rejects a whole
        RegisterTargets call that carries one IPv6 address."""
        return {"ipv4": (4,), "ipv6": (6,)}.get(self.ip_address_type, (4, 6))

    def in_vpc(self, ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in self.vpc_cidrs)


def _error(exc: ClientError, what: str) -> NlbError:
    code = exc.response.get("Error", {}).get("Code", "")
    message = exc.response.get("Error", {}).get("Message", "") or str(exc)
    text = f"{what}: {code}: {message}" if code else f"{what}: {message}"
    if code in ("TargetGroupNotFound", "TargetGroupNotFoundException"):
        return TargetGroupNotFound(text, code)
    if code in _THROTTLE_CODES:
        return Throttled(text, code)
    if code in _DENIED_CODES:
        return AccessDenied(text, code)
    return NlbError(text, code)


_T = TypeVar("_T")
_info_lock = threading.Lock()
_info_cache: dict[tuple[str, str], TargetGroupInfo] = {}
_vpc_cache: dict[tuple[str, str], tuple[str, ...]] = {}
# DescribeTargetGroups takes several names at once; a missing one fails the whole call,
# which then falls back to one call per name so only that binding reports the error.
DESCRIBE_CHUNK = 20


def forget(target_group_arn: str) -> None:
    """Drop cached details of one target group: it was deleted (and perhaps recreated
    under the same name), so the next look-up must read it again."""
    with _info_lock:
        for key in [k for k, v in _info_cache.items() if v.arn == target_group_arn]:
            del _info_cache[key]


def clear_caches() -> None:
    """Forget cached target group and VPC details (kept between warm Lambda invocations)."""
    with _info_lock:
        _info_cache.clear()
        _vpc_cache.clear()


class TargetGroups:
    """Domain verbs over an elbv2 client (and an ec2 client for VPC CIDRs)."""

    def __init__(self, elbv2: Any, ec2: Any | None = None, *, chunk_size: int = WRITE_CHUNK, cache: bool = True) -> None:
        self.elbv2 = elbv2
        self.ec2 = ec2
        self.chunk_size = chunk_size
        self.cache = cache

    def _cache_key(self, name_or_arn: str, client: Any = None) -> tuple[str, str]:
        meta = (client or self.elbv2).meta
        return (f"{meta.region_name}|{meta.endpoint_url}", name_or_arn)

    def prefetch(self, names_or_arns: Iterable[str]) -> None:
        """Read the details of many target groups in few calls (a cold start with many
        bindings). Errors are left for ``info()`` to raise per binding."""
        if not self.cache:
            return
        wanted = [n for n in dict.fromkeys(names_or_arns) if not (self.cache and self._cache_key(n) in _info_cache)]
        for kind, key in (("arn", "TargetGroupArns"), ("name", "Names")):
            batch = [n for n in wanted if n.startswith("arn:") == (kind == "arn")]
            for i in range(0, len(batch), DESCRIBE_CHUNK):
                chunk = batch[i : i + DESCRIBE_CHUNK]
                try:
                    groups = self.elbv2.describe_target_groups(**{key: chunk})["TargetGroups"]
                except (ClientError, BotoCoreError):
                    continue
                for tg in groups:
                    if tg.get("TargetType") != "ip":
                        continue
                    try:
                        info = self._info_from(tg)
                    except (NlbError, BotoCoreError, ClientError):
                        continue
                    with _info_lock:
                        for alias in (tg["TargetGroupArn"], tg["TargetGroupName"]):
                            if alias in chunk:
                                _info_cache[self._cache_key(alias)] = info

    # -- reads -----------------------------------------------------------------------------

    def info(self, name_or_arn: str) -> TargetGroupInfo:
        """Target group details, VPC CIDRs and attributes; cached, since none of them is
        expected to change between syncs (``clear_caches`` or a new process re-reads)."""
        return self._cached(_info_cache, self._cache_key(name_or_arn), lambda: self._read_info(name_or_arn))

    def _cached(self, cache: dict[tuple[str, str], _T], key: tuple[str, str], read: Callable[[], _T]) -> _T:
        if self.cache:
            with _info_lock:
                if key in cache:
                    return cache[key]
        value = read()  # outside the lock: reading target group details reads VPC CIDRs too
        if self.cache:
            with _info_lock:
                cache[key] = value
        return value

    def _read_info(self, name_or_arn: str) -> TargetGroupInfo:
        by = {"TargetGroupArns": [name_or_arn]} if name_or_arn.startswith("arn:") else {"Names": [name_or_arn]}
        try:
            groups = self.elbv2.describe_target_groups(**by)["TargetGroups"]
        except ClientError as exc:
            raise _error(exc, f"target group {name_or_arn}") from None
        except BotoCoreError as exc:
            raise NlbError(f"target group {name_or_arn}: {exc}") from None
        if not groups:
            raise TargetGroupNotFound(f"target group {name_or_arn}: not found", "TargetGroupNotFound")
        return self._info_from(groups[0])

    def _info_from(self, tg: dict[str, Any]) -> TargetGroupInfo:
        if tg.get("TargetType", "instance") != "ip":
            raise NlbError(
                f"target group {tg['TargetGroupName']}: target type is {tg.get('TargetType')!r}; cachebridge needs an IP target group",
                "WrongTargetType",
            )
        try:
            attrs = self.elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]
        except ClientError as exc:
            raise _error(exc, f"target group {tg['TargetGroupName']} attributes") from None
        except BotoCoreError as exc:
            raise NlbError(f"target group {tg['TargetGroupName']} attributes: {exc}") from None
        vpc_id = tg.get("VpcId")
        return TargetGroupInfo(
            arn=tg["TargetGroupArn"],
            name=tg["TargetGroupName"],
            port=tg.get("Port"),
            protocol=tg.get("Protocol"),
            target_type=tg.get("TargetType", "ip"),
            vpc_id=vpc_id,
            vpc_cidrs=self._vpc_cidrs(vpc_id),
            health_check_interval_s=tg.get("HealthCheckIntervalSeconds"),
            healthy_threshold=tg.get("HealthyThresholdCount"),
            attributes={a["Key"]: a["Value"] for a in attrs},
            ip_address_type=tg.get("IpAddressType") or "ipv4",
        )

    def _vpc_cidrs(self, vpc_id: str | None) -> tuple[str, ...]:
        if not vpc_id or self.ec2 is None:
            return ()
        return self._cached(_vpc_cache, self._cache_key(vpc_id, self.ec2), lambda: self._read_vpc_cidrs(vpc_id))

    def _read_vpc_cidrs(self, vpc_id: str) -> tuple[str, ...]:
        try:
            vpcs = self.ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
        except ClientError as exc:
            raise _error(exc, f"VPC {vpc_id}") from None
        except BotoCoreError as exc:
            raise NlbError(f"VPC {vpc_id}: {exc}") from None
        cidrs: list[str] = []
        for vpc in vpcs:
            cidrs += [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", []) if a.get("CidrBlockState", {}).get("State", "associated") == "associated"]
            cidrs += [a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", []) if "Ipv6CidrBlock" in a]
            if not cidrs and vpc.get("CidrBlock"):
                cidrs.append(vpc["CidrBlock"])
        return tuple(dict.fromkeys(cidrs))

    def health(self, target_group_arn: str) -> dict[Target, TargetHealth]:
        """Every registered target with its state: one DescribeTargetHealth call."""
        try:
            response = self.elbv2.describe_target_health(TargetGroupArn=target_group_arn)
        except ClientError as exc:
            error = _error(exc, f"describe target health of {target_group_arn}")
            if isinstance(error, TargetGroupNotFound):
                forget(target_group_arn)
            raise error from None
        except BotoCoreError as exc:
            raise NlbError(f"describe target health of {target_group_arn}: {exc}") from None
        actual: dict[Target, TargetHealth] = {}
        for item in response.get("TargetHealthDescriptions", []):
            target = item["Target"]
            try:
                key = Target(target["Id"], int(target["Port"]))
            except (KeyError, ValueError):
                continue  # instance or Lambda targets never belong to an IP target group
            health = item.get("TargetHealth", {})
            actual[key] = TargetHealth(
                TargetState.parse(health.get("State")), health.get("Reason"), health.get("Description")
            )
        return actual

    # -- writes ----------------------------------------------------------------------------

    def _descriptions(self, info: TargetGroupInfo, targets: Iterable[Target], *, with_az: bool) -> list[dict[str, Any]]:
        out = []
        for t in targets:
            d: dict[str, Any] = {"Id": t.ip, "Port": t.port}
            # Addresses outside the VPC's CIDRs (peered VPCs, on-premises over DX/VPN) are
            # only accepted with AvailabilityZone=all.
            if with_az and info.vpc_cidrs and not info.in_vpc(t.ip):
                d["AvailabilityZone"] = "all"
            out.append(d)
        return out

    def _chunks(self, items: Sequence[dict[str, Any]]) -> Iterable[Sequence[dict[str, Any]]]:
        for i in range(0, len(items), self.chunk_size):
            yield items[i : i + self.chunk_size]

    def register(self, info: TargetGroupInfo, targets: Sequence[Target]) -> None:
        self._write("register", info, targets)

    def deregister(self, info: TargetGroupInfo, targets: Sequence[Target]) -> None:
        # Always with the port: without it a target registered on another port stays.
        self._write("deregister", info, targets)

    def _write(self, verb: Literal["register", "deregister"], info: TargetGroupInfo, targets: Sequence[Target]) -> None:
        for chunk in self._chunks(self._descriptions(info, targets, with_az=True)):
            try:
                getattr(self.elbv2, f"{verb}_targets")(TargetGroupArn=info.arn, Targets=list(chunk))
            except ClientError as exc:
                error = _error(exc, f"{verb} {', '.join(d['Id'] + ':' + str(d['Port']) for d in chunk)}")
                if isinstance(error, TargetGroupNotFound):
                    forget(info.arn)
                raise error from None
            except BotoCoreError as exc:
                raise NlbError(f"{verb} targets in {info.name}: {exc}") from None

    # -- listeners and tags (the switch layout) ----------------------------------------------

    def listener(self, listener_arn: str) -> "ListenerInfo":
        """A listener and the one target group its default action forwards to (``None``
        when the default action is not a plain forward to one target group)."""
        try:
            listeners = self.elbv2.describe_listeners(ListenerArns=[listener_arn])["Listeners"]
        except ClientError as exc:
            raise _error(exc, f"listener {listener_arn}") from None
        except BotoCoreError as exc:
            raise NlbError(f"listener {listener_arn}: {exc}") from None
        if not listeners:
            raise NlbError(f"listener {listener_arn}: not found", "ListenerNotFound")
        raw = listeners[0]
        return ListenerInfo(
            arn=raw["ListenerArn"],
            port=raw.get("Port"),
            protocol=raw.get("Protocol"),
            load_balancer_arn=raw.get("LoadBalancerArn"),
            forward=_forward_target(raw.get("DefaultActions") or []),
        )

    def forward(self, listener_arn: str, target_group_arn: str) -> None:
        """Make the listener's default action forward to ``target_group_arn`` (ModifyListener:
        new connections only; established ones stay where they are)."""
        try:
            self.elbv2.modify_listener(
                ListenerArn=listener_arn,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group_arn}],
            )
        except ClientError as exc:
            raise _error(exc, f"modify listener {listener_arn}") from None
        except BotoCoreError as exc:
            raise NlbError(f"modify listener {listener_arn}: {exc}") from None

    def tags(self, arns: Sequence[str]) -> dict[str, dict[str, str]]:
        """The tags of each resource (DescribeTags, 20 ARNs per call)."""
        found: dict[str, dict[str, str]] = {arn: {} for arn in arns}
        for i in range(0, len(arns), DESCRIBE_TAGS_CHUNK):
            chunk = list(arns[i : i + DESCRIBE_TAGS_CHUNK])
            try:
                described = self.elbv2.describe_tags(ResourceArns=chunk)["TagDescriptions"]
            except ClientError as exc:
                raise _error(exc, f"describe tags of {', '.join(chunk)}") from None
            except BotoCoreError as exc:
                raise NlbError(f"describe tags: {exc}") from None
            for item in described:
                found[item["ResourceArn"]] = {t["Key"]: t.get("Value", "") for t in item.get("Tags", [])}
        return found

    def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        try:
            self.elbv2.add_tags(ResourceArns=[arn], Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
        except ClientError as exc:
            raise _error(exc, f"tag {arn}") from None
        except BotoCoreError as exc:
            raise NlbError(f"tag {arn}: {exc}") from None

    def remove_tags(self, arn: str, keys: Sequence[str]) -> None:
        try:
            self.elbv2.remove_tags(ResourceArns=[arn], TagKeys=list(keys))
        except ClientError as exc:
            raise _error(exc, f"untag {arn}") from None
        except BotoCoreError as exc:
            raise NlbError(f"untag {arn}: {exc}") from None


DESCRIBE_TAGS_CHUNK = 20


@dataclass(frozen=True)
class ListenerInfo:
    arn: str
    port: int | None
    protocol: str | None
    load_balancer_arn: str | None
    forward: str | None


def _forward_target(actions: Sequence[dict[str, Any]]) -> str | None:
    """The target group of a default action that forwards to exactly one group."""
    for action in actions:
        if action.get("Type") != "forward":
            continue
        groups = [g["TargetGroupArn"] for g in (action.get("ForwardConfig") or {}).get("TargetGroups", []) if g.get("TargetGroupArn")]
        if action.get("TargetGroupArn"):
            groups = [action["TargetGroupArn"], *groups]
        unique = set(groups)
        return groups[0] if len(unique) == 1 else None
    return None


def risky_settings(info: TargetGroupInfo) -> list[str]:
    """Target group settings that slow down or break following a failover."""
    warnings: list[str] = []
    attrs = info.attributes
    delay = attrs.get("deregistration_delay.timeout_seconds")
    if delay is not None and delay.isdigit() and int(delay) > MAX_SAFE_DEREGISTRATION_DELAY_S:
        warnings.append(
            f"deregistration_delay.timeout_seconds is {delay}: the demoted primary keeps connections "
            f"(and answers writes with READONLY) that long; use {MAX_SAFE_DEREGISTRATION_DELAY_S} or less"
        )
    if attrs.get("deregistration_delay.connection_termination.enabled", "false").lower() != "true":
        warnings.append(
            "deregistration_delay.connection_termination.enabled is off: clients stay connected to the "
            "demoted primary after failover; turn it on so they reconnect to the new one"
        )
    if info.health_check_interval_s and info.healthy_threshold:
        worst = info.health_check_interval_s * info.healthy_threshold
        if worst > SLOW_HEALTH_CHECK_S:
            warnings.append(
                f"health checks are slow: interval {info.health_check_interval_s}s x healthy threshold "
                f"{info.healthy_threshold} = {worst}s before a new primary takes traffic; "
                "try interval 10 and threshold 2"
            )
    if info.protocol not in (None, "TCP", "TLS", "TCP_UDP"):
        warnings.append(f"target group protocol is {info.protocol}; Redis needs TCP (or TLS)")
    return warnings

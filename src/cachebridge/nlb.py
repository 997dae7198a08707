"""The NLB adapter: target groups read and written with (IP, port) identity.

Thin on purpose: it turns elbv2/ec2 responses into ``Target``/``TargetHealth`` and
``TargetGroupInfo``, chunks writes, and turns ``ClientError`` codes into cachebridge
exceptions. Deciding *what* to write is the planner's job.

Only DescribeTargetGroups and DescribeTargetHealth are needed to follow a failover. The
other reads (attributes, VPC CIDRs, tags) fail soft: the details come back with a warning
in ``TargetGroupInfo.warnings`` and are read again next time instead of being cached.
The tags (owner, lock table) of the groups a pass is about to write are read on every pass
that writes, 20 groups a DescribeTags call (``with_fresh_tags``): a guard on tags cached
since the instance started would let it write a group another stack tagged since.
Nothing here retries: botocore's retry policy (``aws.BOTO_CONFIG``) is the only one.

The VPC's CIDRs are read only when something is to be written (``with_vpc``): an in-sync
pass never needs them, and the EC2 client (the largest of the SDK's models, ~20 MB
resident) is then never built. Cached reads are safe under threads: two bindings asking
for the same details at once share one read.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from .errors import AccessDenied, NlbError, TargetGroupNotFound, Throttled
from .parallel import map_ordered
from .target_group_info import (
    LOCK_TABLE_TAG,
    MAX_SAFE_DEREGISTRATION_DELAY_S,
    OWNER_TAG,
    ListenerInfo,
    TargetGroupInfo,
    forward_target,
    risky_settings,
)
from .targets import Target, TargetHealth, TargetState

__all__ = [
    "forget",
    "OWNER_TAG",
    "LOCK_TABLE_TAG",
    "TargetGroupInfo",
    "TargetGroups",
    "risky_settings",
    "clear_caches",
    "WRITE_CHUNK",
    "MAX_SAFE_DEREGISTRATION_DELAY_S",
    "ListenerInfo",
    "vpc_cidr_blocks",
    "Seen",
    "last_seen",
    "read_first",
    "DESCRIBE_TAGS_CHUNK",
]

# RegisterTargets / DeregisterTargets accept many targets per call; keep requests small.
WRITE_CHUNK = 200
_THROTTLE_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


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
# Reads in progress, by (cache, key): a second thread asking for the same key waits for
# the first one's answer instead of reading again.
_in_flight: dict[tuple[int, tuple[str, str]], Future[Any]] = {}
# DescribeTargetGroups takes several names at once; a missing one fails the whole call,
# which then falls back to one call per name so only that binding reports the error.
DESCRIBE_CHUNK = 20


@dataclass(frozen=True)
class Seen:
    """What this process last saw registered in a target group (not draining), and when it
    last read the group (``time.monotonic()``)."""

    targets: frozenset[Target]
    read_at: float


# Per process, as the details cache: a warm instance remembers every group it has read, so
# ``sync`` reads first the groups whose source now says something else, and reads the rest
# least recently read first. Kept up to date by this process's own writes, so a change it
# applied does not look like a change again on the next pass.
_seen: dict[tuple[str, str], Seen] = {}


def last_seen(target_groups: "TargetGroups", target_group_arn: str) -> Seen | None:
    """What ``target_groups``' process last saw in the group, or None (never read here)."""
    key = target_groups._seen_key(target_group_arn)
    with _info_lock:
        return _seen.get(key) if key is not None else None


def read_first(target_groups: "TargetGroups", target_group_arn: str, before: Seen | None) -> None:
    """A change found in the group too late to apply this pass: its read this pass does not
    count for the order (what it holds stays remembered), so it keeps the age it had
    (``before``: what was remembered before the read; None, never read: first of all).
    Counted, changes that are never applied (a group another stack owns, an answer
    refused), read earlier in every pass, would stay ahead of it run after run; kept, it
    grows older than every group read since and comes first."""
    key = target_groups._seen_key(target_group_arn)
    with _info_lock:
        seen = _seen.get(key) if key is not None else None
        if seen is not None:
            _seen[key] = Seen(seen.targets, before.read_at if before is not None else -math.inf)  # type: ignore[index]


def forget(target_group_arn: str) -> None:
    """Drop cached details of one target group: it was deleted (and perhaps recreated
    under the same name), so the next look-up must read it again."""
    with _info_lock:
        for key in [k for k, v in _info_cache.items() if v.arn == target_group_arn]:
            del _info_cache[key]
        for key in [k for k in _seen if k[1] == target_group_arn]:
            del _seen[key]


def clear_caches() -> None:
    """Forget cached target group and VPC details and what was last seen in each group
    (kept between warm Lambda invocations)."""
    with _info_lock:
        _info_cache.clear()
        _vpc_cache.clear()
        _seen.clear()


class TargetGroups:
    """Domain verbs over an elbv2 client (and an ec2 client for VPC CIDRs). ``ec2`` and
    ``dynamodb`` may be factories: the client is built on first use."""

    def __init__(
        self,
        elbv2: Any,
        ec2: Any | None = None,
        *,
        chunk_size: int = WRITE_CHUNK,
        cache: bool = True,
        dynamodb: Callable[[], Any] | Any | None = None,
    ) -> None:
        self.elbv2 = elbv2
        self._ec2 = ec2
        self._client_lock = threading.Lock()
        self.chunk_size = chunk_size
        self.cache = cache
        self._dynamodb = dynamodb
        # Endpoint failures seen by ``prefetch``: ``info`` reports them instead of calling
        # again, so an unreachable endpoint costs one call's retries, not one per binding.
        self._unreachable: dict[str, NlbError] = {}
        self._described: dict[str, dict[str, Any]] = {}  # DescribeTargetGroups answers by alias

    def dynamodb(self) -> Any | None:
        """The DynamoDB client for write leases (built on first use), or None."""
        with self._client_lock:
            if callable(self._dynamodb) and not hasattr(self._dynamodb, "update_item"):
                self._dynamodb = self._dynamodb()
            return self._dynamodb

    @property
    def ec2(self) -> Any | None:
        """The EC2 client for VPC CIDRs (built on first use), or None."""
        with self._client_lock:
            if callable(self._ec2) and not hasattr(self._ec2, "describe_vpcs"):
                self._ec2 = self._ec2()
            return self._ec2

    def _cache_key(self, name_or_arn: str, client: Any = None) -> tuple[str, str]:
        meta = (client or self.elbv2).meta
        return (f"{meta.region_name}|{meta.endpoint_url}", name_or_arn)

    def prefetch(self, names_or_arns: Iterable[str], limit: int = 1) -> None:
        """Describe many target groups in few calls (a cold start with many bindings),
        ``limit`` calls at a time; ``info()`` then reads each one's optional details when its
        binding's turn comes (so a deadline can stop between bindings). Errors are left for
        ``info()`` to raise per binding."""
        self._unreachable.clear()
        self._described.clear()
        if not self.cache:
            return
        wanted = [n for n in dict.fromkeys(names_or_arns) if not (self.cache and self._cache_key(n) in _info_cache)]
        chunks: list[tuple[str, list[str]]] = []
        for kind, key in (("arn", "TargetGroupArns"), ("name", "Names")):
            batch = [n for n in wanted if n.startswith("arn:") == (kind == "arn")]
            chunks += [(key, batch[i : i + DESCRIBE_CHUNK]) for i in range(0, len(batch), DESCRIBE_CHUNK)]
        for (_, chunk), groups in zip(chunks, map_ordered(lambda c: self._describe_chunk(*c), chunks, limit)):
            if not isinstance(groups, list):
                continue
            for tg in groups:
                for alias in (tg["TargetGroupArn"], tg["TargetGroupName"]):
                    if alias in chunk:
                        self._described[alias] = tg

    def _describe_chunk(self, key: str, chunk: list[str]) -> list[dict[str, Any]] | None:
        try:
            return list(self.elbv2.describe_target_groups(**{key: chunk})["TargetGroups"])
        except BotoCoreError as exc:
            # Endpoint down or timing out after botocore's retries: asking again per name
            # would only repeat the wait.
            for name in chunk:
                self._unreachable[name] = NlbError(f"target group {name}: {exc}")
        except ClientError as exc:
            if _error(exc, "").code in _THROTTLE_CODES | _DENIED_CODES:
                for name in chunk:
                    self._unreachable[name] = _error(exc, f"target group {name}")
            # else a name not found failed the whole call: info() reads one by one
        return None

    # -- reads -----------------------------------------------------------------------------

    def info(self, name_or_arn: str, *, vpc: bool = True, details: bool = True) -> TargetGroupInfo:
        """Target group details, attributes, tags and (with ``vpc``) the VPC's CIDRs;
        cached, since none of them is expected to change between syncs (``clear_caches``
        or a new process re-reads). ``vpc=False`` leaves the CIDRs to ``with_vpc``;
        ``details=False`` leaves attributes and tags to ``with_details`` (an in-sync pass
        needs neither: they matter only before a write)."""
        if name_or_arn in self._unreachable:
            raise self._unreachable[name_or_arn]
        described = self._described.get(name_or_arn)
        read = (lambda: self._info_from(described, details=details)) if described is not None else (lambda: self._read_info(name_or_arn, details=details))
        key = self._cache_key(name_or_arn)
        info = self._cached(_info_cache, key, read)
        if details and not info.details_known:
            info = self.with_details(info)
        if not vpc or info.vpc_known:
            return info
        info = self.with_vpc(info)
        if self.cache and info.vpc_known and not info.warnings:
            with _info_lock:
                _info_cache[key] = info
        return info

    def cached(self, name_or_arn: str) -> bool:
        """Whether ``info(name_or_arn)`` needs no call at all."""
        return self.cache and self._cache_key(name_or_arn) in _info_cache

    def with_vpc(self, info: TargetGroupInfo) -> TargetGroupInfo:
        """``info`` with its VPC's CIDRs (one DescribeVpcs per VPC, cached); a failed read
        is a warning and leaves them unknown (``vpc_known`` false)."""
        warnings: list[str] = []
        cidrs = self._soft(
            lambda: self._vpc_cidrs(info.vpc_id), f"VPC {info.vpc_id} CIDRs",
            "target addresses are only checked for kinds that are never valid", warnings, None,
        )
        return replace(
            info, vpc_cidrs=cidrs or (), vpc_known=cidrs is not None and bool(cidrs),
            warnings=info.warnings + tuple(w for w in warnings if w not in info.warnings),
        )

    def _cached(self, cache: dict[tuple[str, str], _T], key: tuple[str, str], read: Callable[[], _T]) -> _T:
        if not self.cache:
            return read()
        flight = (id(cache), key)
        with _info_lock:
            if key in cache:
                return cache[key]
            future = _in_flight.get(flight)
            if future is not None:
                owner = False
            else:
                owner, future = True, Future()
                _in_flight[flight] = future
        if not owner:
            return future.result()  # type: ignore[no-any-return]
        try:
            value = read()  # outside the lock: other keys are read meanwhile
        except BaseException as exc:
            with _info_lock:
                _in_flight.pop(flight, None)
            future.set_exception(exc)
            raise
        with _info_lock:
            if not getattr(value, "warnings", ()):  # a soft failure is read again next time
                cache[key] = value
            _in_flight.pop(flight, None)
        future.set_result(value)
        return value

    def _read_info(self, name_or_arn: str, *, details: bool = True) -> TargetGroupInfo:
        by = {"TargetGroupArns": [name_or_arn]} if name_or_arn.startswith("arn:") else {"Names": [name_or_arn]}
        try:
            groups = self.elbv2.describe_target_groups(**by)["TargetGroups"]
        except ClientError as exc:
            raise _error(exc, f"target group {name_or_arn}") from None
        except BotoCoreError as exc:
            raise NlbError(f"target group {name_or_arn}: {exc}") from None
        if not groups:
            raise TargetGroupNotFound(f"target group {name_or_arn}: not found", "TargetGroupNotFound")
        return self._info_from(groups[0], details=details)

    def _info_from(self, tg: dict[str, Any], *, details: bool = True) -> TargetGroupInfo:
        if tg.get("TargetType", "instance") != "ip":
            raise NlbError(
                f"target group {tg['TargetGroupName']}: target type is {tg.get('TargetType')!r}; cachebridge needs an IP target group",
                "WrongTargetType",
            )
        name, arn = tg["TargetGroupName"], tg["TargetGroupArn"]
        warnings: list[str] = []
        attrs, tags = self._read_details(arn, name, warnings) if details else ({}, {})
        tags_error = _tags_error(tags, warnings)
        vpc_id = tg.get("VpcId")
        return TargetGroupInfo(
            arn=tg["TargetGroupArn"],
            name=tg["TargetGroupName"],
            port=tg.get("Port"),
            protocol=tg.get("Protocol"),
            target_type=tg.get("TargetType", "ip"),
            vpc_id=vpc_id,
            vpc_cidrs=(),  # read by with_vpc, when something is to be written
            health_check_interval_s=tg.get("HealthCheckIntervalSeconds"),
            healthy_threshold=tg.get("HealthyThresholdCount"),
            attributes=attrs,
            ip_address_type=tg.get("IpAddressType") or "ipv4",
            tags=tags or {},
            warnings=tuple(warnings),
            vpc_known=False,
            details_known=details,
            tags_error=tags_error,
        )

    def _read_details(self, arn: str, name: str, warnings: list[str]) -> tuple[dict[str, str], dict[str, str] | None]:
        """Attributes and tags; a failed read is a warning, and tags that could not be read
        are None (not "no tags")."""
        attrs = self._read_attributes(arn, name, warnings) or []
        tags = self._soft(
            # Through ``tags``: an answer that leaves the group out (or describes another)
            # is unknown tags, not "no owner, no lock table".
            lambda: self.tags([arn])[arn],
            f"target group {name} tags", "its owner and lock table are unknown this run", warnings, None,
        )
        return {a["Key"]: a["Value"] for a in attrs}, tags

    def _read_attributes(self, arn: str, name: str, warnings: list[str]) -> list[dict[str, str]] | None:
        """A group's attributes, or None (and a warning) when they could not be read."""
        return self._soft(
            lambda: self.elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"],
            f"target group {name} attributes", "its settings are not checked this run", warnings, None,
        )

    def with_details(self, info: TargetGroupInfo) -> TargetGroupInfo:
        """``info`` with its attributes and tags (DescribeTargetGroupAttributes and
        DescribeTags), when ``info(details=False)`` left them out. Read successfully, they
        are kept with the cached details; a failed read is a warning (as in ``info``) and is
        read again next time."""
        if info.details_known:
            return info
        warnings: list[str] = []
        attrs, tags = self._read_details(info.arn, info.name, warnings)
        details = {
            "attributes": attrs,
            "tags": tags or {},
            "details_known": True,
            "tags_error": _tags_error(tags, warnings),
        }
        if self.cache and not warnings:
            with _info_lock:
                for key, cached in list(_info_cache.items()):
                    if cached.arn == info.arn and not cached.details_known:
                        _info_cache[key] = replace(cached, **details)  # type: ignore[arg-type]
        return replace(info, **details, warnings=info.warnings + tuple(w for w in warnings if w not in info.warnings))  # type: ignore[arg-type]

    def with_fresh_tags(self, infos: Sequence[TargetGroupInfo], limit: int = 1) -> list[TargetGroupInfo]:
        """``infos`` with their tags read now, before a write: up to ``DESCRIBE_TAGS_CHUNK``
        groups a DescribeTags call, and their attributes when not yet known (one
        DescribeTargetGroupAttributes each: that call takes one group), ``limit`` calls at a
        time. The tags are read on every pass that writes rather than taken from the cache:
        a group another stack tagged (owner, lock table) after this process cached it is
        then refused, or written under that stack's lease, from its next write on; for a
        token per 20 groups written.

        Per group: a group whose tags could not be read (its call failed, or the answer left
        it out) comes back with ``tags_error`` set, and is not to be written; the other
        groups of its call are not affected by what one of them did. A call refused for one
        group (not found: deleted since) is made again one group a call, so only that
        group reports it. What was read is kept with the cached details."""
        infos = list(infos)
        arns = list(dict.fromkeys(i.arn for i in infos))
        jobs: list[tuple[str, Any]] = [("tags", arns[i : i + DESCRIBE_TAGS_CHUNK]) for i in range(0, len(arns), DESCRIBE_TAGS_CHUNK)]
        jobs += [("attributes", i) for i in infos if not i.details_known]

        def run(job: tuple[str, Any]) -> Any:
            kind, what = job
            if kind == "tags":
                return self._tags_chunk(what)
            warnings: list[str] = []
            return self._read_attributes(what.arn, what.name, warnings), warnings

        tags: dict[str, dict[str, str] | str] = {}
        attributes: dict[str, tuple[list[dict[str, str]] | None, list[str]]] = {}
        for (kind, what), answer in zip(jobs, map_ordered(run, jobs, max(1, limit))):
            if kind == "tags":
                # A Failure is a bug on this side, not an answer: its groups only, unread.
                tags.update(answer if isinstance(answer, dict) else {arn: f"{answer.error!r}" for arn in what})
            else:
                attributes[what.arn] = answer if isinstance(answer, tuple) else (None, [f"target group {what.name} attributes: {answer.error!r}; its settings are not checked this run"])
        out = [self._fresh(info, tags[info.arn], attributes.get(info.arn)) for info in infos]
        if self.cache:
            with _info_lock:
                for fresh in out:
                    if fresh.tags_error is not None:
                        continue  # the cache keeps what it knew; this pass writes nothing there
                    read_attrs = attributes.get(fresh.arn, (None, []))[0] is not None
                    for key, cached in list(_info_cache.items()):
                        if cached.arn != fresh.arn or not (cached.details_known or read_attrs):
                            continue
                        _info_cache[key] = replace(
                            cached, tags=dict(fresh.tags), tags_error=None, details_known=True,
                            attributes=dict(fresh.attributes) if read_attrs else cached.attributes,
                        )
        return out

    def _fresh(
        self, info: TargetGroupInfo, tags: dict[str, str] | str, attributes: tuple[list[dict[str, str]] | None, list[str]] | None,
    ) -> TargetGroupInfo:
        warnings = list(info.warnings)
        changes: dict[str, Any] = {}
        if isinstance(tags, str):
            reason = f"target group {info.name} tags: {tags}; its owner and lock table are unknown this run"
            changes["tags_error"] = reason
            warnings.append(reason)
        else:
            changes.update(tags=tags, tags_error=None)
        if attributes is not None:
            attrs, failed = attributes
            if attrs is not None:  # unread, they stay unknown: no warning about settings not seen
                changes.update(attributes={a["Key"]: a["Value"] for a in attrs}, details_known=True)
            warnings += failed
        return replace(info, **changes, warnings=tuple(dict.fromkeys(warnings)))

    def _tags_chunk(self, chunk: list[str]) -> dict[str, dict[str, str] | str]:
        """The tags of up to 20 groups (one DescribeTags), or why each could not be read."""
        try:
            described = self.elbv2.describe_tags(ResourceArns=chunk)["TagDescriptions"]
        except ClientError as exc:
            error = _error(exc, "DescribeTags")
            if len(chunk) > 1 and error.code not in _THROTTLE_CODES | _DENIED_CODES:
                # One group can fail the whole call (TargetGroupNotFound: deleted since); read
                # each alone, so the others are not marked unreadable for it.
                out: dict[str, dict[str, str] | str] = {}
                for arn in chunk:
                    out.update(self._tags_chunk([arn]))
                return out
            if isinstance(error, TargetGroupNotFound) and len(chunk) == 1:
                forget(chunk[0])
            return {arn: str(error) for arn in chunk}
        except (BotoCoreError, NlbError) as exc:  # NlbError: the pacing budget spent
            return {arn: f"DescribeTags: {exc}" for arn in chunk}
        found: dict[str, dict[str, str] | str] = {}
        for item in described:
            arn = item.get("ResourceArn")
            if arn not in chunk:
                continue
            tags = {t["Key"]: t.get("Value", "") for t in item.get("Tags") or ()}
            if found.get(arn, tags) != tags:
                # Described twice, differently: which owner and lock table are true is unknown.
                tags = "DescribeTags described this target group twice with different tags"  # type: ignore[assignment]
            if not isinstance(found.get(arn), str):
                found[arn] = tags
        # "No tags" is an answer only for a group the answer names: one left out is unknown.
        return {arn: found[arn] if arn in found else "DescribeTags answered without this target group" for arn in chunk}

    @staticmethod
    def _soft(read: Callable[[], _T], what: str, consequence: str, warnings: list[str], default: _T) -> _T:
        """An optional read: a failure becomes a warning and ``default``."""
        try:
            return read()
        except ClientError as exc:
            warnings.append(f"{_error(exc, what)}; {consequence}")
        except (BotoCoreError, NlbError) as exc:
            warnings.append(f"{what}: {exc}; {consequence}")
        return default

    def _vpc_cidrs(self, vpc_id: str | None) -> tuple[str, ...] | None:
        if not vpc_id or self._ec2 is None:
            return None
        # Keyed by the elbv2 client's region and endpoint: looking the key up must not build
        # the EC2 client, and a VPC id names one VPC in a Region.
        return self._cached(_vpc_cache, self._cache_key(f"vpc:{vpc_id}"), lambda: self._read_vpc_cidrs(vpc_id))

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
        """Every registered target with its state: one DescribeTargetHealth call (what it
        shows is remembered, ``last_seen``)."""
        started = time.monotonic()
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
        key = self._seen_key(target_group_arn)
        if key is not None:
            live = frozenset(t for t, h in actual.items() if not h.draining)
            with _info_lock:
                _seen[key] = Seen(live, started)
        return actual

    def _seen_key(self, target_group_arn: str) -> tuple[str, str] | None:
        if not self.cache:
            return None
        try:
            return self._cache_key(target_group_arn)
        except AttributeError:  # a client stand-in without botocore's ``meta``
            return None

    def _saw_written(self, verb: str, arn: str, targets: Sequence[dict[str, Any]]) -> None:
        key = self._seen_key(arn)
        written = {Target(d["Id"], int(d["Port"])) for d in targets}
        with _info_lock:
            seen = _seen.get(key) if key is not None else None
            if seen is not None:
                held = seen.targets | written if verb == "register" else seen.targets - written
                _seen[key] = Seen(frozenset(held), seen.read_at)

    # -- writes ----------------------------------------------------------------------------

    def _descriptions(self, info: TargetGroupInfo, targets: Iterable[Target], *, outside_vpc: bool) -> list[dict[str, Any]]:
        out = []
        for t in targets:
            d: dict[str, Any] = {"Id": t.ip, "Port": t.port}
            # Addresses outside the VPC's CIDRs (peered VPCs, on-premises over DX/VPN) are
            # only accepted with AvailabilityZone=all, and only sent so when the caller says
            # such targets are wanted (a binding's allow_outside_vpc).
            if outside_vpc and info.vpc_cidrs and not info.in_vpc(t.ip):
                d["AvailabilityZone"] = "all"
            out.append(d)
        return out

    def _chunks(self, items: Sequence[dict[str, Any]]) -> Iterable[Sequence[dict[str, Any]]]:
        for i in range(0, len(items), self.chunk_size):
            yield items[i : i + self.chunk_size]

    def register(self, info: TargetGroupInfo, targets: Sequence[Target], *, outside_vpc: bool = False) -> None:
        self._write("register", info, targets, outside_vpc)

    def deregister(self, info: TargetGroupInfo, targets: Sequence[Target], *, outside_vpc: bool = False) -> None:
        # Always with the port: without it a target registered on another port stays.
        self._write("deregister", info, targets, outside_vpc)

    def _write(self, verb: Literal["register", "deregister"], info: TargetGroupInfo, targets: Sequence[Target], outside_vpc: bool) -> None:
        for chunk in self._chunks(self._descriptions(info, targets, outside_vpc=outside_vpc)):
            try:
                getattr(self.elbv2, f"{verb}_targets")(TargetGroupArn=info.arn, Targets=list(chunk))
                self._saw_written(verb, info.arn, chunk)
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
            forward=forward_target(raw.get("DefaultActions") or []),
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
        """The tags of each resource (DescribeTags, 20 ARNs per call). Raises when a call
        fails, and when an answer leaves a resource out or describes it twice differently:
        the switch and cluster layouts read a slot's node, hold and owner from these tags,
        and a slot taken for untagged would be handed to another node."""
        found: dict[str, dict[str, str]] = {}
        for i in range(0, len(arns), DESCRIBE_TAGS_CHUNK):
            chunk = list(arns[i : i + DESCRIBE_TAGS_CHUNK])
            try:
                described = self.elbv2.describe_tags(ResourceArns=chunk)["TagDescriptions"]
            except ClientError as exc:
                raise _error(exc, f"describe tags of {', '.join(chunk)}") from None
            except BotoCoreError as exc:
                raise NlbError(f"describe tags: {exc}") from None
            read: dict[str, dict[str, str]] = {}
            for item in described:
                arn = item.get("ResourceArn") if isinstance(item, dict) else None
                if arn not in chunk:
                    continue
                tags = _described_tags(item.get("Tags"))
                if tags is None:
                    raise NlbError(f"describe tags: the answer's tags of {arn} are malformed (not a list of keys and values); its node and owner are unknown")
                if read.setdefault(arn, tags) != tags:
                    raise NlbError(f"describe tags: the answer described {arn} twice with different tags; its node and owner are unknown")
            missing = [arn for arn in chunk if arn not in read]
            if missing:
                raise NlbError(f"describe tags: the answer left out {', '.join(missing)}; their node and owner are unknown")
            found.update(read)
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


# "You can specify up to 20 resources in a single call" (Elastic Load Balancing API
# Reference, DescribeTags, ResourceArns).
DESCRIBE_TAGS_CHUNK = 20


def vpc_cidr_blocks(ec2: Any, vpc_id: str) -> tuple[str, ...]:
    """The CIDR blocks associated with a VPC, IPv4 and IPv6: one DescribeVpcs (``deploy``
    puts them in the controller's settings, ``settings.vpc_cidrs``)."""
    return TargetGroups(None, ec2, cache=False)._read_vpc_cidrs(vpc_id)


def _described_tags(raw: Any) -> dict[str, str] | None:
    """One TagDescription's ``Tags`` as a dict, or None when they cannot be read as tags: a
    tag without a key, or one key given two values, leaves the slot's node unknown. No
    ``Tags`` at all is no tags (the member is optional: API Reference, TagDescription)."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        return None
    out: dict[str, str] = {}
    for tag in raw:
        if not isinstance(tag, dict) or not isinstance(tag.get("Key"), str) or not isinstance(tag.get("Value", ""), str):
            return None
        if out.setdefault(tag["Key"], tag.get("Value", "")) != tag.get("Value", ""):
            return None
    return out


def _tags_error(tags: dict[str, str] | None, warnings: list[str]) -> str | None:
    if tags is not None:
        return None
    return next((w for w in reversed(warnings) if " tags" in w), "its tags could not be read")

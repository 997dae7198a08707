"""Sources: where traffic *should* go.

- ``dns://HOST``: any hostname, resolved with dnspython (A and AAAA, CNAME chains, explicit
  nameservers tried in order).
- ``elasticache://RG?role=primary|replicas``: the members of a replication group (cluster
  mode disabled) in that role, by ``DescribeReplicationGroups``'s ``CurrentRole``, each
  member's node hostname (``ReadEndpoint.Address``) resolved through the DNS source. Node
  names are stable while node IPs change on replacement, so the name is resolved on every
  read rather than remembered.
- ``elasticache://RG?role=cluster``: every node of every node group (shard) of a
  cluster-mode-enabled group. ``CurrentRole`` and ``ReadEndpoint`` are "only applicable for
  ... (cluster mode disabled)" (ElastiCache API Reference, ``NodeGroupMember``), so each
  member's node name comes from ``DescribeCacheClusters`` with ``ShowCacheNodeInfo``
  (``CacheNodes[].Endpoint``), remembered across passes (names are stable), and is resolved
  on every read like the others. See ``cluster`` for the layout that uses it.
- A group whose ``ClusterMode`` is ``compatible`` (migrating from disabled to enabled) is
  refused by every role: clients may be connected in either mode, and neither topology
  holds until the migration ends.

Reads per pass round (``Sources.new_pass``): each replication group is described once and
each DNS name resolved once, however many bindings name them. When a round will read many
groups (``Sources.expect``), they are listed with DescribeReplicationGroups without an id,
100 a page, instead of one call each: the listing stops as soon as it stops paying for
itself, so it never costs more than one call over the per-id way, and a group it did not
find is described by id (the same "no such replication group" as ever).

Every failure raises a ``SourceError``; a source never returns a partial answer, because a
missing address would look like a target to deregister.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.nameserver
import dns.name
import dns.rdatatype
import dns.resolver
from botocore.exceptions import BotoCoreError, ClientError

from .config import DEFAULT_DNS_TIMEOUT_S, DnsSourceSpec, ElastiCacheSourceSpec, SourceSpec
from .errors import EmptySource, SourceError, SourceNotFound, SourceTimeout, SourceUnsupported
from .parallel import OncePerKey

__all__ = [
    "Resolution",
    "Reading",
    "DnsResolver",
    "ReplicationGroup",
    "Member",
    "Sources",
    "check_mode",
    "describe_node_endpoint",
    "LIST_MIN_GROUPS",
    "LIST_PAGE_SIZE",
]

# A round that reads at least this many replication groups lists them (``Sources.expect``);
# fewer are described one by one, as cheap and with no page to wait for.
LIST_MIN_GROUPS = 4
# DescribeReplicationGroups ``MaxRecords``: "Default: 100. Constraints: minimum 20; maximum
# 100" (ElastiCache API Reference, DescribeReplicationGroups).
LIST_PAGE_SIZE = 100


@dataclass(frozen=True)
class Resolution:
    host: str
    addresses: tuple[str, ...]
    ttl: int | None
    chain: tuple[str, ...] = ()  # the names followed, host first, canonical name last


@dataclass(frozen=True)
class Reading:
    """What a source said: normalised, sorted addresses, and how long that holds."""

    source: str
    addresses: tuple[str, ...]
    ttl: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    port: int | None = None  # the port the source itself names (ElastiCache members), if any


class DnsResolver:
    """A/AAAA resolution through explicit nameservers (``ip:port``), or the system's.

    Nameservers are tried in order: one that times out or answers SERVFAIL is skipped for
    the next, within ``timeout`` seconds per server (dnspython's own failover)."""

    def __init__(self, nameservers: Sequence[str] = (), timeout: float = DEFAULT_DNS_TIMEOUT_S) -> None:
        if nameservers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [_nameserver(ns) for ns in nameservers]
        else:
            resolver = dns.resolver.Resolver()
        resolver.timeout = timeout
        resolver.lifetime = timeout * max(1, len(resolver.nameservers))
        resolver.cache = None  # a flip must be seen on the next read, not after a TTL
        self._resolver = resolver
        self.nameservers = tuple(nameservers)

    def resolve(self, host: str, families: Sequence[int] = (4, 6)) -> Resolution:
        """A and/or AAAA of ``host``: ``families`` (4, 6) says which, so an IPv4 target
        group never waits on (or fails for) an AAAA query it could not use."""
        addresses: set[str] = set()
        ttls: list[int] = []
        chain: tuple[str, ...] = (host,)
        answered = False
        rdtypes = [t for f, t in ((4, dns.rdatatype.A), (6, dns.rdatatype.AAAA)) if f in families]
        for rdtype in rdtypes:
            try:
                answer = self._resolver.resolve(host, rdtype, search=False, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                raise SourceNotFound(f"dns://{host}: NXDOMAIN (no such name)") from None
            except dns.resolver.LifetimeTimeout:
                raise SourceTimeout(f"dns://{host}: no answer from {self._servers_text()} in time") from None
            except dns.resolver.NoNameservers as exc:
                raise SourceError(f"dns://{host}: every nameserver failed ({_short(exc)})") from None
            except dns.exception.DNSException as exc:
                raise SourceError(f"dns://{host}: {_short(exc)}") from None
            answered = True
            result = answer.chaining_result
            if result.cnames:
                chain = (host, *(str(rrset[0].target).rstrip(".") for rrset in result.cnames))
            if answer.rrset is not None:
                for rdata in answer.rrset:
                    addresses.add(str(ipaddress.ip_address(rdata.address)))
                ttls.append(result.minimum_ttl)
        if not answered or not addresses:
            kinds = " or ".join("A" if t == dns.rdatatype.A else "AAAA" for t in rdtypes)
            raise EmptySource(f"dns://{host}: the name exists but has no {kinds} record")
        return Resolution(host, tuple(sorted(addresses, key=_addr_key)), min(ttls) if ttls else None, chain)

    def _servers_text(self) -> str:
        return ", ".join(self.nameservers) if self.nameservers else "the system resolver"


def _nameserver(text: str) -> dns.nameserver.Nameserver:
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    return dns.nameserver.Do53Nameserver(host, int(port or 53))


def _addr_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


@dataclass(frozen=True)
class Member:
    cache_cluster_id: str
    role: str | None
    address: str | None
    port: int | None
    node_group_id: str | None = None  # the shard, in cluster mode


@dataclass(frozen=True)
class ReplicationGroup:
    replication_group_id: str
    status: str
    cluster_enabled: bool
    members: tuple[Member, ...]
    primary_endpoint: str | None = None
    port: int | None = None
    transit_encryption: bool = False
    security_group_ids: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    cluster_mode: str = "disabled"  # enabled | disabled | compatible (a migration under way)
    slots: dict[str, str] = field(default_factory=dict)  # node group id -> "0-5461", cluster mode


def describe_replication_group(elasticache: Any, rg_id: str) -> ReplicationGroup:
    """One DescribeReplicationGroups call, as a ``ReplicationGroup``."""
    try:
        groups = elasticache.describe_replication_groups(ReplicationGroupId=rg_id)["ReplicationGroups"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ReplicationGroupNotFoundFault", "ReplicationGroupNotFound"):
            raise SourceNotFound(f"elasticache://{rg_id}: no such replication group") from None
        raise _describe_failed(rg_id, exc) from None
    except BotoCoreError as exc:
        raise _describe_failed(rg_id, exc) from None
    if not groups:
        raise SourceNotFound(f"elasticache://{rg_id}: no such replication group")
    return _group_from(groups[0])


def _describe_failed(rg_id: str, exc: Exception) -> SourceError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        return SourceError(f"elasticache://{rg_id}: DescribeReplicationGroups failed: {code}: {message}")
    return SourceError(f"elasticache://{rg_id}: DescribeReplicationGroups failed: {exc}")


def _group_from(rg: dict[str, Any]) -> ReplicationGroup:
    """A ``ReplicationGroup`` from one item of a DescribeReplicationGroups answer."""
    cluster_enabled = bool(rg.get("ClusterEnabled")) or rg.get("ClusterMode") == "enabled"
    cluster_mode = str(rg.get("ClusterMode") or ("enabled" if cluster_enabled else "disabled"))
    members: list[Member] = []
    primary_endpoint = None
    port = None
    for group in rg.get("NodeGroups", []):
        primary_endpoint = primary_endpoint or group.get("PrimaryEndpoint", {}).get("Address")
        port = port or group.get("PrimaryEndpoint", {}).get("Port")
        for m in group.get("NodeGroupMembers", []):
            endpoint = m.get("ReadEndpoint") or {}
            members.append(
                Member(m.get("CacheClusterId", "?"), m.get("CurrentRole"), endpoint.get("Address"), endpoint.get("Port"), group.get("NodeGroupId"))
            )
    if port is None and rg.get("ConfigurationEndpoint"):
        port = rg["ConfigurationEndpoint"].get("Port")
    return ReplicationGroup(
        replication_group_id=rg["ReplicationGroupId"],
        status=rg.get("Status", "unknown"),
        cluster_enabled=cluster_enabled,
        members=tuple(members),
        primary_endpoint=primary_endpoint,
        port=port,
        transit_encryption=bool(rg.get("TransitEncryptionEnabled")),
        raw=rg,
        cluster_mode=cluster_mode,
        slots={g["NodeGroupId"]: str(g.get("Slots", "")) for g in rg.get("NodeGroups", []) if g.get("NodeGroupId")},
    )


def describe_node_endpoint(elasticache: Any, cache_cluster_id: str) -> tuple[str, int | None]:
    """The node name and port of a one-node cache cluster (a replication group member), from
    ``DescribeCacheClusters`` with ``ShowCacheNodeInfo``."""
    where = f"cache cluster {cache_cluster_id}"
    try:
        clusters = elasticache.describe_cache_clusters(CacheClusterId=cache_cluster_id, ShowCacheNodeInfo=True)["CacheClusters"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        raise SourceError(f"{where}: DescribeCacheClusters failed: {code}: {message}") from None
    except BotoCoreError as exc:
        raise SourceError(f"{where}: DescribeCacheClusters failed: {exc}") from None
    nodes = clusters[0].get("CacheNodes", []) if clusters else []
    endpoint = (nodes[0].get("Endpoint") or {}) if nodes else {}
    if not endpoint.get("Address"):
        raise SourceError(f"{where}: no node endpoint yet (status {clusters[0].get('CacheClusterStatus', '?') if clusters else 'unknown'})")
    return str(endpoint["Address"]), endpoint.get("Port")


class Sources:
    """Reads source specs. One instance serves one sync pass, a round at a time
    (``new_pass`` starts a round): within a round a replication group is described once and
    a DNS name resolved once however many bindings name them, also when several threads read
    them at the same moment (``parallel.OncePerKey``); a failed read is the answer for every
    binding that needs it in that round. A new round reads everything afresh (the agreement
    re-read must see a change made since the first read)."""

    def __init__(self, resolver: DnsResolver, elasticache: Callable[[], Any] | Any | None = None) -> None:
        self.resolver = resolver
        self._elasticache = elasticache
        self._client_lock = threading.Lock()
        self._groups: OncePerKey[str, ReplicationGroup] = OncePerKey()
        # DNS answers shared by the bindings of a round ``expect`` announced; a read outside
        # such a round asks the nameserver every time, as a caller polling a name expects.
        self._resolutions: OncePerKey[tuple[str, tuple[int, ...]], Resolution] | None = None
        self._listing: _Listing | None = None
        # The unfiltered call was refused (an IAM policy scoped to named groups): describe
        # by id from then on, as that policy allows.
        self._listing_denied = False
        # Cluster-mode node names by cache cluster id: stable for a node's life, so kept
        # across passes (a warm Lambda asks once per node). Only answers are kept: a node
        # with no endpoint yet is asked again next pass.
        self._node_endpoints: dict[str, tuple[str, int | None]] = {}

    def new_pass(self) -> None:
        """Start a round: forget this round's group descriptions and DNS answers."""
        self._groups.clear()
        self._resolutions = None
        self._listing = None

    def expect(self, specs: Iterable[SourceSpec]) -> None:
        """Say which sources this round will read, so that many replication groups are
        listed in pages rather than described one by one (at least ``LIST_MIN_GROUPS``), and
        each DNS name is resolved once for all of them. Optional: without it every group is
        described by id and every name resolved at each read. Call after ``new_pass``."""
        self._resolutions = OncePerKey()
        wanted = list(dict.fromkeys(s.replication_group_id for s in specs if isinstance(s, ElastiCacheSourceSpec)))
        self._listing = _Listing(wanted) if len(wanted) >= LIST_MIN_GROUPS and not self._listing_denied else None

    def _client(self) -> Any:
        with self._client_lock:
            if self._elasticache is None:
                raise SourceError("no ElastiCache client configured")
            if callable(self._elasticache) and not hasattr(self._elasticache, "describe_replication_groups"):
                self._elasticache = self._elasticache()
            return self._elasticache

    def replication_group(self, rg_id: str) -> ReplicationGroup:
        return self._groups.get(rg_id, lambda: self._describe(rg_id))

    def _describe(self, rg_id: str) -> ReplicationGroup:
        listing = self._listing
        if listing is not None:
            listed = listing.get(rg_id, self._client)
            if listing.denied:
                self._listing_denied = True
            if listed is not None:
                return listed
        return describe_replication_group(self._client(), rg_id)

    def resolve(self, host: str, families: Sequence[int] = (4, 6)) -> Resolution:
        """``resolver.resolve``; once per name and address families in a round ``expect``
        announced."""
        shared = self._resolutions
        if shared is None:
            return self.resolver.resolve(host, families)
        return shared.get((host.lower(), tuple(families)), lambda: self.resolver.resolve(host, families))

    def node_endpoint(self, cache_cluster_id: str) -> tuple[str, int | None]:
        known = self._node_endpoints.get(cache_cluster_id)
        if known is None:
            known = self._node_endpoints[cache_cluster_id] = describe_node_endpoint(self._client(), cache_cluster_id)
        return known

    def read(self, spec: SourceSpec, families: Sequence[int] = (4, 6)) -> Reading:
        """What ``spec`` says, in the address ``families`` the target group can hold."""
        if isinstance(spec, DnsSourceSpec):
            res = self.resolve(spec.host, families)
            return Reading(str(spec), res.addresses, res.ttl, {"chain": list(res.chain)})
        if isinstance(spec, ElastiCacheSourceSpec):
            return self._read_elasticache(spec, families)
        raise SourceError(f"unsupported source {spec!r}")

    def _read_elasticache(self, spec: ElastiCacheSourceSpec, families: Sequence[int] = (4, 6)) -> Reading:
        rg = self.replication_group(spec.replication_group_id)
        where = str(spec)
        check_mode(rg, spec)
        if spec.role == "cluster":
            from .cluster import read_cluster_nodes  # the cluster layout's reading of the group

            nodes = read_cluster_nodes(self, spec, None, families)
            return Reading(
                where,
                tuple(sorted({n.target.ip for n in nodes}, key=_addr_key)),
                None,
                {"nodes": {n.cluster_id: [n.target.ip] for n in nodes}, "shards": {n.cluster_id: n.node_group_id for n in nodes}, "status": rg.status},
                port=rg.port,
            )
        wanted = "primary" if spec.role == "primary" else "replica"
        members = [m for m in rg.members if m.role == wanted]
        if not members:
            raise EmptySource(f"{where}: no member has role {wanted} (status {rg.status})")
        if spec.role == "primary" and len(members) > 1:
            ids = ", ".join(m.cache_cluster_id for m in members)
            raise SourceError(f"{where}: more than one member reports role primary ({ids}); waiting for a settled topology")
        addresses: set[str] = set()
        nodes: dict[str, list[str]] = {}
        ttls: list[int] = []
        for m in members:
            if not m.address:
                raise SourceError(f"{where}: member {m.cache_cluster_id} has no endpoint yet (status {rg.status})")
            try:
                res = self.resolve(m.address, families)
            except SourceError as exc:
                # Same type, so callers still tell a timeout from NXDOMAIN, but naming the
                # member: a missing node name is not a missing replication group.
                raise type(exc)(f"{where}: member {m.cache_cluster_id}: {exc}") from None
            addresses.update(res.addresses)
            nodes[m.cache_cluster_id] = list(res.addresses)
            if res.ttl is not None:
                ttls.append(res.ttl)
        ports = {m.port for m in members if m.port} or ({rg.port} if rg.port else set())
        return Reading(
            where,
            tuple(sorted(addresses, key=_addr_key)),
            min(ttls) if ttls else None,
            {"nodes": nodes, "status": rg.status},
            port=ports.pop() if len(ports) == 1 else None,
        )


_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_THROTTLE_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}


class _Listing:
    """One round's paged listing of the replication groups it will read.

    The first thread to ask reads the pages; each group is handed out as soon as its page
    arrives, so bindings of the first page go on while the next is read. Paging stops when
    every wanted group is found, or when another page no longer pays: once the pages read
    outnumber the groups found (so the whole never costs more than one call over describing
    each group by id), or reach the number still missing (those are then described by id,
    in parallel, rather than waited for page after page). A group not found gets ``None``:
    the caller describes it by id, which says "no such replication group" as before.

    When the endpoint fails or throttles, every group not yet found gets that error: asking
    again per group would repeat the wait, or add load to a throttled API. When the call is
    refused (an IAM policy naming groups), they get ``None`` and ``denied`` is set."""

    def __init__(self, wanted: Sequence[str]) -> None:
        # Ids are not case sensitive (API Reference, ReplicationGroupId); AWS lists them lower.
        self._futures: dict[str, Future[ReplicationGroup | None]] = {rg_id.lower(): Future() for rg_id in wanted}
        self._ids = {rg_id.lower(): rg_id for rg_id in wanted}  # as configured, for messages
        self._lock = threading.Lock()
        self._started = False
        self.denied = False
        self.pages = 0

    def get(self, rg_id: str, client: Callable[[], Any]) -> ReplicationGroup | None:
        """The group as listed, ``None`` for "describe it by id"; raises the listing's
        ``SourceError`` when the endpoint failed."""
        future = self._futures.get(rg_id.lower())
        if future is None:
            return None
        with self._lock:
            owner, self._started = not self._started, True
        if owner:
            self._read(client)
        return future.result()

    def _read(self, client: Callable[[], Any]) -> None:
        missing = dict(self._futures)
        found = 0
        try:
            elasticache = client()
            marker: str | None = None
            while True:
                page = elasticache.describe_replication_groups(
                    MaxRecords=LIST_PAGE_SIZE, **({"Marker": marker} if marker else {})
                )
                self.pages += 1
                for raw in page.get("ReplicationGroups", []):
                    future = missing.pop(str(raw.get("ReplicationGroupId", "")).lower(), None)
                    if future is None:
                        continue
                    found += 1
                    try:
                        future.set_result(_group_from(raw))
                    except Exception:  # an item we cannot read: by id, whose error says why
                        future.set_result(None)
                marker = page.get("Marker")
                if not missing or not marker or self.pages > found or self.pages >= len(missing):
                    break
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            self.denied = code in _DENIED_CODES
            if code in _THROTTLE_CODES:
                for rg_id, future in missing.items():
                    future.set_exception(_describe_failed(self._ids[rg_id], exc))
        except BotoCoreError as exc:
            for rg_id, future in missing.items():
                future.set_exception(_describe_failed(self._ids[rg_id], exc))
        except SourceError as exc:  # no client
            for future in missing.values():
                future.set_exception(exc)
        except BaseException as exc:
            for future in missing.values():
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            for future in missing.values():
                if not future.done():
                    future.set_result(None)


def check_mode(rg: ReplicationGroup, spec: ElastiCacheSourceSpec) -> None:
    """Refuse a role that does not fit the group's cluster mode, saying which one does."""
    where = str(spec)
    if rg.cluster_mode == "compatible":
        raise SourceUnsupported(
            f"{where}: cluster mode is 'compatible' (a migration from disabled to enabled is under way); "
            "neither mode's topology holds until it ends: finish it (ClusterMode=enabled) and use role=cluster, "
            "or set it back to disabled"
        )
    if rg.cluster_enabled and spec.role != "cluster":
        raise SourceUnsupported(
            f"{where}: cluster mode is enabled, so no single node is the primary or the replicas; "
            f"use elasticache://{spec.replication_group_id}?role=cluster (layout \"cluster\": a listener per node, "
            "and the address map of 'cachebridge endpoints' for cluster clients)"
        )
    if not rg.cluster_enabled and spec.role == "cluster":
        raise SourceUnsupported(
            f"{where}: cluster mode is disabled; role=cluster is for cluster-mode-enabled groups: "
            "use role=primary (writes) or role=replicas (reads)"
        )

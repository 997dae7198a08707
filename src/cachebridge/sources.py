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

Every failure raises a ``SourceError``; a source never returns a partial answer, because a
missing address would look like a target to deregister.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import dns_features  # noqa: F401  (first: settles dnspython's optional features)

import dns.exception
import dns.nameserver
import dns.name
import dns.rdatatype
import dns.resolver
from botocore.exceptions import BotoCoreError, ClientError

from .config import DEFAULT_DNS_TIMEOUT_S, DnsSourceSpec, ElastiCacheSourceSpec, SourceSpec
from .errors import EmptySource, SourceError, SourceNotFound, SourceTimeout, SourceUnsupported
from .parallel import OncePerKey

__all__ = ["Resolution", "Reading", "DnsResolver", "ReplicationGroup", "Member", "Sources", "check_mode", "describe_node_endpoint"]


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
        message = exc.response.get("Error", {}).get("Message", "")
        raise SourceError(f"elasticache://{rg_id}: DescribeReplicationGroups failed: {code}: {message}") from None
    except BotoCoreError as exc:
        raise SourceError(f"elasticache://{rg_id}: DescribeReplicationGroups failed: {exc}") from None
    if not groups:
        raise SourceNotFound(f"elasticache://{rg_id}: no such replication group")
    rg = groups[0]
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
    """Reads source specs. One instance serves one sync pass: a replication group is
    described once per pass however many bindings name it, also when several threads read
    it at the same moment (``parallel.OncePerKey``); a failed description is the answer
    for every binding of that group in the pass."""

    def __init__(self, resolver: DnsResolver, elasticache: Callable[[], Any] | Any | None = None) -> None:
        self.resolver = resolver
        self._elasticache = elasticache
        self._client_lock = threading.Lock()
        self._groups: OncePerKey[str, ReplicationGroup] = OncePerKey()
        # Cluster-mode node names by cache cluster id: stable for a node's life, so kept
        # across passes (a warm Lambda asks once per node). Only answers are kept: a node
        # with no endpoint yet is asked again next pass.
        self._node_endpoints: dict[str, tuple[str, int | None]] = {}

    def new_pass(self) -> None:
        self._groups.clear()

    def _client(self) -> Any:
        with self._client_lock:
            if self._elasticache is None:
                raise SourceError("no ElastiCache client configured")
            if callable(self._elasticache) and not hasattr(self._elasticache, "describe_replication_groups"):
                self._elasticache = self._elasticache()
            return self._elasticache

    def replication_group(self, rg_id: str) -> ReplicationGroup:
        return self._groups.get(rg_id, lambda: describe_replication_group(self._client(), rg_id))

    def node_endpoint(self, cache_cluster_id: str) -> tuple[str, int | None]:
        known = self._node_endpoints.get(cache_cluster_id)
        if known is None:
            known = self._node_endpoints[cache_cluster_id] = describe_node_endpoint(self._client(), cache_cluster_id)
        return known

    def read(self, spec: SourceSpec, families: Sequence[int] = (4, 6)) -> Reading:
        """What ``spec`` says, in the address ``families`` the target group can hold."""
        if isinstance(spec, DnsSourceSpec):
            res = self.resolver.resolve(spec.host, families)
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
                res = self.resolver.resolve(m.address, families)
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

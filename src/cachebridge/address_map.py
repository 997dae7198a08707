"""The cluster layout's address map: each node's address as the cluster announces it
(``ip:port`` in ``CLUSTER SLOTS``, ``MOVED``, ``ASK``) -> where that node is on the NLB.

A cluster client outside the VPC bootstraps through the configuration listener (any node
answers ``CLUSTER SLOTS``), then connects to the addresses the cluster announces: private
IPs it cannot reach. ElastiCache does not let users set ``cluster-announce-ip``, so the
client translates each announced address through this map. Every cluster client named
here has a hook for it; ``snippets()`` writes one per client.

Where the map comes from: the NLB itself, not a copy. Each node target group carries the
node's id in its ``cachebridge:node`` tag and the node's address as its one target, and
the listener that forwards to it gives the port. The map changes only when nodes come or
go (a failover moves no address), and the controller writes those facts as it assigns
slots, so reading them back needs no second store to keep in step. The stack outputs give
the static half (NLB name, configuration port, node ports and node target groups) for
tools that cannot call the ELB API.

``build()`` is pure; ``read()`` gathers the facts from AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .endpoints import ClientHowTo
from .targets import Target

__all__ = ["NodeRoute", "AddressMap", "CLUSTER_CLIENTS", "build", "read", "read_stack", "snippets"]

CLUSTER_CLIENTS = ("redis-py", "ioredis", "node-redis", "Lettuce", "go-redis")
# Snippets run by the test suite against the sandbox (the others are marked untested).
TESTED = frozenset({"redis-py", "ioredis"})
NODE_TAG = "cachebridge:node"


@dataclass(frozen=True)
class NodeRoute:
    node: str  # CacheClusterId
    announced: str  # ip:port, as the cluster announces the node
    nlb_host: str
    nlb_port: int
    health: str | None = None

    @property
    def nlb(self) -> str:
        return f"{self.nlb_host}:{self.nlb_port}"


@dataclass(frozen=True)
class AddressMap:
    nlb_host: str
    config_port: int | None  # the configuration listener: every node
    routes: tuple[NodeRoute, ...]
    warnings: tuple[str, ...] = ()
    clients: tuple[ClientHowTo, ...] = field(default=())

    def mapping(self) -> dict[str, str]:
        """announced ip:port -> NLB host:port."""
        return {r.announced: r.nlb for r in self.routes}

    def to_json(self) -> dict[str, Any]:
        return {
            "nlb_host": self.nlb_host,
            "config_port": self.config_port,
            "map": self.mapping(),
            "nodes": {r.node: {"announced": r.announced, "nlb": r.nlb, "health": r.health} for r in self.routes},
            "warnings": list(self.warnings),
            "clients": {c.client: {"code": c.code, "note": c.note} for c in self.clients},
        }


def build(nlb_host: str, config_port: int | None, routes: Sequence[NodeRoute], warnings: Sequence[str] = ()) -> AddressMap:
    """The map with its client snippets; routes sorted by announced address."""
    ordered = tuple(sorted(routes, key=lambda r: (Target.parse(r.announced), r.node)))
    seen: dict[str, str] = {}
    problems = list(warnings)
    for r in ordered:
        if r.announced in seen:
            problems.append(f"{r.announced} is announced by {seen[r.announced]} and {r.node}: the map keeps both, fix the slots")
        seen[r.announced] = r.node
    partial = AddressMap(nlb_host, config_port, ordered, tuple(problems))
    return AddressMap(nlb_host, config_port, ordered, tuple(problems), tuple(snippets(partial)))


def _q(text: str) -> str:
    """A double-quoted literal that reads the same in Python, JavaScript, Java and Go."""
    return json.dumps(text)


def snippets(m: AddressMap) -> list[ClientHowTo]:
    """One ready-to-paste snippet per cluster client. Plain TCP (a cache without in-transit
    encryption); with TLS, add each client's TLS options as ``cachebridge endpoints`` shows
    them for one endpoint."""
    host = m.nlb_host
    port = m.config_port or (m.routes[0].nlb_port if m.routes else 6379)
    pairs = [(r.announced.rsplit(":", 1), r.nlb_host, r.nlb_port) for r in m.routes]

    py_map = ",\n".join(f"    ({_q(ip)}, {int(p)}): ({_q(h)}, {np})" for (ip, p), h, np in pairs)
    js_map = ",\n".join(f"  {_q(f'{ip}:{p}')}: {{ host: {_q(h)}, port: {np} }}" for (ip, p), h, np in pairs)
    java_map = "\n".join(f"nat.put({_q(f'{ip}:{p}')}, HostAndPort.of({_q(h)}, {np}));" for (ip, p), h, np in pairs)
    go_map = "\n".join(f"\t{_q(f'{ip}:{p}')}: {_q(f'{h}:{np}')}," for (ip, p), h, np in pairs)

    def note(client: str, text: str) -> str:
        tested = "tested against the sandbox's Redis cluster" if client in TESTED else "untested: no such client runs in the test suite"
        return f"{text}; {tested}"

    return [
        ClientHowTo(
            "redis-py",
            "from redis.cluster import RedisCluster\n\n"
            f"NAT = {{\n{py_map},\n}}\n"
            f"rc = RedisCluster(host={_q(host)}, port={port}, address_remap=lambda addr: NAT.get(addr, addr))",
            note("redis-py", "address_remap takes and returns a (host, port) tuple (checked with redis-py 6.4)"),
        ),
        ClientHowTo(
            "ioredis",
            "const { Cluster } = require(\"ioredis\");\n"
            f"const natMap = {{\n{js_map},\n}};\n"
            f"const cluster = new Cluster([{{ host: {_q(host)}, port: {port} }}], {{ natMap }});",
            note("ioredis", "natMap keys are the announced \"ip:port\" (checked with ioredis 5.9)"),
        ),
        ClientHowTo(
            "node-redis",
            "import { createCluster } from \"redis\";\n"
            f"const nodeAddressMap = {{\n{js_map},\n}};\n"
            f"const cluster = await createCluster({{ rootNodes: [{{ url: {_q(f'redis://{host}:{port}')} }}], nodeAddressMap }}).connect();",
            note("node-redis", "nodeAddressMap keys are the announced \"ip:port\""),
        ),
        ClientHowTo(
            "Lettuce",
            "Map<String, HostAndPort> nat = new HashMap<>();\n"
            f"{java_map}\n"
            "MappingSocketAddressResolver resolver = MappingSocketAddressResolver.create(DnsResolvers.UNRESOLVED,\n"
            "    hp -> nat.getOrDefault(hp.getHostText() + \":\" + hp.getPort(), hp));\n"
            "ClientResources resources = ClientResources.builder().socketAddressResolver(resolver).build();\n"
            f"RedisClusterClient client = RedisClusterClient.create(resources, RedisURI.create({_q(host)}, {port}));",
            note("Lettuce", "MappingSocketAddressResolver (io.lettuce.core.resource) maps each HostAndPort before it is resolved"),
        ),
        ClientHowTo(
            "go-redis",
            "nat := map[string]string{\n"
            f"{go_map}\n"
            "}\n"
            "rdb := redis.NewClusterClient(&redis.ClusterOptions{\n"
            f"\tAddrs: []string{{{_q(f'{host}:{port}')}}},\n"
            "\tDialer: func(ctx context.Context, network, addr string) (net.Conn, error) {\n"
            "\t\tif mapped, ok := nat[addr]; ok {\n"
            "\t\t\taddr = mapped\n"
            "\t\t}\n"
            "\t\tvar d net.Dialer\n"
            "\t\treturn d.DialContext(ctx, network, addr)\n"
            "\t},\n"
            "})",
            note("go-redis", "ClusterOptions.Dialer dials every node address, announced ones included"),
        ),
    ]


# -- facts from AWS --------------------------------------------------------------------------


def read(elbv2: Any, node_target_groups: Sequence[str], config_target_group: str | None = None, *, nlb_host: str | None = None) -> AddressMap:
    """The map as the NLB holds it: each node target group's tag and target, and the port
    of the listener forwarding to it. Draining targets are left out (the node is leaving).
    ``nlb_host`` replaces the NLB's DNS name (the sandbox's stand-in listens on loopback)."""
    groups = _describe_groups(elbv2, node_target_groups)
    lb_arns = sorted({arn for g in groups for arn in g.get("LoadBalancerArns", [])})
    if len(lb_arns) != 1:
        raise ValueError(f"the node target groups are behind {len(lb_arns)} load balancers; expected one")
    lb = elbv2.describe_load_balancers(LoadBalancerArns=lb_arns)["LoadBalancers"][0]
    host = nlb_host or lb["DNSName"]
    ports = _listener_ports(elbv2, lb["LoadBalancerArn"])
    tags: dict[str, dict[str, str]] = {}
    arns = [g["TargetGroupArn"] for g in groups]
    for i in range(0, len(arns), 20):
        for item in elbv2.describe_tags(ResourceArns=arns[i : i + 20])["TagDescriptions"]:
            tags[item["ResourceArn"]] = {t["Key"]: t.get("Value", "") for t in item.get("Tags", [])}
    routes: list[NodeRoute] = []
    warnings: list[str] = []
    for g in groups:
        arn, name = g["TargetGroupArn"], g["TargetGroupName"]
        node = tags.get(arn, {}).get(NODE_TAG)
        if not node:
            continue  # a free slot
        port = ports.get(arn)
        if port is None:
            warnings.append(f"{name} ({node}): no listener forwards to it")
            continue
        targets = [
            d for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            if not str(d.get("TargetHealth", {}).get("State", "")).endswith("draining")
        ]
        if len(targets) != 1:
            warnings.append(f"{name} ({node}): {len(targets)} targets, expected one; left out of the map")
            continue
        t = targets[0]
        routes.append(NodeRoute(node, f"{t['Target']['Id']}:{t['Target']['Port']}", host, port, t.get("TargetHealth", {}).get("State")))
    config_port = None
    if config_target_group:
        (config,) = _describe_groups(elbv2, [config_target_group])
        config_port = ports.get(config["TargetGroupArn"])
    return build(host, config_port, routes, warnings)


def _describe_groups(elbv2: Any, names_or_arns: Sequence[str]) -> list[dict[str, Any]]:
    arns = [n for n in names_or_arns if n.startswith("arn:")]
    names = [n for n in names_or_arns if not n.startswith("arn:")]
    found: dict[str, dict[str, Any]] = {}
    if arns:
        for g in elbv2.describe_target_groups(TargetGroupArns=arns)["TargetGroups"]:
            found[g["TargetGroupArn"]] = g
            found[g["TargetGroupName"]] = g
    if names:
        for g in elbv2.describe_target_groups(Names=names)["TargetGroups"]:
            found[g["TargetGroupName"]] = g
    return [found[n] for n in names_or_arns]


def _listener_ports(elbv2: Any, lb_arn: str) -> Mapping[str, int]:
    """target group ARN -> the port of the listener whose default action forwards to it."""
    ports: dict[str, int] = {}
    for page in elbv2.get_paginator("describe_listeners").paginate(LoadBalancerArn=lb_arn):
        for listener in page["Listeners"]:
            for action in listener.get("DefaultActions", []):
                arn = action.get("TargetGroupArn")
                if arn:
                    ports.setdefault(arn, int(listener["Port"]))
                for tg in (action.get("ForwardConfig") or {}).get("TargetGroups", []):
                    ports.setdefault(tg["TargetGroupArn"], int(listener["Port"]))
    return ports


def read_stack(stack_name: str, *, clients: Any, nlb_host: str | None = None) -> AddressMap | None:
    """The map of a cachebridge stack in the cluster layout (``Layout`` output ``cluster``),
    from its ``NodeTargetGroups`` and ``ConfigTargetGroup`` outputs; ``None`` for a stack in
    another layout."""
    from .errors import DeployError

    try:
        stacks = clients("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as exc:
        if "does not exist" in str(exc):
            raise DeployError(f"stack {stack_name} does not exist") from None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if outputs.get("Layout") != "cluster":
        return None
    groups = [g for g in outputs.get("NodeTargetGroups", "").split(",") if g]
    if not groups:
        raise DeployError(f"stack {stack_name} is in the cluster layout but has no NodeTargetGroups output")
    return read(clients("elbv2"), groups, outputs.get("ConfigTargetGroup"), nlb_host=nlb_host)

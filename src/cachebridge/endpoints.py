"""How clients connect through a cachebridge NLB, said per client library.

The pitfall this module exists for: with a **TCP listener** the NLB passes bytes through,
TLS included, so a client talking TLS to a cache with in-transit encryption gets the
cache's own certificate. That certificate names the cache's endpoints (ElastiCache's
``*.<group>.<id>.<region>.cache.amazonaws.com``), never the NLB's DNS name, so
``rediss://<NLB DNS name>`` fails hostname verification. The client must open the TCP
connection to the NLB and verify the TLS server name of the cache's primary endpoint
(sent as SNI, and checked against the certificate). Turning verification off instead
would accept any certificate: never offered here.

With a **TLS listener** the NLB terminates TLS with the listener's certificate (a name of
the user's own, whose DNS record points at the NLB) and re-encrypts towards a TLS cache
itself; clients connect to that name and verify it as usual.

``describe()`` is pure: from the facts (listener protocol and port, the NLB's DNS name,
whether the cache speaks TLS, the cache's primary endpoint, the listener certificate's
name) it says where to connect and which name to verify, with a snippet per client.
``from_stack()`` and ``from_binding()`` gather those facts from AWS.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Endpoint", "ClientHowTo", "CLIENTS", "describe", "from_stack", "from_binding"]

CLIENTS = ("redis-cli", "redis-py", "ioredis", "Lettuce", "Jedis", "go-redis")

# What to type where a name is needed but unknown (a wildcard certificate, say).
YOUR_NAME = "YOUR-NAME"


@dataclass(frozen=True)
class ClientHowTo:
    client: str
    code: str
    note: str = ""


@dataclass(frozen=True)
class Endpoint:
    """Where a client opens its connection (``host``:``port``), whether it speaks TLS, and
    the name it verifies the server's certificate against (``server_name``)."""

    host: str
    port: int
    tls: bool
    server_name: str | None
    listener_protocol: str
    nlb_dns_name: str
    cache_tls: bool | None
    summary: str
    warnings: tuple[str, ...] = ()
    clients: tuple[ClientHowTo, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["clients"] = {c.client: {"code": c.code, "note": c.note} for c in self.clients}
        out["warnings"] = list(self.warnings)
        return out


def describe(
    *,
    nlb_dns_name: str,
    port: int,
    listener_protocol: str,
    cache_tls: bool | None,
    cache_endpoint: str | None = None,
    certificate_name: str | None = None,
    server_name: str | None = None,
    ca_file: str | None = None,
) -> Endpoint:
    """How to connect. ``server_name`` overrides the name to verify (the cache's primary
    endpoint for a TCP listener, ``certificate_name`` for a TLS listener); ``ca_file`` is a
    CA bundle clients verify with instead of their system's."""
    protocol = listener_protocol.upper()
    if protocol not in ("TCP", "TLS"):
        raise ValueError(f"listener protocol {listener_protocol!r} (accepted: TCP, TLS)")
    warnings: list[str] = []
    if protocol == "TLS":
        name = server_name or certificate_name
        if not name or name.startswith("*."):
            shown = name or "the name on the listener's certificate"
            warnings.append(f"name the host clients use: a name covered by {shown} whose DNS record points at "
                            f"{nlb_dns_name} (--server-name)")
            name = YOUR_NAME + name[1:] if name and name.startswith("*.") else YOUR_NAME
        summary = (f"TLS listener: the NLB terminates TLS with your certificate. Connect to {name}:{port} (a DNS "
                   f"record of yours pointing at {nlb_dns_name}) with TLS and verify {name} as usual; "
                   f"{nlb_dns_name} itself is not on the certificate.")
        endpoint = Endpoint(name, port, True, name, protocol, nlb_dns_name, cache_tls, summary, tuple(warnings))
    elif cache_tls is False:
        summary = f"TCP listener, cache without in-transit encryption: connect to {nlb_dns_name}:{port} without TLS."
        endpoint = Endpoint(nlb_dns_name, port, False, None, protocol, nlb_dns_name, cache_tls, summary)
    else:
        name = server_name or cache_endpoint
        if not name:
            warnings.append("the cache's primary endpoint is unknown: give it with --server-name")
            name = "PRIMARY-ENDPOINT"
        if cache_tls is None:
            warnings.append("whether the cache uses in-transit encryption is unknown; without it, drop the TLS options")
        summary = (f"TCP listener, TLS passed through to the cache: the client sees the cache's certificate, which "
                   f"names {name}, not {nlb_dns_name}. Connect to {nlb_dns_name}:{port} with TLS and verify the "
                   f"server name {name} (SNI and hostname check); rediss://{nlb_dns_name} alone fails verification.")
        endpoint = Endpoint(nlb_dns_name, port, True, name, protocol, nlb_dns_name, cache_tls, summary, tuple(warnings))
    return _with_clients(endpoint, ca_file)


def _with_clients(e: Endpoint, ca_file: str | None) -> Endpoint:
    from dataclasses import replace

    if not e.tls:
        how = _plain(e)
    elif e.server_name == e.host:
        how = _tls_by_name(e, ca_file)
    else:
        how = _tls_other_name(e, ca_file)
    return replace(e, clients=tuple(how))


def _q(text: str) -> str:
    """A double-quoted string literal that reads the same in Python, JavaScript, Java and Go."""
    return json.dumps(text)


def _sh(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _plain(e: Endpoint) -> list[ClientHowTo]:
    h, p = e.host, e.port
    return [
        ClientHowTo("redis-cli", f"redis-cli -h {_sh(h)} -p {p} PING"),
        ClientHowTo("redis-py", f"import redis\nr = redis.Redis(host={_q(h)}, port={p})"),
        ClientHowTo("ioredis", f"const Redis = require(\"ioredis\");\nconst redis = new Redis({{ host: {_q(h)}, port: {p} }});"),
        ClientHowTo("Lettuce", f"RedisClient client = RedisClient.create(RedisURI.create({_q(f'redis://{h}:{p}')}));"),
        ClientHowTo("Jedis", f"JedisPooled jedis = new JedisPooled({_q(h)}, {p});"),
        ClientHowTo("go-redis", f"rdb := redis.NewClient(&redis.Options{{Addr: {_q(f'{h}:{p}')}}})"),
    ]


def _tls_by_name(e: Endpoint, ca_file: str | None) -> list[ClientHowTo]:
    """A TLS listener: the host is the name on the certificate, so every client's default
    verification is the right one."""
    h, p = e.host, e.port
    url = f"rediss://{h}:{p}"
    cli_ca = f" --cacert {_sh(ca_file)}" if ca_file else ""
    py_ca = f", ssl_ca_certs={_q(ca_file)}" if ca_file else ""
    node_ca = f", tls: {{ ca: require(\"fs\").readFileSync({_q(ca_file)}) }}" if ca_file else ", tls: {}"
    java_ca = "  // trust your CA: -Djavax.net.ssl.trustStore=... (the JVM's default store otherwise)" if ca_file else ""
    go_ca = "  // add your CA to tls.Config.RootCAs (the system pool otherwise)" if ca_file else ""
    return [
        ClientHowTo("redis-cli", f"redis-cli -h {_sh(h)} -p {p} --tls{cli_ca} PING"),
        ClientHowTo("redis-py", f"import redis\nr = redis.Redis(host={_q(h)}, port={p}, ssl=True, ssl_cert_reqs=\"required\"{py_ca})"),
        ClientHowTo("ioredis", f"const Redis = require(\"ioredis\");\nconst redis = new Redis({{ host: {_q(h)}, port: {p}{node_ca} }});"),
        ClientHowTo("Lettuce", f"RedisURI uri = RedisURI.Builder.redis({_q(h)}, {p}).withSsl(true).withVerifyPeer(SslVerifyMode.FULL).build();\n"
                               f"RedisClient client = RedisClient.create(uri);{java_ca}"),
        ClientHowTo("Jedis", f"JedisPooled jedis = new JedisPooled(URI.create({_q(url)}));{java_ca}"),
        ClientHowTo("go-redis", f"opt, _ := redis.ParseURL({_q(url)})  // TLS, ServerName {h}\nrdb := redis.NewClient(opt){go_ca}"),
    ]


def _tls_other_name(e: Endpoint, ca_file: str | None) -> list[ClientHowTo]:
    """TLS passed through: connect to the NLB, verify the cache's name."""
    h, p, name = e.host, e.port, e.server_name or ""
    cli_ca = f" --cacert {_sh(ca_file)}" if ca_file else ""
    py_ca = f", ssl_ca_certs={_q(ca_file)}" if ca_file else ""
    node_ca = f", ca: require(\"fs\").readFileSync({_q(ca_file)})" if ca_file else ""
    java_params = (
        "SSLParameters tls = new SSLParameters();\n"
        f"tls.setServerNames(List.of(new SNIHostName({_q(name)})));  // SNI: JSSE then checks the certificate against it\n"
        "tls.setEndpointIdentificationAlgorithm(\"HTTPS\");"
    )
    return [
        ClientHowTo(
            "redis-cli", f"redis-cli -h {_sh(h)} -p {p} --tls --sni {_sh(name)}{cli_ca} PING",
            "redis-cli checks the certificate chain but not the name on it; --sni sends the cache's name.",
        ),
        ClientHowTo(
            "redis-py",
            "import redis\n\n"
            "class CacheNameSSLConnection(redis.SSLConnection):\n"
            "    # redis-py verifies against the host it connects to and has no option for another name:\n"
            "    # verify the cache's name while connecting to the NLB.\n"
            "    def _wrap_socket_with_ssl(self, sock):\n"
            f"        host, self.host = self.host, {_q(name)}\n"
            "        try:\n"
            "            return super()._wrap_socket_with_ssl(sock)\n"
            "        finally:\n"
            "            self.host = host\n\n"
            f"pool = redis.ConnectionPool(connection_class=CacheNameSSLConnection, host={_q(h)}, port={p}, "
            f"ssl_cert_reqs=\"required\"{py_ca})\n"
            "r = redis.Redis(connection_pool=pool)",
            "SSLConnection._wrap_socket_with_ssl is redis-py's own hook (checked with redis-py 6.4), not a public option.",
        ),
        ClientHowTo(
            "ioredis",
            f"const Redis = require(\"ioredis\");\nconst redis = new Redis({{ host: {_q(h)}, port: {p}, "
            f"tls: {{ servername: {_q(name)}{node_ca} }} }});",
            "Node's tls.connect sends servername as SNI and verifies the certificate against it.",
        ),
        ClientHowTo(
            "Lettuce",
            f"{java_params}\n"
            f"RedisURI uri = RedisURI.Builder.redis({_q(h)}, {p}).withSsl(true).withVerifyPeer(SslVerifyMode.FULL).build();\n"
            "RedisClient client = RedisClient.create(uri);\n"
            "client.setOptions(ClientOptions.builder().sslOptions(SslOptions.builder().sslParameters(() -> tls).build()).build());",
        ),
        ClientHowTo(
            "Jedis",
            f"{java_params}\n"
            "JedisClientConfig config = DefaultJedisClientConfig.builder().ssl(true).sslParameters(tls).build();\n"
            f"JedisPooled jedis = new JedisPooled(new HostAndPort({_q(h)}, {p}), config);",
        ),
        ClientHowTo(
            "go-redis",
            f"rdb := redis.NewClient(&redis.Options{{Addr: {_q(f'{h}:{p}')}, "
            f"TLSConfig: &tls.Config{{ServerName: {_q(name)}, MinVersion: tls.VersionTLS12}}}})",
            "crypto/tls sends ServerName as SNI and verifies the certificate against it.",
        ),
    ]


# -- facts from AWS --------------------------------------------------------------------------


def _certificate_name(acm: Any, arn: str | None) -> str | None:
    """The certificate's domain name; a wildcard stays a wildcard (the caller asks for a name)."""
    if not arn or acm is None:
        return None
    try:
        cert = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    except Exception:  # an IAM server certificate, or no acm:DescribeCertificate: ask the user
        return None
    return cert.get("DomainName")


def _cache(elasticache: Any, rg_id: str) -> tuple[bool, str | None]:
    from .sources import describe_replication_group

    group = describe_replication_group(elasticache, rg_id)
    return group.transit_encryption, group.primary_endpoint


def from_stack(stack_name: str, *, clients: Any, server_name: str | None = None, ca_file: str | None = None) -> Endpoint:
    """Facts from a cachebridge stack's outputs (and parameters, for stacks deployed before
    the outputs named them), the replication group and the listener's certificate."""
    from .errors import DeployError

    cfn = clients("cloudformation")
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as exc:
        if "does not exist" in str(exc):
            raise DeployError(f"stack {stack_name} does not exist") from None
        raise
    stack = stacks[0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    facts = {**params, **outputs}
    if "LoadBalancerDnsName" not in facts:
        raise DeployError(f"stack {stack_name} has no LoadBalancerDnsName output: not a cachebridge stack, or not deployed yet")
    rg_id = facts.get("ReplicationGroupId")
    cache_tls: bool | None = None if facts.get("TargetProtocol") is None else facts.get("TargetProtocol") == "TLS"
    cache_endpoint = None
    if rg_id:
        transit, cache_endpoint = _cache(clients("elasticache"), rg_id)
        cache_tls = transit if cache_tls is None else cache_tls or transit
    protocol = facts.get("ListenerProtocol") or "TCP"
    certificate_name = _certificate_name(clients("acm"), facts.get("CertificateArn")) if protocol == "TLS" else None
    port = int(facts.get("ListenerPort") or facts.get("CachePort") or 6379)
    return describe(
        nlb_dns_name=facts["LoadBalancerDnsName"], port=port, listener_protocol=protocol, cache_tls=cache_tls,
        cache_endpoint=cache_endpoint, certificate_name=certificate_name, server_name=server_name, ca_file=ca_file,
    )


def from_binding(source: str, target_group: str, *, elbv2: Any, elasticache: Any, acm: Any,
                 server_name: str | None = None, ca_file: str | None = None) -> Endpoint:
    """Facts from a binding: its target group's load balancer and the listener forwarding to
    it, and its source (an ``elasticache://`` group, or a ``dns://`` name that is the name
    to verify)."""
    from .config import ElastiCacheSourceSpec, parse_source
    from .errors import ConfigError

    if target_group.startswith("arn:"):
        groups = elbv2.describe_target_groups(TargetGroupArns=[target_group])["TargetGroups"]
    else:
        groups = elbv2.describe_target_groups(Names=[target_group])["TargetGroups"]
    group = groups[0]
    lb_arns = group.get("LoadBalancerArns") or []
    if not lb_arns:
        raise ConfigError("target_group", f"{target_group} is not behind a load balancer", "a target group a listener forwards to")
    lb = elbv2.describe_load_balancers(LoadBalancerArns=lb_arns[:1])["LoadBalancers"][0]
    listener = next(
        (l for l in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
         if any(_forwards_to(a, group["TargetGroupArn"]) for a in l.get("DefaultActions", []))),
        None,
    )
    if listener is None:
        raise ConfigError("target_group", f"no listener of {lb['LoadBalancerName']} forwards to {target_group}", "a target group a listener forwards to")
    spec = parse_source(source)
    cache_tls: bool | None = True if str(group.get("Protocol")).upper() == "TLS" else None
    cache_endpoint: str | None = None
    if isinstance(spec, ElastiCacheSourceSpec):
        transit, cache_endpoint = _cache(elasticache, spec.replication_group_id)
        cache_tls = transit or bool(cache_tls)
    else:
        cache_endpoint = spec.host
    certificates = listener.get("Certificates") or []
    certificate_name = _certificate_name(acm, certificates[0].get("CertificateArn")) if certificates else None
    return describe(
        nlb_dns_name=lb["DNSName"], port=int(listener["Port"]), listener_protocol=listener["Protocol"], cache_tls=cache_tls,
        cache_endpoint=cache_endpoint, certificate_name=certificate_name, server_name=server_name, ca_file=ca_file,
    )


def _forwards_to(action: dict[str, Any], tg_arn: str) -> bool:
    if action.get("TargetGroupArn") == tg_arn:
        return True
    return any(t.get("TargetGroupArn") == tg_arn for t in (action.get("ForwardConfig") or {}).get("TargetGroups", []))

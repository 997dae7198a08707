"""The one configuration model shared by the CLI, the Lambda handler and the template.

A configuration is a list of *bindings* (route what this source says to that target
group, on that port) plus global *settings*. It can be read from:

- a TOML or YAML file (``cachebridge sync --config F``)::

      [settings]
      nameservers = ["10.0.0.2:53"]
      max_changes = 4

      [[bindings]]
      name = "orders-primary"
      source = "elasticache://orders?role=primary"
      target_group = "orders-primary"
      port = 6379

  or, in the switch layout (one target group per cache node, the primary listener's
  default action switched to the primary's; see ``switch``)::

      [[bindings]]
      name = "orders-primary"
      source = "elasticache://orders?role=primary"
      layout = "switch"
      listener = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/net/orders/0123456789abcdef/0123456789abcdef"
      node_target_groups = ["orders-n1", "orders-n2", "orders-n3", "orders-n4"]
      port = 6379

  or, for a cluster-mode-enabled group, the cluster layout (one target group and listener
  per node, each node on a port of its own; see ``cluster``) plus the configuration
  listener's group, which holds every node::

      [[bindings]]
      name = "sessions-nodes"
      source = "elasticache://sessions?role=cluster"
      layout = "cluster"
      node_target_groups = ["sessions-n1", "sessions-n2", "sessions-n3", "sessions-n4"]

      [[bindings]]
      name = "sessions-config"
      source = "elasticache://sessions?role=cluster"
      target_group = "sessions-config"

- flags describing one binding (``--source S --target-group TG --port P``);
- in Lambda, the environment: ``CACHEBRIDGE_BINDINGS`` holds JSON (a list of bindings, or an
  object with ``bindings`` and ``settings``); ``CACHEBRIDGE_<SETTING>`` variables override
  single settings (``CACHEBRIDGE_NAMESERVERS`` is comma-separated). More bindings follow
  from ``CACHEBRIDGE_EXTRA_BINDINGS`` (JSON, the same forms) when they fit Lambda's 4 KB of
  environment, or from the JSON file ``CACHEBRIDGE_CONFIG_FILE`` names (a path inside the
  function's zip, relative to ``LAMBDA_TASK_ROOT``) when they do not.

Every problem is a ``ConfigError`` naming the field, what was wrong and what is accepted.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

from .errors import ConfigError
from .inputs import MAX_CONFIG_BYTES, InputRejected, load_json, load_toml, load_yaml, strip_bom
from .pacing import DEFAULT_ELB_DESCRIBE_BURST as _DOCUMENTED_ELB_DESCRIBE_BURST
from .pacing import DEFAULT_ELB_DESCRIBE_RATE as _DOCUMENTED_ELB_DESCRIBE_RATE

__all__ = [
    "DEFAULT_MAX_CHANGES",
    "DEFAULT_EVENT_WAIT_S",
    "DEFAULT_POLL_INTERVAL_S",
    "DEFAULT_DNS_TIMEOUT_S",
    "DEFAULT_PORT",
    "DEFAULT_REJOIN_AFTER_S",
    "DEFAULT_LISTENER_SETTLE_S",
    "LAYOUTS",
    "MAX_NODE_TARGET_GROUPS",
    "MAX_CLUSTER_NODE_TARGET_GROUPS",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_ELB_DESCRIBE_RATE",
    "DEFAULT_ELB_DESCRIBE_BURST",
    "DEFAULT_MAX_TARGETS",
    "ENV_BINDINGS",
    "ENV_EXTRA_BINDINGS",
    "ENV_CONFIG_FILE",
    "DnsSourceSpec",
    "ElastiCacheSourceSpec",
    "SourceSpec",
    "parse_source",
    "parse_nameserver",
    "Binding",
    "Settings",
    "Config",
    "target_group_name",
]

# A failover needs one register and one deregister; a few more leaves room for a
# replicas binding to move a node, while a bad answer still cannot rewrite a large group.
DEFAULT_MAX_CHANGES = 4
# ElastiCache's FailoverComplete can arrive before the primary endpoint's DNS flips.
DEFAULT_EVENT_WAIT_S = 30.0
DEFAULT_POLL_INTERVAL_S = 0.5
DEFAULT_DNS_TIMEOUT_S = 2.0
DEFAULT_PORT = 6379
# Bindings handled at once in a pass: enough to hide API latency for hundreds of bindings,
# few enough to stay far below the ELB API's request rates (a pass makes about two reads a
# binding) and within botocore's pool of 10 connections per client. More than the limit
# buys nothing at API rate limits and costs memory in a 128 MB function.
DEFAULT_MAX_CONCURRENCY = 8
MAX_CONCURRENCY_LIMIT = 64
# ELB Describe* pacing (``elb_describe_rate``, ``elb_describe_burst``): the ELB user guide's
# non-mutating bucket, 40 tokens refilled at 10 a second; ``pacing`` cites the page.
DEFAULT_ELB_DESCRIBE_RATE = _DOCUMENTED_ELB_DESCRIBE_RATE
DEFAULT_ELB_DESCRIBE_BURST = _DOCUMENTED_ELB_DESCRIBE_BURST
# How many targets a binding may hold unless it says otherwise: a primary is one node; a
# replicas (or dns://) binding is bounded so a runaway answer cannot fill the group; a
# role=cluster answer is every node, and one NLB serves at most 49 of them in the cluster
# layout (50 listeners less the configuration listener).
DEFAULT_MAX_TARGETS = {"primary": 1, "cluster": 49, "other": 16}
ENV_BINDINGS = "CACHEBRIDGE_BINDINGS"
# How long a demoted primary stays out of its node target group after its connections were
# cut. AWS documents no figure for how long a listener update takes to reach new
# connections; one user saw connections reach the old targets for about 75 s after an
# update (aws/containers-roadmap#470, 2019), so the default waits that long.
DEFAULT_REJOIN_AFTER_S = 75.0
# How long the switch layout waits after a successful ModifyListener before it cuts the
# demoted primary's connections. A listener update reaches new connections only after a
# delay AWS does not document ("Update a listener for your Network Load Balancer" gives no
# figure); cutting earlier lets clients reconnect through the old default action to the old
# node, whose deregistered target keeps taking new connections for "a few minutes" ("Register
# targets for your Network Load Balancer"), and nothing resets those connections. 10 s is
# our choice, as for the sandbox's documented listener propagation; one user saw ~75 s
# (aws/containers-roadmap#470, 2019). ``cachebridge drill --stack-name`` measures it on a
# real stack (``measured_listener_propagation_s``).
DEFAULT_LISTENER_SETTLE_S = 10.0
LAYOUTS: tuple[str, ...] = ("retarget", "switch", "cluster")
# 50 listeners per Network Load Balancer (not adjustable; "Quotas for your Network Load
# Balancers"), less the primary and the reader listeners.
MAX_NODE_TARGET_GROUPS = 48
# The cluster layout needs one listener per node plus the configuration listener.
MAX_CLUSTER_NODE_TARGET_GROUPS = DEFAULT_MAX_TARGETS["cluster"]
ENV_EXTRA_BINDINGS = "CACHEBRIDGE_EXTRA_BINDINGS"
ENV_CONFIG_FILE = "CACHEBRIDGE_CONFIG_FILE"

# "cluster": every node of every shard of a cluster-mode-enabled group. Not a role a node
# has (a cluster client learns roles from the cluster itself) but the set a cluster client
# must reach, and the only set that makes sense in that mode.
Role = Literal["primary", "replicas", "cluster"]
ROLES: tuple[str, ...] = ("primary", "replicas", "cluster")

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_RG_ID = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,39}$")
_TG_NAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,32}(?<!-)$")
_TG_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/(?P<name>[A-Za-z0-9-]{1,32})/[0-9a-f]+$"
)
_LISTENER_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:listener/net/[A-Za-z0-9-]{1,32}/[0-9a-f]+/[0-9a-f]+$"
)
_BINDING_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SOURCE_FORMS = "dns://HOST or elasticache://REPLICATION_GROUP_ID?role=primary|replicas|cluster"


@dataclass(frozen=True)
class DnsSourceSpec:
    """Any hostname: an RDS or MemoryDB endpoint, an ElastiCache primary endpoint..."""

    host: str
    kind: Literal["dns"] = field(default="dns", init=False)

    def __str__(self) -> str:
        return f"dns://{self.host}"


@dataclass(frozen=True)
class ElastiCacheSourceSpec:
    """The members of a replication group in one role: ``primary`` or ``replicas`` of a
    cluster-mode-disabled group, or ``cluster``, every node of a cluster-mode-enabled one."""

    replication_group_id: str
    role: Role = "primary"
    kind: Literal["elasticache"] = field(default="elasticache", init=False)

    def __str__(self) -> str:
        return f"elasticache://{self.replication_group_id}?role={self.role}"


SourceSpec = DnsSourceSpec | ElastiCacheSourceSpec


def _valid_hostname(host: str) -> bool:
    host = host.rstrip(".")
    return 0 < len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in host.split("."))


def parse_source(text: Any, field_name: str = "source") -> SourceSpec:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(field_name, "missing or not a string", SOURCE_FORMS)
    text = strip_bom(text).strip()
    if len(text) > 300:
        raise ConfigError(field_name, f"{len(text)} characters is too long for a source", SOURCE_FORMS)
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. an unclosed "[" in the host
        raise ConfigError(field_name, f"{text!r} is not a URL ({exc})", SOURCE_FORMS) from None
    scheme = parts.scheme.lower()
    if scheme == "dns":
        host = parts.netloc or parts.path.lstrip("/")
        if parts.query or parts.fragment or not _valid_hostname(host):
            raise ConfigError(field_name, f"{text!r} is not a valid dns:// source", "dns://HOST, e.g. dns://master.orders.abc123.use1.cache.amazonaws.com")
        return DnsSourceSpec(host.rstrip(".").lower())
    if scheme == "elasticache":
        rg = parts.netloc
        if not _RG_ID.fullmatch(rg or ""):
            raise ConfigError(
                field_name,
                f"{rg!r} is not a replication group id",
                "1-40 letters, digits or hyphens, starting with a letter",
            )
        if parts.path not in ("", "/") or parts.fragment:
            raise ConfigError(field_name, f"{text!r} has a path or fragment", SOURCE_FORMS)
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query), max_num_fields=8)
        except ValueError:
            raise ConfigError(field_name, f"{parts.query[:60]!r} is not a query string", "?role=primary or ?role=replicas") from None
        unknown = set(query) - {"role"}
        if unknown:
            raise ConfigError(field_name, f"unknown query parameter(s) {sorted(unknown)}", "role")
        if len(query.get("role", ())) > 1:
            # parse_qs keeps every value; taking one of them would route to a role the
            # user may not have meant.
            raise ConfigError(f"{field_name}.role", f"given {len(query['role'])} times", "role once: primary, replicas or cluster")
        role = query.get("role", ["primary"])[0]
        if role not in ROLES:
            raise ConfigError(f"{field_name}.role", f"{role!r} is not a role", "primary, replicas (cluster mode disabled) or cluster (cluster mode enabled)")
        return ElastiCacheSourceSpec(rg.lower(), role)  # type: ignore[arg-type]
    raise ConfigError(field_name, f"unknown source {text!r}", SOURCE_FORMS)


def parse_nameserver(text: Any, field_name: str = "nameservers") -> str:
    """Normalise ``host[:port]`` (``[v6]:port`` for IPv6) to ``host:port``."""
    import ipaddress

    if not isinstance(text, str) or not text.strip() or len(text) > 64:
        raise ConfigError(field_name, f"{_shown(text)} is not a nameserver", "IP[:PORT], e.g. 10.0.0.2:53")
    text = strip_bom(text).strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
        elif rest:
            port = ""  # "[v6]junk": rejected below rather than read as port 53
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ip = ipaddress.ip_address(host)
        if not _ASCII_INT.fullmatch(port):
            raise ValueError
        port_n = int(port)
        if not 1 <= port_n <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(field_name, f"{text!r} is not a nameserver", "IP[:PORT], e.g. 10.0.0.2:53 or [fd00::2]:53") from None
    return f"[{ip}]:{port_n}" if ip.version == 6 else f"{ip}:{port_n}"


_N = TypeVar("_N", int, float)
# Python's int() and float() read any Unicode digit ('\u0663' is 3), underscores and
# surrounding spaces; a number written as text must be plain ASCII.
_ASCII_INT = re.compile(r"[+-]?[0-9]{1,18}")
_ASCII_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]{1,18}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})(?:[eE][+-]?[0-9]{1,3})?|(?i:inf|infinity|nan))"
)


def _shown(value: Any, limit: int = 60) -> str:
    """``repr`` cut short: an error message repeats a value, not a megabyte of it."""
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {type(value).__name__}"
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # ValueError: an int of more than 4300 digits
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int(value: Any, field_name: str, low: int, high: int) -> int:
    return _number(value, field_name, low, high, int)


def _rate(value: Any, field_name: str) -> float:
    """Calls a second: 0 (off) or MIN_RATE..MAX_RATE. A rate near zero would make a paced
    call wait hours (the CLI's passes have no deadline to cut the wait short)."""
    accepted = f"0 (pacing off) or {MIN_RATE:g}..{MAX_RATE:g} calls a second"
    try:
        rate = _float(value, field_name, 0, MAX_RATE)
    except ConfigError as exc:
        raise ConfigError(field_name, exc.problem, accepted) from None
    if 0 < rate < MIN_RATE:
        raise ConfigError(field_name, f"{rate:g} a second is below {MIN_RATE:g}", accepted)
    return rate


MIN_RATE = 0.01
MAX_RATE = 10000.0


def _float(value: Any, field_name: str, low: float, high: float) -> float:
    return _number(value, field_name, low, high, float)


def _number(value: Any, field_name: str, low: _N, high: _N, kind: type[_N]) -> _N:
    # Integers are counts and ports, shown as written; the other numbers are seconds.
    integer = kind is int
    noun = "an integer" if integer else "a number"
    accepted: tuple[type, ...] = (int, str) if integer else (int, float, str)
    spec = "" if integer else "g"
    expected = f"{low:{spec}}..{high:{spec}}" + ("" if integer else " seconds")
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ConfigError(field_name, f"{_shown(value)} is not {noun}", expected)
    if isinstance(value, str):
        value = strip_bom(value).strip()
        if not (_ASCII_INT if integer else _ASCII_FLOAT).fullmatch(value):
            raise ConfigError(field_name, f"{_shown(value)} is not {noun} (ASCII digits only)", expected)
    elif isinstance(value, int) and abs(value) >= 10**18:
        raise ConfigError(field_name, "the number is out of range", expected)
    try:
        number = kind(value)
    except (ValueError, OverflowError):
        raise ConfigError(field_name, f"{_shown(value)} is not {noun}", expected) from None
    if not low <= number <= high:
        raise ConfigError(field_name, f"{number:{spec}} is out of range", expected)
    return number


def _networks(value: Any, field_name: str) -> tuple[str, ...]:
    import ipaddress

    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, Sequence):
        raise ConfigError(field_name, "not a list", "a list of CIDRs, e.g. 127.0.0.0/8")
    networks = []
    for item in value:
        try:
            networks.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise ConfigError(field_name, f"{item!r} is not a CIDR", "e.g. 10.0.0.0/16 or fd00::/8") from None
    return tuple(networks)


_VPC_ID = re.compile(r"vpc-[0-9a-f]{8,17}")


def _vpc_cidrs(value: Any, field_name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{vpc-id: [CIDR, ...]}``, or the environment's ``vpc-id=CIDR,CIDR[;vpc-id=...]``."""
    import ipaddress

    accepted = '{"vpc-0a1b2c3d": ["10.0.0.0/16"]}, or vpc-0a1b2c3d=10.0.0.0/16,10.1.0.0/16 in the environment'
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for part in (p.strip() for p in value.split(";") if p.strip()):
            vpc, sep, cidrs = part.partition("=")
            if not sep:
                raise ConfigError(field_name, f"{_shown(part)} has no '='", accepted)
            if vpc.strip() in pairs:
                raise ConfigError(field_name, f"{_shown(vpc.strip())} is given twice", accepted)
            pairs[vpc.strip()] = cidrs
        value = pairs
    if not isinstance(value, Mapping):
        raise ConfigError(field_name, "not a table/object", accepted)
    out: dict[str, tuple[str, ...]] = {}
    for vpc, cidrs in value.items():
        if not isinstance(vpc, str) or not _VPC_ID.fullmatch(vpc):
            raise ConfigError(field_name, f"{_shown(vpc)} is not a VPC id", accepted)
        networks = _networks(cidrs, f"{field_name}.{vpc}")
        if not networks:
            raise ConfigError(f"{field_name}.{vpc}", "no CIDR block", accepted)
        for network in map(ipaddress.ip_network, networks):
            # A VPC's IPv4 blocks are /16 to /28 (Amazon VPC User Guide, "VPC CIDR blocks");
            # its IPv6 blocks are no larger than /44. A wider "block" would pass every
            # address the range check exists to refuse.
            low = 16 if network.version == 4 else 44
            if network.prefixlen < low:
                raise ConfigError(
                    f"{field_name}.{vpc}", f"{network} is wider than a VPC's block can be",
                    "IPv4 blocks of /16 to /28, IPv6 blocks of /44 or narrower",
                )
        out[vpc] = networks
    return tuple(sorted(out.items()))


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(data) - set(allowed), key=str)  # YAML keys need not be strings
    if unknown:
        key = str(unknown[0]) if len(str(unknown[0])) <= 40 else str(unknown[0])[:37] + "..."
        raise ConfigError(f"{where}.{key}" if where else key, "unknown setting", ", ".join(allowed))


def validate_target_group(value: Any, field_name: str = "target_group") -> str:
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("arn:"):
            if _TG_ARN.fullmatch(value):
                return value
            raise ConfigError(
                field_name,
                f"{_shown(value)} is not a target group ARN",
                "arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID, or a target group name",
            )
        if _TG_NAME.fullmatch(value):
            return value
    raise ConfigError(
        field_name,
        f"{_shown(value)} is not a target group name or ARN",
        "a name of 1-32 letters, digits and hyphens, or a target group ARN",
    )


@dataclass(frozen=True)
class Binding:
    """Route what ``source`` says to ``target_group`` on ``port`` (the retarget layout), or,
    in the switch layout, keep one target group per cache node (``node_target_groups``)
    and switch ``listener``'s default action to the primary's."""

    name: str
    source: SourceSpec
    target_group: str
    port: int = DEFAULT_PORT
    layout: Literal["retarget", "switch", "cluster"] = "retarget"
    listener: str | None = None
    node_target_groups: tuple[str, ...] = ()
    max_targets: int | None = None  # None: 1 for role=primary, 49 for role=cluster, 16 otherwise
    allow_outside_vpc: bool = False  # targets outside the VPC, registered with AvailabilityZone=all

    BINDING_KEYS = ("name", "source", "target_group", "port", "max_targets", "allow_outside_vpc", "layout", "listener", "node_target_groups")

    @property
    def target_limit(self) -> int:
        """``max_targets``, or its default for this binding's source."""
        if self.max_targets is not None:
            return self.max_targets
        role = self.source.role if isinstance(self.source, ElastiCacheSourceSpec) else "other"
        return DEFAULT_MAX_TARGETS.get(role, DEFAULT_MAX_TARGETS["other"])

    @classmethod
    def from_mapping(cls, data: Any, where: str = "bindings[0]") -> "Binding":
        if not isinstance(data, Mapping):
            raise ConfigError(where, "not a table/object", "a table with source, target_group, port and name")
        _check_keys(data, cls.BINDING_KEYS, where)
        source = parse_source(data.get("source"), f"{where}.source")
        layout = data.get("layout", "retarget")
        if layout not in LAYOUTS:
            raise ConfigError(f"{where}.layout", f"{layout!r} is not a layout", ", ".join(LAYOUTS))
        if layout == "switch":
            return cls._switch_from_mapping(data, source, where)
        if layout == "cluster":
            return cls._cluster_from_mapping(data, source, where)
        for key in ("listener", "node_target_groups"):
            if key in data:
                raise ConfigError(f"{where}.{key}", "only a switch or cluster binding uses it", 'layout = "switch", or leave it out')
        if "target_group" not in data:
            raise ConfigError(f"{where}.target_group", "missing", "a target group name or ARN")
        target_group = validate_target_group(data["target_group"], f"{where}.target_group")
        port = _int(data.get("port", DEFAULT_PORT), f"{where}.port", 1, 65535)
        name = _binding_name(data, source, where)
        max_targets, allow_outside_vpc = _answer_limits(data, where)
        return cls(
            name=name, source=source, target_group=target_group, port=port,
            max_targets=max_targets, allow_outside_vpc=allow_outside_vpc,
        )

    @classmethod
    def _switch_from_mapping(cls, data: Mapping[str, Any], source: SourceSpec, where: str) -> "Binding":
        if not isinstance(source, ElastiCacheSourceSpec) or source.role != "primary":
            raise ConfigError(
                f"{where}.layout",
                f"the switch layout follows the primary of a replication group, not {source}",
                'source = "elasticache://GROUP?role=primary", or layout = "retarget"',
            )
        if "target_group" in data:
            raise ConfigError(f"{where}.target_group", "a switch binding has node_target_groups instead", "node_target_groups = [...]")
        listener = data.get("listener")
        if not isinstance(listener, str) or not _LISTENER_ARN.fullmatch(listener.strip()):
            raise ConfigError(
                f"{where}.listener",
                f"{listener!r} is not a Network Load Balancer listener ARN",
                "arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/net/NLB/ID/ID",
            )
        node_groups = _node_target_groups(data, where, f"at most {MAX_NODE_TARGET_GROUPS} (50 listeners per NLB)", MAX_NODE_TARGET_GROUPS)
        port = _int(data.get("port", DEFAULT_PORT), f"{where}.port", 1, 65535)
        name = _binding_name(data, source, where)
        return cls(name=name, source=source, target_group="", port=port, layout="switch", listener=listener.strip(), node_target_groups=node_groups)

    @classmethod
    def _cluster_from_mapping(cls, data: Mapping[str, Any], source: SourceSpec, where: str) -> "Binding":
        """One node target group (behind its own listener, on its own port) per node of a
        cluster-mode-enabled group; no listener is switched."""
        if not isinstance(source, ElastiCacheSourceSpec) or source.role != "cluster":
            raise ConfigError(
                f"{where}.layout",
                f"the cluster layout follows every node of a cluster-mode-enabled group, not {source}",
                'source = "elasticache://GROUP?role=cluster", or layout = "retarget"',
            )
        for key, instead in (("target_group", "node_target_groups = [...]"), ("listener", "no listener: nothing is switched")):
            if key in data:
                raise ConfigError(f"{where}.{key}", "a cluster binding does not use it", instead)
        node_groups = _node_target_groups(
            data, where, f"at most {MAX_CLUSTER_NODE_TARGET_GROUPS} (50 listeners per NLB, one is the configuration listener)", MAX_CLUSTER_NODE_TARGET_GROUPS
        )
        port = _int(data.get("port", DEFAULT_PORT), f"{where}.port", 1, 65535)
        name = _binding_name(data, source, where)
        max_targets, allow_outside_vpc = _answer_limits(data, where)
        return cls(
            name=name, source=source, target_group="", port=port, layout="cluster", node_target_groups=node_groups,
            max_targets=max_targets, allow_outside_vpc=allow_outside_vpc,
        )

    def to_mapping(self) -> dict[str, Any]:
        if self.layout == "cluster":
            cluster: dict[str, Any] = {
                "name": self.name,
                "source": str(self.source),
                "layout": self.layout,
                "node_target_groups": list(self.node_target_groups),
                "port": self.port,
            }
            if self.max_targets is not None:
                cluster["max_targets"] = self.max_targets
            if self.allow_outside_vpc:
                cluster["allow_outside_vpc"] = True
            return cluster
        if self.layout == "switch":
            return {
                "name": self.name,
                "source": str(self.source),
                "layout": self.layout,
                "listener": self.listener,
                "node_target_groups": list(self.node_target_groups),
                "port": self.port,
            }
        data: dict[str, Any] = {"name": self.name, "source": str(self.source), "target_group": self.target_group, "port": self.port}
        if self.max_targets is not None:
            data["max_targets"] = self.max_targets
        if self.allow_outside_vpc:
            data["allow_outside_vpc"] = True
        return data


def _answer_limits(data: Mapping[str, Any], where: str) -> tuple[int | None, bool]:
    """A binding's ``max_targets`` and ``allow_outside_vpc`` (``checks``)."""
    max_targets = data.get("max_targets")
    if max_targets is not None:
        max_targets = _int(max_targets, f"{where}.max_targets", 1, 1000)
    allow_outside_vpc = data.get("allow_outside_vpc", False)
    if not isinstance(allow_outside_vpc, bool):
        raise ConfigError(f"{where}.allow_outside_vpc", f"{_shown(allow_outside_vpc)} is not a boolean", "true or false")
    return max_targets, allow_outside_vpc


def _binding_name(data: Mapping[str, Any], source: SourceSpec, where: str) -> str:
    name = data.get("name") or default_binding_name(source)
    if not isinstance(name, str) or not _BINDING_NAME.fullmatch(name):
        raise ConfigError(f"{where}.name", f"{_shown(name)} is not a valid name", "1-64 letters, digits, '.', '_' or '-'")
    return name


def default_binding_name(source: SourceSpec) -> str:
    if isinstance(source, ElastiCacheSourceSpec):
        return f"{source.replication_group_id}-{source.role}"
    return source.host[:64].rstrip(".-_") or "binding"


@dataclass(frozen=True)
class Settings:
    region: str | None = None
    nameservers: tuple[str, ...] = ()
    max_changes: int = DEFAULT_MAX_CHANGES
    event_wait_s: float = DEFAULT_EVENT_WAIT_S
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    dns_timeout_s: float = DEFAULT_DNS_TIMEOUT_S
    rejoin_after_s: float = DEFAULT_REJOIN_AFTER_S
    listener_settle_s: float = DEFAULT_LISTENER_SETTLE_S
    # CIDRs that replace the VPC check of target addresses (the sandbox's loopback nodes).
    allowed_target_networks: tuple[str, ...] = ()
    # DynamoDB table holding the write lease per target group (default: the group's
    # cachebridge:lock-table tag); and who this controller is (the deployed stack's name).
    lock_table: str | None = None
    controller_id: str | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    # Client-side pacing of ELB Describe* calls (``pacing``): tokens a second (0: off) and
    # burst; the defaults are the ELB user guide's non-mutating bucket.
    elb_describe_rate: float = DEFAULT_ELB_DESCRIBE_RATE
    elb_describe_burst: int = DEFAULT_ELB_DESCRIBE_BURST
    # The CIDR blocks of target groups' VPCs as ``deploy`` read them, by VPC id: an answer
    # inside them is checked without DescribeVpcs (and without the EC2 client, the SDK's
    # largest model); an address outside them reads the VPC again, since a CIDR block may
    # have been associated since. In the environment: ``vpc-id=CIDR,CIDR[;vpc-id=...]``.
    vpc_cidrs: tuple[tuple[str, tuple[str, ...]], ...] = ()

    SETTING_KEYS = (
        "region", "nameservers", "max_changes", "event_wait_s", "poll_interval_s", "dns_timeout_s",
        "allowed_target_networks", "lock_table", "controller_id", "max_concurrency", "rejoin_after_s",
        "listener_settle_s", "elb_describe_rate", "elb_describe_burst", "vpc_cidrs",
    )

    def known_vpc_cidrs(self, vpc_id: str | None) -> tuple[str, ...]:
        """The configured CIDR blocks of ``vpc_id`` (empty: none known)."""
        return next((cidrs for vpc, cidrs in self.vpc_cidrs if vpc == vpc_id), ()) if vpc_id else ()

    @classmethod
    def from_mapping(cls, data: Any, where: str = "settings") -> "Settings":
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(where, "not a table/object", ", ".join(cls.SETTING_KEYS))
        _check_keys(data, cls.SETTING_KEYS, where)
        return cls().merged(data, where)

    def merged(self, data: Mapping[str, Any], where: str = "settings") -> "Settings":
        changes: dict[str, Any] = {}
        if data.get("region") is not None:
            region = data["region"]
            if not isinstance(region, str) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", region):
                raise ConfigError(f"{where}.region", f"{_shown(region)} is not an AWS region", "e.g. eu-west-1")
            changes["region"] = region
        if data.get("nameservers") is not None:
            servers = data["nameservers"]
            if isinstance(servers, str):
                servers = [s for s in servers.split(",") if s.strip()]
            if not isinstance(servers, Sequence):
                raise ConfigError(f"{where}.nameservers", "not a list", "a list of IP[:PORT]")
            changes["nameservers"] = tuple(parse_nameserver(s, f"{where}.nameservers") for s in servers)
        if data.get("max_changes") is not None:
            changes["max_changes"] = _int(data["max_changes"], f"{where}.max_changes", 1, 1000)
        if data.get("max_concurrency") is not None:
            changes["max_concurrency"] = _int(data["max_concurrency"], f"{where}.max_concurrency", 1, MAX_CONCURRENCY_LIMIT)
        if data.get("elb_describe_rate") is not None:
            changes["elb_describe_rate"] = _rate(data["elb_describe_rate"], f"{where}.elb_describe_rate")
        if data.get("elb_describe_burst") is not None:
            changes["elb_describe_burst"] = _int(data["elb_describe_burst"], f"{where}.elb_describe_burst", 1, 100000)
        if data.get("event_wait_s") is not None:
            changes["event_wait_s"] = _float(data["event_wait_s"], f"{where}.event_wait_s", 0, 600)
        if data.get("poll_interval_s") is not None:
            changes["poll_interval_s"] = _float(data["poll_interval_s"], f"{where}.poll_interval_s", 0.05, 60)
        if data.get("dns_timeout_s") is not None:
            changes["dns_timeout_s"] = _float(data["dns_timeout_s"], f"{where}.dns_timeout_s", 0.1, 30)
        if data.get("rejoin_after_s") is not None:
            changes["rejoin_after_s"] = _float(data["rejoin_after_s"], f"{where}.rejoin_after_s", 0, 3600)
        if data.get("listener_settle_s") is not None:
            changes["listener_settle_s"] = _float(data["listener_settle_s"], f"{where}.listener_settle_s", 0, 600)
        if data.get("allowed_target_networks") is not None:
            changes["allowed_target_networks"] = _networks(data["allowed_target_networks"], f"{where}.allowed_target_networks")
        if data.get("vpc_cidrs") is not None:
            changes["vpc_cidrs"] = _vpc_cidrs(data["vpc_cidrs"], f"{where}.vpc_cidrs")
        for key, pattern, accepted in (
            ("lock_table", r"^[A-Za-z0-9_.-]{3,255}$", "a DynamoDB table name (3-255 letters, digits, '_', '-', '.')"),
            ("controller_id", r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$", "1-128 letters, digits, '_', '.', ':', '@', '/', '-'"),
        ):
            if data.get(key) is not None:
                value = data[key]
                if not isinstance(value, str) or not re.fullmatch(pattern, value):
                    raise ConfigError(f"{where}.{key}", f"{_shown(value)} is not valid", accepted)
                changes[key] = value
        return replace(self, **changes)

    def to_mapping(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "nameservers": list(self.nameservers),
            "max_changes": self.max_changes,
            "event_wait_s": self.event_wait_s,
            "poll_interval_s": self.poll_interval_s,
            "dns_timeout_s": self.dns_timeout_s,
            "rejoin_after_s": self.rejoin_after_s,
            # Left out at its default: the template's CACHEBRIDGE_BINDINGS stays as it was.
            **({"listener_settle_s": self.listener_settle_s} if self.listener_settle_s != DEFAULT_LISTENER_SETTLE_S else {}),
            "allowed_target_networks": list(self.allowed_target_networks),
            "lock_table": self.lock_table,
            "controller_id": self.controller_id,
            # Left out at its default: the template's CACHEBRIDGE_BINDINGS stays as it was.
            **({"max_concurrency": self.max_concurrency} if self.max_concurrency != DEFAULT_MAX_CONCURRENCY else {}),
            **({"elb_describe_rate": self.elb_describe_rate} if self.elb_describe_rate != DEFAULT_ELB_DESCRIBE_RATE else {}),
            **({"elb_describe_burst": self.elb_describe_burst} if self.elb_describe_burst != DEFAULT_ELB_DESCRIBE_BURST else {}),
            **({"vpc_cidrs": {vpc: list(cidrs) for vpc, cidrs in self.vpc_cidrs}} if self.vpc_cidrs else {}),
        }


@dataclass(frozen=True)
class Config:
    bindings: tuple[Binding, ...]
    settings: Settings = Settings()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        groups: dict[str, str] = {}
        for i, binding in enumerate(self.bindings):
            if binding.name in seen:
                raise ConfigError(f"bindings[{i}].name", f"duplicate name {binding.name!r}", "a unique name per binding")
            seen.add(binding.name)
            # Two bindings writing one target group would each remove the other's targets.
            owned = binding.node_target_groups if binding.layout in ("switch", "cluster") else (binding.target_group,)
            for name in owned:
                group = target_group_name(name)
                if group in groups:
                    raise ConfigError(
                        f"bindings[{i}].target_group",
                        f"target group {group!r} is already bound by {groups[group]!r}",
                        "one binding per target group",
                    )
                groups[group] = binding.name

    # -- readers ---------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Any) -> "Config":
        if isinstance(data, list):
            data = {"bindings": data}
        if not isinstance(data, Mapping):
            raise ConfigError("(top level)", "not a table/object", "a table with 'bindings' and optional 'settings'")
        _check_keys(data, ("bindings", "settings"), "")
        raw_bindings = data.get("bindings")
        if not isinstance(raw_bindings, list) or not raw_bindings:
            raise ConfigError("bindings", "missing or empty", "a non-empty list of bindings")
        bindings = tuple(Binding.from_mapping(b, f"bindings[{i}]") for i, b in enumerate(raw_bindings))
        return cls(bindings=bindings, settings=Settings.from_mapping(data.get("settings")))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Config":
        path = Path(path)
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError("--config", f"{str(path)!r} is too large", f"a configuration file of at most {MAX_CONFIG_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {str(path)!r}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError("--config", f"cannot read {str(path)!r}: not UTF-8 text ({exc.reason})") from None
        suffix = path.suffix.lower()
        # Only the CLI reads YAML (load_yaml imports PyYAML); the Lambda zip does not ship it.
        loaders = {".toml": load_toml, ".yaml": load_yaml, ".yml": load_yaml, ".json": load_json}
        if suffix not in loaders:
            raise ConfigError("--config", f"unknown file type {suffix or '(none)'!r}", ".toml, .yaml, .yml, .json")
        try:
            data = loaders[suffix](text)
        except InputRejected as exc:
            raise _rejected(exc, "--config", str(path)) from None
        return cls.from_mapping(data)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Config":
        environ = os.environ if environ is None else environ
        raw = environ.get(ENV_BINDINGS)
        if not raw:
            raise ConfigError(ENV_BINDINGS, "not set", "JSON: a list of bindings, or {\"bindings\": [...], \"settings\": {...}}")
        try:
            data = load_json(raw)
        except InputRejected as exc:
            raise _rejected(exc, ENV_BINDINGS) from None
        config = cls.from_mapping(data)
        extra = _extra_bindings(environ)
        if extra:
            # Checked as one list: a name used twice, here or there, is refused.
            config = cls(config.bindings + extra, config.settings)
        settings = config.settings
        for key in Settings.SETTING_KEYS:
            variable = f"CACHEBRIDGE_{key.upper()}"
            value = environ.get(variable)
            if value not in (None, ""):
                try:
                    settings = settings.merged({key: value})
                except ConfigError as exc:
                    raise ConfigError(variable, exc.problem, exc.accepted) from None
        if settings.region is None:
            region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
            if region:
                settings = replace(settings, region=region)
        return replace(config, settings=settings)

    @classmethod
    def single(
        cls,
        source: str,
        target_group: str,
        port: int | str | None = None,
        name: str | None = None,
        settings: Settings | None = None,
    ) -> "Config":
        data: dict[str, Any] = {"source": source, "target_group": target_group}
        if port is not None:
            data["port"] = port
        if name:
            data["name"] = name
        try:
            binding = Binding.from_mapping(data, "flags")
        except ConfigError as exc:
            # Name the flag the user typed, not the config file's key.
            flag = "--" + exc.field.removeprefix("flags.").split(".")[0].replace("_", "-")
            raise ConfigError(flag, exc.problem, exc.accepted) from None
        return cls(bindings=(binding,), settings=settings or Settings())

    def with_settings(self, **overrides: Any) -> "Config":
        given = {k: v for k, v in overrides.items() if v is not None and v != ()}
        return replace(self, settings=self.settings.merged(given)) if given else self

    def to_mapping(self) -> dict[str, Any]:
        return {"settings": self.settings.to_mapping(), "bindings": [b.to_mapping() for b in self.bindings]}

    def bindings_json(self) -> str:
        """The value of ``CACHEBRIDGE_BINDINGS`` that reproduces this configuration."""
        data = self.to_mapping()
        data["settings"] = {k: v for k, v in data["settings"].items() if v not in (None, [])}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)


def target_group_name(target_group: str) -> str:
    """The name part of a target group ARN, or the name itself: one group, however written."""
    match = _TG_ARN.fullmatch(target_group)
    return match["name"] if match else target_group


def _rejected(exc: InputRejected, where: str, document: str = "") -> ConfigError:
    """A reader's refusal as a ConfigError naming the field when the reader knows it."""
    if exc.path:
        return ConfigError(exc.path, exc.problem, exc.accepted)
    problem = exc.problem
    if document:
        problem = f"{document} is {problem}" if problem.startswith("not ") else f"{document}: {problem}"
    return ConfigError(where, problem, exc.accepted)


def _extra_bindings(environ: Mapping[str, str]) -> tuple[Binding, ...]:
    """Bindings beyond ``CACHEBRIDGE_BINDINGS``: ``CACHEBRIDGE_EXTRA_BINDINGS`` (JSON), then
    the JSON file ``CACHEBRIDGE_CONFIG_FILE`` names. Either holds a list of bindings or an
    object with ``bindings``; settings stay those of ``CACHEBRIDGE_BINDINGS``."""
    found: list[Binding] = []
    sources: list[tuple[str, str]] = []
    if environ.get(ENV_EXTRA_BINDINGS):
        sources.append((ENV_EXTRA_BINDINGS, environ[ENV_EXTRA_BINDINGS]))
    path_text = environ.get(ENV_CONFIG_FILE)
    if path_text:
        path = Path(path_text)
        if not path.is_absolute():
            path = Path(environ.get("LAMBDA_TASK_ROOT") or os.getcwd()) / path
        try:
            sources.append((ENV_CONFIG_FILE, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(ENV_CONFIG_FILE, f"cannot read {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    for variable, text in sources:
        try:
            data = load_json(text)  # MAX_CONFIG_BYTES: about 5,000 bindings
        except InputRejected as exc:
            raise _rejected(exc, variable) from None
        if isinstance(data, Mapping):
            _check_keys(data, ("bindings",), variable)
            data = data.get("bindings")
        if not isinstance(data, list) or not data:
            raise ConfigError(variable, "no bindings", "a non-empty list of bindings, or {\"bindings\": [...]}")
        found += [Binding.from_mapping(b, f"{variable}[{i}]") for i, b in enumerate(data)]
    return tuple(found)


def _node_target_groups(data: Mapping[str, Any], where: str, limit: str, most: int) -> tuple[str, ...]:
    """A switch or cluster binding's ``node_target_groups``: a list (or a comma-separated
    string) of at most ``most`` distinct target groups; ``limit`` says why that many."""
    groups = data.get("node_target_groups")
    if isinstance(groups, str):
        groups = [g for g in groups.split(",") if g.strip()]
    if not isinstance(groups, Sequence) or not groups:
        raise ConfigError(f"{where}.node_target_groups", "missing or empty", "a list of target group names or ARNs, one per node slot")
    if len(groups) > most:
        raise ConfigError(f"{where}.node_target_groups", f"{len(groups)} given", limit)
    node_groups = tuple(validate_target_group(g, f"{where}.node_target_groups[{i}]") for i, g in enumerate(groups))
    if len(set(node_groups)) != len(node_groups):
        raise ConfigError(f"{where}.node_target_groups", "a target group is listed twice", "each node target group once")
    return node_groups

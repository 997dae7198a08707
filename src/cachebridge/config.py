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

The pieces live by concern: ``source_specs`` reads a source, ``config_values`` checks single
values, ``config_readers`` reads files and the environment; the bindings, the settings and
the configuration they make are here, and every name they had here is still importable here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from .config_readers import (
    ENV_BINDINGS,
    ENV_CONFIG_FILE,
    ENV_EXTRA_BINDINGS,
    extra_binding_documents,
    read_config_file,
    read_env_bindings,
    settings_from_env,
)
from .config_values import MAX_RATE as MAX_RATE  # re-exported, as are ROLES, Role, SOURCE_FORMS
from .config_values import MIN_RATE as MIN_RATE
from .config_values import parse_nameserver, target_group_name, validate_target_group
# Short private names: the bindings' and settings' readers below call the checks by them.
from .config_values import check_keys as _check_keys
from .config_values import parse_float as _float
from .config_values import parse_int as _int
from .config_values import parse_networks as _networks
from .config_values import parse_rate as _rate
from .config_values import parse_vpc_cidrs as _vpc_cidrs
from .config_values import shown as _shown
from .errors import ConfigError
from .pacing import DEFAULT_ELB_DESCRIBE_BURST as _DOCUMENTED_ELB_DESCRIBE_BURST
from .pacing import DEFAULT_ELB_DESCRIBE_RATE as _DOCUMENTED_ELB_DESCRIBE_RATE
from .source_specs import ROLES as ROLES
from .source_specs import SOURCE_FORMS as SOURCE_FORMS
from .source_specs import DnsSourceSpec, ElastiCacheSourceSpec, SourceSpec, parse_source
from .source_specs import Role as Role

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

_LISTENER_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:listener/net/[A-Za-z0-9-]{1,32}/[0-9a-f]+/[0-9a-f]+$"
)
_BINDING_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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
        return cls.from_mapping(read_config_file(path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Config":
        environ = os.environ if environ is None else environ
        config = cls.from_mapping(read_env_bindings(environ))
        extra = tuple(Binding.from_mapping(binding, where) for where, binding in extra_binding_documents(environ))
        if extra:
            # Checked as one list: a name used twice, here or there, is refused.
            config = cls(config.bindings + extra, config.settings)
        return replace(config, settings=settings_from_env(config.settings, environ))

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

"""What a binding's ``source`` says: a ``dns://HOST`` or an ``elasticache://GROUP?role=ROLE``.

``parse_source`` reads the text a configuration file, the environment or a flag holds into a
frozen spec, or raises a ``ConfigError`` naming the field and the accepted forms.
``cachebridge.config`` re-exports every name here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from .errors import ConfigError
from .inputs import strip_bom

__all__ = [
    "Role",
    "ROLES",
    "SOURCE_FORMS",
    "DnsSourceSpec",
    "ElastiCacheSourceSpec",
    "SourceSpec",
    "parse_source",
]

# "cluster": every node of every shard of a cluster-mode-enabled group. Not a role a node
# has (a cluster client learns roles from the cluster itself) but the set a cluster client
# must reach, and the only set that makes sense in that mode.
Role = Literal["primary", "replicas", "cluster"]
ROLES: tuple[str, ...] = ("primary", "replicas", "cluster")

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_RG_ID = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,39}$")
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

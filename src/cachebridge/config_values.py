"""The value checks of the configuration: numbers, names, addresses and the keys of a table.

Each check takes the raw value (from TOML, YAML, JSON, the environment or a flag) and the
field it came from, and returns the value normalised or raises a ``ConfigError`` naming the
field, what was wrong and what is accepted. A value shown back in an error is cut short
(``shown``): an error repeats a value, not a megabyte of it. ``cachebridge.config`` builds
its bindings and settings with these and re-exports the names it always had.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .errors import ConfigError
from .inputs import strip_bom

__all__ = [
    "MIN_RATE",
    "MAX_RATE",
    "shown",
    "parse_int",
    "parse_float",
    "parse_rate",
    "parse_networks",
    "parse_vpc_cidrs",
    "parse_nameserver",
    "check_keys",
    "validate_target_group",
    "target_group_name",
]

_TG_NAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,32}(?<!-)$")
_TG_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/(?P<name>[A-Za-z0-9-]{1,32})/[0-9a-f]+$"
)


def parse_nameserver(text: Any, field_name: str = "nameservers") -> str:
    """Normalise ``host[:port]`` (``[v6]:port`` for IPv6) to ``host:port``."""
    import ipaddress

    if not isinstance(text, str) or not text.strip() or len(text) > 64:
        raise ConfigError(field_name, f"{shown(text)} is not a nameserver", "IP[:PORT], e.g. 10.0.0.2:53")
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


def shown(value: Any, limit: int = 60) -> str:
    """``repr`` cut short: an error message repeats a value, not a megabyte of it."""
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {type(value).__name__}"
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # ValueError: an int of more than 4300 digits
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_int(value: Any, field_name: str, low: int, high: int) -> int:
    """An integer in ``low..high``, given as a number or as ASCII digits."""
    return _number(value, field_name, low, high, int)


def parse_rate(value: Any, field_name: str) -> float:
    """Calls a second: 0 (off) or MIN_RATE..MAX_RATE. A rate near zero would make a paced
    call wait hours (the CLI's passes have no deadline to cut the wait short)."""
    accepted = f"0 (pacing off) or {MIN_RATE:g}..{MAX_RATE:g} calls a second"
    try:
        rate = parse_float(value, field_name, 0, MAX_RATE)
    except ConfigError as exc:
        raise ConfigError(field_name, exc.problem, accepted) from None
    if 0 < rate < MIN_RATE:
        raise ConfigError(field_name, f"{rate:g} a second is below {MIN_RATE:g}", accepted)
    return rate


MIN_RATE = 0.01
MAX_RATE = 10000.0


def parse_float(value: Any, field_name: str, low: float, high: float) -> float:
    """A number in ``low..high`` (seconds, as its errors say), given as a number or as ASCII text."""
    return _number(value, field_name, low, high, float)


def _number(value: Any, field_name: str, low: _N, high: _N, kind: type[_N]) -> _N:
    # Integers are counts and ports, shown as written; the other numbers are seconds.
    integer = kind is int
    noun = "an integer" if integer else "a number"
    accepted: tuple[type, ...] = (int, str) if integer else (int, float, str)
    spec = "" if integer else "g"
    expected = f"{low:{spec}}..{high:{spec}}" + ("" if integer else " seconds")
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ConfigError(field_name, f"{shown(value)} is not {noun}", expected)
    if isinstance(value, str):
        value = strip_bom(value).strip()
        if not (_ASCII_INT if integer else _ASCII_FLOAT).fullmatch(value):
            raise ConfigError(field_name, f"{shown(value)} is not {noun} (ASCII digits only)", expected)
    elif isinstance(value, int) and abs(value) >= 10**18:
        raise ConfigError(field_name, "the number is out of range", expected)
    try:
        number = kind(value)
    except (ValueError, OverflowError):
        raise ConfigError(field_name, f"{shown(value)} is not {noun}", expected) from None
    if not low <= number <= high:
        raise ConfigError(field_name, f"{number:{spec}} is out of range", expected)
    return number


def parse_networks(value: Any, field_name: str) -> tuple[str, ...]:
    """CIDRs, as a list or comma-separated, each normalised (host bits dropped)."""
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


def parse_vpc_cidrs(value: Any, field_name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{vpc-id: [CIDR, ...]}``, or the environment's ``vpc-id=CIDR,CIDR[;vpc-id=...]``."""
    import ipaddress

    accepted = '{"vpc-0a1b2c3d": ["10.0.0.0/16"]}, or vpc-0a1b2c3d=10.0.0.0/16,10.1.0.0/16 in the environment'
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for part in (p.strip() for p in value.split(";") if p.strip()):
            vpc, sep, cidrs = part.partition("=")
            if not sep:
                raise ConfigError(field_name, f"{shown(part)} has no '='", accepted)
            if vpc.strip() in pairs:
                raise ConfigError(field_name, f"{shown(vpc.strip())} is given twice", accepted)
            pairs[vpc.strip()] = cidrs
        value = pairs
    if not isinstance(value, Mapping):
        raise ConfigError(field_name, "not a table/object", accepted)
    out: dict[str, tuple[str, ...]] = {}
    for vpc, cidrs in value.items():
        if not isinstance(vpc, str) or not _VPC_ID.fullmatch(vpc):
            raise ConfigError(field_name, f"{shown(vpc)} is not a VPC id", accepted)
        networks = parse_networks(cidrs, f"{field_name}.{vpc}")
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


def check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    """Refuse the first key of ``data`` (sorted) that ``allowed`` does not hold."""
    unknown = sorted(set(data) - set(allowed), key=str)  # YAML keys need not be strings
    if unknown:
        key = str(unknown[0]) if len(str(unknown[0])) <= 40 else str(unknown[0])[:37] + "..."
        raise ConfigError(f"{where}.{key}" if where else key, "unknown setting", ", ".join(allowed))


def validate_target_group(value: Any, field_name: str = "target_group") -> str:
    """A target group name or ARN, stripped of surrounding spaces."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("arn:"):
            if _TG_ARN.fullmatch(value):
                return value
            raise ConfigError(
                field_name,
                f"{shown(value)} is not a target group ARN",
                "arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID, or a target group name",
            )
        if _TG_NAME.fullmatch(value):
            return value
    raise ConfigError(
        field_name,
        f"{shown(value)} is not a target group name or ARN",
        "a name of 1-32 letters, digits and hyphens, or a target group ARN",
    )


def target_group_name(target_group: str) -> str:
    """The name part of a target group ARN, or the name itself: one group, however written."""
    match = _TG_ARN.fullmatch(target_group)
    return match["name"] if match else target_group

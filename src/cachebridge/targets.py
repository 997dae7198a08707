"""The one identity both sides of a diff share: ``Target(ip, port)``."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from enum import Enum

__all__ = ["Target", "TargetState", "TargetHealth"]


@functools.total_ordering
@dataclass(frozen=True)
class Target:
    """An NLB IP target. Identity is (IP, port): deregistering by IP alone can silently
    do nothing on a real NLB, so the port always travels with the address."""

    ip: str
    port: int

    def __post_init__(self) -> None:
        if not isinstance(self.ip, str):
            raise ValueError(f"not an IP address: {self.ip!r}")
        try:
            normal = str(ipaddress.ip_address(self.ip.strip()))
        except ValueError as exc:
            raise ValueError(f"not an IP address: {self.ip!r}") from exc
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 1 <= self.port <= 65535:
            raise ValueError(f"port must be an integer from 1 to 65535, not {self.port!r}")
        object.__setattr__(self, "ip", normal)

    @classmethod
    def parse(cls, text: str) -> "Target":
        """Read ``ip:port`` or ``[v6]:port``."""
        text = text.strip()
        if text.startswith("["):
            host, sep, port = text[1:].partition("]:")
        else:
            host, sep, port = text.rpartition(":")
            if ":" in host:
                raise ValueError(f"an IPv6 target needs brackets, [addr]:port, got {text!r}")
        if not sep or not port.isdigit():
            raise ValueError(f"expected ip:port, got {text!r}")
        return cls(host, int(port))

    def _sort_key(self) -> tuple[int, int, int]:
        address = ipaddress.ip_address(self.ip)
        return (address.version, int(address), self.port)

    def __lt__(self, other: object) -> bool:
        # Numeric order, so 10.0.0.2 comes before 10.0.0.10 in plans and reports.
        if not isinstance(other, Target):
            return NotImplemented
        return self._sort_key() < other._sort_key()

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.ip).version

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


class TargetState(str, Enum):
    """The states ``DescribeTargetHealth`` reports for a target."""

    INITIAL = "initial"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNHEALTHY_DRAINING = "unhealthy.draining"
    UNUSED = "unused"
    DRAINING = "draining"
    UNAVAILABLE = "unavailable"

    @classmethod
    def parse(cls, value: str | None) -> "TargetState":
        try:
            return cls(value or "unavailable")
        except ValueError:
            return cls.UNAVAILABLE


@dataclass(frozen=True)
class TargetHealth:
    state: TargetState
    reason: str | None = None
    description: str | None = None

    @property
    def draining(self) -> bool:
        """On its way out: leaving it out of the diff lets a desired target come back."""
        return self.state in (TargetState.DRAINING, TargetState.UNHEALTHY_DRAINING)

    @property
    def serving(self) -> bool:
        return self.state is TargetState.HEALTHY

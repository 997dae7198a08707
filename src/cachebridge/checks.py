"""Answer checks: is what a source said safe to act on? Pure: no I/O, no clock, no logs.

``sync`` calls ``check_answer`` after a source read and before ``planner.plan`` (the
cluster pass, ``cluster``, over every node's address); a refused answer changes nothing
(the binding reports ``error``, like a failed source). The rules:

1. **Count.** A binding holds at most ``max_targets`` targets (1 for ``role=primary``, 49
   for ``role=cluster``, 16 otherwise, unless configured): a larger answer is refused whole, not trimmed, since no
   subset of a wrong answer is known to be right.
2. **Address kind.** Unspecified (0.0.0.0, ::), multicast, loopback, link-local (the
   instance metadata service 169.254.169.254 among them), reserved and broadcast addresses
   are never valid NLB targets; each is refused with its reason.
3. **Address range.** An IP target must lie in the target group's VPC CIDRs, or, outside
   the VPC, in RFC 1918 (10/8, 172.16/12, 192.168/16) or RFC 6598 (100.64/10) space:
   "Specify IP addresses from the subnets of the virtual private cloud (VPC) for the target
   group, the RFC 1918 range ..., and the RFC 6598 range (100.64.0.0/10). You can't specify
   publicly routable IP addresses." (Elastic Load Balancing User Guide, target groups,
   "Target type"; and ``RegisterTargets``: an IP outside the VPC needs
   ``AvailabilityZone=all``). cachebridge registers an outside-VPC address only when the
   binding says ``allow_outside_vpc = true``.
4. **Declared networks.** ``allowed_target_networks`` (settings) replaces rule 3: addresses
   must lie in one of those CIDRs, and inside them loopback and link-local addresses are
   accepted (a local sandbox runs its nodes on 127.0.0.x). Unspecified and multicast
   addresses stay refused.
5. **Unknown VPC.** When the VPC's CIDRs could not be read (DescribeVpcs is optional and
   fails soft), rule 3 falls back to refusing public addresses and the kinds of rule 2, and
   the result carries a warning saying so.

Agreement across reads (a ``dns://`` answer that alternates between two addresses) needs two
reads a poll interval apart; ``sync`` does the reading and ``agree`` the comparing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["AnswerCheck", "check_answer", "address_problem", "agree", "OUTSIDE_VPC_RANGES"]

# RFC 1918 and RFC 6598: the only ranges AWS accepts for IP targets outside the VPC.
OUTSIDE_VPC_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
# IPv6 unique local addresses (RFC 4193) play the part of RFC 1918 space.
_OUTSIDE_VPC_RANGES_V6 = ("fc00::/7",)

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AnswerCheck:
    """``refused`` lists every reason the answer may not be acted on (empty: it may)."""

    refused: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    outside_vpc: tuple[str, ...] = ()  # accepted addresses outside the VPC's CIDRs

    @property
    def ok(self) -> bool:
        return not self.refused

    @property
    def error(self) -> str | None:
        return "; ".join(self.refused) if self.refused else None


def _never_valid(address: _Address) -> str | None:
    """Kinds no NLB target can be, whatever the configuration."""
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    return None


def _special(address: _Address) -> str | None:
    """Kinds refused unless an allowed network names them."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (169.254.0.0/16 holds the instance metadata service)" if address.version == 4 else "a link-local address"
    if address.is_reserved:
        return "a reserved address"
    return None


def _in_any(address: _Address, networks: Iterable[_Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def _networks(cidrs: Iterable[str]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def address_problem(
    ip: str,
    *,
    vpc_cidrs: Sequence[str] = (),
    allow_outside_vpc: bool = False,
    allowed_networks: Sequence[str] = (),
) -> str | None:
    """Why ``ip`` may not be registered, or None when it may."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"{ip!r} is not an IP address"
    kind = _never_valid(address)
    if kind:
        return f"{address} is {kind}, never a valid target"
    if allowed_networks:
        if _in_any(address, _networks(allowed_networks)):
            return None
        return f"{address} is outside allowed_target_networks ({', '.join(allowed_networks)})"
    kind = _special(address)
    if kind:
        return f"{address} is {kind}, not a valid target"
    if vpc_cidrs and _in_any(address, _networks(vpc_cidrs)):
        return None
    private = _in_any(address, _networks(OUTSIDE_VPC_RANGES + _OUTSIDE_VPC_RANGES_V6))
    if not private:
        where = f"outside the VPC ({', '.join(vpc_cidrs)}) and " if vpc_cidrs else ""
        return f"{address} is {where}publicly routable; NLB IP targets outside the VPC must be RFC 1918 or RFC 6598 addresses"
    if vpc_cidrs and not allow_outside_vpc:
        return f"{address} is outside the target group's VPC ({', '.join(vpc_cidrs)}); set allow_outside_vpc = true on the binding if that is intended"
    return None


def check_answer(
    addresses: Sequence[str],
    *,
    max_targets: int,
    vpc_cidrs: Sequence[str] = (),
    vpc_known: bool = True,
    allow_outside_vpc: bool = False,
    allowed_networks: Sequence[str] = (),
) -> AnswerCheck:
    """Check a source's answer (its addresses) against a binding's limits and the target
    group's VPC. Every problem is listed, so one run tells the whole story."""
    refused: list[str] = []
    warnings: list[str] = []
    if len(addresses) > max_targets:
        refused.append(
            f"the answer has {len(addresses)} addresses, more than max_targets = {max_targets}; nothing applied"
        )
    cidrs = tuple(vpc_cidrs) if vpc_known else ()
    if not allowed_networks and not cidrs:
        warnings.append(
            "the target group's VPC CIDRs are unknown: addresses were only checked for kinds that are never valid"
        )
    outside: list[str] = []
    for ip in addresses:
        problem = address_problem(ip, vpc_cidrs=cidrs, allow_outside_vpc=allow_outside_vpc, allowed_networks=allowed_networks)
        if problem:
            refused.append(problem)
        elif cidrs and not _in_any(ipaddress.ip_address(ip), _networks(cidrs)):
            outside.append(ip)
    return AnswerCheck(tuple(refused), tuple(warnings), tuple(outside))


def agree(first: Iterable[object] | None, second: Iterable[object] | None) -> bool:
    """Two reads agree when both succeeded with the same set of targets."""
    return first is not None and second is not None and frozenset(first) == frozenset(second)

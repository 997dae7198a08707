"""Who may connect: the allow-list guard counts addresses, not spellings.

``AllowedCidrs`` is the only thing between the NLB and the internet, so a list that admits
more than a /8's worth of addresses (16,777,216) needs ``--allow-any-source`` (template:
``AllowAnySource=true``), however it is written: ``0.0.0.0/0``, ``0.0.0.0/1`` plus
``128.0.0.0/1``, or three /9s all count.

``deploy`` counts exactly (``check``): the ranges are parsed with ``ipaddress``, a range
inside another is refused (it adds nothing, and refusing it makes the sum of the ranges
equal to the union), and the total is compared with a /8.

The template cannot count: CloudFormation Rules compare whole strings only (``Fn::Contains``,
``Fn::EachMemberIn``), ``AllowedPattern`` cannot depend on another parameter, and
Conditions have no arithmetic, and take only literals or ``Ref``/``Fn::FindInMap`` where a
look-up would need a computed key (``Fn::Select`` indexes, ``Fn::Split`` delimiters). What
Conditions can do is count the entries of one prefix length, by splitting the joined list
on a literal such as ``/9/`` (see "the template's Conditions" below). With at most ``MAX_ALLOWED_CIDRS`` (5) entries, an entry's size in units of a
/12 is 16 (/8), 8 (/9), 4 (/10), 2 (/11) or at most 1 (/12 and longer), so "more than a
/8" is "the units add up to more than 16", which for five entries is a short list of
count thresholds (``_BROAD_CASES``, checked against the sum for every combination by
``tests/unit/test_allow_list.py``). ``guard_conditions`` builds them, and the template's
``AllowedCidrsTooBroad`` wait condition fails the stack when they hold and
``AllowAnySource`` is not true. What the template cannot see:

- overlapping entries count twice (``10.0.0.0/9`` plus ``10.0.0.0/10`` counts 12 units,
  not 8): the template errs towards refusing, and ``deploy`` refuses such lists first;
- entries longer than /12 count as a whole /12 each: with five entries at most this
  changes no verdict (a list at exactly 16 units plus any further entry is over a /8 anyway,
  and 14 units plus three further entries needs six entries);
- the check is a guard resource, so a direct CloudFormation deploy fails a few seconds
  into the stack operation (and rolls back) rather than before it; ``deploy`` evaluates the
  same conditions first (``template.validate_parameters``).
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAX_UNION_ADDRESSES",
    "BROAD_ALLOW_LIST",
    "covered_addresses",
    "nested_range",
    "guard_conditions",
    "too_broad",
    "template_would_refuse",
]

# "more than a /8": a /8 itself (e.g. 10.0.0.0/8 for an internal NLB) is allowed.
MAX_UNION_ADDRESSES = 2**24
BROAD_ALLOW_LIST = "AllowedCidrsTooBroad"
_UNIT_PREFIX = 12  # sizes are counted in /12s: a /8 is 16 units

# Prefix classes by length; "short" (/0-/7) is more than a /8 on its own.
_SHORT = tuple(str(p) for p in range(0, 8))

# "More than 16 units" for at most five entries, as thresholds on cumulative counts:
# (entries of /8, entries of /9 or wider, of /10 or wider, of /11 or wider, entries at all).
# Derived in the module docstring's terms; test_allow_list checks it against the sum.
_BROAD_CASES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 0, 0, 0, 2),  # a /8 and anything else
    (0, 2, 0, 0, 3),  # two /9s (or wider) and anything else
    (0, 1, 3, 0, 4),  # a /9, two /10s and anything else
    (0, 1, 2, 4, 5),  # a /9, a /10, two /11s and anything else
    (0, 0, 4, 0, 5),  # four /10s and anything else
)


def covered_addresses(networks: Sequence[ipaddress.IPv4Network]) -> int:
    """How many addresses the union of ``networks`` holds (overlaps counted once)."""
    return sum(n.num_addresses for n in ipaddress.collapse_addresses(networks))


def nested_range(networks: Sequence[ipaddress.IPv4Network]) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network] | None:
    """A pair (inner, outer) where inner lies inside outer, if any."""
    for inner, outer in itertools.permutations(networks, 2):
        if inner != outer and inner.subnet_of(outer):
            return inner, outer
    return None


def too_broad(networks: Sequence[ipaddress.IPv4Network]) -> bool:
    return covered_addresses(networks) > MAX_UNION_ADDRESSES


def _units(prefix: int) -> int:
    """Size of a /prefix in /12s, rounded up to one unit (what the template can see)."""
    return 2 ** max(0, _UNIT_PREFIX - prefix)


def template_would_refuse(prefixes: Sequence[int]) -> bool:
    """The template's verdict for entries of these prefix lengths (tests compare it with
    ``guard_conditions`` and with the exact count)."""
    if any(p < 8 for p in prefixes):
        return True
    return sum(_units(p) for p in prefixes) > _units(8)


# -- the template's Conditions ------------------------------------------------------------
#
# The list joined as "/a/8/b/24/end" alternates addresses and prefix lengths between "/", and
# an address always holds dots, so "/9/" occurs once per /9 entry. Splitting on "/9/" and
# joining with "/X/" marks those entries; marking every prefix of a class and splitting on
# "/X/" then counts them: with "/X/" appended five times, item k of the split is "" exactly
# when fewer than k entries were marked ("end" keeps the item after the last mark non-empty).
# Every delimiter and index is a literal, as Fn::Split and Fn::Select require.

_MARK = "/X/"


def _joined() -> dict[str, Any]:
    return {"Fn::Join": ["", ["/", {"Fn::Join": ["/", {"Ref": "AllowedCidrs"}]}, "/end"]]}


def _marked(prefixes: tuple[str, ...]) -> Any:
    text: Any = _joined()
    for prefix in prefixes:
        text = {"Fn::Join": [_MARK, {"Fn::Split": [f"/{prefix}/", text]}]}
    return text


def _at_least(k: int, prefixes: tuple[str, ...], max_entries: int) -> dict[str, Any]:
    """True when at least k entries have one of these prefix lengths (1 <= k <= max_entries)."""
    padded = {"Fn::Join": ["", [_marked(prefixes), _MARK * max_entries]]}
    return {"Fn::Not": [{"Fn::Equals": [{"Fn::Select": [k, {"Fn::Split": [_MARK, padded]}]}, ""]}]}


def _any_of(terms: list[Any]) -> Any:
    return terms[0] if len(terms) == 1 else {"Fn::Or": terms}


def _all_of(terms: list[Any]) -> Any:
    return terms[0] if len(terms) == 1 else {"Fn::And": terms}


def guard_conditions(max_entries: int, present: Any, allow_any_source: Any) -> dict[str, Any]:
    """Conditions whose ``BROAD_ALLOW_LIST`` holds when ``AllowedCidrs`` (at most
    ``max_entries`` entries) covers more than a /8 and AllowAnySource is not true.

    ``present(i)`` is the condition (a ``{"Condition": ...}``) that entry i exists;
    ``allow_any_source`` the condition that AllowAnySource is true."""
    if not 2 <= max_entries <= 5:
        raise ValueError("the count thresholds are derived for two to five entries")
    cumulative = (("8",), ("8", "9"), ("8", "9", "10"), ("8", "9", "10", "11"))
    cases: list[Any] = [_at_least(1, _SHORT, max_entries)]
    for case in _BROAD_CASES:
        *counts, entries = case
        if entries > max_entries:
            continue
        terms = [_at_least(k, classes, max_entries) for k, classes in zip(counts, cumulative) if k]
        cases.append(_all_of([*terms, present(entries - 1)]))
    return {BROAD_ALLOW_LIST: {"Fn::And": [{"Fn::Not": [allow_any_source]}, _any_of(cases)]}}

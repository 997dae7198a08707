"""The allow-list guard counts addresses, not spellings: in deploy (exactly) and in the
template's Conditions (a sum of entry sizes), with the same verdict for every list deploy
accepts."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from cachebridge.deploy import allow_list
from cachebridge.deploy.request import _validate_cidrs
from cachebridge.deploy.template import Variant, build, evaluate, validate_parameters
from cachebridge.errors import ConfigError

TEMPLATE = build()
BASE = Variant("TCP", "TCP", "internet-facing", topic_given=False)
BROAD_PROBLEM = "AllowedCidrs: the ranges together cover more than a /8"


def _disjoint(prefixes: tuple[int, ...]) -> list[str]:
    """Non-overlapping ranges of these prefix lengths (widest first, packed from 0.0.0.0)."""
    cursor = 0
    out = []
    for prefix in sorted(prefixes):
        size = 2 ** (32 - prefix)
        cursor = -(-cursor // size) * size  # align
        out.append(str(ipaddress.IPv4Network((cursor, prefix))))
        cursor += size
    return out


def _template_refuses(cidrs: list[str], allow_any: str = "false") -> bool:
    parameters = {"AllowedCidrs": cidrs, "AllowAnySource": allow_any}
    return bool(evaluate({"Condition": allow_list.BROAD_ALLOW_LIST}, TEMPLATE, parameters))


def _deploy_refuses(cidrs: list[str], allow_any: bool = False) -> bool:
    try:
        _validate_cidrs(cidrs, allow_any)
    except ConfigError as exc:
        assert exc.field == "--allowed-cidr"
        return True
    return False


# Every multiset of up to five prefix lengths from the classes the template tells apart.
PREFIXES = (1, 7, 8, 9, 10, 11, 12, 13, 24, 32)
CASES = [
    combo
    for n in range(1, 6)
    for combo in itertools.combinations_with_replacement(PREFIXES, n)
    if sum(2 ** (32 - p) for p in combo) <= 2**32  # else the ranges cannot be disjoint
]


def test_the_template_counts_addresses_like_deploy_for_every_combination_of_sizes() -> None:
    disagreements = []
    for prefixes in CASES:
        cidrs = _disjoint(prefixes)
        exact = allow_list.covered_addresses([ipaddress.ip_network(c) for c in cidrs]) > allow_list.MAX_UNION_ADDRESSES
        if _template_refuses(cidrs) != exact or allow_list.template_would_refuse(prefixes) != exact:
            disagreements.append((prefixes, exact))
        if exact and not any(p < 8 for p in prefixes):
            # Over a /8 only when added up: the guard a spelling check would miss.
            assert _deploy_refuses(cidrs), cidrs
    assert disagreements == []
    assert len(CASES) > 1500


def test_allow_any_source_lifts_the_guard_for_every_combination() -> None:
    assert not any(_template_refuses(_disjoint(p), allow_any="true") for p in CASES)


@pytest.mark.parametrize(
    ("cidrs", "refused"),
    [
        pytest.param(["0.0.0.0/1", "128.0.0.0/1"], True, id="two-halves-of-the-internet"),
        pytest.param(["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"], True, id="four-quarters"),
        pytest.param(["10.0.0.0/9", "11.0.0.0/9", "12.0.0.0/9"], True, id="three-slash-9s"),
        pytest.param(["10.0.0.0/10", "11.0.0.0/10", "12.0.0.0/10", "13.0.0.0/10", "14.0.0.0/32"], True, id="four-slash-10s-and-a-host"),
        pytest.param(["10.0.0.0/8", "203.0.113.7/32"], True, id="a-slash-8-and-a-host"),
        pytest.param(["10.0.0.0/7"], True, id="one-slash-7"),
        pytest.param(["10.0.0.0/8"], False, id="one-slash-8"),
        pytest.param(["10.0.0.0/9", "11.0.0.0/9"], False, id="two-slash-9s"),
        pytest.param(["10.0.0.0/9", "11.0.0.0/10", "12.0.0.0/11", "13.0.0.0/11"], False, id="exactly-a-slash-8"),
        pytest.param(["203.0.113.0/24", "198.51.100.0/24"], False, id="two-small-ranges"),
    ],
)
def test_broad_lists_need_allow_any_source(cidrs: list[str], refused: bool) -> None:
    assert _deploy_refuses(cidrs) == refused
    values = BASE.parameters(AllowedCidrs=",".join(cidrs))
    assert (BROAD_PROBLEM in " ".join(validate_parameters(values))) == refused
    # With AllowAnySource, neither deploy nor the template refuses.
    assert not _deploy_refuses(cidrs, allow_any=True)
    assert validate_parameters(BASE.parameters(AllowedCidrs=",".join(cidrs), AllowAnySource="true")) == []


def test_deploy_names_the_address_count_and_the_flag() -> None:
    with pytest.raises(ConfigError) as info:
        _validate_cidrs(["0.0.0.0/1", "128.0.0.0/1"], False)
    assert info.value.field == "--allowed-cidr"
    assert "4,294,967,296 addresses" in info.value.problem and "more than a /8" in info.value.problem
    assert "--allow-any-source" in (info.value.accepted or "")


def test_deploy_refuses_a_range_inside_another() -> None:
    # It adds nothing, and the template would count it twice.
    with pytest.raises(ConfigError) as info:
        _validate_cidrs(["10.0.0.0/9", "10.0.0.0/10"], False)
    assert info.value.problem == "10.0.0.0/10 lies inside 10.0.0.0/9"


def test_a_broad_list_creates_the_failing_guard_named_for_the_fix() -> None:
    values = {"AllowedCidrs": ["0.0.0.0/1", "128.0.0.0/1"], "AllowAnySource": "false"}
    guarded = {rid for rid, res in TEMPLATE["Resources"].items() if res.get("Condition") == allow_list.BROAD_ALLOW_LIST}
    assert guarded == {"AllowedCidrsBreadthHandle", "AllowedCidrsCoverMoreThanASlash8SetAllowAnySource"}
    assert evaluate({"Condition": allow_list.BROAD_ALLOW_LIST}, TEMPLATE, values) is True
    wait = TEMPLATE["Resources"]["AllowedCidrsCoverMoreThanASlash8SetAllowAnySource"]["Properties"]
    assert wait["Handle"] == {"Ref": "AllowedCidrsBreadthHandle"} and int(wait["Timeout"]) <= 5

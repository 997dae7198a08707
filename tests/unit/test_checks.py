"""Answer checks (``cachebridge.checks``): count, address kind, address range."""

from __future__ import annotations

import pytest

from cachebridge.checks import address_problem, agree, check_answer
from cachebridge.config import Binding, DnsSourceSpec, ElastiCacheSourceSpec
from cachebridge.targets import Target

VPC = ("10.0.0.0/16", "2600:1f18::/56")


@pytest.mark.parametrize(
    ("ip", "words"),
    [
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("8.8.8.8", "publicly routable"),
        ("52.94.76.1", "publicly routable"),
        ("2001:4860::8888", "publicly routable"),
        ("192.168.1.5", "outside the target group's VPC"),
        ("172.16.0.9", "allow_outside_vpc"),
        ("100.64.0.1", "outside the target group's VPC"),
        ("not-an-ip", "not an IP address"),
    ],
)
def test_an_address_that_is_no_valid_target_is_refused_naming_it_and_why(ip: str, words: str) -> None:
    problem = address_problem(ip, vpc_cidrs=VPC)
    assert problem is not None and words in problem
    if ip != "not-an-ip":
        assert ip.split("::")[0] in problem


@pytest.mark.parametrize("ip", ["10.0.1.10", "10.0.255.254", "2600:1f18::10"])
def test_an_address_inside_the_vpc_is_accepted(ip: str) -> None:
    assert address_problem(ip, vpc_cidrs=VPC) is None


@pytest.mark.parametrize("ip", ["192.168.1.5", "172.16.0.9", "100.64.0.1", "fd00::5"])
def test_a_private_address_outside_the_vpc_needs_allow_outside_vpc(ip: str) -> None:
    assert address_problem(ip, vpc_cidrs=VPC) is not None
    assert address_problem(ip, vpc_cidrs=VPC, allow_outside_vpc=True) is None


@pytest.mark.parametrize("ip", ["8.8.8.8", "127.0.0.1", "169.254.169.254", "0.0.0.0"])
def test_allow_outside_vpc_never_admits_public_or_special_addresses(ip: str) -> None:
    assert address_problem(ip, vpc_cidrs=VPC, allow_outside_vpc=True) is not None


def test_allowed_networks_replace_the_vpc_check() -> None:
    allowed = ("127.0.0.0/8",)
    assert address_problem("127.0.0.2", vpc_cidrs=VPC, allowed_networks=allowed) is None
    problem = address_problem("10.0.1.10", vpc_cidrs=VPC, allowed_networks=allowed)
    assert problem is not None and "allowed_target_networks" in problem
    # Never-valid kinds stay refused whatever is allowed.
    assert address_problem("0.0.0.0", allowed_networks=("0.0.0.0/0",)) is not None
    assert address_problem("224.0.0.1", allowed_networks=("0.0.0.0/0",)) is not None


def test_unknown_vpc_refuses_only_the_never_valid_kinds_and_says_so() -> None:
    ok = check_answer(["10.9.8.7", "192.168.0.1"], max_targets=4, vpc_cidrs=(), vpc_known=False)
    assert ok.ok and ok.outside_vpc == ()
    assert any("VPC CIDRs are unknown" in w for w in ok.warnings)
    refused = check_answer(["127.0.0.1", "8.8.8.8"], max_targets=4, vpc_cidrs=VPC, vpc_known=False)
    assert not refused.ok and len(refused.refused) == 2


def test_an_answer_larger_than_max_targets_is_refused_whole() -> None:
    addresses = [f"10.0.1.{i}" for i in range(1, 51)]
    result = check_answer(addresses, max_targets=1, vpc_cidrs=VPC)
    assert not result.ok
    assert "50 addresses" in (result.error or "") and "max_targets = 1" in (result.error or "")
    assert check_answer(addresses[:1], max_targets=1, vpc_cidrs=VPC).ok


def test_every_problem_is_listed() -> None:
    result = check_answer(["0.0.0.0", "127.0.0.1", "10.0.0.5"], max_targets=2, vpc_cidrs=VPC)
    assert len(result.refused) == 3  # the count, and each bad address
    assert "0.0.0.0" in (result.error or "") and "127.0.0.1" in (result.error or "")


def test_accepted_outside_vpc_addresses_are_named() -> None:
    result = check_answer(["10.0.0.5", "192.168.7.7"], max_targets=2, vpc_cidrs=VPC, allow_outside_vpc=True)
    assert result.ok and result.outside_vpc == ("192.168.7.7",)


@pytest.mark.parametrize(
    ("binding", "limit"),
    [
        (Binding("p", ElastiCacheSourceSpec("orders", "primary"), "tg"), 1),
        (Binding("r", ElastiCacheSourceSpec("orders", "replicas"), "tg"), 16),
        (Binding("d", DnsSourceSpec("master.orders.example.com"), "tg"), 16),
        (Binding("d", DnsSourceSpec("master.orders.example.com"), "tg", max_targets=1), 1),
        (Binding("p", ElastiCacheSourceSpec("orders", "primary"), "tg", max_targets=2), 2),
    ],
)
def test_max_targets_defaults_to_one_for_a_primary(binding: Binding, limit: int) -> None:
    assert binding.target_limit == limit


def test_two_reads_agree_only_when_both_succeeded_with_the_same_targets() -> None:
    a, b = Target("10.0.0.1", 6379), Target("10.0.0.2", 6379)
    assert agree({a}, {a})
    assert agree([a, b], {b, a})
    assert not agree({a}, {b})
    assert not agree(None, {a}) and not agree({a}, None)


# -- the configuration that feeds the checks -------------------------------------------------


def test_bindings_and_settings_declare_what_the_checks_need() -> None:
    from cachebridge.config import Config

    config = Config.from_mapping({
        "bindings": [{
            "source": "dns://db.example.com", "target_group": "tg", "max_targets": 3, "allow_outside_vpc": True,
        }],
        "settings": {"allowed_target_networks": ["127.0.0.0/8", "10.1.2.3"], "lock_table": "locks", "controller_id": "stack-a"},
    })
    (binding,) = config.bindings
    assert (binding.max_targets, binding.allow_outside_vpc, binding.target_limit) == (3, True, 3)
    assert config.settings.allowed_target_networks == ("127.0.0.0/8", "10.1.2.3/32")
    assert (config.settings.lock_table, config.settings.controller_id) == ("locks", "stack-a")
    assert Config.from_mapping(config.to_mapping()) == config


def test_the_environment_sets_the_networks_the_lock_table_and_the_controller() -> None:
    import json

    from cachebridge.config import ENV_BINDINGS, Config

    config = Config.from_env({
        ENV_BINDINGS: json.dumps([{"source": "elasticache://orders", "target_group": "tg"}]),
        "CACHEBRIDGE_ALLOWED_TARGET_NETWORKS": "127.0.0.0/8,::1/128",
        "CACHEBRIDGE_CONTROLLER_ID": "orders-external",
        "CACHEBRIDGE_LOCK_TABLE": "orders-external-locks",
    })
    assert config.settings.allowed_target_networks == ("127.0.0.0/8", "::1/128")
    assert config.settings.controller_id == "orders-external"
    assert config.settings.lock_table == "orders-external-locks"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"bindings": [{"source": "dns://a.example.com", "target_group": "tg", "max_targets": 0}]}, "bindings[0].max_targets"),
        ({"bindings": [{"source": "dns://a.example.com", "target_group": "tg", "allow_outside_vpc": "yes"}]}, "bindings[0].allow_outside_vpc"),
        ({"bindings": [{"source": "dns://a.example.com", "target_group": "tg"}], "settings": {"allowed_target_networks": ["10.0.0.0/33"]}}, "settings.allowed_target_networks"),
        ({"bindings": [{"source": "dns://a.example.com", "target_group": "tg"}], "settings": {"lock_table": "a b"}}, "settings.lock_table"),
        ({"bindings": [{"source": "dns://a.example.com", "target_group": "tg"}], "settings": {"controller_id": ""}}, "settings.controller_id"),
        ({"bindings": [{"source": "dns://a.example.com", "target_group": "tg"}], "settings": {"controller_id": "a\n"}}, "settings.controller_id"),
    ],
)
def test_bad_answer_check_settings_are_config_errors(data: dict, field: str) -> None:
    from cachebridge.config import Config
    from cachebridge.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        Config.from_mapping(data)
    assert caught.value.field == field

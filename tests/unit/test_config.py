"""The configuration model: files, environment, and every way to get it wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachebridge.config import (
    DEFAULT_MAX_CHANGES,
    DEFAULT_PORT,
    ENV_BINDINGS,
    Binding,
    Config,
    DnsSourceSpec,
    ElastiCacheSourceSpec,
    Settings,
    parse_nameserver,
    parse_source,
    target_group_name,
)
from cachebridge.errors import ConfigError

TG_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/orders-replicas/0123456789abcdef"

TOML_TEXT = f"""
[settings]
region = "eu-west-1"
nameservers = ["10.0.0.2:53", "fd00::2"]
max_changes = 2

[[bindings]]
name = "orders-primary"
source = "elasticache://orders?role=primary"
target_group = "orders-primary"
port = 6379

[[bindings]]
source = "elasticache://Orders?role=replicas"
target_group = "{TG_ARN}"
port = 6380

[[bindings]]
name = "sessions"
source = "dns://Master.Sessions.abc123.euw1.cache.amazonaws.com."
target_group = "sessions"
"""

YAML_TEXT = f"""
settings:
  region: eu-west-1
  nameservers: ["10.0.0.2:53", "fd00::2"]
  max_changes: 2
bindings:
  - name: orders-primary
    source: elasticache://orders?role=primary
    target_group: orders-primary
    port: 6379
  - source: elasticache://Orders?role=replicas
    target_group: {TG_ARN}
    port: 6380
  - name: sessions
    source: dns://Master.Sessions.abc123.euw1.cache.amazonaws.com.
    target_group: sessions
"""

JSON_DATA: dict[str, Any] = {
    "settings": {"region": "eu-west-1", "nameservers": ["10.0.0.2:53", "fd00::2"], "max_changes": 2},
    "bindings": [
        {"name": "orders-primary", "source": "elasticache://orders?role=primary", "target_group": "orders-primary", "port": 6379},
        {"source": "elasticache://Orders?role=replicas", "target_group": TG_ARN, "port": 6380},
        {"name": "sessions", "source": "dns://Master.Sessions.abc123.euw1.cache.amazonaws.com.", "target_group": "sessions"},
    ],
}

EXPECTED = Config(
    bindings=(
        Binding("orders-primary", ElastiCacheSourceSpec("orders", "primary"), "orders-primary", 6379),
        Binding("orders-replicas", ElastiCacheSourceSpec("orders", "replicas"), TG_ARN, 6380),
        Binding("sessions", DnsSourceSpec("master.sessions.abc123.euw1.cache.amazonaws.com"), "sessions", DEFAULT_PORT),
    ),
    settings=Settings(region="eu-west-1", nameservers=("10.0.0.2:53", "[fd00::2]:53"), max_changes=2),
)

GOOD_BINDING = {"name": "orders-primary", "source": "elasticache://orders?role=primary", "target_group": "orders-primary", "port": 6379}
OTHER_BINDING = {"name": "sessions", "source": "dns://sessions.example.internal", "target_group": "sessions", "port": 6380}


# -- files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        pytest.param("cachebridge.toml", TOML_TEXT, id="toml"),
        pytest.param("cachebridge.yaml", YAML_TEXT, id="yaml"),
        pytest.param("cachebridge.yml", YAML_TEXT, id="yml"),
        pytest.param("CACHEBRIDGE.YAML", YAML_TEXT, id="yaml-upper-suffix"),
        pytest.param("cachebridge.json", json.dumps(JSON_DATA), id="json"),
        pytest.param("bindings.json", json.dumps(JSON_DATA["bindings"]), id="json-list"),
    ],
)
def test_from_file(tmp_path: Path, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")
    config = Config.from_file(path)
    assert config.bindings == EXPECTED.bindings
    if filename.startswith("bindings"):
        assert config.settings == Settings()
    else:
        assert config.settings == EXPECTED.settings


def test_from_file_accepts_str_path(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TOML_TEXT, encoding="utf-8")
    assert Config.from_file(str(path)) == EXPECTED


def test_defaults() -> None:
    config = Config.from_mapping([{"source": "dns://cache.example.internal", "target_group": "tg"}])
    (binding,) = config.bindings
    assert binding.port == DEFAULT_PORT
    assert binding.name == "cache.example.internal"
    assert config.settings == Settings()
    assert config.settings.max_changes == DEFAULT_MAX_CHANGES
    assert config.settings.region is None
    assert config.settings.nameservers == ()


@pytest.mark.parametrize(
    ("source", "spec"),
    [
        ("elasticache://orders", ElastiCacheSourceSpec("orders", "primary")),
        ("elasticache://orders?role=primary", ElastiCacheSourceSpec("orders", "primary")),
        ("ELASTICACHE://Orders-1?role=replicas", ElastiCacheSourceSpec("orders-1", "replicas")),
        ("elasticache://orders/?role=replicas", ElastiCacheSourceSpec("orders", "replicas")),
        ("dns://Cache.Example.Internal.", DnsSourceSpec("cache.example.internal")),
        ("  dns://cache.example.internal  ", DnsSourceSpec("cache.example.internal")),
        ("dns:///cache.example.internal", DnsSourceSpec("cache.example.internal")),
    ],
)
def test_parse_source(source: str, spec: object) -> None:
    assert parse_source(source) == spec
    assert parse_source(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("10.0.0.2", "10.0.0.2:53"),
        ("10.0.0.2:5353", "10.0.0.2:5353"),
        (" 10.0.0.2:53 ", "10.0.0.2:53"),
        ("fd00::2", "[fd00::2]:53"),
        ("[fd00::2]", "[fd00::2]:53"),
        ("[FD00:0::2]:5353", "[fd00::2]:5353"),
    ],
)
def test_parse_nameserver(text: str, normal: str) -> None:
    assert parse_nameserver(text) == normal
    assert parse_nameserver(normal) == normal


# -- environment -----------------------------------------------------------------------


def test_env_bindings_as_list() -> None:
    config = Config.from_env({ENV_BINDINGS: json.dumps(JSON_DATA["bindings"])})
    assert config.bindings == EXPECTED.bindings
    assert config.settings == Settings()


def test_env_bindings_as_object() -> None:
    config = Config.from_env({ENV_BINDINGS: json.dumps(JSON_DATA)})
    assert config == EXPECTED


def test_env_overrides_settings() -> None:
    environ = {
        ENV_BINDINGS: json.dumps(JSON_DATA),
        "CACHEBRIDGE_REGION": "us-east-2",
        "CACHEBRIDGE_NAMESERVERS": "10.1.0.2, [fd00::3]:5353,",
        "CACHEBRIDGE_MAX_CHANGES": "7",
        "CACHEBRIDGE_EVENT_WAIT_S": "12.5",
        "CACHEBRIDGE_POLL_INTERVAL_S": "0.25",
        "CACHEBRIDGE_DNS_TIMEOUT_S": "3",
        "AWS_REGION": "ap-south-1",
    }
    config = Config.from_env(environ)
    assert config.bindings == EXPECTED.bindings
    assert config.settings == Settings(
        region="us-east-2",
        nameservers=("10.1.0.2:53", "[fd00::3]:5353"),
        max_changes=7,
        event_wait_s=12.5,
        poll_interval_s=0.25,
        dns_timeout_s=3.0,
    )


def test_env_empty_override_is_ignored() -> None:
    config = Config.from_env({ENV_BINDINGS: json.dumps(JSON_DATA), "CACHEBRIDGE_MAX_CHANGES": ""})
    assert config.settings.max_changes == 2


@pytest.mark.parametrize(
    ("environ", "region"),
    [
        pytest.param({"AWS_REGION": "eu-central-1"}, "eu-central-1", id="aws-region"),
        pytest.param({"AWS_DEFAULT_REGION": "eu-north-1"}, "eu-north-1", id="aws-default-region"),
        pytest.param({"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-north-1"}, "eu-central-1", id="aws-region-first"),
        pytest.param({"AWS_REGION": "eu-central-1", "CACHEBRIDGE_REGION": "us-west-2"}, "us-west-2", id="cachebridge-region-wins"),
        pytest.param({}, None, id="none"),
    ],
)
def test_env_region_fallback(environ: dict[str, str], region: str | None) -> None:
    environ = {ENV_BINDINGS: json.dumps(JSON_DATA["bindings"]), **environ}
    assert Config.from_env(environ).settings.region == region


def test_env_region_in_settings_beats_aws_region() -> None:
    environ = {ENV_BINDINGS: json.dumps(JSON_DATA), "AWS_REGION": "eu-central-1"}
    assert Config.from_env(environ).settings.region == "eu-west-1"


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BINDINGS, json.dumps(JSON_DATA))
    monkeypatch.delenv("CACHEBRIDGE_MAX_CHANGES", raising=False)
    monkeypatch.setenv("CACHEBRIDGE_REGION", "eu-west-3")
    config = Config.from_env()
    assert config.bindings == EXPECTED.bindings
    assert config.settings.region == "eu-west-3"


@pytest.mark.parametrize(
    ("environ", "field_words", "problem_words"),
    [
        pytest.param({}, ENV_BINDINGS, "not set", id="unset"),
        pytest.param({ENV_BINDINGS: ""}, ENV_BINDINGS, "not set", id="empty"),
        pytest.param({ENV_BINDINGS: "[{"}, ENV_BINDINGS, "not valid JSON", id="bad-json"),
        pytest.param({ENV_BINDINGS: "orders"}, ENV_BINDINGS, "not valid JSON", id="not-json"),
        pytest.param({ENV_BINDINGS: "[]"}, "bindings", "missing or empty", id="empty-list"),
        pytest.param({ENV_BINDINGS: "42"}, "(top level)", "not a table/object", id="number"),
    ],
)
def test_env_bindings_invalid(environ: dict[str, str], field_words: str, problem_words: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env(environ)
    assert info.value.field == field_words
    assert problem_words in info.value.problem
    assert str(info.value).startswith(f"{field_words}: ")


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("CACHEBRIDGE_MAX_CHANGES", "abc", "max_changes"),
        ("CACHEBRIDGE_MAX_CHANGES", "0", "max_changes"),
        ("CACHEBRIDGE_REGION", "Europe", "region"),
        ("CACHEBRIDGE_NAMESERVERS", "10.0.0.2,dns.example", "nameservers"),
        ("CACHEBRIDGE_EVENT_WAIT_S", "forever", "event_wait_s"),
        ("CACHEBRIDGE_DNS_TIMEOUT_S", "0", "dns_timeout_s"),
        ("CACHEBRIDGE_POLL_INTERVAL_S", "nan", "poll_interval_s"),
    ],
)
def test_env_override_invalid(variable: str, value: str, setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env({ENV_BINDINGS: json.dumps(JSON_DATA), variable: value})
    assert info.value.field == variable == f"CACHEBRIDGE_{setting.upper()}"
    assert value.split(",")[-1] in info.value.problem
    assert info.value.accepted


# -- invalid mappings ------------------------------------------------------------------


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A valid two-binding config with one value replaced (``...`` deletes the key)."""
    data: dict[str, Any] = {"bindings": [copy.deepcopy(GOOD_BINDING), copy.deepcopy(OTHER_BINDING)], "settings": {}}
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def case(path: tuple[Any, ...], value: Any, field: str, problem: str, accepted: str, id: str) -> Any:
    return pytest.param(_with(path, value), field, problem, accepted, id=id)


B1 = ("bindings", 1)

INVALID = [
    # source
    case((*B1, "source"), "redis://orders", "bindings[1].source", "unknown source", "elasticache://", "source-bad-scheme"),
    case((*B1, "source"), "orders.example.com", "bindings[1].source", "unknown source", "dns://", "source-no-scheme"),
    case((*B1, "source"), ..., "bindings[1].source", "missing", "dns://", "source-missing"),
    case((*B1, "source"), 42, "bindings[1].source", "not a string", "elasticache://", "source-not-string"),
    case((*B1, "source"), "   ", "bindings[1].source", "missing", "dns://", "source-blank"),
    case((*B1, "source"), "elasticache://orders?role=writer", "bindings[1].source.role", "'writer' is not a role", "primary, replicas", "bad-role"),
    case((*B1, "source"), "elasticache://orders?role=Primary", "bindings[1].source.role", "is not a role", "primary, replicas", "bad-role-case"),
    case((*B1, "source"), "elasticache://orders?role=", "bindings[1].source.role", "is not a role", "primary, replicas", "empty-role"),
    case((*B1, "source"), "elasticache://orders?roles=primary", "bindings[1].source", "unknown query parameter", "role", "role-typo"),
    case((*B1, "source"), "elasticache://orders/replicas", "bindings[1].source", "path", "role=primary|replicas", "role-as-path"),
    case((*B1, "source"), "elasticache://orders#replicas", "bindings[1].source", "fragment", "role=primary|replicas", "role-as-fragment"),
    case((*B1, "source"), "elasticache://1orders", "bindings[1].source", "not a replication group id", "starting with a letter", "rg-starts-with-digit"),
    case((*B1, "source"), "elasticache://" + "a" * 41, "bindings[1].source", "not a replication group id", "1-40", "rg-too-long"),
    case((*B1, "source"), "elasticache://or_ders", "bindings[1].source", "not a replication group id", "letters, digits or hyphens", "rg-underscore"),
    case((*B1, "source"), "elasticache://", "bindings[1].source", "not a replication group id", "1-40", "rg-empty"),
    case((*B1, "source"), "elasticache://orders:6379", "bindings[1].source", "not a replication group id", "1-40", "rg-with-port"),
    case((*B1, "source"), "dns://", "bindings[1].source", "not a valid dns:// source", "dns://HOST", "dns-empty"),
    case((*B1, "source"), "dns://cache.example.com:6379", "bindings[1].source", "not a valid dns:// source", "dns://HOST", "dns-with-port"),
    case((*B1, "source"), "dns://-cache.example.com", "bindings[1].source", "not a valid dns:// source", "dns://HOST", "dns-leading-hyphen"),
    case((*B1, "source"), "dns://cache..example.com", "bindings[1].source", "not a valid dns:// source", "dns://HOST", "dns-empty-label"),
    case((*B1, "source"), "dns://cache.example.com?type=AAAA", "bindings[1].source", "not a valid dns:// source", "dns://HOST", "dns-query"),
    case((*B1, "source"), "dns://" + "a" * 64 + ".example.com", "bindings[1].source", "not a valid dns:// source", "dns://HOST", "dns-label-too-long"),
    # target group
    case((*B1, "target_group"), ..., "bindings[1].target_group", "missing", "name or ARN", "tg-missing"),
    case((*B1, "target_group"), "", "bindings[1].target_group", "not a target group name or ARN", "1-32", "tg-empty"),
    case((*B1, "target_group"), "-orders", "bindings[1].target_group", "not a target group name or ARN", "1-32", "tg-leading-hyphen"),
    case((*B1, "target_group"), "orders-", "bindings[1].target_group", "not a target group name or ARN", "1-32", "tg-trailing-hyphen"),
    case((*B1, "target_group"), "t" * 33, "bindings[1].target_group", "not a target group name or ARN", "1-32", "tg-too-long"),
    case((*B1, "target_group"), "orders_primary", "bindings[1].target_group", "not a target group name or ARN", "1-32", "tg-underscore"),
    case((*B1, "target_group"), 7, "bindings[1].target_group", "not a target group name or ARN", "ARN", "tg-not-string"),
    case((*B1, "target_group"), None, "bindings[1].target_group", "not a target group name or ARN", "ARN", "tg-null"),
    case((*B1, "target_group"), TG_ARN.replace("123456789012", "1234"), "bindings[1].target_group", "not a target group ARN", "arn:aws:elasticloadbalancing", "arn-short-account"),
    case((*B1, "target_group"), TG_ARN.replace("targetgroup/", "loadbalancer/net/"), "bindings[1].target_group", "not a target group ARN", "targetgroup/NAME/ID", "arn-load-balancer"),
    case((*B1, "target_group"), TG_ARN.replace("elasticloadbalancing", "ec2"), "bindings[1].target_group", "not a target group ARN", "arn:aws:elasticloadbalancing", "arn-wrong-service"),
    case((*B1, "target_group"), TG_ARN + "/extra", "bindings[1].target_group", "not a target group ARN", "targetgroup/NAME/ID", "arn-trailing"),
    # port
    case((*B1, "port"), 0, "bindings[1].port", "out of range", "1..65535", "port-0"),
    case((*B1, "port"), 70000, "bindings[1].port", "out of range", "1..65535", "port-70000"),
    case((*B1, "port"), -1, "bindings[1].port", "out of range", "1..65535", "port-negative"),
    case((*B1, "port"), "abc", "bindings[1].port", "not an integer", "1..65535", "port-abc"),
    case((*B1, "port"), True, "bindings[1].port", "not an integer", "1..65535", "port-true"),
    case((*B1, "port"), 6379.0, "bindings[1].port", "not an integer", "1..65535", "port-float"),
    case((*B1, "port"), "6379.5", "bindings[1].port", "not an integer", "1..65535", "port-float-string"),
    case((*B1, "port"), None, "bindings[1].port", "not an integer", "1..65535", "port-null"),
    case((*B1, "port"), [6379], "bindings[1].port", "not an integer", "1..65535", "port-list"),
    # name
    case((*B1, "name"), "orders-primary", "bindings[1].name", "duplicate name 'orders-primary'", "unique", "duplicate-name"),
    case((*B1, "name"), "has space", "bindings[1].name", "not a valid name", "1-64", "name-space"),
    case((*B1, "name"), "-orders", "bindings[1].name", "not a valid name", "1-64", "name-leading-hyphen"),
    case((*B1, "name"), "n" * 65, "bindings[1].name", "not a valid name", "1-64", "name-too-long"),
    case((*B1, "name"), 5, "bindings[1].name", "not a valid name", "1-64", "name-not-string"),
    # unknown keys
    case((*B1, "prot"), 6379, "bindings[1].prot", "unknown setting", "port", "binding-key-typo"),
    case((*B1, "targetgroup"), "x", "bindings[1].targetgroup", "unknown setting", "target_group", "binding-key-typo-tg"),
    case(("settings", "max_change"), 3, "settings.max_change", "unknown setting", "max_changes", "setting-key-typo"),
    case(("setting",), {}, "setting", "unknown setting", "settings", "top-level-key-typo"),
    # bindings shape
    case(("bindings",), [], "bindings", "missing or empty", "non-empty list", "empty-bindings"),
    case(("bindings",), ..., "bindings", "missing or empty", "non-empty list", "missing-bindings"),
    case(("bindings",), GOOD_BINDING, "bindings", "missing or empty", "non-empty list", "bindings-not-list"),
    case(B1, "dns://cache.example.com", "bindings[1]", "not a table/object", "source, target_group", "binding-not-table"),
    # settings
    case(("settings",), ["region"], "settings", "not a table/object", "max_changes", "settings-not-table"),
    case(("settings", "nameservers"), ["10.0.0.300"], "settings.nameservers", "is not a nameserver", "IP[:PORT]", "ns-bad-ip"),
    case(("settings", "nameservers"), ["dns.example.com"], "settings.nameservers", "is not a nameserver", "IP[:PORT]", "ns-hostname"),
    case(("settings", "nameservers"), ["10.0.0.2:0"], "settings.nameservers", "is not a nameserver", "IP[:PORT]", "ns-port-0"),
    case(("settings", "nameservers"), ["10.0.0.2:65536"], "settings.nameservers", "is not a nameserver", "IP[:PORT]", "ns-port-too-big"),
    case(("settings", "nameservers"), ["10.0.0.2:dns"], "settings.nameservers", "is not a nameserver", "IP[:PORT]", "ns-port-word"),
    case(("settings", "nameservers"), ["[fd00::2]:"], "settings.nameservers", "is not a nameserver", "IP[:PORT]", "ns-v6-empty-port"),
    case(("settings", "nameservers"), ["[fd00::2]5353"], "settings.nameservers", "is not a nameserver", "IP[:PORT]", "ns-v6-missing-colon"),
    case(("settings", "nameservers"), [""], "settings.nameservers", "is not a nameserver", "IP[:PORT]", "ns-empty"),
    case(("settings", "nameservers"), [53], "settings.nameservers", "is not a nameserver", "IP[:PORT]", "ns-number"),
    case(("settings", "nameservers"), {"primary": "10.0.0.2"}, "settings.nameservers", "not a list", "IP[:PORT]", "ns-table"),
    case(("settings", "region"), "eu-west", "settings.region", "not an AWS region", "eu-west-1", "region-no-number"),
    case(("settings", "region"), "EU-WEST-1", "settings.region", "not an AWS region", "eu-west-1", "region-upper"),
    case(("settings", "region"), "euwest1", "settings.region", "not an AWS region", "eu-west-1", "region-no-hyphens"),
    case(("settings", "region"), "eu_west_1", "settings.region", "not an AWS region", "eu-west-1", "region-underscores"),
    case(("settings", "region"), 1, "settings.region", "not an AWS region", "eu-west-1", "region-number"),
    case(("settings", "max_changes"), 0, "settings.max_changes", "out of range", "1..1000", "max-changes-0"),
    case(("settings", "max_changes"), 1001, "settings.max_changes", "out of range", "1..1000", "max-changes-too-big"),
    case(("settings", "max_changes"), "many", "settings.max_changes", "not an integer", "1..1000", "max-changes-word"),
    case(("settings", "max_changes"), True, "settings.max_changes", "not an integer", "1..1000", "max-changes-bool"),
    case(("settings", "event_wait_s"), -1, "settings.event_wait_s", "out of range", "0..600 seconds", "event-wait-negative"),
    case(("settings", "event_wait_s"), 601, "settings.event_wait_s", "out of range", "0..600 seconds", "event-wait-too-long"),
    case(("settings", "event_wait_s"), "soon", "settings.event_wait_s", "not a number", "0..600 seconds", "event-wait-word"),
    case(("settings", "event_wait_s"), "inf", "settings.event_wait_s", "out of range", "0..600 seconds", "event-wait-inf"),
    case(("settings", "poll_interval_s"), 0, "settings.poll_interval_s", "out of range", "0.05..60 seconds", "poll-zero"),
    case(("settings", "poll_interval_s"), "nan", "settings.poll_interval_s", "out of range", "0.05..60 seconds", "poll-nan"),
    case(("settings", "dns_timeout_s"), 0, "settings.dns_timeout_s", "out of range", "0.1..30 seconds", "dns-timeout-zero"),
    case(("settings", "dns_timeout_s"), False, "settings.dns_timeout_s", "not a number", "0.1..30 seconds", "dns-timeout-bool"),
]


@pytest.mark.parametrize(("data", "field", "problem", "accepted"), INVALID)
def test_invalid_config(data: dict[str, Any], field: str, problem: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(data)
    error = info.value
    assert error.field == field
    assert problem in error.problem
    assert error.accepted and accepted in error.accepted
    assert str(error) == f"{field}: {error.problem} (accepted: {error.accepted})"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param("bindings", "(top level)", id="string"),
        pytest.param(42, "(top level)", id="number"),
        pytest.param(None, "(top level)", id="null"),
        pytest.param([], "bindings", id="empty-list"),
    ],
)
def test_invalid_top_level(data: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(data)
    assert info.value.field == field
    assert info.value.accepted


def test_default_names_can_collide() -> None:
    binding = {"source": "elasticache://orders", "target_group": "a"}
    with pytest.raises(ConfigError) as info:
        Config.from_mapping([binding, {**binding, "target_group": "b"}])
    assert info.value.field == "bindings[1].name"
    assert "orders-primary" in info.value.problem


def test_config_rejects_duplicate_names_when_built_directly() -> None:
    binding = Binding("x", DnsSourceSpec("a.example"), "tg")
    with pytest.raises(ConfigError) as info:
        Config(bindings=(binding, binding))
    assert info.value.field == "bindings[1].name"


@pytest.mark.parametrize(
    ("source", "target_group", "port", "flag"),
    [
        ("dns://cache.example.com", "tg", 0, "--port"),
        ("redis://cache", "tg", 6379, "--source"),
        ("elasticache://orders?role=writer", "tg", 6379, "--source"),
        ("dns://cache.example.com", "tg_1", 6379, "--target-group"),
    ],
)
def test_single_names_the_flag(source: str, target_group: str, port: int, flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.single(source, target_group, port=port)
    assert info.value.field == flag
    assert info.value.accepted


def test_single() -> None:
    config = Config.single("elasticache://orders?role=replicas", "tg", port=6380)
    assert config.bindings == (Binding("orders-replicas", ElastiCacheSourceSpec("orders", "replicas"), "tg", 6380),)


# -- invalid files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content", "problem"),
    [
        pytest.param("c.ini", "[bindings]\n", "unknown file type '.ini'", id="ini-suffix"),
        pytest.param("cachebridge", "{}", "unknown file type '(none)'", id="no-suffix"),
        pytest.param("c.toml", "[[bindings]\nsource = 1\n", "is not valid TOML", id="malformed-toml"),
        pytest.param("c.toml", 'bindings = [\n  { source = "dns://a" \n', "is not valid TOML", id="unterminated-toml"),
        pytest.param("c.yaml", "bindings: [\n", "is not valid YAML", id="malformed-yaml"),
        pytest.param("c.yml", "bindings:\n  - source: a\n\tport: 1\n", "is not valid YAML", id="yaml-tab"),
        pytest.param("c.json", '{"bindings": [', "is not valid JSON", id="malformed-json"),
        pytest.param("c.json", "{'bindings': []}", "is not valid JSON", id="json-single-quotes"),
        pytest.param("c.toml", b"\xff\xfe[[bindings]]\n", "not UTF-8", id="not-utf8"),
    ],
)
def test_invalid_file(tmp_path: Path, filename: str, content: str | bytes, problem: str) -> None:
    path = tmp_path / filename
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Config.from_file(path)
    assert info.value.field == "--config"
    assert problem in info.value.problem
    assert str(info.value).startswith("--config: ")


def test_unknown_suffix_says_what_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.conf"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Config.from_file(path)
    for suffix in (".toml", ".yaml", ".yml", ".json"):
        assert suffix in (info.value.accepted or "")


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_unreadable_file(tmp_path: Path, make: str) -> None:
    path = tmp_path / "c.toml"
    if make == "directory":
        path.mkdir()
    with pytest.raises(ConfigError) as info:
        Config.from_file(path)
    assert info.value.field == "--config"
    assert "cannot read" in info.value.problem
    assert str(path) in info.value.problem


@pytest.mark.parametrize(
    ("filename", "text", "field"),
    [
        pytest.param("c.toml", '[[bindings]]\nsource = "dns://a.example"\ntarget_group = "tg"\nport = 0\n', "bindings[0].port", id="toml-port"),
        pytest.param("c.toml", '[bindings]\nsource = "dns://a.example"\n', "bindings", id="toml-table-not-array"),
        pytest.param("c.yaml", "bindings:\n  - source: dns://a.example\n    target_group: tg\n    port: 6379.0\n", "bindings[0].port", id="yaml-float-port"),
        pytest.param("c.yaml", "", "(top level)", id="yaml-empty"),
        pytest.param("c.yaml", "- source: dns://a.example\n  target_group: tg\n  1: x\n  zz: y\n", "bindings[0].1", id="yaml-mixed-key-types"),
        pytest.param("c.json", '[{"source": "dns://a.example", "target_group": "tg", "role": "primary"}]', "bindings[0].role", id="json-unknown-key"),
    ],
)
def test_invalid_content_in_file(tmp_path: Path, filename: str, text: str, field: str) -> None:
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Config.from_file(path)
    assert info.value.field == field
    assert info.value.accepted


# -- round trip ------------------------------------------------------------------------


def test_round_trip_through_env() -> None:
    assert Config.from_env({ENV_BINDINGS: EXPECTED.bindings_json()}) == EXPECTED


def test_round_trip_through_json_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(EXPECTED.bindings_json(), encoding="utf-8")
    assert Config.from_file(path) == EXPECTED


rg_ids = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,39}\Z")
labels = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
hosts = st.lists(labels, min_size=1, max_size=4).map(".".join)
sources = st.one_of(
    st.builds(lambda rg, role: f"elasticache://{rg}?role={role}", rg_ids, st.sampled_from(["primary", "replicas"])),
    hosts.map(lambda h: f"dns://{h}"),
)
tg_names = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?\Z")
tg_arns = st.builds(
    lambda region, name, tg_id: f"arn:aws:elasticloadbalancing:{region}:123456789012:targetgroup/{name}/{tg_id}",
    st.sampled_from(["eu-west-1", "us-east-1", "ap-southeast-2"]),
    tg_names,
    st.from_regex(r"\A[0-9a-f]{16}\Z"),
)
binding_names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z")
nameservers = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.builds(lambda ip, port: f"{ip}:{port}", st.ip_addresses(v=4), st.integers(1, 65535)),
    st.builds(lambda ip, port: f"[{ip}]:{port}", st.ip_addresses(v=6), st.integers(1, 65535)),
)
settings_maps = st.fixed_dictionaries(
    {},
    optional={
        "region": st.sampled_from(["eu-west-1", "us-gov-west-1", "ap-northeast-3"]),
        "nameservers": st.lists(nameservers, max_size=3),
        "max_changes": st.integers(1, 1000),
        "event_wait_s": st.floats(0, 600),
        "poll_interval_s": st.floats(0.05, 60),
        "dns_timeout_s": st.floats(0.1, 30),
    },
)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    names = draw(st.lists(binding_names, min_size=1, max_size=4, unique=True))
    # One binding per target group, however the group is written (name or ARN).
    groups = draw(st.lists(st.one_of(tg_names, tg_arns), min_size=len(names), max_size=len(names), unique_by=target_group_name))
    bindings = [
        {
            "name": name,
            "source": draw(sources),
            "target_group": group,
            "port": draw(st.integers(1, 65535)),
        }
        for name, group in zip(names, groups)
    ]
    return Config.from_mapping({"bindings": bindings, "settings": draw(settings_maps)})


@settings(max_examples=200, deadline=None)
@given(config=configs())
def test_round_trip_property(config: Config) -> None:
    again = Config.from_env({ENV_BINDINGS: config.bindings_json()})
    assert again == config
    assert again.bindings_json() == config.bindings_json()

"""Hostile input: each bad value in a config file, ``CACHEBRIDGE_BINDINGS``, a flag or an
SNS message ends in one ConfigError / EventError naming the field, on one line. Any other
exception (RecursionError, ValueError from int(), a YAML or JSON parser error) fails the
test, because only the expected class is caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cachebridge.cli import cli
from cachebridge.config import ENV_BINDINGS, Config
from cachebridge.errors import ConfigError, EventError
from cachebridge.events import parse_event

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders/0123456789abcdef"
HUGE = "1" * 5000  # beyond Python's 4300-digit limit for int(str)
LONG = "9" * 30  # parses, but is no count, port or number of seconds
DEEP_JSON = "[" * 100_000 + "]" * 100_000


def toml(port: str = "6379", source: str = '"elasticache://orders?role=primary"', extra: str = "", settings: str = "") -> str:
    return f"[settings]\n{settings}\n[[bindings]]\nsource = {source}\ntarget_group = \"orders\"\nport = {port}\n{extra}"


def yaml_doc(port: str = "6379", extra: str = "", settings: str = "{}") -> str:
    return f"settings: {settings}\nbindings:\n  - source: elasticache://orders?role=primary\n    target_group: orders\n    port: {port}\n{extra}"


def json_doc(port: str = "6379", settings: str = "{}", source: str = '"elasticache://orders?role=primary"') -> str:
    return f'{{"settings": {settings}, "bindings": [{{"source": {source}, "target_group": "orders", "port": {port}}}]}}'


TWO_BINDINGS_TOML = (
    '[[bindings]]\nname = "a"\nsource = "elasticache://orders?role=primary"\ntarget_group = "orders"\n'
    f'[[bindings]]\nname = "b"\nsource = "elasticache://orders?role=replicas"\ntarget_group = "{ARN}"\n'
)

# (kind, input, the exact field, words of the problem)
CONFIG_CASES: list[Any] = [
    # -- TOML ------------------------------------------------------------------------------------
    pytest.param("toml", toml(port=HUGE), "--config", "4300 digits", id="toml-5000-digit-int"),
    pytest.param("toml", toml(port=LONG), "bindings[0].port", "too large", id="toml-30-digit-int"),
    pytest.param("toml", toml(settings=f"max_changes = {LONG}"), "settings.max_changes", "too large", id="toml-30-digit-setting"),
    pytest.param("toml", toml(port="-" + LONG), "bindings[0].port", "too large", id="toml-30-digit-negative"),
    pytest.param("toml", toml(port="[" * 40 + "1" + "]" * 40), "bindings[0].port" + "[0]" * 14, "nested deeper", id="toml-deep-array"),
    pytest.param("toml", toml(port="[" * 5000 + "]" * 5000), "--config", "nested too deeply", id="toml-recursion-bomb"),
    pytest.param("toml", toml(extra="port = 6380"), "--config", "Cannot overwrite", id="toml-duplicate-key"),
    pytest.param("toml", toml(port='"\u0663"'), "bindings[0].port", "ASCII digits only", id="toml-arabic-indic-digit"),
    pytest.param("toml", toml(port='"\uff16\uff13\uff17\uff19"'), "bindings[0].port", "ASCII digits only", id="toml-fullwidth-digits"),
    pytest.param("toml", toml(port='"6_379"'), "bindings[0].port", "ASCII digits only", id="toml-underscore-digits"),
    pytest.param("toml", toml(port='"0x18EB"'), "bindings[0].port", "ASCII digits only", id="toml-hex-string"),
    pytest.param("toml", toml(port="6379.0"), "bindings[0].port", "not an integer", id="toml-float-port"),
    pytest.param("toml", toml(port="true"), "bindings[0].port", "not an integer", id="toml-bool-port"),
    pytest.param("toml", toml(settings="event_wait_s = nan"), "settings.event_wait_s", "not a finite number", id="toml-nan"),
    pytest.param("toml", toml(settings="event_wait_s = inf"), "settings.event_wait_s", "not a finite number", id="toml-inf"),
    pytest.param("toml", toml(source='"elasticache://orders?role=primary&role=replicas"'), "bindings[0].source.role", "given 2 times", id="toml-repeated-role"),
    pytest.param("toml", toml(source='"elasticache://orders?role=replicas&role=replicas"'), "bindings[0].source.role", "given 2 times", id="toml-repeated-same-role"),
    pytest.param("toml", toml(source='"elasticache://orders?role"'), "bindings[0].source", "not a query string", id="toml-role-without-value"),
    pytest.param("toml", toml(source='"elasticache://orders?role=primary;role=replicas"'), "bindings[0].source.role", "is not a role", id="toml-semicolon-query"),
    pytest.param("toml", toml(source='"elasticache://orders?' + "&".join(f"r{i}=1" for i in range(20)) + '"'), "bindings[0].source", "not a query string", id="toml-many-query-fields"),
    pytest.param("toml", toml(source='"dns://[::1"'), "bindings[0].source", "is not a URL", id="toml-unclosed-bracket"),
    pytest.param("toml", toml(source='"dns://' + "a" * 400 + '"'), "bindings[0].source", "too long", id="toml-long-source"),
    pytest.param("toml", toml(source='"elasticache://\u0663rders"'), "bindings[0].source", "not a replication group id", id="toml-non-ascii-group"),
    pytest.param("toml", toml(extra='name = "orders\\n"'), "bindings[0].name", "not a valid name", id="toml-name-trailing-newline"),
    pytest.param("toml", toml(extra="name = \"" + "n" * 5000 + "\""), "bindings[0].name", "not a valid name", id="toml-long-name"),
    pytest.param("toml", TWO_BINDINGS_TOML, "bindings[1].target_group", "already bound by 'a'", id="toml-two-bindings-one-group"),
    pytest.param("toml", TWO_BINDINGS_TOML.replace(ARN, "orders"), "bindings[1].target_group", "already bound by 'a'", id="toml-two-bindings-same-name"),
    pytest.param("toml", toml(extra="x" * 5000 + " = 1"), "bindings[0]." + "x" * 37 + "...", "unknown setting", id="toml-long-unknown-key"),
    pytest.param("toml", toml(settings='region = "eu-west-\u0661"'), "settings.region", "not an AWS region", id="toml-region-arabic-digit"),
    pytest.param("toml", toml(settings='region = "eu-west-1\\n"'), "settings.region", "not an AWS region", id="toml-region-newline"),
    pytest.param("toml", toml(settings='nameservers = ["10.0.0.2:\u0665\u0663"]'), "settings.nameservers", "not a nameserver", id="toml-nameserver-port-digits"),
    pytest.param("toml", toml(settings='nameservers = ["10.0.0.2:5_3"]'), "settings.nameservers", "not a nameserver", id="toml-nameserver-underscore"),
    pytest.param("toml", toml(settings='nameservers = ["' + "1" * 500 + '"]'), "settings.nameservers", "not a nameserver", id="toml-nameserver-long"),
    pytest.param("toml", toml(settings='max_changes = "\u0663"'), "settings.max_changes", "ASCII digits only", id="toml-setting-arabic-digit"),
    pytest.param("toml", toml(settings='event_wait_s = "\u0663.5"'), "settings.event_wait_s", "ASCII digits only", id="toml-seconds-arabic-digit"),
    pytest.param("toml", "a = 1\n" * 200_000, "--config", "too large", id="toml-over-a-mebibyte"),
    # -- YAML ------------------------------------------------------------------------------------
    pytest.param("yaml", yaml_doc(port="1:46:19"), "bindings[0].port", "ASCII digits only", id="yaml-sexagesimal-port"),
    pytest.param("yaml", yaml_doc(settings="{max_changes: 0:4}"), "settings.max_changes", "ASCII digits only", id="yaml-sexagesimal-setting"),
    pytest.param("yaml", yaml_doc(port="!!int 1:46:19"), "--config", "not a YAML 1.2 integer", id="yaml-tagged-sexagesimal"),
    pytest.param("yaml", yaml_doc(port="0b1100011101011"), "bindings[0].port", "ASCII digits only", id="yaml-binary-int"),
    pytest.param("yaml", yaml_doc(port="6_379"), "bindings[0].port", "ASCII digits only", id="yaml-underscore-int"),
    pytest.param("yaml", yaml_doc(port=LONG), "bindings[0].port", "too large", id="yaml-30-digit-int"),
    pytest.param("yaml", yaml_doc(port=HUGE), "bindings[0].port", "too large", id="yaml-5000-digit-int"),
    pytest.param("yaml", yaml_doc(port="6379.0"), "bindings[0].port", "not an integer", id="yaml-float-port"),
    pytest.param("yaml", yaml_doc(port="yes"), "bindings[0].port", "ASCII digits only", id="yaml-1.1-boolean"),
    pytest.param("yaml", yaml_doc(settings="{event_wait_s: .nan}"), "settings.event_wait_s", "not a finite number", id="yaml-nan"),
    pytest.param("yaml", yaml_doc(settings="{event_wait_s: -.inf}"), "settings.event_wait_s", "not a finite number", id="yaml-minus-inf"),
    pytest.param("yaml", yaml_doc(extra="    port: 6380"), "--config", "duplicate key 'port'", id="yaml-duplicate-key"),
    pytest.param("yaml", "settings: {}\nsettings: {max_changes: 9}\n" + yaml_doc()[13:], "--config", "duplicate key 'settings'", id="yaml-duplicate-top-key"),
    pytest.param("yaml", "a: &x [1]\n" + yaml_doc(extra="    name: *x"), "--config", "an alias (*x)", id="yaml-alias"),
    pytest.param("yaml", "a: &a [*a]\n", "--config", "an alias (*a)", id="yaml-recursive-alias"),
    pytest.param("yaml", "a: &a ['lol','lol']\nb: &b [*a,*a,*a]\nc: &c [*b,*b,*b]\n", "--config", "an alias", id="yaml-billion-laughs"),
    pytest.param("yaml", "[" * 1000 + "]" * 1000, "--config", "nested deeper than 16", id="yaml-deep-flow"),
    pytest.param("yaml", "bindings: [" * 30 + "]" * 30, "--config", "nested deeper than 16", id="yaml-deep-bindings"),
    pytest.param("yaml", "? [a, b]\n: 1\n", "--config", "not valid YAML", id="yaml-unhashable-key"),
    pytest.param("yaml", yaml_doc() + "---\n" + yaml_doc(), "--config", "not valid YAML", id="yaml-two-documents"),
    pytest.param("yaml", "a: !!python/object/apply:os.system ['true']\n", "--config", "not valid YAML", id="yaml-python-tag"),
    pytest.param("yaml", yaml_doc(extra="  - source: elasticache://orders?role=replicas\n    target_group: orders\n    name: second"),
                 "bindings[1].target_group", "already bound by", id="yaml-two-bindings-one-group"),
    pytest.param("yaml", "\ufeff" + yaml_doc(port="1:46:19"), "bindings[0].port", "ASCII digits only", id="yaml-bom-then-bad-port"),
    # -- JSON file -------------------------------------------------------------------------------
    pytest.param("json", json_doc(port=HUGE), "bindings[0].port", "too large", id="json-5000-digit-int"),
    pytest.param("json", json_doc(port=LONG), "bindings[0].port", "too large", id="json-30-digit-int"),
    pytest.param("json", json_doc(port="1e999"), "bindings[0].port", "not a finite number", id="json-overflowing-float"),
    pytest.param("json", json_doc(settings='{"event_wait_s": NaN}'), "--config", "NaN is not a number", id="json-nan"),
    pytest.param("json", json_doc(settings='{"event_wait_s": -Infinity}'), "--config", "-Infinity is not a number", id="json-minus-infinity"),
    pytest.param("json", json_doc(settings='{"max_changes": 1, "max_changes": 900}'), "--config", "duplicate key 'max_changes'", id="json-duplicate-key"),
    pytest.param("json", DEEP_JSON, "--config", "nested deeper than 16", id="json-recursion-bomb"),
    pytest.param("json", json_doc(port='"\u0663"'), "bindings[0].port", "ASCII digits only", id="json-arabic-indic-digit"),
    pytest.param("json", json_doc(source='"elasticache://orders?role=primary&role=replicas"'), "bindings[0].source.role", "given 2 times", id="json-repeated-role"),
    pytest.param("json", '{"bindings": [' + "1," * 10 + "]}", "--config", "not valid JSON", id="json-trailing-comma"),
    # -- CACHEBRIDGE_BINDINGS and CACHEBRIDGE_* ----------------------------------------------------
    pytest.param("env", {ENV_BINDINGS: json_doc(port=HUGE)}, "bindings[0].port", "too large", id="env-5000-digit-int"),
    pytest.param("env", {ENV_BINDINGS: DEEP_JSON}, ENV_BINDINGS, "nested deeper than 16", id="env-recursion-bomb"),
    pytest.param("env", {ENV_BINDINGS: json_doc(settings='{"region": "eu-west-1", "region": "us-east-1"}')}, ENV_BINDINGS, "duplicate key 'region'", id="env-duplicate-key"),
    pytest.param("env", {ENV_BINDINGS: json_doc(settings='{"event_wait_s": Infinity}')}, ENV_BINDINGS, "Infinity is not a number", id="env-infinity"),
    pytest.param("env", {ENV_BINDINGS: json_doc(source='"elasticache://orders?role=primary&role=replicas"')}, "bindings[0].source.role", "given 2 times", id="env-repeated-role"),
    pytest.param("env", {ENV_BINDINGS: "[" + json.dumps({"source": "dns://a.example", "target_group": "orders", "name": "a"}) + "," + json.dumps({"source": "dns://b.example", "target_group": ARN, "name": "b"}) + "]"},
                 "bindings[1].target_group", "already bound by 'a'", id="env-two-bindings-one-group"),
    pytest.param("env", {ENV_BINDINGS: " " * (2 * 1024 * 1024) + "[]"}, ENV_BINDINGS, "too large", id="env-two-mebibytes"),
    pytest.param("env", {ENV_BINDINGS: json_doc(), "CACHEBRIDGE_MAX_CHANGES": "\u0663"}, "CACHEBRIDGE_MAX_CHANGES", "ASCII digits only", id="env-setting-arabic-digit"),
    pytest.param("env", {ENV_BINDINGS: json_doc(), "CACHEBRIDGE_MAX_CHANGES": HUGE}, "CACHEBRIDGE_MAX_CHANGES", "ASCII digits only", id="env-setting-5000-digits"),
    pytest.param("env", {ENV_BINDINGS: json_doc(), "CACHEBRIDGE_EVENT_WAIT_S": "1e400"}, "CACHEBRIDGE_EVENT_WAIT_S", "out of range", id="env-setting-overflow"),
    pytest.param("env", {ENV_BINDINGS: json_doc(), "CACHEBRIDGE_POLL_INTERVAL_S": "nan"}, "CACHEBRIDGE_POLL_INTERVAL_S", "out of range", id="env-setting-nan"),
    pytest.param("env", {ENV_BINDINGS: json_doc(), "CACHEBRIDGE_NAMESERVERS": "10.0.0.2:\u0665\u0663"}, "CACHEBRIDGE_NAMESERVERS", "not a nameserver", id="env-nameserver-digits"),
    # -- flags -----------------------------------------------------------------------------------
    pytest.param("flags", {"port": "\u0663"}, "--port", "ASCII digits only", id="flag-arabic-indic-port"),
    pytest.param("flags", {"port": HUGE}, "--port", "ASCII digits only", id="flag-5000-digit-port"),
    pytest.param("flags", {"source": "elasticache://orders?role=primary&role=replicas"}, "--source", "given 2 times", id="flag-repeated-role"),
    pytest.param("flags", {"source": "dns://[::1"}, "--source", "is not a URL", id="flag-unclosed-bracket"),
]


def _load(kind: str, data: Any, tmp_path: Path) -> Config:
    if kind in ("toml", "yaml", "json"):
        path = tmp_path / f"c.{kind}"
        path.write_text(data, encoding="utf-8")
        return Config.from_file(path)
    if kind == "env":
        return Config.from_env(data)
    given = {"source": "elasticache://orders?role=primary", "target_group": "orders", **data}
    return Config.single(given["source"], given["target_group"], port=given.get("port"))


@pytest.mark.parametrize(("kind", "data", "field", "words"), CONFIG_CASES)
def test_hostile_config_gets_one_clear_error(kind: str, data: Any, field: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(kind, data, tmp_path)
    error = info.value
    assert error.field == field
    assert words in error.problem
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    assert len(text) < 600  # the value is quoted, not repeated in full


def _nested(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


def _sns(message: str) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": {"Type": "Notification", "Message": message}}]}


EVENT_CASES: list[Any] = [
    pytest.param(_sns('{"ElastiCache:FailoverComplete": ' + HUGE + "}"), "Records[0]: SNS Message:", "too large", id="sns-5000-digit-int"),
    pytest.param(_sns('{"ElastiCache:FailoverComplete": "orders", "n": ' + LONG + "}"), "Records[0]: SNS Message:", "too large", id="sns-30-digit-int"),
    pytest.param(_sns('{"ElastiCache:FailoverComplete": "orders", "x": ' + '{"a":' * 20_000 + "1" + "}" * 20_001), "Records[0]: SNS Message:", "nested deeper than 16", id="sns-recursion-bomb"),
    pytest.param(_sns('{"ElastiCache:FailoverComplete": "orders", "ElastiCache:FailoverComplete": "payments"}'), "Records[0]: SNS Message:", "duplicate key", id="sns-duplicate-event"),
    pytest.param(_sns('{"ElastiCache:FailoverComplete": NaN}'), "Records[0]: SNS Message:", "NaN is not a number", id="sns-nan"),
    pytest.param(_sns('{"ElastiCache:FailoverComplete": "' + "o" * (300 * 1024) + '"}'), "Records[0]: SNS Message:", "too large", id="sns-over-256-kib"),
    pytest.param(_sns('{"ElastiCache:FailoverComplete": 1e999}'), "Records[0]: SNS Message:", "not a finite number", id="sns-overflowing-float"),
    pytest.param({"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": "x", "MessageAttributes": _nested(1, 20)}}]},
                 "event.Records[0].Sns.MessageAttributes", "nested deeper than 16", id="event-deep-attributes"),
    pytest.param({"action": "sync", "dry_run": _nested(True, 20)}, "event.dry_run", "nested deeper than 16", id="invoke-deep-dry-run"),
    pytest.param({"Records": [{"EventSource": "aws:sns", "n": int(LONG)}]}, "event.Records[0].n", "too large", id="event-30-digit-int"),
]


@pytest.mark.parametrize(("raw", "prefix", "words"), EVENT_CASES)
def test_hostile_event_gets_one_clear_error(raw: Any, prefix: str, words: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(raw)
    text = str(info.value)
    assert text.startswith(prefix), text
    assert words in text
    assert "\n" not in text and len(text) < 600


def test_the_table_holds_at_least_sixty_bad_inputs() -> None:
    assert len(CONFIG_CASES) + len(EVENT_CASES) >= 60


# -- what is accepted -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["toml", "yaml", "json"])
def test_a_utf8_bom_is_accepted_in_files(kind: str, tmp_path: Path) -> None:
    text = {"toml": toml(), "yaml": yaml_doc(), "json": json_doc()}[kind]
    path = tmp_path / f"c.{kind}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    config = Config.from_file(path)
    assert config.bindings[0].port == 6379 and str(config.bindings[0].source) == "elasticache://orders?role=primary"


def test_a_utf8_bom_is_accepted_in_the_environment() -> None:
    config = Config.from_env({ENV_BINDINGS: "\ufeff" + json_doc(), "CACHEBRIDGE_MAX_CHANGES": "\ufeff7"})
    assert config.bindings[0].target_group == "orders" and config.settings.max_changes == 7


def test_yaml_reads_the_1_2_core_schema(tmp_path: Path) -> None:
    # YAML 1.1 would read 'yes' as true, 2001-12-14 as a date and 010 as eight.
    path = tmp_path / "c.yaml"
    path.write_text(yaml_doc(port="0x18EB", extra="    name: yes\n") + "  - source: dns://a.example\n    target_group: tg-b\n    port: 010\n    name: 2001-12-14\n")
    config = Config.from_file(path)
    assert [(b.name, b.port) for b in config.bindings] == [("yes", 6379), ("2001-12-14", 10)]


def test_one_role_is_still_read() -> None:
    config = Config.single("elasticache://orders?role=replicas", "orders", port="6380")
    assert str(config.bindings[0].source) == "elasticache://orders?role=replicas" and config.bindings[0].port == 6380


# -- through the CLI: exit 2, one line --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "files", "expected"),
    [
        pytest.param(["sync", "--config", "c.yaml", "--dry-run"], {"c.yaml": yaml_doc(port="1:46:19")},
                     "Error: bindings[0].port: '1:46:19' is not an integer (ASCII digits only)", id="yaml-sexagesimal"),
        pytest.param(["status", "--config", "c.json"], {"c.json": DEEP_JSON},
                     "Error: --config: c.json: nested deeper than 16 levels", id="json-recursion-bomb"),
        pytest.param(["sync", "--source", "elasticache://orders?role=primary&role=replicas", "--target-group", "orders"], {},
                     "Error: --source: given 2 times", id="repeated-role"),
        pytest.param(["sync", "--source", "dns://cache.example", "--target-group", "orders", "--port", "\u0663"], {},
                     "Error: --port: '\u0663' is not an integer (ASCII digits only)", id="arabic-indic-port"),
        pytest.param(["sync", "--config", "c.toml"], {"c.toml": TWO_BINDINGS_TOML},
                     "Error: bindings[1].target_group: target group 'orders' is already bound by 'a'", id="two-bindings-one-group"),
    ],
)
def test_the_cli_prints_one_line_and_exits_2(args: list[str], files: dict[str, str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = CliRunner().invoke(cli, args, env={"AWS_REGION": "us-east-1"})
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(expected), lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)

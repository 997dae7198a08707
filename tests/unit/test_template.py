"""The CloudFormation template: lint-clean, checkov-clean, and shaped the way issue 3 asks."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cachebridge import metrics
from cachebridge.config import DEFAULT_EVENT_WAIT_S, ENV_BINDINGS, Config, Settings
from cachebridge.deploy import template
from cachebridge.deploy.template import (
    MAX_ALLOWED_CIDRS,
    TOO_MANY_CIDRS,
    Variant,
    build,
    client_ingress_name,
    evaluate,
    render,
    validate_parameters,
    variants,
)
from cachebridge.deploy.template.controller import _endpoint_name
from cachebridge.handler import DEADLINE_MARGIN_S
from cachebridge.sync import BindingResult

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = build()
RESOURCES = TEMPLATE["Resources"]
SAMPLE_TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-TargetGroup-1A2B3C/0123456789abcdef"
SAMPLE_LISTENER_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/net/orders-LoadB-1A2B/0123456789abcdef/0123456789abcdef"
LIST_PARAMETERS = ("SubnetIds", "AllowedCidrs", "LambdaSubnetIds", "NodePorts")
VARIANTS = variants()
BASE = Variant("TCP", "TCP", "internet-facing", topic_given=False)


def props(logical_id: str) -> dict[str, Any]:
    return RESOURCES[logical_id]["Properties"]


def resolved(values: dict[str, str]) -> dict[str, Any]:
    """Parameter values as a Ref sees them: defaults filled in, lists split."""
    out: dict[str, Any] = {}
    for name, spec in TEMPLATE["Parameters"].items():
        raw = values.get(name, spec.get("Default"))
        if raw is not None:
            out[name] = str(raw).split(",") if name in LIST_PARAMETERS else str(raw)
    return out


def condition(name: str, values: dict[str, str]) -> bool:
    return evaluate({"Condition": name}, TEMPLATE, resolved(values))


def created(values: dict[str, str]) -> set[str]:
    """Logical ids of the resources a stack with these parameters would create."""
    return {rid for rid, res in RESOURCES.items() if "Condition" not in res or condition(res["Condition"], values)}


def substitute(text: str, values: dict[str, str]) -> str:
    """Fn::Sub with plain values; every ${Name} must be known."""

    def one(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return re.sub(r"\$\{([^}!]+)\}", one, text)


def references(node: Any) -> set[str]:
    """Every Ref, Fn::GetAtt and Fn::Sub ${X} target inside ``node``."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
                if not isinstance(value, str):
                    found |= references(value[1])
            else:
                found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def dependencies(logical_id: str) -> set[str]:
    resource = RESOURCES[logical_id]
    depends_on = resource.get("DependsOn", [])
    depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
    return (references(resource.get("Properties", {})) | set(depends_on)) & set(RESOURCES)


def all_dependencies(logical_id: str) -> set[str]:
    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        for dep in dependencies(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def policy_statements(values: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The role's statements as a stack with these parameters has them (Fn::If resolved)."""
    values = values if values is not None else BASE.parameters()
    found = []
    for policy in props("ControllerRole")["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                name, then, otherwise = statement["Fn::If"]
                statement = then if condition(name, values) else otherwise
            if statement != {"Ref": "AWS::NoValue"}:
                found.append(statement)
    return found


def bindings_text(layout: str = "retarget") -> str:
    """The Fn::Sub text of CACHEBRIDGE_BINDINGS in one layout."""
    value = props("ControllerFunction")["Environment"]["Variables"][ENV_BINDINGS]["Fn::If"]
    assert value[0] == "IsSwitch"
    others = value[2]["Fn::If"]
    assert others[0] == "IsCluster"
    chosen = {"switch": value[1], "cluster": others[1]}.get(layout, others[2])
    sub = chosen["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


RETARGET_VALUES = {"ReplicationGroupId": "orders", "TargetGroup": SAMPLE_TG_ARN, "ReaderTargetGroup": SAMPLE_TG_ARN.replace("TargetGroup-1A2B3C", "Reader-4D5E6F"), "CachePort": "6379"}


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else value


# -- rendering -----------------------------------------------------------------------------

def test_yaml_and_json_render_the_same_template() -> None:
    assert yaml.safe_load(render("yaml")) == TEMPLATE
    assert json.loads(render("json")) == TEMPLATE


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown template format"):
        render("toml")


def test_build_returns_an_independent_copy() -> None:
    first = build()
    first["Resources"].clear()
    assert build()["Resources"] == RESOURCES


# -- cfn-lint ------------------------------------------------------------------------------

def cfn_lint(text: str, parameters: dict[str, str] | None = None, *more: dict[str, str]) -> list[str]:
    """cfn-lint's findings on ``text``, resolved with each parameter set given (one run)."""
    from cfnlint.api import ManualArgs, lint

    config: dict[str, Any] = {"regions": ["us-east-1", "eu-west-1"], "include_checks": ["I"]}
    if parameters is not None:
        config["parameters"] = [
            {k: (v.split(",") if k in LIST_PARAMETERS else v) for k, v in values.items()} for values in (parameters, *more)
        ]
    return [str(match) for match in lint(text, config=ManualArgs(**config))]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_cfn_lint_reports_nothing_for_the_template(fmt: str) -> None:
    assert cfn_lint(render(fmt)) == []


def test_cfn_lint_reports_nothing_for_each_supported_variant() -> None:
    # One run over every variant's parameters (a run per variant takes a minute more); a
    # finding names no variant, so then each is linted alone to say which.
    if cfn_lint(render(), *(v.parameters() for v in VARIANTS)):
        findings = {v.name: cfn_lint(render(), v.parameters()) for v in VARIANTS}
        assert {name: found for name, found in findings.items() if found} == {}


def test_cfn_lint_over_several_variants_reports_the_one_bad_among_them() -> None:
    sets = [v.parameters() for v in VARIANTS[:3]] + [BASE.parameters(CachePort="70000")]
    assert any("CachePort" in m for m in cfn_lint(render(), *sets))


def test_cfn_lint_with_parameters_does_report_bad_values() -> None:
    messages = cfn_lint(render(), BASE.parameters(CachePort="70000", HealthCheckIntervalSeconds="3"))
    assert any("CachePort" in m for m in messages)
    assert any("HealthCheckIntervalSeconds" in m for m in messages)


def test_cfn_lint_cli_on_rendered_files(tmp_path: Path) -> None:
    for fmt in ("yaml", "json"):
        path = tmp_path / f"cachebridge.{fmt}"
        path.write_text(render(fmt), encoding="utf-8")
        result = subprocess.run(
            [str(Path(sys.executable).parent / "cfn-lint"), "--include-checks", "I", "--", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode, result.stdout) == (0, "")


# -- checkov -------------------------------------------------------------------------------

def checkov_binary() -> str:
    """checkov pins an old boto3, so it lives in its own virtualenv (.venv-checkov)."""
    for candidate in (os.environ.get("CHECKOV"), str(ROOT / ".venv-checkov" / "bin" / "checkov"), shutil.which("checkov")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "checkov not found: python -m venv .venv-checkov && .venv-checkov/bin/pip install checkov==3.2.500 "
        "(or set CHECKOV to its path)"
    )


@pytest.fixture(scope="module")
def checkov_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("checkov") / "cachebridge.yaml"
    path.write_text(render(), encoding="utf-8")
    result = subprocess.run(
        [checkov_binary(), "-f", str(path), "--framework", "cloudformation", "--output", "json", "--skip-download"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0
    return report


def test_checkov_fails_no_check(checkov_results: dict[str, Any]) -> None:
    failed = [(c["check_id"], c["resource"]) for c in checkov_results["results"]["failed_checks"]]
    assert failed == []
    assert checkov_results["summary"]["passed"] > 0


def declared_suppressions() -> dict[tuple[str, str], str]:
    found = {}
    for rid, resource in RESOURCES.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            found[(skip["id"], f"{resource['Type']}.{rid}")] = skip["comment"]
    return found


def test_each_suppression_has_a_one_line_reason() -> None:
    suppressions = declared_suppressions()
    assert suppressions
    for key, comment in suppressions.items():
        assert comment.strip() and "\n" not in comment and len(comment) >= 20, key


def test_every_suppression_is_one_checkov_actually_skips(checkov_results: dict[str, Any]) -> None:
    skipped = {
        (c["check_id"], c["resource"]): c["check_result"].get("suppress_comment")
        for c in checkov_results["results"]["skipped_checks"]
    }
    assert skipped == declared_suppressions()


# -- parameters and interface --------------------------------------------------------------

ISSUE_PARAMETERS = {
    "VpcId", "SubnetIds", "Scheme", "ReplicationGroupId", "CacheSecurityGroupId", "CachePort",
    "AllowedCidrs", "AllowAnySource", "ListenerPort", "ListenerProtocol", "CertificateArn",
    "TargetProtocol", "ScheduleExpression", "ScheduleRuleName", "NotificationTopicArn",
    "HealthCheckIntervalSeconds", "HealthyThreshold", "DeregistrationDelaySeconds", "CodeBucket", "CodeKey",
    "Layout", "ReaderPort", "NodePorts",
    "TcpIdleTimeoutSeconds", "ReservedConcurrency", "LambdaSubnetIds", "LambdaSecurityGroupId", "CreateVpcEndpoints",
    "ExtraBindings", "ConfigFile", "VpcCidrs",
}


def test_parameters_are_the_ones_the_issue_lists() -> None:
    assert set(TEMPLATE["Parameters"]) == ISSUE_PARAMETERS
    for name, spec in TEMPLATE["Parameters"].items():
        assert spec.get("Description"), name


def test_interface_groups_every_parameter_once_and_labels_it() -> None:
    interface = TEMPLATE["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [p for group in interface["ParameterGroups"] for p in group["Parameters"]]
    assert sorted(grouped) == sorted(ISSUE_PARAMETERS)
    assert all(group["Label"]["default"] for group in interface["ParameterGroups"])
    assert set(interface["ParameterLabels"]) == ISSUE_PARAMETERS


def test_allowed_cidrs_is_a_required_list_without_default() -> None:
    spec = TEMPLATE["Parameters"]["AllowedCidrs"]
    assert spec["Type"] == "CommaDelimitedList"
    assert "Default" not in spec
    assert str(MAX_ALLOWED_CIDRS) in spec["Description"]
    assert "AllowedCidrs: required" in validate_parameters(
        {k: v for k, v in BASE.parameters().items() if k != "AllowedCidrs"}
    )


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("Scheme", "internet-facing"),
        ("CachePort", 6379),
        ("ListenerPort", 6379),
        ("ListenerProtocol", "TCP"),
        ("TargetProtocol", "TCP"),
        ("AllowAnySource", "false"),
        ("CertificateArn", ""),
        ("ScheduleExpression", "rate(1 minute)"),
        ("ScheduleRuleName", ""),
        ("NotificationTopicArn", ""),
        ("HealthCheckIntervalSeconds", 10),
        ("HealthyThreshold", 2),
    ],
)
def test_parameter_defaults(name: str, default: Any) -> None:
    assert TEMPLATE["Parameters"][name]["Default"] == default


def test_deregistration_delay_defaults_to_a_few_seconds() -> None:
    assert 0 < TEMPLATE["Parameters"]["DeregistrationDelaySeconds"]["Default"] <= 10


@pytest.mark.parametrize("name", ["ListenerProtocol", "TargetProtocol"])
def test_protocols_are_tcp_or_tls(name: str) -> None:
    assert TEMPLATE["Parameters"][name]["AllowedValues"] == ["TCP", "TLS"]


# -- rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("cidrs", "allow_any", "refused"),
    [
        ("0.0.0.0/0", "false", True),
        ("203.0.113.0/24,0.0.0.0/0", "false", True),
        ("0.0.0.0/0", "true", False),
        ("203.0.113.0/24", "false", False),
        ("203.0.113.0/24", "true", False),
        ("10.0.0.0/0", "true", True),
        ("0.0.0.0/00", "true", True),
        ("300.1.2.3/32", "false", True),
        ("203.0.113.0/24, 198.51.100.0/24", "false", True),
    ],
)
def test_any_source_is_refused_unless_allowed_on_purpose(cidrs: str, allow_any: str, refused: bool) -> None:
    problems = validate_parameters(BASE.parameters(AllowedCidrs=cidrs, AllowAnySource=allow_any))
    assert bool(problems) == refused, problems


def test_the_any_source_refusal_comes_from_the_template_rule() -> None:
    values = BASE.parameters(AllowedCidrs="0.0.0.0/0")
    assert any(p.startswith("AllowAnySourceOnPurpose:") for p in validate_parameters(values))
    without_rule = copy.deepcopy(TEMPLATE)
    del without_rule["Rules"]["AllowAnySourceOnPurpose"]
    # The breadth guard (a Condition, checked when the stack is created) still refuses it.
    assert validate_parameters(values, template=without_rule) == [
        "AllowedCidrs: the ranges together cover more than a /8; set AllowAnySource=true to allow that on purpose"
    ]


def test_any_source_rule_expression() -> None:
    rule = TEMPLATE["Rules"]["AllowAnySourceOnPurpose"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AllowAnySource"}, "true"]}]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Contains": [{"Ref": "AllowedCidrs"}, "0.0.0.0/0"]}]}


@pytest.mark.parametrize(
    ("listener", "certificate", "refused"),
    [
        ("TLS", "", True),
        ("TLS", "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", False),
        ("TCP", "", False),
        ("TLS", "not-an-arn", True),
    ],
)
def test_tls_listener_needs_a_certificate(listener: str, certificate: str, refused: bool) -> None:
    values = BASE.parameters(ListenerProtocol=listener, CertificateArn=certificate)
    assert bool(validate_parameters(values)) == refused


def test_the_certificate_refusal_comes_from_the_template_rule() -> None:
    values = BASE.parameters(ListenerProtocol="TLS", CertificateArn="")
    assert validate_parameters(values) == ["TlsListenerNeedsCertificate: ListenerProtocol TLS needs CertificateArn"]
    without_rule = copy.deepcopy(TEMPLATE)
    del without_rule["Rules"]["TlsListenerNeedsCertificate"]
    assert validate_parameters(values, template=without_rule) == []


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_every_supported_variant_passes_validation(variant: Variant) -> None:
    assert validate_parameters(variant.parameters(), stack_name="orders-bridge") == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"CachePort": "0"}, "CachePort: 0 is not within 1..65535"),
        ({"Scheme": "public"}, "Scheme: 'public' is not one of internet-facing, internal"),
        ({"ReplicationGroupId": "Orders"}, "ReplicationGroupId: 'Orders' is not"),
        ({"ScheduleExpression": "every minute"}, "ScheduleExpression: 'every minute' is not"),
        ({"NotificationTopicArn": "topic"}, "NotificationTopicArn: 'topic' is not"),
        ({"Bogus": "1"}, "Bogus: unknown parameter"),
        ({"HealthyThreshold": "1"}, "HealthyThreshold: 1 is not within 2..10"),
    ],
)
def test_validate_parameters_names_the_problem(overrides: dict[str, str], expected: str) -> None:
    problems = validate_parameters(BASE.parameters(**overrides))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_derived_schedule_rule_name_must_fit() -> None:
    long_name = "s" * 60
    assert any(p.startswith("ScheduleRuleName:") for p in validate_parameters(BASE.parameters(), stack_name=long_name))
    assert validate_parameters(BASE.parameters(ScheduleRuleName="orders-sync"), stack_name=long_name) == []
    assert validate_parameters(BASE.parameters(), stack_name="s" * 59) == []


# -- the NLB security group and AllowedCidrs -----------------------------------------------

CIDRS = ["203.0.113.0/24", "198.51.100.7/32", "192.0.2.0/25", "100.64.0.0/10", "172.16.0.0/12", "10.0.0.0/8"]


@pytest.mark.parametrize("count", range(1, MAX_ALLOWED_CIDRS + 1))
def test_one_ingress_rule_per_allowed_cidr(count: int) -> None:
    values = BASE.parameters(AllowedCidrs=",".join(CIDRS[:count]))
    ingress = sorted(rid for rid in created(values) if rid.startswith("ClientIngress"))
    assert ingress == [client_ingress_name(i) for i in range(count)]
    parameters = resolved(values)
    assert [evaluate(props(rid)["CidrIp"], TEMPLATE, parameters) for rid in ingress] == CIDRS[:count]
    assert TOO_MANY_CIDRS not in {RESOURCES[r].get("Condition") for r in created(values)}
    assert validate_parameters(values) == []


def test_more_cidrs_than_supported_create_the_failing_guard() -> None:
    values = BASE.parameters(AllowedCidrs=",".join(CIDRS[: MAX_ALLOWED_CIDRS + 1]))
    guard = {rid for rid in created(values) if RESOURCES[rid].get("Condition") == TOO_MANY_CIDRS}
    assert guard == {"AllowedCidrsLimitHandle", "AllowedCidrsLimitExceeded"}
    wait = props("AllowedCidrsLimitExceeded")
    assert wait["Handle"] == {"Ref": "AllowedCidrsLimitHandle"}
    assert int(wait["Timeout"]) <= 5
    # Nobody can signal the handle: nothing else refers to it.
    assert [rid for rid in RESOURCES if "AllowedCidrsLimitHandle" in dependencies(rid)] == ["AllowedCidrsLimitExceeded"]
    assert "AllowedCidrsLimitHandle" not in references(TEMPLATE["Outputs"])
    assert f"AllowedCidrs: at most {MAX_ALLOWED_CIDRS} ranges" in validate_parameters(values)


def test_client_ingress_is_only_the_listener_ports_into_the_nlb_group() -> None:
    last = len([r for r in RESOURCES if r.startswith("NodeListener")]) - 1
    for index in range(MAX_ALLOWED_CIDRS):
        rule = props(client_ingress_name(index))
        assert rule["GroupId"] == {"Fn::GetAtt": ["LoadBalancerSecurityGroup", "GroupId"]}
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", {"Ref": "ListenerPort"}, {"Ref": "ListenerPort"})
        reader = props(f"ReaderIngress{index + 1}")
        assert (reader["FromPort"], reader["ToPort"], reader["CidrIp"]) == ({"Ref": "ReaderPort"}, {"Ref": "ReaderPort"}, rule["CidrIp"])
        nodes = RESOURCES[f"NodeIngress{index + 1}"]
        assert nodes["Condition"] == ("HasNodeSlots" if index == 0 else f"SwitchAllowedCidr{index + 1}")
        assert (nodes["Properties"]["FromPort"], nodes["Properties"]["ToPort"]) == (
            {"Fn::Select": [0, {"Ref": "NodePorts"}]}, {"Fn::Select": [last, {"Ref": "NodePorts"}]}
        )
    group = props("LoadBalancerSecurityGroup")
    assert "SecurityGroupIngress" not in group
    ingress_rules = [r for r in RESOURCES.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    assert len(ingress_rules) == 3 * MAX_ALLOWED_CIDRS + 1


def test_nlb_security_group_only_reaches_the_cache_port() -> None:
    assert props("LoadBalancerSecurityGroup")["SecurityGroupEgress"] == [
        {
            "IpProtocol": "tcp",
            "FromPort": {"Ref": "CachePort"},
            "ToPort": {"Ref": "CachePort"},
            "DestinationSecurityGroupId": {"Ref": "CacheSecurityGroupId"},
            "Description": "to the cache nodes: traffic and health checks",
        }
    ]


def test_nlb_gets_its_security_group_at_creation() -> None:
    nlb = props("LoadBalancer")
    assert nlb["Type"] == "network"
    assert nlb["Scheme"] == {"Ref": "Scheme"}
    assert nlb["SecurityGroups"] == [{"Fn::GetAtt": ["LoadBalancerSecurityGroup", "GroupId"]}]


def test_cache_admits_the_nlb_security_group_only() -> None:
    rule = props("CacheIngressFromLoadBalancer")
    assert rule["GroupId"] == {"Ref": "CacheSecurityGroupId"}
    assert rule["SourceSecurityGroupId"] == {"Fn::GetAtt": ["LoadBalancerSecurityGroup", "GroupId"]}
    assert (rule["FromPort"], rule["ToPort"]) == ({"Ref": "CachePort"}, {"Ref": "CachePort"})
    assert not {"CidrIp", "CidrIpv6", "SourcePrefixListId"} & set(rule)


# -- listener and target group -------------------------------------------------------------

def test_target_group_follows_failover_quickly() -> None:
    tg = props("TargetGroup")
    assert tg["TargetType"] == "ip"
    assert tg["Port"] == {"Ref": "CachePort"}
    attributes = {a["Key"]: a["Value"] for a in tg["TargetGroupAttributes"]}
    assert attributes == {
        "deregistration_delay.timeout_seconds": {"Ref": "DeregistrationDelaySeconds"},
        "deregistration_delay.connection_termination.enabled": "true",
        "load_balancing.cross_zone.enabled": "true",
    }
    assert tg["HealthCheckIntervalSeconds"] == {"Ref": "HealthCheckIntervalSeconds"}
    assert tg["HealthyThresholdCount"] == {"Ref": "HealthyThreshold"}
    assert tg["HealthCheckTimeoutSeconds"] < TEMPLATE["Parameters"]["HealthCheckIntervalSeconds"]["MinValue"]
    assert "Name" not in tg


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_protocols_and_url_per_variant(variant: Variant) -> None:
    values = variant.parameters()
    parameters = resolved(values)
    listener = props("Listener")
    assert evaluate(listener["Protocol"], TEMPLATE, parameters) == variant.listener_protocol
    tls_listener = variant.listener_protocol == "TLS"
    assert condition("TerminateTls", values) is tls_listener
    certificates = listener["Certificates"]["Fn::If"]
    assert certificates[0] == "TerminateTls"
    assert certificates[1] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    expected_tg = "TLS" if (tls_listener and variant.target_protocol == "TLS") else "TCP"
    assert evaluate(props("TargetGroup")["Protocol"], TEMPLATE, parameters) == expected_tg
    url = TEMPLATE["Outputs"]["ConnectionUrl"]["Value"]["Fn::Sub"]
    scheme = evaluate(url[1]["UrlScheme"], TEMPLATE, parameters)
    assert scheme == ("rediss" if variant.client_speaks_tls else "redis")
    assert url[0] == "${UrlScheme}://${LoadBalancer.DNSName}:${ListenerPort}"
    assert ("NotificationTopic" in created(values)) is (not variant.topic_given)


def test_variants_cover_every_combination() -> None:
    assert len(VARIANTS) == len(set(VARIANTS)) == 20
    outside = [v for v in VARIANTS if v.lambda_network == "outside-vpc"]
    assert {v.lambda_network for v in VARIANTS} == {"outside-vpc", "vpc", "vpc-endpoints"}
    assert {(v.listener_protocol, v.target_protocol, v.scheme, v.topic_given) for v in outside} == {
        (listener, target, scheme, topic)
        for listener in ("TCP", "TLS")
        for target in ("TCP", "TLS")
        for scheme in ("internet-facing", "internal")
        for topic in (True, False)
    }


def test_tls_listener_uses_a_tls12_or_later_policy() -> None:
    policy = props("Listener")["SslPolicy"]["Fn::If"]
    assert policy[0] == "ListenerIsTls"
    assert "TLS13" in policy[1] or "TLS-1-2" in policy[1]


# -- the controller ------------------------------------------------------------------------

def test_function_runtime_handler_and_concurrency() -> None:
    fn = props("ControllerFunction")
    assert fn["Runtime"] in ("python3.12", "python3.13")
    assert fn["Handler"] == "cachebridge.handler.handler"
    assert fn["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}


def test_reserved_concurrency_is_off_unless_asked_for() -> None:
    # A reservation fails stack creation when less than 100 would stay unreserved.
    spec = TEMPLATE["Parameters"]["ReservedConcurrency"]
    assert (spec["Type"], spec["Default"], spec["MinValue"]) == ("Number", 0, 0)
    assert props("ControllerFunction")["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert not condition("HasReservedConcurrency", BASE.parameters())
    assert not condition("HasReservedConcurrency", BASE.parameters(ReservedConcurrency="0"))
    assert condition("HasReservedConcurrency", BASE.parameters(ReservedConcurrency="2"))
    assert validate_parameters(BASE.parameters(ReservedConcurrency="2")) == []
    assert validate_parameters(BASE.parameters(ReservedConcurrency="-1")) == ["ReservedConcurrency: -1 is not within 0..1000"]


# -- the controller in the VPC -------------------------------------------------------------

IN_VPC = Variant("TCP", "TCP", "internal", False, "vpc")
WITH_ENDPOINTS = Variant("TCP", "TCP", "internal", False, "vpc-endpoints")
NETWORK_RESOURCES = {"ControllerSecurityGroup", "VpcEndpointSecurityGroup", *(_endpoint_name(s) for s in template.VPC_ENDPOINT_SERVICES)}


def test_outside_the_vpc_by_default() -> None:
    values = BASE.parameters()
    assert not condition("FunctionInVpc", values)
    assert not created(values) & NETWORK_RESOURCES
    assert props("ControllerFunction")["VpcConfig"]["Fn::If"][0] == "FunctionInVpc"
    assert props("ControllerFunction")["VpcConfig"]["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    assert not [s for s in policy_statements(values) if any(a.startswith("ec2:Create") for a in actions(s))]


def test_lambda_subnets_put_the_function_in_the_vpc_with_its_own_https_only_group() -> None:
    values = IN_VPC.parameters()
    assert condition("FunctionInVpc", values)
    assert created(values) & NETWORK_RESOURCES == {"ControllerSecurityGroup"}
    vpc_config = props("ControllerFunction")["VpcConfig"]["Fn::If"][1]
    assert vpc_config["SubnetIds"] == {"Ref": "LambdaSubnetIds"}
    (group,) = vpc_config["SecurityGroupIds"]
    assert group == {"Fn::If": ["CreateControllerSecurityGroup", {"Fn::GetAtt": ["ControllerSecurityGroup", "GroupId"]}, {"Ref": "LambdaSecurityGroupId"}]}
    egress = props("ControllerSecurityGroup")["SecurityGroupEgress"]
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in egress] == [("tcp", 443, 443)]
    assert "SecurityGroupIngress" not in props("ControllerSecurityGroup")


def test_a_given_lambda_security_group_is_used_instead_of_a_created_one() -> None:
    values = IN_VPC.parameters(LambdaSecurityGroupId="sg-0a1b2c3d4e5f60799")
    assert condition("FunctionInVpc", values)
    assert not condition("CreateControllerSecurityGroup", values)
    assert "ControllerSecurityGroup" not in created(values)


def test_in_the_vpc_the_role_may_manage_the_function_network_interfaces() -> None:
    # Lambda checks these when it creates a function with VpcConfig.
    extra = [s for s in policy_statements(IN_VPC.parameters()) if s not in policy_statements(BASE.parameters())]
    assert extra == [template.VPC_ACCESS_STATEMENT]
    assert {"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface"} <= set(actions(extra[0]))


def test_endpoints_only_when_asked_for_one_per_api_the_controller_calls() -> None:
    assert created(IN_VPC.parameters()) & NETWORK_RESOURCES == {"ControllerSecurityGroup"}
    values = WITH_ENDPOINTS.parameters()
    assert created(values) >= NETWORK_RESOURCES
    pseudo = {"AWS::Region": "eu-west-1"}
    services = set()
    for service in template.VPC_ENDPOINT_SERVICES:
        endpoint = props(_endpoint_name(service))
        assert endpoint["VpcEndpointType"] == "Interface"
        assert endpoint["PrivateDnsEnabled"] is True
        assert endpoint["SubnetIds"] == {"Ref": "LambdaSubnetIds"}
        assert endpoint["SecurityGroupIds"] == [{"Fn::GetAtt": ["VpcEndpointSecurityGroup", "GroupId"]}]
        services.add(evaluate(endpoint["ServiceName"], TEMPLATE, resolved(values), pseudo))
    # Every service the role's policy calls has an endpoint (logs go through Lambda itself).
    called = {a.split(":")[0] for s in policy_statements(BASE.parameters()) for a in actions(s)} - {"logs"}
    assert services == {f"com.amazonaws.eu-west-1.{service}" for service in called}
    (ingress,) = props("VpcEndpointSecurityGroup")["SecurityGroupIngress"]
    assert (ingress["FromPort"], ingress["ToPort"]) == (443, 443)
    assert ingress["SourceSecurityGroupId"] == props("ControllerFunction")["VpcConfig"]["Fn::If"][1]["SecurityGroupIds"][0]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"CreateVpcEndpoints": "true"}, "VpcOptionsNeedLambdaSubnets: CreateVpcEndpoints needs LambdaSubnetIds"),
        ({"LambdaSecurityGroupId": "sg-0a1b2c3d4e5f60799"}, "VpcOptionsNeedLambdaSubnets: LambdaSecurityGroupId needs LambdaSubnetIds"),
        ({"LambdaSubnetIds": "subnet-0a1b2c3d4e5f60744,nope"}, "LambdaSubnetIds: 'nope' is not empty, or subnet ids"),
    ],
)
def test_vpc_options_without_lambda_subnets_are_refused(overrides: dict[str, str], problem: str) -> None:
    assert any(p.startswith(problem) for p in validate_parameters(BASE.parameters(**overrides))), validate_parameters(BASE.parameters(**overrides))


def baked_settings() -> Settings:
    return Config.from_env({ENV_BINDINGS: substitute(bindings_text(), RETARGET_VALUES)}).settings


def test_function_timeout_leaves_the_whole_event_wait() -> None:
    timeout = props("ControllerFunction")["Timeout"]
    assert timeout > DEFAULT_EVENT_WAIT_S + DEADLINE_MARGIN_S
    assert timeout > baked_settings().event_wait_s + DEADLINE_MARGIN_S


def test_settings_that_outlast_the_timeout_are_refused() -> None:
    with pytest.raises(ValueError, match="event_wait_s"):
        build(Settings(event_wait_s=float(template.FUNCTION_TIMEOUT_S)))


@pytest.mark.parametrize(
    ("rg", "port"),
    [("orders", "6379"), ("sessions-eu-1", "6380"), ("a", "1"), ("cache-" + "x" * 33, "65535")],
)
def test_bindings_env_is_the_config_model(rg: str, port: str) -> None:
    value = substitute(bindings_text(), {**RETARGET_VALUES, "ReplicationGroupId": rg, "CachePort": port})
    config = Config.from_env({ENV_BINDINGS: value})
    (binding, reader) = config.bindings
    assert str(binding.source) == f"elasticache://{rg}?role=primary"
    assert binding.target_group == SAMPLE_TG_ARN
    assert binding.port == int(port)
    assert (str(reader.source), reader.target_group, reader.name) == (f"elasticache://{rg}?role=replicas", RETARGET_VALUES["ReaderTargetGroup"], f"{rg}-replicas")
    assert config.settings == Settings()
    assert value == Config(bindings=config.bindings).bindings_json()


def test_bindings_env_carries_the_settings_it_was_built_with() -> None:
    settings = Settings(max_changes=2, event_wait_s=20.0, nameservers=("10.0.0.2:53",))
    fn = build(settings)["Resources"]["ControllerFunction"]["Properties"]
    _, switch, others = fn["Environment"]["Variables"][ENV_BINDINGS]["Fn::If"]
    for branch in (switch, *others["Fn::If"][1:]):
        sub = branch["Fn::Sub"]
        text = sub if isinstance(sub, str) else sub[0]
        value = re.sub(r"\$\{NodeTargetGroup(\d+)Name\}", r"orders-n\1", text).replace("${Listener}", SAMPLE_LISTENER_ARN)
        assert Config.from_env({ENV_BINDINGS: substitute(value, RETARGET_VALUES)}).settings == settings


def test_bindings_env_refers_only_to_parameters_and_this_target_group() -> None:
    assert set(re.findall(r"\$\{([^}]+)\}", bindings_text())) == {"ReplicationGroupId", "TargetGroup", "ReaderTargetGroup", "CachePort"}
    assert RESOURCES["TargetGroup"]["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"
    slots = [r for r in RESOURCES if r.startswith("NodeTargetGroup")]
    assert set(re.findall(r"\$\{([^}]+)\}", bindings_text("switch"))) == {
        "ReplicationGroupId", "Listener", "ReaderTargetGroup", "CachePort", *(f"{slot}Name" for slot in slots)
    }


def test_function_logs_to_its_own_log_group_with_retention() -> None:
    fn = props("ControllerFunction")
    assert fn["LoggingConfig"]["LogGroup"] == {"Ref": "ControllerLogGroup"}
    log_group = RESOURCES["ControllerLogGroup"]
    assert log_group["Properties"]["RetentionInDays"] > 0
    assert log_group["DeletionPolicy"] == log_group["UpdateReplacePolicy"] == "Delete"


# -- IAM -----------------------------------------------------------------------------------

def test_register_and_deregister_only_on_this_stacks_target_groups() -> None:
    writes = [s for s in policy_statements() if {"elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"} & set(actions(s))]
    assert len(writes) == 1
    assert sorted(actions(writes[0])) == ["elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets"]
    slots = [r for r in RESOURCES if r.startswith("NodeTargetGroup")]
    assert writes[0]["Resource"] == [
        {"Fn::If": ["HasReader", {"Ref": "ReaderTargetGroup"}, {"Ref": "AWS::NoValue"}]},
        {"Fn::If": ["HasTargetGroup", {"Ref": "TargetGroup"}, {"Ref": "AWS::NoValue"}]},
        *({"Fn::If": ["HasNodeSlots", {"Ref": slot}, {"Ref": "AWS::NoValue"}]} for slot in slots),
    ]


def test_modify_listener_only_on_this_stacks_primary_listener() -> None:
    (statement,) = [s for s in policy_statements() if "elasticloadbalancing:ModifyListener" in actions(s)]
    assert actions(statement) == ["elasticloadbalancing:ModifyListener"]
    assert statement["Resource"] == {"Ref": "Listener"}
    (tagging,) = [s for s in policy_statements() if "elasticloadbalancing:AddTags" in actions(s)]
    assert sorted(actions(tagging)) == ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]
    assert tagging["Resource"] == [{"Ref": r} for r in RESOURCES if r.startswith("NodeTargetGroup")]


def test_policy_allows_exactly_what_the_controller_calls_outside_the_vpc() -> None:
    granted = {a for s in policy_statements() for a in actions(s)}
    assert granted == {
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:AddTags",
        "elasticloadbalancing:RemoveTags",
        "elasticache:DescribeReplicationGroups",
        "elasticache:DescribeCacheClusters",
        "ec2:DescribeVpcs",
        "dynamodb:UpdateItem",
        "dynamodb:BatchGetItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert all(s["Effect"] == "Allow" and "*" not in "".join(actions(s)) for s in policy_statements())


def test_wildcard_resources_only_for_describe_calls() -> None:
    for statement in policy_statements():
        if statement["Resource"] == "*":
            assert all(a.split(":")[1].startswith("Describe") for a in actions(statement)), statement
    # In the VPC, the network interface actions (as AWSLambdaVPCAccessExecutionRole has them).
    for statement in policy_statements(IN_VPC.parameters()):
        if statement["Resource"] == "*" and statement != template.VPC_ACCESS_STATEMENT:
            assert all(a.split(":")[1].startswith("Describe") for a in actions(statement)), statement


def test_logs_go_to_the_own_log_group_only() -> None:
    (statement,) = [s for s in policy_statements() if any(a.startswith("logs:") for a in actions(s))]
    assert statement["Resource"] == {"Fn::GetAtt": ["ControllerLogGroup", "Arn"]}
    assert "logs:CreateLogGroup" not in actions(statement)


def test_no_s3_and_no_managed_policies_at_run_time() -> None:
    role = props("ControllerRole")
    assert "ManagedPolicyArns" not in role
    assert not any(a.startswith("s3:") for s in policy_statements() for a in actions(s))
    assert not [r for r in RESOURCES.values() if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]


# -- names, ordering and deletion ----------------------------------------------------------

PHYSICAL_NAMES = {
    "AWS::EC2::SecurityGroup": "GroupName",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "Name",
    "AWS::ElasticLoadBalancingV2::TargetGroup": "Name",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::CloudWatch::Alarm": "AlarmName",
}


def test_no_fixed_physical_names() -> None:
    for rid, resource in RESOURCES.items():
        name_property = PHYSICAL_NAMES.get(resource["Type"])
        if name_property:
            assert name_property not in resource.get("Properties", {}), rid
    assert "Export" not in json.dumps(TEMPLATE["Outputs"])


def schedule_rule_name(values: dict[str, str], stack_name: str) -> str:
    return evaluate(props("Schedule")["Name"], TEMPLATE, resolved(values), {"AWS::StackName": stack_name})


def test_schedule_rule_name_is_given_or_derived_from_the_stack_name() -> None:
    assert schedule_rule_name(BASE.parameters(), "orders-a") == "orders-a-sync"
    assert schedule_rule_name(BASE.parameters(), "orders-b") == "orders-b-sync"
    assert schedule_rule_name(BASE.parameters(ScheduleRuleName="mine"), "orders-a") == "mine"


def test_schedule_permission_names_the_same_rule() -> None:
    pseudo = {"AWS::StackName": "orders-a", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    for values in (BASE.parameters(), BASE.parameters(ScheduleRuleName="mine")):
        arn = evaluate(props("SchedulePermission")["SourceArn"], TEMPLATE, resolved(values), pseudo)
        assert arn == f"arn:aws:events:eu-west-1:123456789012:rule/{schedule_rule_name(values, 'orders-a')}"
    assert props("SchedulePermission")["Principal"] == "events.amazonaws.com"
    assert props("Schedule")["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert props("Schedule")["Targets"][0]["Arn"] == {"Fn::GetAtt": ["ControllerFunction", "Arn"]}


def test_subscription_and_permission_use_the_given_or_created_topic() -> None:
    topic = {"Fn::If": ["CreateTopic", {"Ref": "NotificationTopic"}, {"Ref": "NotificationTopicArn"}]}
    assert props("TopicSubscription")["TopicArn"] == topic
    assert props("TopicPermission")["SourceArn"] == topic
    assert TEMPLATE["Outputs"]["NotificationTopicArn"]["Value"] == topic
    assert props("TopicSubscription")["Protocol"] == "lambda"
    assert props("TopicPermission")["Principal"] == "sns.amazonaws.com"
    assert RESOURCES["NotificationTopic"]["Condition"] == "CreateTopic"


@pytest.mark.parametrize(
    ("resource", "needs"),
    [
        ("ControllerFunction", {"ControllerLogGroup", "ControllerRole"}),
        ("Schedule", {"SchedulePermission", "ControllerFunction"}),
        ("TopicSubscription", {"TopicPermission", "ControllerFunction"}),
        ("LoadBalancer", {"LoadBalancerSecurityGroup"}),
        ("CacheIngressFromLoadBalancer", {"LoadBalancerSecurityGroup"}),
        ("Listener", {"LoadBalancer", "TargetGroup"}),
        ("ControllerRole", {"TargetGroup", "ControllerLogGroup"}),
    ],
)
def test_creation_order(resource: str, needs: set[str]) -> None:
    assert needs <= dependencies(resource)


def test_explicit_depends_on_where_nothing_is_referenced() -> None:
    assert RESOURCES["Schedule"]["DependsOn"] == ["SchedulePermission"]
    assert RESOURCES["TopicSubscription"]["DependsOn"] == ["TopicPermission"]
    assert "SchedulePermission" not in references(props("Schedule"))
    assert "TopicPermission" not in references(props("TopicSubscription"))


def test_the_role_policy_is_part_of_the_role_the_function_waits_for() -> None:
    assert props("ControllerRole")["Policies"]
    assert props("ControllerFunction")["Role"] == {"Fn::GetAtt": ["ControllerRole", "Arn"]}


def test_dependency_graph_has_no_cycle() -> None:
    for rid in RESOURCES:
        assert rid not in all_dependencies(rid)


def test_nothing_blocks_deletion() -> None:
    for rid, resource in RESOURCES.items():
        assert resource.get("DeletionPolicy", "Delete") == "Delete", rid
        assert resource.get("UpdateReplacePolicy", "Delete") == "Delete", rid
        assert not resource["Type"].startswith("Custom::") and resource["Type"] != "AWS::CloudFormation::CustomResource"
    assert "deletion_protection" not in json.dumps(RESOURCES)


# -- alarms and outputs --------------------------------------------------------------------

def alarms() -> dict[str, dict[str, Any]]:
    return {rid: r["Properties"] for rid, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def test_errors_alarm() -> None:
    alarm = alarms()["ControllerErrorsAlarm"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ControllerFunction"}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)


def test_healthy_host_alarm() -> None:
    alarm = alarms()["NoHealthyTargetAlarm"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/NetworkELB", "HealthyHostCount")
    assert alarm["Dimensions"] == [
        {"Name": "TargetGroup", "Value": {"Fn::GetAtt": ["TargetGroup", "TargetGroupFullName"]}},
        {"Name": "LoadBalancer", "Value": {"Fn::GetAtt": ["LoadBalancer", "LoadBalancerFullName"]}},
    ]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)


def emitted_dimensions(function_name: str, binding_name: str) -> tuple[str, list[str], dict[str, Any]]:
    result = BindingResult(name=binding_name, source="elasticache://orders?role=primary", target_group=SAMPLE_TG_ARN, port=6379, drift=1)
    out = io.StringIO()
    metrics.binding_metrics(result, function_name=function_name).flush(out)
    line = json.loads(out.getvalue())
    directive = line["_aws"]["CloudWatchMetrics"][0]
    assert "Drift" in {m["Name"] for m in directive["Metrics"]}
    return directive["Namespace"], directive["Dimensions"][0], line


@pytest.mark.parametrize(("alarm_id", "metric", "minutes"), [("DriftAlarm", "Drift", 5), ("UncheckedAlarm", "Skipped", 15)])
def test_binding_alarms_watch_the_metrics_the_controller_emits(alarm_id: str, metric: str, minutes: int) -> None:
    alarm = alarms()[alarm_id]
    assert alarm["Namespace"] == "CacheBridge" == metrics.NAMESPACE
    assert alarm["MetricName"] == metric
    # Every run in the window (Minimum), every period of it.
    assert alarm["Statistic"] == "Minimum"
    assert alarm["Period"] * alarm["EvaluationPeriods"] == minutes * 60 and alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    env = substitute(bindings_text(), RETARGET_VALUES)
    binding_name = Config.from_env({ENV_BINDINGS: env}).bindings[0].name
    namespace, dimension_names, line = emitted_dimensions("orders-ControllerFunction-ABC", binding_name)
    assert namespace == alarm["Namespace"]
    assert metric in line  # every binding's line carries it
    assert [d["Name"] for d in alarm["Dimensions"]] == dimension_names
    alarm_values = {
        d["Name"]: "orders-ControllerFunction-ABC" if d["Value"] == {"Ref": "ControllerFunction"} else substitute(d["Value"]["Fn::If"][2]["Fn::Sub"], {"ReplicationGroupId": "orders"})
        for d in alarm["Dimensions"]
    }
    assert alarm_values == {name: line[name] for name in dimension_names}


def test_outputs() -> None:
    outputs = TEMPLATE["Outputs"]
    assert outputs["LoadBalancerDnsName"]["Value"] == {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}
    assert outputs["TargetGroupArn"]["Value"] == {"Ref": "TargetGroup"}
    assert outputs["FunctionName"]["Value"] == {"Ref": "ControllerFunction"}
    assert {"ConnectionUrl", "NotificationTopicArn"} <= set(outputs)


def test_a_created_topic_lets_elasticache_publish_by_source_owner() -> None:
    policy = TEMPLATE["Resources"]["NotificationTopicPolicy"]
    assert policy["Condition"] == "CreateTopic"
    assert policy["Properties"]["Topics"] == [{"Ref": "NotificationTopic"}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # The statement ElastiCache's documentation shows, and no service principal it never names.
    assert statements[0] == {
        "Sid": "AllowElastiCachePublish",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": "SNS:Publish",
        "Resource": {"Ref": "NotificationTopic"},
        "Condition": {"StringEquals": {"AWS:SourceOwner": {"Ref": "AWS::AccountId"}}},
    }
    assert "elasticache.amazonaws.com" not in json.dumps(policy)
    # aws:SourceAccount (the default for new topics) is what ElastiCache cannot satisfy.
    assert "SourceAccount" not in json.dumps(policy)
    assert "KmsMasterKeyId" not in props("NotificationTopic")


# -- TCP idle timeout ----------------------------------------------------------------------

def test_tcp_idle_timeout_is_a_parameter_within_what_the_nlb_accepts() -> None:
    spec = TEMPLATE["Parameters"]["TcpIdleTimeoutSeconds"]
    assert (spec["Type"], spec["Default"], spec["MinValue"], spec["MaxValue"]) == ("Number", 350, 60, 6000)
    assert validate_parameters(BASE.parameters(TcpIdleTimeoutSeconds="3600")) == []
    assert validate_parameters(BASE.parameters(TcpIdleTimeoutSeconds="59")) == ["TcpIdleTimeoutSeconds: 59 is not within 60..6000"]
    assert validate_parameters(BASE.parameters(TcpIdleTimeoutSeconds="6001")) == ["TcpIdleTimeoutSeconds: 6001 is not within 60..6000"]


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.lambda_network == "outside-vpc"], ids=lambda v: v.name)
def test_idle_timeout_applies_to_tcp_listeners_only(variant: Variant) -> None:
    values = variant.parameters(TcpIdleTimeoutSeconds="1200")
    name, when_tls, when_tcp = props("Listener")["ListenerAttributes"]["Fn::If"]
    attributes = when_tls if condition(name, values) else when_tcp
    if variant.listener_protocol == "TLS":
        # A TLS listener's idle timeout is fixed at 350 s: the attribute is left out.
        assert attributes == {"Ref": "AWS::NoValue"}
    else:
        assert [(a["Key"], evaluate(a["Value"], TEMPLATE, resolved(values))) for a in attributes] == [("tcp.idle_timeout.seconds", "1200")]


# -- no YAML aliases -------------------------------------------------------------------------

def yaml_anchors(text: str) -> list[str]:
    return [type(t).__name__ for t in yaml.scan(text) if isinstance(t, (yaml.AnchorToken, yaml.AliasToken))]


@pytest.mark.parametrize(
    "settings", [None, Settings(max_changes=2, event_wait_s=20.0, nameservers=("10.0.0.2:53",))], ids=["default", "settings"]
)
def test_yaml_has_no_anchors_or_aliases(settings: Settings | None) -> None:
    # The dict shares values (AWS::NoValue, the topic ARN) that a plain dump writes as
    # &id001 / *id001, which CloudFormation refuses unless the template is packaged first.
    text = render("yaml", settings)
    assert yaml_anchors(text) == []
    assert not re.search(r"[&*]id\d", text)
    assert yaml.safe_load(text) == build(settings)


def test_template_command_writes_yaml_without_aliases(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cachebridge.cli import cli

    out = tmp_path / "x.yaml"
    result = CliRunner().invoke(cli, ["template", "--output", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert yaml_anchors(text) == [] and yaml.safe_load(text) == TEMPLATE


# -- cfn-lint's latest release ---------------------------------------------------------------

LATEST_CFN_LINT = ROOT / ".venv-cfnlint-latest" / "bin" / "cfn-lint"


@pytest.fixture(scope="module")
def latest_cfn_lint() -> Path:
    """scripts/bootstrap.sh installs cfn-lint's newest release (unpinned) here, so new rules
    (such as W1101 on YAML aliases) show up before the pin moves."""
    if not LATEST_CFN_LINT.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{LATEST_CFN_LINT} missing: run scripts/bootstrap.sh")
        pytest.skip(f"{LATEST_CFN_LINT} not installed (scripts/bootstrap.sh installs it)")
    return LATEST_CFN_LINT


def lint_with_latest(cfn_lint: Path, tmp_path: Path, parameter_sets: dict[str, dict[str, str]]) -> subprocess.CompletedProcess[str]:
    """One cfn-lint run over the rendered YAML with one parameter file per set (named for it,
    so a finding names the variant): a run per variant would take minutes."""
    path = tmp_path / "cachebridge.yaml"
    path.write_text(render(), encoding="utf-8")
    files = []
    for name, values in parameter_sets.items():
        file = tmp_path / f"{name}.json"
        file.write_text(json.dumps([
            {"ParameterKey": k, "ParameterValue": v.split(",") if k in LIST_PARAMETERS else v} for k, v in values.items()
        ]))
        files.append(str(file))
    return subprocess.run(
        [str(cfn_lint), "--include-checks", "I", "--regions", "us-east-1", "eu-west-1", "--parameter-files", *files, "--", str(path)],
        capture_output=True, text=True, check=False, timeout=600,
    )


def test_latest_cfn_lint_reports_nothing_for_every_variant(latest_cfn_lint: Path, tmp_path: Path) -> None:
    result = lint_with_latest(latest_cfn_lint, tmp_path, {v.name: v.parameters() for v in VARIANTS})
    assert (result.returncode, result.stdout) == (0, ""), result.stderr


def test_latest_cfn_lint_run_does_report_a_bad_variant(latest_cfn_lint: Path, tmp_path: Path) -> None:
    result = lint_with_latest(latest_cfn_lint, tmp_path, {"good": BASE.parameters(), "bad-port": BASE.parameters(CachePort="70000")})
    assert result.returncode != 0
    assert "bad-port.json" in result.stdout and "good.json" not in result.stdout

"""The template's two layouts: node slots, the reader path, ports, and the bindings the
controller reads in each."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cachebridge.config import ENV_BINDINGS, Config
from cachebridge.deploy.template import (
    DEFAULT_NODE_SLOTS,
    MAX_NODE_SLOTS,
    Variant,
    build,
    evaluate,
    node_ports,
    node_slots_for,
    render,
    validate_parameters,
)

from .test_template import LIST_PARAMETERS, cfn_lint

BASE = Variant("TCP", "TCP", "internet-facing", topic_given=False)
LISTENER_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/net/orders-LoadB-1A2B/0123456789abcdef/0123456789abcdef"
READER_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-Reader-1A2B/0123456789abcdef"


def created(template: dict[str, Any], values: dict[str, str]) -> set[str]:
    parameters: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        raw = values.get(name, spec.get("Default"))
        if raw is not None:
            parameters[name] = str(raw).split(",") if spec["Type"] == "CommaDelimitedList" or name in LIST_PARAMETERS else str(raw)
    return {
        rid for rid, res in template["Resources"].items()
        if "Condition" not in res or evaluate({"Condition": res["Condition"]}, template, parameters)
    }


def switch_env(template: dict[str, Any]) -> Config:
    value = template["Resources"]["ControllerFunction"]["Properties"]["Environment"]["Variables"][ENV_BINDINGS]["Fn::If"][1]
    text, variables = value["Fn::Sub"]
    names = {name: f"orders-n{i + 1}" for i, name in enumerate(variables)}
    for name, attribute in variables.items():
        assert attribute == {"Fn::GetAtt": [name.removesuffix("Name"), "TargetGroupName"]}
    values = {**names, "ReplicationGroupId": "orders", "Listener": LISTENER_ARN, "ReaderTargetGroup": READER_ARN, "CachePort": "6379"}
    return Config.from_env({ENV_BINDINGS: re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)})


def test_switch_is_the_default_layout() -> None:
    spec = build()["Parameters"]["Layout"]
    assert (spec["Default"], spec["AllowedValues"]) == ("switch", ["switch", "retarget", "cluster"])


@pytest.mark.parametrize("slots", [1, DEFAULT_NODE_SLOTS, 8, MAX_NODE_SLOTS])
def test_one_target_group_and_listener_per_node_slot(slots: int) -> None:
    template = build(node_slots=slots)
    resources = template["Resources"]
    groups = [r for r in resources if r.startswith("NodeTargetGroup")]
    listeners = [r for r in resources if r.startswith("NodeListener")]
    assert len(groups) == len(listeners) == slots
    for i in range(slots):
        listener = resources[f"NodeListener{i + 1}"]
        assert listener["Condition"] == resources[f"NodeTargetGroup{i + 1}"]["Condition"] == "HasNodeSlots"
        assert listener["Properties"]["Port"] == {"Fn::Select": [i, {"Ref": "NodePorts"}]}
        assert listener["Properties"]["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": f"NodeTargetGroup{i + 1}"}}]
    # Every listener of the NLB counts toward its 50: primary, reader and the node slots.
    assert len([r for r in resources.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::Listener"]) == slots + 2 <= 50
    assert len(template["Parameters"]["NodePorts"]["Default"].split(",")) == slots


def test_node_slots_outside_the_listener_quota_are_refused() -> None:
    with pytest.raises(ValueError, match="50 listeners"):
        build(node_slots=MAX_NODE_SLOTS + 1)


@pytest.mark.parametrize(("members", "slots"), [(1, 3), (2, 4), (6, 8), (47, MAX_NODE_SLOTS), (90, MAX_NODE_SLOTS)])
def test_node_slots_leave_room_to_grow(members: int, slots: int) -> None:
    assert node_slots_for(members) == slots


def test_node_target_groups_cut_connections_at_once() -> None:
    for rid, resource in build()["Resources"].items():
        if rid.startswith("NodeTargetGroup"):
            attributes = {a["Key"]: a["Value"] for a in resource["Properties"]["TargetGroupAttributes"]}
            # 0 in the switch layout; the cluster layout keeps the usual delay.
            assert attributes["deregistration_delay.timeout_seconds"] == {"Fn::If": ["IsCluster", {"Ref": "DeregistrationDelaySeconds"}, "0"]}
            assert attributes["deregistration_delay.connection_termination.enabled"] == "true"
            assert resource["Properties"]["HealthCheckEnabled"] is True


@pytest.mark.parametrize(
    ("layout", "present", "absent"),
    [
        ("switch", {"NodeTargetGroup1", "NodeListener4", "ReaderListener", "ReaderTargetGroup", "Listener", "NodeIngress1"}, {"TargetGroup", "NoHealthyTargetAlarm"}),
        ("retarget", {"TargetGroup", "ReaderListener", "ReaderTargetGroup", "Listener", "NoHealthyTargetAlarm"}, {"NodeTargetGroup1", "NodeListener1", "NodeIngress1"}),
    ],
)
def test_each_layout_creates_its_resources(layout: str, present: set[str], absent: set[str]) -> None:
    template = build()
    resources = created(template, BASE.parameters(Layout=layout))
    assert present <= resources
    assert not absent & resources


def test_primary_listener_starts_on_the_first_slot_or_the_target_group() -> None:
    action = build()["Resources"]["Listener"]["Properties"]["DefaultActions"][0]
    assert action["TargetGroupArn"] == {"Fn::If": ["IsSwitch", {"Ref": "NodeTargetGroup1"}, {"Ref": "TargetGroup"}]}


def test_switch_bindings_are_the_config_model() -> None:
    config = switch_env(build())
    primary, reader = config.bindings
    assert (primary.layout, primary.listener, primary.node_target_groups) == ("switch", LISTENER_ARN, tuple(f"orders-n{i + 1}" for i in range(DEFAULT_NODE_SLOTS)))
    assert (primary.name, str(primary.source), primary.port) == ("orders-primary", "elasticache://orders?role=primary", 6379)
    assert (reader.layout, reader.target_group, str(reader.source)) == ("retarget", READER_ARN, "elasticache://orders?role=replicas")


def test_bindings_stay_under_lambdas_environment_limit_at_the_most_slots() -> None:
    config = switch_env(build(node_slots=MAX_NODE_SLOTS))
    # 32-character names: the longest a target group name can be.
    longest = config.bindings_json().replace("orders-n", "x" * 24 + "orders-n")
    assert len(longest.encode()) + len(ENV_BINDINGS) < 4096


def test_outputs_show_the_listener_ports() -> None:
    outputs = build()["Outputs"]
    assert outputs["PrimaryPort"]["Value"] == {"Ref": "ListenerPort"}
    assert outputs["ReaderPort"]["Value"] == {"Ref": "ReaderPort"}
    assert outputs["NodePorts"] == {
        "Description": outputs["NodePorts"]["Description"], "Condition": "HasNodeSlots", "Value": {"Fn::Join": [",", {"Ref": "NodePorts"}]}
    }
    assert outputs["TargetGroupArn"]["Condition"] == "HasTargetGroup"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"NodePorts": "6381,6382,6383"}, "NodePorts: 3 ports given; the template has 4 node slots"),
        ({"NodePorts": "6381,6383,6384,6385"}, "NodePorts: the ports must be consecutive, in slot order"),
        ({"NodePorts": "6379,6380,6381,6382"}, "NodePorts: a node port is also the ListenerPort or the ReaderPort"),
        ({"ReaderPort": "6379"}, "ReaderPort: 6379 is also the ListenerPort"),
        ({"Layout": "flip"}, "Layout: 'flip' is not one of switch, retarget, cluster"),
    ],
)
def test_port_problems_are_refused_before_deploy(overrides: dict[str, str], problem: str) -> None:
    assert problem in validate_parameters(BASE.parameters(**overrides))


def test_retarget_layout_needs_no_node_ports_check() -> None:
    assert validate_parameters(BASE.parameters(Layout="retarget", NodePorts="6381")) == []


def test_node_ports_are_consecutive() -> None:
    assert node_ports(7000, 3) == [7000, 7001, 7002]
    with pytest.raises(ValueError):
        node_ports(65535, 2)


@pytest.mark.parametrize("slots", [DEFAULT_NODE_SLOTS, MAX_NODE_SLOTS])
def test_cfn_lint_reports_nothing_for_each_layout(slots: int) -> None:
    # Every layout's parameters in one run (a run per layout took half a minute more); a
    # finding names no parameter set, so then each layout is linted alone to say which.
    template = render(node_slots=slots)
    values = {layout: BASE.parameters(Layout=layout, NodePorts=",".join(map(str, node_ports(6381, slots))))
              for layout in ("switch", "retarget", "cluster")}
    if cfn_lint(template, *values.values()):
        findings = {layout: cfn_lint(template, v) for layout, v in values.items()}
        assert {layout: found for layout, found in findings.items() if found} == {}


def test_template_body_fits_or_goes_through_s3() -> None:
    # deploy uploads a body over 51,200 bytes to S3 (TemplateURL); the most slots stay
    # within CloudFormation's 1 MB limit for a template from S3.
    assert len(json.dumps(build(node_slots=MAX_NODE_SLOTS), separators=(",", ":"))) < 1_000_000


@pytest.mark.parametrize("branch", [1, 2], ids=["switch", "retarget"])
def test_a_group_without_replicas_gets_no_replicas_binding(branch: int) -> None:
    value = build(replicas=False)["Resources"]["ControllerFunction"]["Properties"]["Environment"]["Variables"][ENV_BINDINGS]["Fn::If"][branch]
    if "Fn::If" in value:  # the retarget branch sits behind the cluster layout's condition
        assert value["Fn::If"][0] == "IsCluster"
        value = value["Fn::If"][2]
    sub = value["Fn::Sub"]
    text = sub if isinstance(sub, str) else sub[0]
    assert "role=replicas" not in text and "ReaderTargetGroup" not in text
    assert "role=primary" in text

"""The template's cluster layout: a listener and target group per node slot, the listener
on ListenerPort as the configuration listener (every node), no reader path, and the
bindings the controller reads."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cachebridge.config import ENV_BINDINGS, Config
from cachebridge.deploy.template import DEFAULT_NODE_SLOTS, build, validate_parameters

from .test_template_switch import BASE, created

TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/sess-Target-1A2B/0123456789abcdef"


def cluster_env(template: dict[str, Any]) -> Config:
    outer = template["Resources"]["ControllerFunction"]["Properties"]["Environment"]["Variables"][ENV_BINDINGS]["Fn::If"]
    inner = outer[2]["Fn::If"]
    assert inner[0] == "IsCluster"
    text, variables = inner[1]["Fn::Sub"]
    values = {**{name: f"sess-n{i + 1}" for i, name in enumerate(variables)}, "ReplicationGroupId": "sess", "TargetGroup": TG_ARN, "CachePort": "6379"}
    return Config.from_env({ENV_BINDINGS: re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)})


def test_cluster_layout_creates_node_slots_and_the_configuration_group_but_no_reader() -> None:
    resources = created(build(), BASE.parameters(Layout="cluster"))
    assert {"NodeTargetGroup1", "NodeListener4", "NodeIngress1", "TargetGroup", "Listener", "NoHealthyTargetAlarm"} <= resources
    assert not {"ReaderTargetGroup", "ReaderListener", "ReaderIngress1"} & resources


def test_cluster_bindings_are_the_config_model() -> None:
    nodes, everyone = cluster_env(build()).bindings
    assert (nodes.layout, nodes.node_target_groups, str(nodes.source)) == (
        "cluster", tuple(f"sess-n{i + 1}" for i in range(DEFAULT_NODE_SLOTS)), "elasticache://sess?role=cluster"
    )
    assert (everyone.layout, everyone.target_group, str(everyone.source)) == ("retarget", TG_ARN, "elasticache://sess?role=cluster")


def test_the_controller_may_read_node_names_and_tag_its_node_groups_in_the_cluster_layout() -> None:
    role = build()["Resources"]["ControllerRole"]["Properties"]["Policies"]
    statements = [s for p in role for s in p["PolicyDocument"]["Statement"]]
    lookups = next(s for s in statements if s.get("Sid") == "ReadOnlyLookups")
    assert "elasticache:DescribeCacheClusters" in lookups["Action"]
    tagging = next(s["Fn::If"] for s in statements if "Fn::If" in s and s["Fn::If"][1].get("Sid") == "TagOwnNodeTargetGroupsOnly")
    assert tagging[0] == "HasNodeSlots"
    switching = next(s["Fn::If"] for s in statements if "Fn::If" in s and s["Fn::If"][1].get("Sid") == "SwitchThisListenerOnly")
    assert switching[0] == "IsSwitch"  # the cluster layout switches nothing


def test_outputs_name_what_endpoints_reads_the_map_from() -> None:
    outputs = build()["Outputs"]
    assert outputs["NodeTargetGroups"]["Condition"] == "HasNodeSlots"
    assert outputs["NodeTargetGroups"]["Value"] == {"Fn::Join": [",", [{"Ref": f"NodeTargetGroup{i + 1}"} for i in range(DEFAULT_NODE_SLOTS)]]}
    assert outputs["ConfigTargetGroup"] == {"Description": outputs["ConfigTargetGroup"]["Description"], "Condition": "IsCluster", "Value": {"Ref": "TargetGroup"}}
    assert outputs["ReaderPort"]["Condition"] == "HasReader"


def test_cluster_node_ports_are_checked_like_the_switch_layouts() -> None:
    assert "NodePorts: a node port is also the ListenerPort or the ReaderPort" in validate_parameters(
        BASE.parameters(Layout="cluster", NodePorts="6379,6380,6381,6382")
    )


@pytest.mark.parametrize("alarm", ["DriftAlarm", "UncheckedAlarm"])
def test_the_binding_alarms_watch_the_node_slots_binding_in_the_cluster_layout(alarm: str) -> None:
    dimension = next(d for d in build()["Resources"][alarm]["Properties"]["Dimensions"] if d["Name"] == "Binding")
    condition, cluster, other = dimension["Value"]["Fn::If"]
    assert condition == "IsCluster"
    assert cluster == {"Fn::Sub": "${ReplicationGroupId}-nodes"}
    nodes, _ = cluster_env(build()).bindings
    assert nodes.name == "sess-nodes"

"""The cluster layout's fields in the one configuration model."""

from __future__ import annotations

from typing import Any

import pytest

from cachebridge.config import MAX_CLUSTER_NODE_TARGET_GROUPS, Binding, Config, ElastiCacheSourceSpec, parse_source
from cachebridge.errors import ConfigError


def cluster_binding(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "sessions-nodes",
        "source": "elasticache://sessions?role=cluster",
        "layout": "cluster",
        "node_target_groups": ["sessions-n1", "sessions-n2"],
        "port": 6379,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_role_cluster_is_a_source() -> None:
    assert parse_source("elasticache://Sessions?role=cluster") == ElastiCacheSourceSpec("sessions", "cluster")
    with pytest.raises(ConfigError, match="cluster \\(cluster mode enabled\\)"):
        parse_source("elasticache://sessions?role=shards")


def test_cluster_binding_reads_and_round_trips() -> None:
    binding = Binding.from_mapping(cluster_binding())
    assert (binding.layout, binding.listener, binding.node_target_groups) == ("cluster", None, ("sessions-n1", "sessions-n2"))
    assert Binding.from_mapping(binding.to_mapping()) == binding
    config = Config(bindings=(binding,))
    assert Config.from_env({"CACHEBRIDGE_BINDINGS": config.bindings_json()}).bindings == (binding,)


def test_a_retarget_binding_may_hold_every_node_for_the_configuration_listener() -> None:
    binding = Binding.from_mapping({"source": "elasticache://sessions?role=cluster", "target_group": "sessions-config"})
    assert binding.layout == "retarget" and binding.name == "sessions-cluster"


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"source": "elasticache://sessions?role=primary"}, "layout", "role=cluster"),
        ({"source": "dns://db.example.com"}, "layout", "role=cluster"),
        ({"target_group": "x"}, "target_group", "does not use it"),
        ({"listener": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/net/a/0123/0123"}, "listener", "nothing is switched"),
        ({"node_target_groups": []}, "node_target_groups", "missing or empty"),
        ({"node_target_groups": ["a", "a"]}, "node_target_groups", "listed twice"),
        ({"node_target_groups": [f"n{i}" for i in range(MAX_CLUSTER_NODE_TARGET_GROUPS + 1)]}, "node_target_groups", "50 listeners per NLB"),
    ],
)
def test_cluster_binding_refusals(overrides: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        Binding.from_mapping(cluster_binding(**overrides))
    assert info.value.field.endswith(field)
    assert says in str(info.value)


def test_a_switch_binding_does_not_take_role_cluster() -> None:
    with pytest.raises(ConfigError, match="follows the primary"):
        Binding.from_mapping({
            "source": "elasticache://sessions?role=cluster",
            "layout": "switch",
            "listener": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/net/a/0123/0123",
            "node_target_groups": ["n1"],
        })


def test_two_cluster_bindings_own_their_node_target_groups() -> None:
    other = cluster_binding(name="carts-nodes", source="elasticache://carts?role=cluster", node_target_groups=["c1", "c2"])
    config = Config.from_mapping({"bindings": [cluster_binding(), other]})
    assert [b.node_target_groups for b in config.bindings][1] == ("c1", "c2")
    with pytest.raises(ConfigError, match="already bound"):
        Config.from_mapping({"bindings": [cluster_binding(), {**other, "node_target_groups": ["c1", cluster_binding()["node_target_groups"][0]]}]})


def test_a_cluster_binding_takes_the_answer_limits() -> None:
    binding = Binding.from_mapping(cluster_binding(max_targets=12, allow_outside_vpc=True))
    assert (binding.target_limit, binding.allow_outside_vpc) == (12, True)
    assert Binding.from_mapping(binding.to_mapping()) == binding
    assert Binding.from_mapping(cluster_binding()).target_limit == MAX_CLUSTER_NODE_TARGET_GROUPS

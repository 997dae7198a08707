"""The switch layout's fields in the one configuration model."""

from __future__ import annotations

from typing import Any

import pytest

from cachebridge.config import DEFAULT_REJOIN_AFTER_S, MAX_NODE_TARGET_GROUPS, Binding, Config
from cachebridge.errors import ConfigError

LISTENER = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/net/orders/0123456789abcdef/0123456789abcdef"


def switch_binding(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "orders-primary",
        "source": "elasticache://orders?role=primary",
        "layout": "switch",
        "listener": LISTENER,
        "node_target_groups": ["orders-n1", "orders-n2"],
        "port": 6379,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_switch_binding_reads_and_round_trips() -> None:
    binding = Binding.from_mapping(switch_binding())
    assert (binding.layout, binding.listener, binding.node_target_groups) == ("switch", LISTENER, ("orders-n1", "orders-n2"))
    assert Binding.from_mapping(binding.to_mapping()) == binding
    config = Config(bindings=(binding,))
    assert Config.from_env({"CACHEBRIDGE_BINDINGS": config.bindings_json()}).bindings == (binding,)


def test_retarget_is_the_default_layout() -> None:
    binding = Binding.from_mapping({"source": "dns://db.example.com", "target_group": "db"})
    assert binding.layout == "retarget" and binding.listener is None
    assert "layout" not in binding.to_mapping()


def test_node_target_groups_may_be_comma_separated() -> None:
    binding = Binding.from_mapping(switch_binding(node_target_groups="orders-n1,orders-n2"))
    assert binding.node_target_groups == ("orders-n1", "orders-n2")


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        pytest.param({"source": "dns://db.example.com"}, "layout", "follows the primary", id="dns-source"),
        pytest.param({"source": "elasticache://orders?role=replicas"}, "layout", "follows the primary", id="replicas"),
        pytest.param({"layout": "flip"}, "layout", "not a layout", id="unknown-layout"),
        pytest.param({"listener": None}, "listener", "not a Network Load Balancer listener ARN", id="no-listener"),
        pytest.param({"listener": LISTENER.replace("/net/", "/app/")}, "listener", "listener ARN", id="alb-listener"),
        pytest.param({"node_target_groups": []}, "node_target_groups", "missing or empty", id="no-slots"),
        pytest.param({"node_target_groups": ["a", "a"]}, "node_target_groups", "listed twice", id="duplicate-slot"),
        pytest.param({"node_target_groups": ["bad_name"]}, "node_target_groups[0]", "not a target group", id="bad-slot"),
        pytest.param(
            {"node_target_groups": [f"n{i}" for i in range(MAX_NODE_TARGET_GROUPS + 1)]},
            "node_target_groups", "given", id="more-slots-than-listeners",
        ),
        pytest.param({"target_group": "orders"}, "target_group", "node_target_groups instead", id="target-group-too"),
    ],
)
def test_invalid_switch_binding(overrides: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Binding.from_mapping(switch_binding(**overrides), "bindings[0]")
    assert caught.value.field == f"bindings[0].{field}"
    assert words in caught.value.problem


def test_retarget_binding_refuses_switch_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        Binding.from_mapping({"source": "dns://db.example.com", "target_group": "db", "listener": LISTENER}, "bindings[0]")
    assert caught.value.field == "bindings[0].listener"


def test_rejoin_after_s_setting() -> None:
    config = Config.from_mapping({"bindings": [switch_binding()]})
    assert config.settings.rejoin_after_s == DEFAULT_REJOIN_AFTER_S
    env = {"CACHEBRIDGE_BINDINGS": config.bindings_json(), "CACHEBRIDGE_REJOIN_AFTER_S": "10"}
    assert Config.from_env(env).settings.rejoin_after_s == 10
    with pytest.raises(ConfigError):
        Config.from_mapping({"bindings": [switch_binding()], "settings": {"rejoin_after_s": -1}})

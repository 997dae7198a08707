"""The controller's configuration: ``CACHEBRIDGE_BINDINGS`` as a Fn::Sub string per layout,
written by the config model itself from placeholders that are then replaced by
``${Parameter}`` references."""

from __future__ import annotations

from typing import Any

from ...config import Binding, Config, Settings
from .cfn import _get_att, _if, _sub
from .layouts import DEFAULT_NODE_SLOTS, node_target_group_name

__all__ = [
    "binding_name_sub",
    "bindings_sub",
    "retarget_bindings_sub",
    "switch_bindings_sub",
    "cluster_bindings_sub",
]


_PLACEHOLDER_RG = "cbplaceholderrg"
_PLACEHOLDER_TG = "cb-placeholder-tg"
_PLACEHOLDER_PORT = 65432
_PLACEHOLDER_READER_TG = "cb-placeholder-reader"
_PLACEHOLDER_LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/net/cbplaceholderlb/0123456789abcdef/0123456789abcdef"


def binding_name_sub() -> str:
    """The binding's name, as a Fn::Sub string (also the Drift alarm's Binding dimension)."""
    return "${ReplicationGroupId}-primary"


def bindings_sub(settings: Settings | None = None) -> str:
    """The Fn::Sub string of ``CACHEBRIDGE_BINDINGS``.

    It is ``Config.bindings_json()`` of a one-binding configuration (the replication
    group's primary, into this stack's target group, on CachePort), built by the config
    model itself from placeholder values that are then replaced by ``${Parameter}``
    references; so the Lambda reads exactly what the model writes."""
    config = Config.single(
        source=f"elasticache://{_PLACEHOLDER_RG}?role=primary",
        target_group=_PLACEHOLDER_TG,
        port=_PLACEHOLDER_PORT,
        name=binding_name_sub().replace("${ReplicationGroupId}", _PLACEHOLDER_RG),
        settings=settings,
    )
    text = config.bindings_json()
    replacements = [
        (f'"port":{_PLACEHOLDER_PORT}', '"port":${CachePort}', 1),
        (f'"{_PLACEHOLDER_TG}"', '"${TargetGroup}"', 1),
        (_PLACEHOLDER_RG, "${ReplicationGroupId}", 2),
    ]
    return _replace_placeholders(text, replacements)


def retarget_bindings_sub(settings: Settings | None = None, replicas: bool = True) -> str:
    """The Fn::Sub string of ``CACHEBRIDGE_BINDINGS`` in the retarget layout: the primary
    into ``TargetGroup`` and (``replicas``) the replicas into ``ReaderTargetGroup``."""
    primary = Config.single(
        source=f"elasticache://{_PLACEHOLDER_RG}?role=primary",
        target_group=_PLACEHOLDER_TG,
        port=_PLACEHOLDER_PORT,
        name=f"{_PLACEHOLDER_RG}-primary",
    ).bindings[0]
    return _substitute_placeholders(Config(bindings=(primary, *_reader_binding(replicas)), settings=settings or Settings()), 0)


def switch_bindings_sub(settings: Settings | None = None, node_slots: int = DEFAULT_NODE_SLOTS, replicas: bool = True) -> str:
    """The Fn::Sub string of ``CACHEBRIDGE_BINDINGS`` in the switch layout: the primary
    through ``Listener`` and the node target groups (``${NodeTargetGroupNName}``, the
    names, to keep the variable well under Lambda's 4 KB), the replicas into
    ``ReaderTargetGroup``."""
    primary = Binding.from_mapping({
        "name": f"{_PLACEHOLDER_RG}-primary",
        "source": f"elasticache://{_PLACEHOLDER_RG}?role=primary",
        "layout": "switch",
        "listener": _PLACEHOLDER_LISTENER,
        "node_target_groups": _node_slot_placeholders(node_slots),
        "port": _PLACEHOLDER_PORT,
    })
    return _substitute_placeholders(Config(bindings=(primary, *_reader_binding(replicas)), settings=settings or Settings()), node_slots)


def _reader_binding(replicas: bool) -> tuple[Binding, ...]:
    # A group without replicas would make a replicas binding fail on every run (an empty
    # source is an error): it gets the reader listener, and the binding once it has some.
    if not replicas:
        return ()
    return (Binding.from_mapping({
        "name": f"{_PLACEHOLDER_RG}-replicas",
        "source": f"elasticache://{_PLACEHOLDER_RG}?role=replicas",
        "target_group": _PLACEHOLDER_READER_TG,
        "port": _PLACEHOLDER_PORT,
    }),)


def _substitute_placeholders(config: Config, node_slots: int) -> str:
    text = config.bindings_json()
    count = len(config.bindings)
    replacements = [
        (f'"port":{_PLACEHOLDER_PORT}', '"port":${CachePort}', count),
        (f'"{_PLACEHOLDER_READER_TG}"', '"${ReaderTargetGroup}"', count - 1),
        (_PLACEHOLDER_RG, "${ReplicationGroupId}", 2 * count),
    ]
    if node_slots:
        replacements.append((f'"{_PLACEHOLDER_LISTENER}"', '"${Listener}"', 1))
        replacements += _node_slot_replacements(node_slots)
    else:
        replacements.append((f'"{_PLACEHOLDER_TG}"', '"${TargetGroup}"', 1))
    return _replace_placeholders(text, replacements)


def _bindings_value(settings: Settings, node_slots: int, replicas: bool) -> dict[str, Any]:
    names = {f"{node_target_group_name(i)}Name": _get_att(node_target_group_name(i), "TargetGroupName") for i in range(node_slots)}
    return _if(
        "IsSwitch",
        _sub(switch_bindings_sub(settings, node_slots, replicas), names),
        _if("IsCluster", _sub(cluster_bindings_sub(settings, node_slots), names), _sub(retarget_bindings_sub(settings, replicas))),
    )


def cluster_bindings_sub(settings: Settings | None = None, node_slots: int = DEFAULT_NODE_SLOTS) -> str:
    """The Fn::Sub string of ``CACHEBRIDGE_BINDINGS`` in the cluster layout: every node into
    its node target group (``${NodeTargetGroupNName}``), and every node into ``TargetGroup``
    behind the configuration listener."""
    nodes = Binding.from_mapping({
        "name": f"{_PLACEHOLDER_RG}-nodes",
        "source": f"elasticache://{_PLACEHOLDER_RG}?role=cluster",
        "layout": "cluster",
        "node_target_groups": _node_slot_placeholders(node_slots),
        "port": _PLACEHOLDER_PORT,
    })
    everyone = Binding.from_mapping({
        "name": f"{_PLACEHOLDER_RG}-config",
        "source": f"elasticache://{_PLACEHOLDER_RG}?role=cluster",
        "target_group": _PLACEHOLDER_TG,
        "port": _PLACEHOLDER_PORT,
    })
    text = Config(bindings=(nodes, everyone), settings=settings or Settings()).bindings_json()
    replacements = [
        (f'"port":{_PLACEHOLDER_PORT}', '"port":${CachePort}', 2),
        (f'"{_PLACEHOLDER_TG}"', '"${TargetGroup}"', 1),
        (_PLACEHOLDER_RG, "${ReplicationGroupId}", 4),
        *_node_slot_replacements(node_slots),
    ]
    return _replace_placeholders(text, replacements)


def _node_slot_placeholders(node_slots: int) -> list[str]:
    """The node target group names the config model writes, one per node slot."""
    return [f"cb-placeholder-n{i + 1}" for i in range(node_slots)]


def _node_slot_replacements(node_slots: int) -> list[tuple[str, str, int]]:
    """Each node slot's placeholder and its reference (the name, ``${NodeTargetGroupNName}``),
    found once."""
    return [(f'"{name}"', f'"${{{node_target_group_name(i)}Name}}"', 1) for i, name in enumerate(_node_slot_placeholders(node_slots))]


def _replace_placeholders(text: str, replacements: list[tuple[str, str, int]]) -> str:
    """``text`` with each (placeholder, reference, expected count) replaced; the counts
    pin what the config model wrote, so a change there cannot slip a placeholder through."""
    for placeholder, reference, expected in replacements:
        found = text.count(placeholder)
        if found != expected:
            raise RuntimeError(f"bindings_json() holds {placeholder!r} {found} times, expected {expected}: {text}")
        text = text.replace(placeholder, reference)
    rest = text
    for _, reference, _ in replacements:
        rest = rest.replace(reference.strip('"'), "")
    if "$" in rest:
        raise RuntimeError(f"bindings_json() holds a '$' that Fn::Sub would misread: {text}")
    return text

"""The public surface of ``cachebridge`` is exactly ``__all__``; the modules other modules
import from keep the ``__all__`` pinned here."""

from __future__ import annotations

import importlib
import types
from importlib.metadata import version

import pytest

import cachebridge


def public_members() -> set[str]:
    return {
        name
        for name, value in vars(cachebridge).items()
        if not name.startswith("_")
        and not (isinstance(value, types.ModuleType) and value.__name__.startswith("cachebridge."))
    }


def test_all_names_exist() -> None:
    missing = [name for name in cachebridge.__all__ if not hasattr(cachebridge, name)]
    assert missing == []


def test_all_has_no_duplicates() -> None:
    assert len(cachebridge.__all__) == len(set(cachebridge.__all__))


def test_public_surface_is_all() -> None:
    exported_private = {"__version__"}
    assert public_members() == set(cachebridge.__all__) - exported_private
    assert exported_private <= set(cachebridge.__all__)


def test_exported_names_are_the_objects_they_name() -> None:
    for name in cachebridge.__all__:
        value = getattr(cachebridge, name)
        if isinstance(value, (type, types.FunctionType)):
            assert value.__name__ == name


def test_version_matches_the_distribution() -> None:
    assert cachebridge.__version__ == version("cachebridge")


# Modules whose names other modules import: each one's ``__all__`` is pinned here, so a
# name that leaves (or a private one that others start to import) is a decision, not an
# accident.
MODULE_SURFACES = {
    "cachebridge.source_specs": {
        "Role", "ROLES", "SOURCE_FORMS", "DnsSourceSpec", "ElastiCacheSourceSpec", "SourceSpec", "parse_source",
    },
    "cachebridge.config_values": {
        "MIN_RATE", "MAX_RATE", "shown", "parse_int", "parse_float", "parse_rate", "parse_networks",
        "parse_vpc_cidrs", "parse_nameserver", "check_keys", "validate_target_group", "target_group_name",
    },
    "cachebridge.config_readers": {
        "ENV_BINDINGS", "ENV_EXTRA_BINDINGS", "ENV_CONFIG_FILE", "read_config_file", "read_env_bindings",
        "extra_binding_documents", "settings_from_env",
    },
    "cachebridge.read_order": {
        "ReadBudget", "health_order", "rotation_offset", "paced_rate", "reads_per_pass", "GOLDEN_FRACTION", "CONFIRM_WAIT_POLLS", "FIRST_WRITE_S",
    },
    "cachebridge.nlb": {
        "forget", "OWNER_TAG", "LOCK_TABLE_TAG", "TargetGroupInfo", "TargetGroups", "risky_settings", "clear_caches",
        "WRITE_CHUNK", "MAX_SAFE_DEREGISTRATION_DELAY_S", "ListenerInfo", "vpc_cidr_blocks", "Seen", "last_seen",
        "read_first", "DESCRIBE_TAGS_CHUNK",
    },
    "cachebridge.sandbox.moto_ext.describe_tags": {"install", "installed", "MAX_RESOURCE_ARNS"},
    "cachebridge.pass_report": {"Status", "Trigger", "BindingResult", "SyncReport", "select_bindings"},
    "cachebridge.target_group_info": {
        "LOCK_TABLE_TAG", "MAX_SAFE_DEREGISTRATION_DELAY_S", "OWNER_TAG", "SLOW_HEALTH_CHECK_S", "ListenerInfo",
        "TargetGroupInfo", "forward_target", "risky_settings",
    },
    "cachebridge.cli_render": {
        "Progress", "make_console", "emit", "print_cluster_map", "print_notes", "print_notes_and_clients",
        "render_deploy", "render_deploy_error", "render_status", "render_sync",
    },
    "cachebridge.writes": {
        "apply_plan", "apply_plans", "record_plan", "nothing_written", "targets_text",
        "CLOCK_SKEW_S", "FRESH_POLLS", "FRESH_READ_S",
    },
}

# Everything ``cachebridge.config`` offered before its value checks, source specs and
# readers became modules of their own: still importable from there, as the same objects.
CONFIG_NAMES = {
    "DEFAULT_MAX_CHANGES", "DEFAULT_EVENT_WAIT_S", "DEFAULT_POLL_INTERVAL_S", "DEFAULT_DNS_TIMEOUT_S",
    "DEFAULT_PORT", "DEFAULT_REJOIN_AFTER_S", "DEFAULT_LISTENER_SETTLE_S", "LAYOUTS", "MAX_NODE_TARGET_GROUPS",
    "MAX_CLUSTER_NODE_TARGET_GROUPS", "DEFAULT_MAX_CONCURRENCY", "DEFAULT_ELB_DESCRIBE_RATE",
    "DEFAULT_ELB_DESCRIBE_BURST", "DEFAULT_MAX_TARGETS", "ENV_BINDINGS", "ENV_EXTRA_BINDINGS", "ENV_CONFIG_FILE",
    "DnsSourceSpec", "ElastiCacheSourceSpec", "SourceSpec", "parse_source", "parse_nameserver", "Binding",
    "Settings", "Config", "target_group_name",
}
CONFIG_ALSO_IMPORTABLE = {
    "ConfigError", "MAX_CONCURRENCY_LIMIT", "MIN_RATE", "MAX_RATE", "Role", "ROLES", "SOURCE_FORMS",
    "validate_target_group", "default_binding_name",
}


@pytest.mark.parametrize("module_name", sorted(MODULE_SURFACES))
def test_module_all_is_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == MODULE_SURFACES[module_name]
    assert len(module.__all__) == len(set(module.__all__))
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_config_all_is_what_it_was() -> None:
    from cachebridge import config

    assert set(config.__all__) == CONFIG_NAMES


@pytest.mark.parametrize("module_name", ["cachebridge.source_specs", "cachebridge.config_values", "cachebridge.config_readers"])
def test_config_reexports_its_parts_as_the_same_objects(module_name: str) -> None:
    from cachebridge import config

    module = importlib.import_module(module_name)
    importable = CONFIG_NAMES | CONFIG_ALSO_IMPORTABLE
    for name in set(module.__all__) & importable:
        assert getattr(config, name) is getattr(module, name), name
    assert all(hasattr(config, name) for name in importable)


def test_nlb_reexports_what_it_reads_as_the_same_objects() -> None:
    from cachebridge import nlb, target_group_info

    for name in set(target_group_info.__all__) & set(nlb.__all__):
        assert getattr(nlb, name) is getattr(target_group_info, name), name
    assert set(target_group_info.__all__) - set(nlb.__all__) == {"SLOW_HEALTH_CHECK_S", "forward_target"}


def test_sync_reexports_what_a_pass_is_asked_and_answers_as_the_same_objects() -> None:
    from cachebridge import pass_report

    sync = importlib.import_module("cachebridge.sync")
    assert set(sync.__all__) == {"Trigger", "BindingResult", "SyncReport", "sync", "select_bindings"}
    for name in set(pass_report.__all__) & set(sync.__all__):
        assert getattr(sync, name) is getattr(pass_report, name), name

"""The deploy package's modules: each ``__all__`` names what the module holds, and the
split modules' public names stay reachable where callers import them from
(``cachebridge.deploy.template`` and ``cachebridge.deploy.stack``)."""

from __future__ import annotations

import importlib

import pytest

from cachebridge.deploy import stack, template

TEMPLATE_MODULES = (
    "access",
    "bindings",
    "cfn",
    "combinations",
    "controller",
    "document",
    "evaluator",
    "layouts",
    "lock_table",
    "parameters",
    "triggers",
)
STEP_MODULES = ("artifacts", "clients", "cloudformation", "first_sync", "parameter_values", "replication_group", "request")


@pytest.mark.parametrize("name", [f"cachebridge.deploy.template.{m}" for m in TEMPLATE_MODULES] + [f"cachebridge.deploy.{m}" for m in STEP_MODULES])
def test_every_name_in_all_exists(name: str) -> None:
    module = importlib.import_module(name)
    assert [n for n in module.__all__ if not hasattr(module, n)] == []


@pytest.mark.parametrize("module", TEMPLATE_MODULES)
def test_the_template_package_reexports_each_module_public_names(module: str) -> None:
    source = importlib.import_module(f"cachebridge.deploy.template.{module}")
    assert {n: getattr(template, n, None) for n in source.__all__} == {n: getattr(source, n) for n in source.__all__}


@pytest.mark.parametrize("module", STEP_MODULES)
def test_stack_reexports_the_step_names_it_exports(module: str) -> None:
    source = importlib.import_module(f"cachebridge.deploy.{module}")
    for name in set(source.__all__) & set(stack.__all__):
        assert getattr(stack, name) is getattr(source, name)


def test_the_exports_of_template_and_stack_exist() -> None:
    assert [n for n in template.__all__ if not hasattr(template, n)] == []
    assert [n for n in stack.__all__ if not hasattr(stack, n)] == []

"""The public surface of ``cachebridge`` is exactly ``__all__``."""

from __future__ import annotations

import types
from importlib.metadata import version

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

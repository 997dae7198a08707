"""Where a configuration comes from: a ``--config`` file, or the Lambda's environment.

The readers here turn text into documents (``inputs`` applies the limits every parser of
user input has) and say which variable or file a refusal came from; ``cachebridge.config``
turns the documents into bindings and settings. In Lambda: ``CACHEBRIDGE_BINDINGS`` holds
the configuration; more bindings follow from ``CACHEBRIDGE_EXTRA_BINDINGS`` when they fit
Lambda's 4 KB of environment, or from the JSON file ``CACHEBRIDGE_CONFIG_FILE`` names when
they do not; ``CACHEBRIDGE_<SETTING>`` variables override single settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config_values import check_keys
from .errors import ConfigError
from .inputs import MAX_CONFIG_BYTES, InputRejected, load_json, load_toml, load_yaml

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "ENV_BINDINGS",
    "ENV_EXTRA_BINDINGS",
    "ENV_CONFIG_FILE",
    "read_config_file",
    "read_env_bindings",
    "extra_binding_documents",
    "settings_from_env",
]

ENV_BINDINGS = "CACHEBRIDGE_BINDINGS"
ENV_EXTRA_BINDINGS = "CACHEBRIDGE_EXTRA_BINDINGS"
ENV_CONFIG_FILE = "CACHEBRIDGE_CONFIG_FILE"


def read_config_file(path: str | os.PathLike[str]) -> Any:
    """The document a ``--config`` file holds (TOML, YAML or JSON, by its suffix)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError("--config", f"{str(path)!r} is too large", f"a configuration file of at most {MAX_CONFIG_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("--config", f"cannot read {str(path)!r}: not UTF-8 text ({exc.reason})") from None
    suffix = path.suffix.lower()
    # Only the CLI reads YAML (load_yaml imports PyYAML); the Lambda zip does not ship it.
    loaders = {".toml": load_toml, ".yaml": load_yaml, ".yml": load_yaml, ".json": load_json}
    if suffix not in loaders:
        raise ConfigError("--config", f"unknown file type {suffix or '(none)'!r}", ".toml, .yaml, .yml, .json")
    try:
        return loaders[suffix](text)
    except InputRejected as exc:
        raise _rejected(exc, "--config", str(path)) from None


def read_env_bindings(environ: Mapping[str, str]) -> Any:
    """The document ``CACHEBRIDGE_BINDINGS`` holds (JSON)."""
    raw = environ.get(ENV_BINDINGS)
    if not raw:
        raise ConfigError(ENV_BINDINGS, "not set", "JSON: a list of bindings, or {\"bindings\": [...], \"settings\": {...}}")
    try:
        return load_json(raw)
    except InputRejected as exc:
        raise _rejected(exc, ENV_BINDINGS) from None


def extra_binding_documents(environ: Mapping[str, str]) -> Iterator[tuple[str, Any]]:
    """``(where, binding document)`` for the bindings beyond ``CACHEBRIDGE_BINDINGS``:
    ``CACHEBRIDGE_EXTRA_BINDINGS`` (JSON), then the JSON file ``CACHEBRIDGE_CONFIG_FILE``
    names. Either holds a list of bindings or an object with ``bindings``; settings stay
    those of ``CACHEBRIDGE_BINDINGS``. Both texts are read before either is parsed."""
    sources: list[tuple[str, str]] = []
    if environ.get(ENV_EXTRA_BINDINGS):
        sources.append((ENV_EXTRA_BINDINGS, environ[ENV_EXTRA_BINDINGS]))
    path_text = environ.get(ENV_CONFIG_FILE)
    if path_text:
        path = Path(path_text)
        if not path.is_absolute():
            path = Path(environ.get("LAMBDA_TASK_ROOT") or os.getcwd()) / path
        try:
            sources.append((ENV_CONFIG_FILE, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(ENV_CONFIG_FILE, f"cannot read {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    for variable, text in sources:
        try:
            data = load_json(text)  # MAX_CONFIG_BYTES: about 5,000 bindings
        except InputRejected as exc:
            raise _rejected(exc, variable) from None
        if isinstance(data, Mapping):
            check_keys(data, ("bindings",), variable)
            data = data.get("bindings")
        if not isinstance(data, list) or not data:
            raise ConfigError(variable, "no bindings", "a non-empty list of bindings, or {\"bindings\": [...]}")
        for i, binding in enumerate(data):
            yield f"{variable}[{i}]", binding


def settings_from_env(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """``settings`` with each ``CACHEBRIDGE_<SETTING>`` variable applied, and the region
    from ``AWS_REGION`` (which Lambda sets) when no setting names one."""
    for key in settings.SETTING_KEYS:
        variable = f"CACHEBRIDGE_{key.upper()}"
        value = environ.get(variable)
        if value not in (None, ""):
            try:
                settings = settings.merged({key: value})
            except ConfigError as exc:
                raise ConfigError(variable, exc.problem, exc.accepted) from None
    if settings.region is None:
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if region:
            settings = replace(settings, region=region)
    return settings


def _rejected(exc: InputRejected, where: str, document: str = "") -> ConfigError:
    """A reader's refusal as a ConfigError naming the field when the reader knows it."""
    if exc.path:
        return ConfigError(exc.path, exc.problem, exc.accepted)
    problem = exc.problem
    if document:
        problem = f"{document} is {problem}" if problem.startswith("not ") else f"{document}: {problem}"
    return ConfigError(where, problem, exc.accepted)

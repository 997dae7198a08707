"""Where a deployed controller finds bindings besides its stack's own: the environment or
a file in its zip.

Lambda allows 4 KB for all of a function's environment variables together ("Function
environment variables: 4 KB, for all environment variables associated with the function,
in aggregate", Lambda Developer Guide, "Lambda quotas"): about 35 bindings. So:

- while the function's whole environment, these bindings included, fits in
  ``ENVIRONMENT_LIMIT_BYTES``, they go in ``CACHEBRIDGE_EXTRA_BINDINGS`` (the template's
  ``ExtraBindings`` parameter): a change is a configuration update, no new zip;
- beyond that, they go in the zip as ``package.CONFIG_FILE_NAME`` and the template's
  ``ConfigFile`` parameter names it (``CACHEBRIDGE_CONFIG_FILE``). The zip rather than an
  SSM parameter: nothing to call on a cold start (the file is on local disk), no
  ``ssm:GetParameter`` permission or KMS key to grant, no 4 KB (standard) / 8 KB
  (advanced) parameter ceiling to meet again, and the bindings are versioned with the
  code under the zip's content-addressed key, so a rollback of the stack rolls both back.
  The cost: changing a binding deploys a new zip (``cachebridge deploy`` does both).

The function's environment is only known once CloudFormation resolves it (the target
group's ARN among others), so it is estimated from the template with every reference at
its longest, and measured as JSON, which is never shorter than the variables themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import ENV_CONFIG_FILE, ENV_EXTRA_BINDINGS, Binding
from ..errors import ConfigError
from . import package as packaging

__all__ = ["ENVIRONMENT_LIMIT_BYTES", "Placement", "place", "environment_size"]

ENVIRONMENT_LIMIT_BYTES = 4096
# Longer than any value a reference resolves to here: a target group ARN in the longest
# partition and Region is about 130 characters, a stack name at most 128.
_REFERENCE_WIDTH = 160


@dataclass(frozen=True)
class Placement:
    """``parameters`` for the stack; ``config`` the file to ship in the zip, if any."""

    where: str  # "none", "environment" or "file"
    parameters: dict[str, str]
    config: bytes | None
    environment_bytes: int

    def describe(self, count: int) -> str:
        if self.where == "environment":
            return f"{count} more binding(s) in {ENV_EXTRA_BINDINGS} (environment about {self.environment_bytes} of {ENVIRONMENT_LIMIT_BYTES} bytes)"
        if self.where == "file":
            return (
                f"{count} more binding(s) in {packaging.CONFIG_FILE_NAME} inside the zip ({ENV_CONFIG_FILE}): "
                f"in the environment they would take about {self.environment_bytes} of {ENVIRONMENT_LIMIT_BYTES} bytes"
            )
        return "no more bindings"


def _estimate(value: Any) -> str | None:
    """A string at least as long as what ``value`` resolves to; None for AWS::NoValue."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            return None if arg == "AWS::NoValue" else "x" * _REFERENCE_WIDTH
        if key == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            return re.sub(r"\$\{[^}]+\}", "x" * _REFERENCE_WIDTH, text)
        if key == "Fn::If":
            branches = [_estimate(v) for v in arg[1:]]
            present = [b for b in branches if b is not None]
            return max(present, key=len) if present else None
        if key == "Fn::GetAtt":
            return "x" * _REFERENCE_WIDTH
    return json.dumps(value)


def environment_size(template: Mapping[str, Any], overrides: Mapping[str, str]) -> int:
    """Bytes of the controller's environment, as JSON, at its longest: the template's
    variables (each reference at ``_REFERENCE_WIDTH``) with ``overrides`` in place."""
    variables = template["Resources"]["ControllerFunction"]["Properties"]["Environment"]["Variables"]
    resolved: dict[str, str] = {}
    for name, value in variables.items():
        text = overrides.get(name, _estimate(value))
        if text is not None:
            resolved[name] = text
    return len(json.dumps(resolved, separators=(",", ":")).encode())


def place(extra: Sequence[Binding], template: Mapping[str, Any], *, own_binding: str) -> Placement:
    """Where ``extra`` goes for a stack whose own binding is named ``own_binding``."""
    if not extra:
        return Placement("none", {"ExtraBindings": "", "ConfigFile": ""}, None, 0)
    for i, binding in enumerate(extra):
        if binding.name == own_binding:
            raise ConfigError(
                f"--config: bindings[{i}].name", f"{binding.name!r} is the stack's own binding", "another name"
            )
    text = json.dumps({"bindings": [b.to_mapping() for b in extra]}, separators=(",", ":"), sort_keys=True)
    size = environment_size(template, {ENV_EXTRA_BINDINGS: text, ENV_CONFIG_FILE: ""})
    if size <= ENVIRONMENT_LIMIT_BYTES:
        return Placement("environment", {"ExtraBindings": text, "ConfigFile": ""}, None, size)
    return Placement("file", {"ExtraBindings": "", "ConfigFile": packaging.CONFIG_FILE_NAME}, text.encode(), size)

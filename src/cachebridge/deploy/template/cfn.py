"""CloudFormation intrinsic functions, as the template's builders write them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__: list[str] = []


def _ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def _get_att(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def _sub(text: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"Fn::Sub": [text, dict(variables)] if variables else text}


def _if(condition: str, then: Any, otherwise: Any) -> dict[str, Any]:
    return {"Fn::If": [condition, then, otherwise]}


_NO_VALUE = _ref("AWS::NoValue")


def _skip(*checks: tuple[str, str]) -> dict[str, Any]:
    """checkov suppressions, each with the one-line reason it does not apply here."""
    return {"checkov": {"skip": [{"id": check, "comment": comment} for check, comment in checks]}}

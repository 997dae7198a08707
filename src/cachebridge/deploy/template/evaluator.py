"""A tiny evaluator of the template's Rules and Conditions, and the pre-flight check built on
it (``validate_parameters``) that refuses bad input before CloudFormation is called."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .. import allow_list
from .access import MAX_ALLOWED_CIDRS, TOO_MANY_CIDRS
from .document import build
from .layouts import _switch_parameter_problems
from .triggers import SCHEDULE_RULE_NAME_MAX, SCHEDULE_RULE_SUFFIX

__all__ = ["TemplateEvaluationError", "evaluate", "validate_parameters"]


class TemplateEvaluationError(ValueError):
    """An intrinsic function could not be evaluated (CloudFormation would refuse too)."""


_LIST_TYPES = ("CommaDelimitedList", "List<")


def _is_list_type(spec: Mapping[str, Any]) -> bool:
    return str(spec.get("Type", "")).startswith(_LIST_TYPES)


def _resolved_parameters(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        raw = values.get(name, spec.get("Default"))
        if raw is None:
            continue
        raw = str(raw)
        resolved[name] = raw.split(",") if _is_list_type(spec) else raw
    return resolved


def evaluate(
    expression: Any,
    template: Mapping[str, Any],
    parameters: Mapping[str, Any],
    pseudo: Mapping[str, str] | None = None,
) -> Any:
    """Evaluate a Rules or Conditions expression the way CloudFormation does, for the
    functions this template uses. ``parameters`` are resolved values (lists for list
    types) and may also give resource Refs; ``pseudo`` gives AWS:: pseudo parameters."""

    def ev(node: Any) -> Any:
        if isinstance(node, list):
            return [ev(item) for item in node]
        if not isinstance(node, dict):
            return node if isinstance(node, str) else (str(node) if not isinstance(node, bool) else node)
        if len(node) != 1:
            raise TemplateEvaluationError(f"not an intrinsic function: {node!r}")
        (fn, arg), = node.items()
        if fn == "Ref":
            if arg in parameters:
                return parameters[arg]
            if pseudo and arg in pseudo:
                return pseudo[arg]
            raise TemplateEvaluationError(f"Ref {arg}: no value")
        if fn == "Condition":
            return ev(template["Conditions"][arg])
        if fn == "Fn::Equals":
            left, right = ev(arg[0]), ev(arg[1])
            return left == right
        if fn == "Fn::Not":
            return not _boolean(ev(arg[0]))
        if fn == "Fn::And":
            return all(_boolean(ev(item)) for item in arg)
        if fn == "Fn::Or":
            return any(_boolean(ev(item)) for item in arg)
        if fn == "Fn::Contains":
            return ev(arg[1]) in _as_list(ev(arg[0]))
        if fn == "Fn::EachMemberEquals":
            value = ev(arg[1])
            return all(member == value for member in _as_list(ev(arg[0])))
        if fn == "Fn::EachMemberIn":
            allowed = _as_list(ev(arg[1]))
            return all(member in allowed for member in _as_list(ev(arg[0])))
        if fn == "Fn::Join":
            return str(arg[0]).join(_as_list(ev(arg[1])))
        if fn == "Fn::Split":
            return str(ev(arg[1])).split(str(arg[0]))
        if fn == "Fn::Select":
            index, items = int(ev(arg[0])), _as_list(ev(arg[1]))
            if not 0 <= index < len(items):
                raise TemplateEvaluationError(f"Fn::Select cannot select nonexistent value at index {index}")
            return items[index]
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], {k: ev(v) for k, v in arg[1].items()})

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name.startswith("!"):
                    return "${" + name[1:] + "}"
                value = variables[name] if name in variables else ev({"Ref": name})
                if not isinstance(value, str):
                    raise TemplateEvaluationError(f"Fn::Sub ${{{name}}} is not a string")
                return value

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
        if fn == "Fn::If":
            condition, then, otherwise = arg
            return ev(then) if ev({"Condition": condition}) else ev(otherwise)
        raise TemplateEvaluationError(f"{fn} is not supported here")

    return ev(expression)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TemplateEvaluationError(f"{value!r} is not a boolean")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    raise TemplateEvaluationError(f"{value!r} is not a list")


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def validate_parameters(
    values: Mapping[str, str],
    stack_name: str | None = None,
    template: Mapping[str, Any] | None = None,
) -> list[str]:
    """What CloudFormation would refuse about these parameter values, before anything is
    created: unknown or missing parameters, AllowedValues / AllowedPattern / MinValue /
    MaxValue, every Rule assertion, and the AllowedCidrs limit. Values are strings as
    CloudFormation takes them (lists comma-separated). Returns one message per problem;
    ``stack_name`` also checks the schedule rule name derived from it."""
    template = template if template is not None else build()
    specs = template["Parameters"]
    problems = [f"{name}: unknown parameter" for name in values if name not in specs]
    for name, spec in specs.items():
        raw = values.get(name, spec.get("Default"))
        if raw is None:
            problems.append(f"{name}: required")
            continue
        raw = str(raw)
        members = raw.split(",") if _is_list_type(spec) else [raw]
        for member in members:
            if "AllowedValues" in spec and member not in [str(v) for v in spec["AllowedValues"]]:
                problems.append(f"{name}: {member!r} is not one of {', '.join(map(str, spec['AllowedValues']))}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], member):
                problems.append(f"{name}: {member!r} is not {spec.get('ConstraintDescription', spec['AllowedPattern'])}")
            if spec.get("Type") == "Number":
                number = _number(member)
                if number is None:
                    problems.append(f"{name}: {member!r} is not a number")
                elif not spec.get("MinValue", number) <= number <= spec.get("MaxValue", number):
                    problems.append(f"{name}: {member} is not within {spec.get('MinValue')}..{spec.get('MaxValue')}")
            elif spec.get("Type", "").startswith(("AWS::", "List<AWS::")) and not member:
                problems.append(f"{name}: empty")
    if problems:
        return problems
    parameters = _resolved_parameters(template, values)
    pseudo = {"AWS::StackName": stack_name or "cachebridge", "AWS::Region": "us-east-1", "AWS::Partition": "aws"}
    for rule_name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], template, parameters, pseudo):
            continue
        for assertion in rule["Assertions"]:
            if not evaluate(assertion["Assert"], template, parameters, pseudo):
                problems.append(f"{rule_name}: {assertion.get('AssertDescription', 'assertion failed')}")
    if evaluate({"Condition": TOO_MANY_CIDRS}, template, parameters, pseudo):
        problems.append(f"AllowedCidrs: at most {MAX_ALLOWED_CIDRS} ranges")
    elif evaluate({"Condition": allow_list.BROAD_ALLOW_LIST}, template, parameters, pseudo):
        problems.append("AllowedCidrs: the ranges together cover more than a /8; set AllowAnySource=true to allow that on purpose")
    problems += _switch_parameter_problems(parameters, template)
    if stack_name is not None and not values.get("ScheduleRuleName"):
        derived = stack_name + SCHEDULE_RULE_SUFFIX
        if len(derived) > SCHEDULE_RULE_NAME_MAX:
            problems.append(
                f"ScheduleRuleName: the derived name {derived!r} is longer than {SCHEDULE_RULE_NAME_MAX} characters; "
                "give ScheduleRuleName or a shorter stack name"
            )
    return list(dict.fromkeys(problems))

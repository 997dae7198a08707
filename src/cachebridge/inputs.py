"""Reading untrusted text: the limits every parser of user input applies.

Configuration files, ``CACHEBRIDGE_BINDINGS`` and SNS messages are written by people and
by other systems; a mistake or a hostile value there must end in a one-line error, never a
traceback, and never in a value that means something other than what was written. The
readers here add, to the standard parsers:

- a size limit, checked before parsing;
- a nesting limit (``MAX_DEPTH``): the configuration is four levels deep, so anything much
  deeper is a mistake, and the recursive parsers would otherwise end in ``RecursionError``;
- integers of at most ``MAX_INT_DIGITS`` digits: Python reads integers of any size (and
  refuses strings of more than 4300 digits with a bare ``ValueError``);
- no ``NaN``/``Infinity`` in JSON, which the standard ``json`` module accepts;
- duplicate keys refused (JSON and YAML keep the last one silently; TOML already refuses);
- YAML read with the YAML 1.2 core schema: ``1:46:19`` stays text instead of the YAML 1.1
  sexagesimal 6379, ``no`` and ``on`` stay text, ``010`` is ten; anchors and aliases are
  refused (a recursive alias would never end);
- a leading UTF-8 byte order mark (``\\ufeff``, as some Windows editors write) is ignored.

Each reader raises ``InputRejected`` (what was wrong, what is accepted); callers turn it
into their own error (``ConfigError`` naming the field, ``EventError``). Standard library
only, except PyYAML, imported when a YAML file is read (the Lambda zip does not ship it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_CONFIG_BYTES",
    "InputRejected",
    "strip_bom",
    "check_size",
    "check_tree",
    "load_json",
    "load_toml",
    "load_yaml",
]

MAX_DEPTH = 16
# 2**63 has 19 digits: any count, port or number of seconds cachebridge reads fits in 18.
MAX_INT_DIGITS = 18
MAX_CONFIG_BYTES = 1024 * 1024
BOM = "\ufeff"


class InputRejected(ValueError):
    """Untrusted text that cachebridge will not read. ``path`` names where in the parsed
    document the problem is (``bindings[0].port``), when that is known."""

    def __init__(self, problem: str, accepted: str | None = None, path: str | None = None) -> None:
        self.problem = problem
        self.accepted = accepted
        self.path = path
        super().__init__(problem if accepted is None else f"{problem} (accepted: {accepted})")


def strip_bom(text: str) -> str:
    return text[1:] if text.startswith(BOM) else text


def check_size(text: str, limit: int) -> None:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limit:
        raise InputRejected(f"{size} bytes is too large", f"at most {limit} bytes")


def _json_depth(text: str, limit: int) -> None:
    """Refuse JSON nested deeper than ``limit`` before the recursive parser sees it."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise InputRejected(f"nested deeper than {limit} levels", f"at most {limit} levels of lists and objects")
        elif char in "]}":
            depth -= 1


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    shown = str(key) if len(str(key)) <= 40 else str(key)[:37] + "..."
    return f"{path}.{shown}" if path else shown


def check_tree(value: Any, *, max_depth: int = MAX_DEPTH, _path: str = "", _depth: int = 0) -> None:
    """Walk a parsed document: nesting, integer size and finite floats, naming the path."""
    if _depth > max_depth:
        raise InputRejected(f"nested deeper than {max_depth} levels", f"at most {max_depth} levels", _path or None)
    if isinstance(value, bool):
        return
    if isinstance(value, _LongInteger) or (isinstance(value, int) and abs(value) >= 10**MAX_INT_DIGITS):
        raise InputRejected("the integer is too large", f"at most {MAX_INT_DIGITS} digits", _path or None)
    if isinstance(value, float) and not math.isfinite(value):
        raise InputRejected(f"{value} is not a finite number", "a finite number", _path or None)
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_tree(item, max_depth=max_depth, _path=_join(_path, key), _depth=_depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_tree(item, max_depth=max_depth, _path=_join(_path, index), _depth=_depth + 1)


class _LongInteger(str):
    """An integer literal with too many digits, kept as text so ``check_tree`` can name
    where it was instead of the parser failing without a position."""


def _json_int(text: str) -> int | _LongInteger:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return _LongInteger(text)
    return int(text)


def _json_constant(name: str) -> Any:
    raise InputRejected(f"{name} is not a number", "finite numbers")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InputRejected(f"duplicate key {key[:40]!r}", "each key once per object")
        result[key] = value
    return result


def load_json(text: str, *, max_bytes: int = MAX_CONFIG_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    text = strip_bom(text)
    check_size(text, max_bytes)
    _json_depth(text, max_depth)
    try:
        data = json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise InputRejected(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise InputRejected("nested too deeply", f"at most {max_depth} levels") from None
    check_tree(data, max_depth=max_depth)
    return data


def load_toml(text: str, *, max_bytes: int = MAX_CONFIG_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    import tomllib  # a config file's, never the function's (its bindings are JSON)

    text = strip_bom(text)
    check_size(text, max_bytes)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputRejected(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise InputRejected("nested too deeply", f"at most {max_depth} levels") from None
    except ValueError as exc:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise InputRejected(f"not readable TOML: {str(exc).split(';')[0]}", f"integers of at most {MAX_INT_DIGITS} digits") from None
    check_tree(data, max_depth=max_depth)
    return data


# -- YAML ----------------------------------------------------------------------------------------

# The YAML 1.2 core schema's implicit types (https://yaml.org/spec/1.2.2/#1032-tag-resolution);
# every other plain scalar is a string.
_YAML_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_YAML_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_YAML_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_YAML_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_yaml_loader: Any = None


def _yaml_int(text: str) -> int | _LongInteger:
    if text.startswith(("0o", "0x")):
        digits, base = text[2:], 8 if text[1] == "o" else 16
    else:
        digits, base = text, 10
    if len(digits.lstrip("+-")) > MAX_INT_DIGITS:
        return _LongInteger(text)  # check_tree names where it is
    return int(digits, base)


def _loader() -> Any:
    global _yaml_loader
    if _yaml_loader is not None:
        return _yaml_loader
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader with the YAML 1.2 core schema, no duplicate keys, no aliases and a
        nesting limit."""

        yaml_implicit_resolvers: dict[Any, Any] = {}
        max_depth = MAX_DEPTH
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise InputRejected(f"an alias (*{event.anchor}) at line {event.start_mark.line + 1}", "plain YAML without anchors and aliases")
            self._depth += 1
            if self._depth > self.max_depth:
                raise InputRejected(f"nested deeper than {self.max_depth} levels", f"at most {self.max_depth} levels")
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:
                    duplicate = False  # unhashable: SafeConstructor refuses it with its own message
                if duplicate:
                    raise InputRejected(f"duplicate key {str(key)[:40]!r} at line {key_node.start_mark.line + 1}", "each key once per table")
                if not isinstance(key, (list, dict)):
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    def construct_int(loader: Any, node: Any) -> int | _LongInteger:
        text = loader.construct_scalar(node)
        if not _YAML_INT.match(text):
            raise InputRejected(f"{text[:40]!r} is not a YAML 1.2 integer", "decimal digits, 0o octal or 0x hex")
        return _yaml_int(text)

    def construct_bool(loader: Any, node: Any) -> bool:
        text = loader.construct_scalar(node)
        if not _YAML_BOOL.match(text):
            raise InputRejected(f"{text[:40]!r} is not a YAML 1.2 boolean", "true or false")
        return text.lower() == "true"

    def construct_float(loader: Any, node: Any) -> float:
        text = loader.construct_scalar(node)
        if not _YAML_FLOAT.match(text):
            raise InputRejected(f"{text[:40]!r} is not a YAML 1.2 number", "e.g. 1.5 or 2e3")
        lowered = text.lower()
        if lowered.endswith((".inf", ".nan")):
            return float(lowered.replace(".", ""))
        return float(text)

    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor("tag:yaml.org,2002:bool", construct_bool)
    Loader.add_constructor("tag:yaml.org,2002:float", construct_float)
    Loader.add_implicit_resolver("tag:yaml.org,2002:null", _YAML_NULL, ["~", "n", "N", ""])
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _YAML_BOOL, list("tTfF"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:int", _YAML_INT, list("-+0123456789"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML_FLOAT, list("-+.0123456789"))
    _yaml_loader = Loader
    return Loader


def _one_line(exc: Any) -> str:
    """A YAML error as one line: what is wrong and where (PyYAML's own text spans lines)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        context = getattr(exc, "context", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}"
        return f"{context + ': ' if context else ''}{problem}{where}"
    return " ".join(str(exc).split())


def load_yaml(text: str, *, max_bytes: int = MAX_CONFIG_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    import yaml

    text = strip_bom(text)
    check_size(text, max_bytes)
    loader = _loader()(text)
    loader.max_depth = max_depth
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise InputRejected(f"not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise InputRejected("nested too deeply", f"at most {max_depth} levels") from None
    finally:
        loader.dispose()
    check_tree(data, max_depth=max_depth)
    return data

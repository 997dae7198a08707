"""DynamoDB condition expressions parsed once per request's expression, names and values.

moto 5.2.1 parses a ``ConditionExpression`` every time it meets one, compiling its six
token patterns again for each token, and meets a conditional ``Update`` of a
``TransactWriteItems`` three times (the response layer's check of the placeholders, the
transaction's own check of the condition, then ``update_item``'s). For the 100-item lease
transactions of a 1,000-binding pass that was a good part of each call's time, where
AWS's cost is per item (DynamoDB Developer Guide, "Capacity management for
transactions").

Here:

- The token list of each expression string is kept (up to ``_REMEMBERED`` strings) and a
  parse gets fresh token nodes made from it. Tokens depend only on the string.
- The parsed condition (moto's tree of ``Op``/``Func``/operand objects, and the names and
  values placeholders it used) is kept for the last ``_REMEMBERED`` distinct (expression,
  names, values) triples, so the three parses of one item become one. The tree is made
  from exactly those three inputs (from a private copy of the values, so nothing moto
  stores from a request and changes later reaches a kept tree), and moto only reads it
  afterwards (``expr(item)`` evaluates it against an item without changing it). Each
  evaluation still runs against the stored item as it is at that moment.
- An expression, names or values that are not plain strings, lists and dicts are parsed
  as moto does, every time; an expression moto refuses raises its error every time
  (nothing is kept for it).
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import OrderedDict, deque
from typing import Any

__all__ = ["install", "installed"]

_MARK = "_cachebridge_parsed_once"
_REMEMBERED = 512
_tokens: dict[str, tuple[tuple[str, str, str, Any], ...]] = {}
_parsed: OrderedDict[tuple[Any, ...], tuple[Any, tuple[str, ...], tuple[str, ...]]] = OrderedDict()
_lock = threading.Lock()


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a request's names or values (JSON-shaped), distinct for
    distinct inputs; raises TypeError for anything else."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return (type(value).__name__, value)
    if isinstance(value, dict):
        return ("dict", tuple(sorted((_key_str(k), _frozen(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", tuple(_frozen(v) for v in value))
    raise TypeError(type(value).__name__)


def _key_str(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(type(key).__name__)
    return key


def _lexing_once(lex: Any) -> Any:
    @functools.wraps(lex)
    def _lex_condition_expression(self: Any) -> deque[Any]:
        expression = self.condition_expression
        kept = _tokens.get(expression) if isinstance(expression, str) else None
        if kept is None:
            nodes = lex(self)  # raises for an expression moto cannot split: not kept
            if isinstance(expression, str) and all(not n.children for n in nodes):
                with _lock:
                    if len(_tokens) < _REMEMBERED:
                        _tokens[expression] = tuple((n.nonterminal, n.kind, n.text, n.value) for n in nodes)
            return nodes
        make = self.Node
        return deque(make(nonterminal=nt, kind=kind, text=text, value=value, children=[]) for nt, kind, text, value in kept)

    setattr(_lex_condition_expression, _MARK, True)
    return _lex_condition_expression


def _parsing_once(parse: Any) -> Any:
    @functools.wraps(parse)
    def parse_once(self: Any) -> Any:
        try:
            if not isinstance(self.condition_expression, str) or self.expr_attr_names_found or self.expr_attr_values_found:
                raise TypeError("not a fresh parser of a string")
            key = (self.condition_expression, _frozen(self.expression_attribute_names), _frozen(self.expression_attribute_values))
        except TypeError:
            return parse(self)
        with _lock:
            kept = _parsed.get(key)
            if kept is not None:
                _parsed.move_to_end(key)
        if kept is None:
            # Parsed from a private copy of the values: the kept tree shares nothing with
            # this request's values, which moto may store in an item and change later.
            values = self.expression_attribute_values
            self.expression_attribute_values = copy.deepcopy(values)
            try:
                op = parse(self)  # raises for an invalid condition: not kept
            finally:
                self.expression_attribute_values = values
            kept = (op, tuple(self.expr_attr_names_found), tuple(self.expr_attr_values_found))
            with _lock:
                _parsed[key] = kept
                while len(_parsed) > _REMEMBERED:
                    _parsed.popitem(last=False)
            return op
        op, names_found, values_found = kept
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return op

    setattr(parse_once, _MARK, True)
    return parse_once


def install() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    if not getattr(ConditionExpressionParser._lex_condition_expression, _MARK, False):
        ConditionExpressionParser._lex_condition_expression = _lexing_once(ConditionExpressionParser._lex_condition_expression)  # type: ignore[method-assign]
    if not getattr(ConditionExpressionParser.parse, _MARK, False):
        ConditionExpressionParser.parse = _parsing_once(ConditionExpressionParser.parse)  # type: ignore[method-assign]


def installed() -> bool:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    return bool(getattr(ConditionExpressionParser._lex_condition_expression, _MARK, False) and getattr(ConditionExpressionParser.parse, _MARK, False))

"""DynamoDB condition expressions split into tokens once per expression string.

moto 5.2.1 turns a ``ConditionExpression`` into tokens every time it parses one, compiling
its six token patterns again for each token; a conditional ``Update`` of a
``TransactWriteItems`` is parsed three times (the response layer's check of the
placeholders, the transaction's own check, then ``update_item``'s). For the 100-item lease
transactions of a 1,000-binding pass that was a good part of each call's half second,
where AWS's cost is per item (DynamoDB Developer Guide, "Capacity management for
transactions").

Here the token list of each expression string is kept (up to ``_REMEMBERED`` strings)
and each parse gets fresh token nodes made from it, so nothing a parse does to its tokens
reaches another. The tokens depend only on the string. Everything after the tokens (the
placeholders looked up in that request's names and values, the syntax checks, the
evaluation against the stored item) is still moto's, per parse. A string that cannot be
split raises moto's error every time and is not kept.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from typing import Any

__all__ = ["install", "installed"]

_MARK = "_cachebridge_lexed_once"
_REMEMBERED = 256
_tokens: dict[str, tuple[tuple[str, str, str, Any], ...]] = {}
_tokens_lock = threading.Lock()


def _remembering(lex: Any) -> Any:
    @functools.wraps(lex)
    def _lex_condition_expression(self: Any) -> deque[Any]:
        expression = self.condition_expression
        kept = _tokens.get(expression) if isinstance(expression, str) else None
        if kept is None:
            nodes = lex(self)  # raises for an expression moto cannot split: not kept
            kept = tuple((n.nonterminal, n.kind, n.text, n.value) for n in nodes)
            if all(not n.children for n in nodes) and isinstance(expression, str):
                with _tokens_lock:
                    if len(_tokens) < _REMEMBERED:
                        _tokens[expression] = kept
            return nodes
        make = self.Node
        return deque(make(nonterminal=nt, kind=kind, text=text, value=value, children=[]) for nt, kind, text, value in kept)

    setattr(_lex_condition_expression, _MARK, True)
    return _lex_condition_expression


def install() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    if not getattr(ConditionExpressionParser._lex_condition_expression, _MARK, False):
        ConditionExpressionParser._lex_condition_expression = _remembering(ConditionExpressionParser._lex_condition_expression)  # type: ignore[method-assign]


def installed() -> bool:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    return bool(getattr(ConditionExpressionParser._lex_condition_expression, _MARK, False))

"""DynamoDB update expressions parsed once per expression, not once per use.

moto 5.2.1 parses an ``UpdateExpression`` string into a syntax tree every time it meets
one: twice per item of a ``TransactWriteItems`` (the response layer, to check the
placeholders; then ``update_item``), and its validators rebuild their node-type table for
every node they visit. A 100-item transaction of cachebridge's write leases (one
expression shared by every item) spent most of its time there: about half a second a call
on the benchmark machine, several times what the lease transactions of a whole pass take
on AWS (its cost is per item: DynamoDB Developer Guide, "Capacity management for
transactions"), and the lease thread of a 1,000-binding pass waited on it.

Here:

- ``UpdateExpressionParser.make`` keeps the tree it built for each expression string (up
  to ``_REMEMBERED``) and hands the same tree out again. The tree depends only on the
  string. Every use in moto either only reads it (the response layer's ``find_clauses``)
  or deep-copies it before changing anything (``Validator.__init__``), so sharing it
  changes no answer.
- A tree walker's (``DepthFirstTraverser``) node-type table is built once per walker
  rather than once per node visited; the table is a constant of the walker.

What each item's expression does to its item (validation, values, conditions, errors) is
still worked out by moto, item by item.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["install", "installed"]

_MARK = "_cachebridge_parsed_once"
_REMEMBERED = 256
_trees: dict[str, Any] = {}
_trees_lock = threading.Lock()


def _remembering(make: Any) -> Any:
    def remembered_make(cls: Any, expression_str: str) -> Any:
        tree = _trees.get(expression_str)
        if tree is None:
            tree = make(cls, expression_str)  # raises for an invalid expression: not kept
            with _trees_lock:
                if len(_trees) < _REMEMBERED:
                    _trees[expression_str] = tree
        return tree

    setattr(remembered_make, _MARK, True)
    return classmethod(remembered_make)


def _nodes_to_be_processed(self: Any) -> tuple[type, ...]:
    table = self.__dict__.get("_cachebridge_node_types")
    if table is None:
        table = self.__dict__["_cachebridge_node_types"] = tuple(self._processing_map().keys())
    return table  # type: ignore[no-any-return]


def _process(self: Any, node: Any) -> Any:
    processors = self.__dict__.get("_cachebridge_processors")
    if processors is None:
        processors = self.__dict__["_cachebridge_processors"] = tuple(self._processing_map().items())
    for class_key, processor in processors:
        if isinstance(node, class_key):
            return processor(node)
    return None


setattr(_nodes_to_be_processed, _MARK, True)
setattr(_process, _MARK, True)


def install() -> None:
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    if not getattr(UpdateExpressionParser.make, _MARK, False):
        UpdateExpressionParser.make = _remembering(UpdateExpressionParser.make.__func__)  # type: ignore[method-assign]
    if not getattr(DepthFirstTraverser.nodes_to_be_processed, _MARK, False):
        # Subclasses that define their own (none in moto 5.2.1) keep theirs.
        DepthFirstTraverser.nodes_to_be_processed = _nodes_to_be_processed  # type: ignore[method-assign]
        DepthFirstTraverser.process = _process  # type: ignore[method-assign]


def installed() -> bool:
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    return bool(getattr(UpdateExpressionParser.make, _MARK, False) and getattr(DepthFirstTraverser.nodes_to_be_processed, _MARK, False))

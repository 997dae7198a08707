"""DynamoDB update expressions validated per item without redoing what depends on no item.

moto 5.2.1 validates an ``UpdateExpression`` for every item it updates (``update_item``,
and each ``Update`` of a ``TransactWriteItems``) by deep-copying the parsed tree and
walking the copy with ten processors. A 100-item transaction of cachebridge's write leases
(one expression, ~50 nodes, shared by every item) spent most of its time there, with the
per-call cost several times what the lease calls of a whole pass take on AWS (whose cost
is per item: DynamoDB Developer Guide, "Capacity management for transactions").

Here, with every answer unchanged:

- The first three processors (``ActionCountValidator``, ``OverlappingPathsValidator``,
  ``UpdateHashRangeKeyValidator``) read only the expression, its attribute names and the
  table's key attributes, and change no node. Once they have passed for one (expression
  tree, names, key attributes), later validations of the same combination skip them; a
  combination that fails is never remembered, so its error is raised every time. The
  other seven (attribute values, the item's current attributes, functions such as
  ``if_not_exists``, type checks, the execution) still run for every item, on its own
  values and the stored item.
- The validator's copy of the tree is made by a copier for these trees (every node's
  attributes copied, children in order, parents pointing into the copy, shared nodes
  shared once, as ``copy.deepcopy`` gives) instead of ``copy.deepcopy``'s generic
  machinery; anything that is not such a tree is still deep-copied.
- A tree walk (``DepthFirstTraverser.traverse``) looks up once per walk what moto looked
  up at every node: whether the walker has a per-child hook (the base one does nothing),
  its processing functions, and, once per (walker class, node type), whether the type is
  a node (an ABC check) and which function processes it. The order of visits, hooks and
  replacements is moto's; a walker that defines its own walk or lookup keeps moto's.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

__all__ = ["install", "installed"]

_MARK = "_cachebridge_validated_per_item"
_REMEMBERED = 1024
_SCALARS = (str, int, float, bool, type(None))
# (id(tree), names, key attributes) -> the tree, kept so that its id is not reused.
_passed: dict[tuple[Any, ...], Any] = {}
_passed_lock = threading.Lock()
_node_types: dict[type, bool] = {}
_processor_indexes: dict[tuple[type, type], int] = {}


def _static_key(tree: Any, names: Any, table: Any) -> tuple[Any, ...] | None:
    try:
        return (id(tree), tuple(sorted((names or {}).items())), tuple(table.table_key_attrs))
    except (TypeError, AttributeError):
        return None  # unhashable or unsortable names: validated in full, as moto does


def _copy_tree(root: Any) -> Any:
    """A deep copy of ``root``, an AST of ``moto.dynamodb.parsing.ast_nodes.Node``s."""
    from moto.dynamodb.parsing.ast_nodes import Node

    if not isinstance(root, Node) or root.parent is not None:
        return copy.deepcopy(root)
    memo: dict[int, Any] = {}

    def copy_node(node: Any) -> Any:
        done = memo.get(id(node))
        if done is not None:
            return done
        clone = node.__class__.__new__(node.__class__)
        memo[id(node)] = clone
        for name, value in node.__dict__.items():
            if name == "parent":
                if value is None:
                    clone.parent = None
                elif id(value) in memo:
                    clone.parent = memo[id(value)]
                else:
                    raise _NotATree
            elif name == "children" and type(value) is list:
                clone.children = [copy_node(c) if isinstance(c, Node) else (c if isinstance(c, _SCALARS) else copy.deepcopy(c, memo)) for c in value]
            elif isinstance(value, _SCALARS):
                setattr(clone, name, value)
            else:
                setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    try:
        return copy_node(root)
    except _NotATree:
        return copy.deepcopy(root)


class _NotATree(Exception):
    """A node whose parent lies outside the tree being copied."""


def _deepcopy(value: Any, memo: Any = None) -> Any:
    """Stands in for ``deepcopy`` in moto's validators module."""
    from moto.dynamodb.parsing.ast_nodes import Node

    if memo is None and isinstance(value, Node):
        return _copy_tree(value)
    return copy.deepcopy(value, memo)


def _remembering_init(init: Any) -> Any:
    @functools.wraps(init)
    def __init__(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        init(self, expression, *args, **kwargs)
        self._cachebridge_source = expression

    setattr(__init__, _MARK, True)
    return __init__


def _validate(self: Any) -> Any:
    from moto.dynamodb.parsing.validators import ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator

    static = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)
    processors = list(self.processors)
    node = self.node_to_validate
    source = self.__dict__.get("_cachebridge_source")
    key = _static_key(source, self.expression_attribute_names, self.table) if source is not None else None
    leading = 0
    while leading < len(processors) and isinstance(processors[leading], static):
        leading += 1
    if key is not None and leading and key in _passed and _passed[key] is source:
        processors = processors[leading:]
    elif key is not None and leading:
        for processor in processors[:leading]:
            node = processor.traverse(node)
        with _passed_lock:
            if len(_passed) < _REMEMBERED:
                _passed[key] = source
        processors = processors[leading:]
    for processor in processors:
        node = processor.traverse(node)
    return node


setattr(_validate, _MARK, True)


def _is_node(node_type: type) -> bool:
    """``isinstance(x, Node)`` for an ``x`` of type ``node_type``, answered once per type
    (``Node`` is an ABC, whose checks cost a call each; moto registers no virtual
    subclasses of it)."""
    known = _node_types.get(node_type)
    if known is None:
        from moto.dynamodb.parsing.ast_nodes import Node

        known = _node_types[node_type] = issubclass(node_type, Node)
    return known


def _processor_index(walker: Any, node_type: type) -> int:
    """The position in ``walker``'s processing map of the first entry ``node_type``'s
    nodes are processed by (-1: none), as moto's ``process`` looks it up; once per
    (walker class, node type): the maps' keys are fixed per class."""
    key = (type(walker), node_type)
    index = _processor_indexes.get(key)
    if index is None:
        index = next((i for i, cls in enumerate(walker._processing_map()) if issubclass(node_type, cls)), -1)
        _processor_indexes[key] = index
    return index


def _traverse(self: Any, node: Any) -> Any:
    """moto's depth-first walk (children first, left to right, each child preceded by the
    walker's per-child hook; a processed node replaces itself in its parent's children),
    with the per-walk constants looked up once."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    walker = type(self)
    if (
        walker.traverse_node_recursively is not DepthFirstTraverser.traverse_node_recursively
        or walker.process is not DepthFirstTraverser.process
        or walker.nodes_to_be_processed is not DepthFirstTraverser.nodes_to_be_processed
    ):
        return self.traverse_node_recursively(node)  # a walker of its own: moto's way
    hook = None if walker.pre_processing_of_child is DepthFirstTraverser.pre_processing_of_child else self.pre_processing_of_child
    handlers = tuple(self._processing_map().values())
    node_types = _node_types
    indexes = _processor_indexes

    def visit(node: Any, child_id: int) -> Any:
        node_type = type(node)
        is_node = node_types.get(node_type)
        if is_node is None:
            is_node = _is_node(node_type)
        if not is_node:
            return node
        parent_node = node.parent
        children = node.children
        if children is not None:
            for i, child_node in enumerate(children):
                if hook is not None:
                    hook(node, i)
                visit(child_node, i)
        index = indexes.get((walker, node_type))
        if index is None:
            index = _processor_index(self, node_type)
        if index >= 0:
            node = handlers[index](node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    return visit(node, -1)


setattr(_traverse, _MARK, True)


def install() -> None:
    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    if validators.deepcopy is not _deepcopy:
        validators.deepcopy = _deepcopy  # type: ignore[assignment]
    if not getattr(UpdateExpressionValidator.__init__, _MARK, False):
        UpdateExpressionValidator.__init__ = _remembering_init(UpdateExpressionValidator.__init__)  # type: ignore[method-assign]
        UpdateExpressionValidator.validate = _validate  # type: ignore[method-assign]
    if not getattr(DepthFirstTraverser.traverse, _MARK, False):
        DepthFirstTraverser.traverse = _traverse  # type: ignore[method-assign]


def installed() -> bool:
    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    return bool(
        validators.deepcopy is _deepcopy
        and getattr(UpdateExpressionValidator.__init__, _MARK, False)
        and getattr(DepthFirstTraverser.traverse, _MARK, False)
    )

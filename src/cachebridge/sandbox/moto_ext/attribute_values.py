"""DynamoDB answers written out without asking ten questions of every scalar value.

moto 5.2.1 writes each ``AttributeValue`` of an answer through its generic, model-driven
serializer: for each of the shape's ten members (S, N, B, SS, NS, BS, M, L, NULL, BOOL)
it looks the member up in the value under every alias it knows, then writes the one it
found. A ``BatchGetItem`` of 100 lease records (about a dozen attributes each) took
about two hundred milliseconds that way on the benchmark machine, a cost of the stand-in
and not of DynamoDB (AWS documents no latency figure for BatchGetItem; none is modelled
here, only moto's own cost removed).

Here an ``AttributeValue`` that is a plain ``dict`` with exactly one member, ``S`` or
``N`` holding a ``str`` or ``BOOL`` or ``NULL`` holding a ``bool``, is written as moto's
serializer writes it: ``{member: value}`` under the member's serialized name. Every other
value (binary, sets, lists, maps, a dict with other keys, a serializer configured with
response transformers) still goes through moto's serializer unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["install", "installed"]

_MARK = "_cachebridge_scalar_attribute_values"
_SCALAR_MEMBERS = {"S": str, "N": str, "BOOL": bool, "NULL": bool}


def _fast(method: Any) -> Any:
    @functools.wraps(method)
    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and type(value) is dict and len(value) == 1 and shape.name == "AttributeValue" and not _transformers(self):
            ((member, scalar),) = value.items()
            kind = _SCALAR_MEMBERS.get(member)
            member_shape = shape.members.get(member) if kind is not None else None
            if member_shape is not None and type(scalar) is kind:
                serialized[self.get_serialized_name(shape, key)] = {self.get_serialized_name(member_shape, member): scalar}
                return
        method(self, serialized, value, shape, key)

    setattr(_serialize_type_structure, _MARK, True)
    return _serialize_type_structure


def _transformers(serializer: Any) -> bool:
    return bool(getattr(serializer._value_picker, "response_transformers", None))


def install() -> None:
    from moto.core.serialize import BaseJSONSerializer

    if not getattr(BaseJSONSerializer._serialize_type_structure, _MARK, False):
        BaseJSONSerializer._serialize_type_structure = _fast(BaseJSONSerializer._serialize_type_structure)  # type: ignore[method-assign]


def installed() -> bool:
    from moto.core.serialize import BaseJSONSerializer

    return bool(getattr(BaseJSONSerializer._serialize_type_structure, _MARK, False))

"""JSON Schema of the JSON Lines output, derived from :mod:`rpcinspect.records`.

Derived, not hand-written, so it cannot drift from the records; ``additionalProperties: false``
everywhere, so a field added without a schema bump (or a stray one) fails validation in the tests.
``rpcinspect schema`` prints it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from rpcinspect.records import (
    SCHEMA_VERSION,
    AnomalyRecord,
    BindRecord,
    CallRecord,
    ContextRecord,
    EndpointRecord,
    SummaryRecord,
)

__all__ = ["json_schema"]

_RECORDS = (CallRecord, BindRecord, EndpointRecord, AnomalyRecord, SummaryRecord)


def _type(tp: Any) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (Union, types.UnionType):
        opts = [_type(a) for a in get_args(tp)]
        return opts[0] if len(opts) == 1 else {"anyOf": opts}
    if origin is list:
        (item,) = get_args(tp)
        return {"type": "array", "items": _type(item)}
    if origin is dict:
        _k, v = get_args(tp)
        return {"type": "object", "additionalProperties": _type(v)}
    if tp is type(None):
        return {"type": "null"}
    if dataclasses.is_dataclass(tp):
        return _object(tp)
    simple = {int: "integer", float: "number", str: "string", bool: "boolean"}
    if tp in simple:
        return {"type": simple[tp]} if tp is not float else {"type": ["number", "integer"]}
    raise TypeError(f"no JSON Schema mapping for {tp!r}")


def _object(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props = {f.name: _type(hints[f.name]) for f in dataclasses.fields(cls)}
    if "schema" in props:
        props["schema"] = {"const": SCHEMA_VERSION}
    return {
        "type": "object",
        "title": cls.__name__,
        "description": (cls.__doc__ or "").strip().splitlines()[0],
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def json_schema() -> dict[str, Any]:
    """One schema for any line of ``--format jsonl`` output (one of the record kinds)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://rpcinspect.invalid/schema/v{SCHEMA_VERSION}/record.json",
        "title": f"rpcinspect record (schema {SCHEMA_VERSION})",
        "oneOf": [_object(c) for c in _RECORDS],
        "$defs": {"ContextRecord": _object(ContextRecord)},
    }

"""Dataclasses <-> JSON-able dicts, by their type hints: the one (de)serialiser of records.

`to_record(obj)` gives the fields in order (nested dataclasses too; tuples and Paths become lists and
strings; a field with `metadata={"omit_none": True}` is left out while None). `from_record(cls, data)`
builds `cls` back: missing keys take the field's default (records written by older versions), unknown
keys are ignored, and lists become tuples where the field is a tuple.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def to_record(obj) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_record(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("omit_none") and getattr(obj, f.name) is None)}
    if isinstance(obj, (list, tuple)):
        return [to_record(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_record(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def from_record(cls: type[T], data: dict) -> T:
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: _value(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


def _value(hint, value):
    """`value` read back as `hint` says: nested dataclasses built, lists as tuples where a tuple is expected."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _value(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        return from_record(hint, value)
    if origin is tuple:
        return tuple(value)
    if origin is list:
        return list(value)
    if origin is dict:
        return dict(value)
    return value

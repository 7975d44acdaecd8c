"""Dataclass <-> JSON-dict conversion with validation, shared by every contract.

``from_dict(cls, data, where)`` builds ``cls`` from a plain dict. A missing field that has no default (or that the
class names in ``REQUIRED``), or a value of the wrong kind, raises ``ValueError`` with one line naming ``where``
(the file) and the field. Nested contracts are built the same way. Keys the class does not declare are kept in its
``extra`` field when it has one (a newer writer's additions survive a round trip) and ignored otherwise (old files
keep reading). ``to_dict`` is ``dataclasses.asdict`` with each record's ``extra`` merged back in at the top; a class
with ``SPARSE = True`` leaves out its fields that are None (figures a run did not produce).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")
_BASIC = {int: (int,), float: (int, float), str: (str,), bool: (bool,), list: (list, tuple), dict: (dict,),
          tuple: (list, tuple)}


def _check(value: Any, hint: Any, where: str) -> Any:
    """``value`` as ``hint`` wants it (nested contracts built, numbers kept), or ValueError naming ``where``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check(value, arg, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where} has an unexpected value {value!r}")
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    base = origin or hint
    kinds = _BASIC.get(base)
    if kinds is None:
        return value
    if not isinstance(value, kinds) or (base in (int, float) and isinstance(value, bool)):
        raise ValueError(f"{where} should be {getattr(base, '__name__', base)}, got {type(value).__name__} {value!r}")
    if base in (list, tuple) and args and dataclasses.is_dataclass(args[0]):
        return [from_dict(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if base is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return {k: from_dict(args[1], v, f"{where}[{k!r}]") for k, v in value.items()}
    return value


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data`` (a dict), validating every declared field (see the module doc)."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = set(getattr(cls, "REQUIRED", ()))  # fields with a default in code that a file must still hold
    kwargs = {}
    for name, f in fields.items():
        if name == "extra":
            continue
        if name not in data:
            if name in required or f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing field {name!r} ({cls.__name__})")
            continue
        kwargs[name] = _check(data[name], hints[name], f"{where}: field {name!r}")
    if "extra" in fields:
        kwargs["extra"] = {k: v for k, v in data.items() if k not in fields}
    return cls(**kwargs)


def to_dict(record: Any) -> dict:
    """A contract as a plain dict (``asdict``), each nested ``extra`` merged into its record's own keys."""
    def plain(x):
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            sparse = getattr(type(x), "SPARSE", False)  # figures a run did not produce are absent, not null
            out = {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)
                   if f.name != "extra" and not (sparse and getattr(x, f.name) is None)}
            out.update(plain(getattr(x, "extra", None) or {}))
            return out
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [plain(v) for v in x]
        return x

    return plain(record)

"""Frozen plain-data records for facts and results: JSON out, checked JSON in, no pydantic.

Facts and results are produced by traindoc itself and read on every docs rebuild; keeping them plain
dataclasses means a cache hit never imports pydantic (which costs a rebuild more than all of
traindoc's own work). Reading still checks shapes and types: an unknown or missing field, or a value
of the wrong type, raises :class:`RecordError` naming the field path. The spec, which users write,
stays pydantic.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterator
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from .errors import RecordError as RecordError  # its home is the error root; re-exported for readers

R = TypeVar("R", bound="Record")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Record:
    """Base of every fact and result: ``model_dump``/``model_copy``/``model_validate`` like pydantic's."""

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        out: dict[str, Any] = _dump(self)
        return out

    def model_copy(self: R, update: dict[str, Any] | None = None) -> R:
        return dataclasses.replace(self, **(update or {}))

    @classmethod
    def model_validate(cls: type[R], data: Any) -> R:
        built: R = _build(cls, data, cls.__name__)
        return built

    @classmethod
    def model_validate_json(cls: type[R], text: str | bytes) -> R:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RecordError(f"{cls.__name__}: not JSON: {exc}") from None
        return cls.model_validate(data)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """(name, value) pairs, so templates can loop over a record's fields."""
        for f in dataclasses.fields(self):
            yield f.name, getattr(self, f.name)


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@cache
def _required(cls: type) -> frozenset[str]:
    return frozenset(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )


def _build(tp: Any, value: Any, path: str) -> Any:
    if isinstance(tp, type) and issubclass(tp, Record):
        if not isinstance(value, dict):
            raise RecordError(f"{path}: expected an object, got {type(value).__name__}")
        hints = _hints(typing.cast(type, tp))
        unknown = set(value) - set(hints)
        if unknown:
            raise RecordError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
        missing = _required(typing.cast(type, tp)) - set(value)
        if missing:
            raise RecordError(f"{path}: missing field(s) {', '.join(sorted(missing))}")
        return tp(**{k: _build(hints[k], v, f"{path}.{k}") for k, v in value.items()})
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _build(arg, value, path)
            except RecordError as exc:
                errors.append(str(exc))
        raise RecordError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            raise RecordError(f"{path}: {value!r} is not one of {args}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{path}: expected a list, got {type(value).__name__}")
        return [_build(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise RecordError(f"{path}: expected {len(args)} items")
        return tuple(_build(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{path}: expected an object, got {type(value).__name__}")
        return {str(k): _build(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise RecordError(f"{path}: expected {tp.__name__}, got {value!r}")
        return value
    raise RecordError(f"{path}: unsupported type {tp!r}")  # pragma: no cover

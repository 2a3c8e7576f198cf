"""The spec model tree, walked: reference rows (:func:`describe_fields`) and the sub-model of a field."""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
)

from .types import _check_ref


def describe_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Flatten the spec into ``(path, type, default, description)`` rows for the reference docs."""
    rows: list[tuple[str, str, str, str]] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = field.annotation
        sub = _submodel(ann)
        is_factory = any(getattr(m, "func", None) is _check_ref for m in field.metadata)
        type_name = "factory" if is_factory else _type_name(ann)
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = "see below" if sub else repr(field.default_factory())  # type: ignore[call-arg]
        else:
            default = repr(field.default)
        rows.append((path, type_name, default, field.description or ""))
        if sub is not None:
            rows.extend(describe_fields(sub, path + "."))
    if model.model_config.get("extra") == "allow":
        rows.append(
            (
                f"{prefix}<metric>",
                "{'min': float, 'max': float}",
                "none",
                "Bound any recorded metric by name (e.g. val_loss, val_token_accuracy, val_perplexity, a metric "
                "your step or evaluate hook returns); a bound on a metric that was never recorded fails.",
            )
        )
    return rows


def _submodel(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel) and getattr(ann, "__origin__", None) is not list:
            return arg
    return None


def _type_name(ann: Any) -> str:
    """Readable type for the reference table: 'factory', "'a' | 'b'", 'int | None', 'list[Volume]'."""
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        if any(getattr(m, "func", None) is _check_ref for m in args[1:]):
            return "factory"
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if ann is type(None):
        return "None"
    return getattr(ann, "__name__", repr(ann))

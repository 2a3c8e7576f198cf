"""The spec's building blocks: one-line and paragraph strings, patterns, factory references, the base model.

Every string field of the spec is :data:`Text` or :data:`Paragraph`; every factory is a :data:`Factory`.
This module never imports torch: factories are callables or ``"module:attr"`` strings and are only
resolved by the loader (:mod:`traindoc.spec.loader`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)

_REF_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE_RE = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?[a-z0-9._/-]*(:(?P<tag>[\w][\w.-]{0,127}))?(@sha256:[0-9a-f]{64})?$"
)
_SHM_RE = re.compile(r"[1-9][0-9]*[bkmgBKMG]?")
# Every regex here is used with fullmatch: Python's "$" also matches before a final newline.
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]{0,31}"
_USER_RE = re.compile(rf"(?:{_NAME}|[0-9]{{1,10}})(?::(?:{_NAME}|[0-9]{{1,10}}))?")
_SSH_USER_RE = re.compile(_NAME)
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")
_RDZV_ID_RE = re.compile(r"[\w.-]+")
_PIPELINE_NAME_RE = re.compile(r"[A-Za-z0-9][\w.-]*")
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9_][\w.-]*")
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _clean(value: str, allow: str) -> str:
    bad = sorted({ch for ch in value if ch not in allow and (unicodedata.category(ch) == "Cc" or ch in _BIDI)})
    if bad:
        raise ValueError(f"must not contain control characters ({', '.join(repr(c) for c in bad)})")
    if value != value.rstrip("\n\r\t"):
        raise ValueError("must not end with a newline or a tab")
    return value


def _one_line(value: str) -> str:
    return _clean(value, "")


def _paragraph(value: str) -> str:
    return _clean(value, "\n\t")


Text = Annotated[str, AfterValidator(_one_line)]
"""A one-line string: no control characters (newline, escape, NUL...) and no bidi overrides. Every
string field of the spec is one, so nothing a spec holds can start a new line of generated text."""
Paragraph = Annotated[str, AfterValidator(_paragraph)]
"""Like :data:`Text`, but inner newlines and tabs are allowed (a description); a trailing one is not."""


def _full(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {what}")  # the loader adds "(got ...)"
        return value

    return AfterValidator(check)


_METRIC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


def split_image(ref: str) -> tuple[str, str | None, str | None]:
    """``(name, tag, digest)`` of an image reference: the tag follows the last ':' after the last '/'
    (so ``python:3.11``, ``pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime`` and
    ``registry:5000/team/img:24.05-py3`` have tags, and a registry port is never taken for one)."""
    name, _, digest = ref.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :] or None, digest or None
    return name, None, digest or None


def _check_ref(value: Any) -> Any:
    if callable(value):
        return value
    if isinstance(value, str) and _REF_RE.fullmatch(value):
        return value
    raise ValueError("must be a callable or a 'module:attr' string")


def ref_name(value: Any) -> str:
    """A stable, human-readable name for a factory: ``module:qualname``."""
    if isinstance(value, str):
        return value
    module = getattr(value, "__module__", None) or "?"
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__name__
    return f"{module}:{name}"


Factory = Annotated[
    Any,
    AfterValidator(_check_ref),
    PlainSerializer(ref_name, return_type=str),
    WithJsonSchema({"type": "string", "description": "a callable or a 'module:attr' string"}),
]
"""A callable, or ``"module:attr"`` naming one; resolved lazily by :mod:`traindoc.spec.loader`."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True)

"""The declarative pipeline spec: :class:`Pipeline`, and what the run records and must meet.

A pipeline module builds one :class:`Pipeline`. Every field has a description; the docs' spec
reference is generated from them (``traindoc reference``). This module never imports torch:
factories are callables or ``"module:attr"`` strings and are only resolved by the loader.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from .environment import Access, Environment
from .training import Checkpoint, DataSpec, Distributed, ModelSpec, OptimSpec, Training
from .types import (
    _FILE_NAME_RE,
    _METRIC_RE,
    _PIPELINE_NAME_RE,
    Factory,
    Paragraph,
    Text,
    _full,
    _Model,
)

Metric = Literal["loss", "accuracy", "lr", "samples_per_s", "memory"]
METRICS: tuple[Metric, ...] = ("loss", "accuracy", "lr", "samples_per_s", "memory")


class Monitoring(_Model):
    """What the run records."""

    log_file: Annotated[Text, _full(_FILE_NAME_RE, "a file name (no folders)")] = Field(
        "train.log",
        description="Human-readable log of every recorded step and evaluation, written by rank 0 "
        "into the run folder under this file name.",
    )
    metrics: list[Metric] = Field(
        default_factory=lambda: list(METRICS),
        description="Metrics to record and report.",
    )
    samples: Factory | None = Field(
        None,
        description="Callable `samples(model) -> list[str]` run on rank 0 after training (eval mode, no grad): "
        "text shown on the run page, e.g. a few generated sequences.",
    )


class Bound(_Model):
    """Bounds on one recorded metric: its final value must be at least ``min`` and at most ``max``."""

    min: float | None = Field(None, description="The final value must be at least this.")
    max: float | None = Field(None, description="The final value must be at most this.")

    @model_validator(mode="after")
    def _some(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a bound needs 'min', 'max' or both")
        return self


SHORTHANDS = ("min_val_accuracy", "min_loss_drop", "max_final_loss")


class Expect(_Model):
    """What a good run looks like; checked after every executed run.

    Besides the shorthands, any recorded metric may be bounded by name:
    ``{"val_loss": {"max": 2.0}, "val_token_accuracy": {"min": 0.3}}``.
    """

    model_config = ConfigDict(extra="allow", frozen=True, arbitrary_types_allowed=True, defer_build=True)
    __pydantic_extra__: dict[str, Bound] = Field(init=False)

    @model_validator(mode="before")
    @classmethod
    def _metric_bounds(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if key in SHORTHANDS:
                    continue
                if not isinstance(key, str) or not _METRIC_RE.match(key):
                    raise ValueError(f"{key!r} is not a metric name (letters, digits, '_')")
                if not isinstance(value, (dict, Bound)):
                    raise ValueError(
                        f"{key}: a metric bound is {{'min': x}} and/or {{'max': y}}, got {value!r} "
                        f"(shorthands: {', '.join(SHORTHANDS)})"
                    )
        return data

    @property
    def bounds(self) -> dict[str, Bound]:
        """Bounds on named metrics (everything besides the shorthands)."""
        return dict(self.__pydantic_extra__ or {})

    min_val_accuracy: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Final validation accuracy must reach this (shorthand for val_accuracy: min; accuracy is "
        "recorded for classifiers only — bound val_token_accuracy for sequence models).",
    )
    min_loss_drop: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Training loss must fall by this fraction (0.5 = halve) from first to last logged window.",
    )
    max_final_loss: float | None = Field(None, gt=0.0, description="Final training loss must be at most this.")


Devices = (
    Literal["auto", "cpu", "cuda"]
    | list[Annotated[Text, _full(re.compile(r"cpu|cuda(:[0-9]+)?"), "'cpu', 'cuda' or 'cuda:N'")]]
)


class LintSpec(_Model):
    """Lint rules this pipeline silences, each with the reason (shown in ``traindoc lint``)."""

    ignore: dict[str, str] = Field(
        default_factory=dict,
        description="Rule id -> why it does not apply here, e.g. {'root-user': 'the image drops privileges itself'}.",
    )

    @field_validator("ignore")
    @classmethod
    def _reasons(cls, v: dict[str, str]) -> dict[str, str]:
        from ..render.lint import RULES

        known = [name for name, _ in RULES]
        for rule_id, reason in v.items():
            if rule_id not in known:
                raise ValueError(f"unknown lint rule {rule_id!r}; known rules: {', '.join(known)}")
            if not reason.strip():
                raise ValueError(f"silencing {rule_id!r} needs a reason")
        return v


class Pipeline(_Model):
    """A whole training system, declared."""

    name: Annotated[Text, _full(_PIPELINE_NAME_RE, "letters, digits, '_', '.', '-'")] = Field(
        description="Short name (used in ids, cache keys and links)."
    )
    description: Paragraph = Field("", description="One paragraph about the pipeline.")
    environment: Environment = Field(description="Container image, user, ports, volumes, env names, shm.")
    access: Access = Field(default_factory=Access, description="Jupyter and SSH entry points.")
    devices: Devices = Field(
        "auto", description="'auto' (CUDA when available, else CPU, said out loud), 'cpu', 'cuda', or a list."
    )
    model: ModelSpec = Field(description="Model factory and sample input.")
    data: DataSpec = Field(description="Datasets and loading.")
    optim: OptimSpec = Field(description="Optimizer, loss, schedule, AMP, clipping, seed.")
    training: Training = Field(default_factory=Training, description="Epochs, steps, docs budget, timeout.")
    checkpoint: Checkpoint = Field(description="Checkpoint directory, format, cadence, retention, resume.")
    distributed: Distributed = Field(default_factory=Distributed, description="DDP / torchrun set-up.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Logs and metrics.")
    expect: Expect = Field(default_factory=Expect, description="Thresholds that make the executed run a test.")
    lint: LintSpec = Field(default_factory=LintSpec, description="Lint rules silenced for this pipeline, with reasons.")

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("an explicit device list must not be empty")
        return v

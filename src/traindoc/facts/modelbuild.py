"""Building a private model instance without real weights, and never silently for real.

Three strategies, in order, each said out loud in ``ModelFacts.traced_on``:

1. ``meta``: the factory runs under ``torch.device("meta")``; no storage at all.
2. ``meta, small tensors on CPU``: for factories that read a value back while building
   (``torch.linspace(...).item()``): every tensor of at most :data:`SMALL_NUMEL` elements is created
   on the CPU, every larger one on meta, so real memory stays bounded by small tensors.
3. ``CPU within budget``: tensors are created for real, but the bytes they would take are added up
   *before* each allocation (on meta); past ``TRAINDOC_BUILD_BUDGET`` bytes (default 2 GiB) the build
   is refused with :class:`~traindoc.errors.ModelTooLarge`.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from ..errors import ModelTooLarge, Problem, SpecError, UserCodeError
from ..spec.loader import call
from ..spec.pipeline import Pipeline

SMALL_NUMEL = 1 << 16
DEFAULT_BUDGET = 2 << 30


def budget_bytes() -> int:
    raw = os.environ.get("TRAINDOC_BUILD_BUDGET", "")
    return int(raw) if raw.isdigit() else DEFAULT_BUDGET


class _Placing(TorchFunctionMode):
    """Places each new tensor: meta when large (strategy 2), or counts bytes against a budget (3)."""

    def __init__(self, budget: int | None) -> None:
        super().__init__()
        self.budget = budget
        self.used = 0
        self.refused = ""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func not in _device_constructors() or kwargs.get("device") is not None:
            return func(*args, **kwargs)
        probe = func(*args, **{**kwargs, "device": "meta"})
        if not isinstance(probe, torch.Tensor):
            return func(*args, **kwargs)
        if self.budget is None:
            return probe if probe.numel() > SMALL_NUMEL else func(*args, **{**kwargs, "device": "cpu"})
        self.used += probe.numel() * probe.element_size()
        if self.used > self.budget:
            self.refused = (
                f"it cannot be built on the meta device, and building it for real would allocate more than "
                f"{self.budget / 2**30:.1f} GiB (TRAINDOC_BUILD_BUDGET)"
            )
            raise MemoryError(self.refused)
        return func(*args, **{**kwargs, "device": "cpu"})


def build_real(spec: Pipeline, file: Path) -> tuple[nn.Module, str]:
    """A real CPU instance within ``TRAINDOC_BUILD_BUDGET``, for a forward that reads tensor values
    (``mask.all()`` in a Hugging Face attention mask): tracing it on meta cannot work."""
    placing = _Placing(budget_bytes())
    try:
        with placing:
            model = call(spec.model.factory, "model.factory", file)
    except UserCodeError:
        if placing.refused:
            raise ModelTooLarge(f"{file}: model.factory: {placing.refused}") from None
        raise
    if not isinstance(model, nn.Module):
        raise SpecError(
            [Problem(str(file), f"must return an nn.Module, returned {type(model).__name__}", field="model.factory")]
        )
    if any(t.device.type != "cpu" for t in [*model.parameters(), *model.buffers()]):
        model = copy.deepcopy(model).to("cpu")
    return model.eval(), f"CPU within budget ({placing.used / 2**20:.2f} MiB): its forward reads tensor values"


def build(spec: Pipeline, file: Path) -> tuple[nn.Module, str]:
    """A private model instance on meta, and how it was built. Raises UserCodeError / ModelTooLarge."""
    first: UserCodeError | None = None
    model: Any = None
    traced_on = ""
    try:
        with torch.device("meta"):
            model = call(spec.model.factory, "model.factory", file)
        traced_on = "meta"
    except UserCodeError as exc:
        first = exc
    if first is not None:
        try:
            with _Placing(None):
                model = call(spec.model.factory, "model.factory", file)
            traced_on = "meta (small tensors built on CPU)"
        except UserCodeError:
            placing = _Placing(budget_bytes())
            try:
                with placing:
                    model = call(spec.model.factory, "model.factory", file)
            except UserCodeError:
                if placing.refused:
                    raise ModelTooLarge(f"{file}: model.factory: {placing.refused}") from None
                raise first from None
            traced_on = f"meta (built on CPU within budget: {placing.used / 2**20:.0f} MiB)"
    if not isinstance(model, nn.Module):
        raise SpecError(
            [Problem(str(file), f"must return an nn.Module, returned {type(model).__name__}", field="model.factory")]
        )
    if any(t.device.type != "meta" for t in [*model.parameters(), *model.buffers()]):
        model = copy.deepcopy(model)  # a factory handing out a shared instance: never move the user's object
    return model.to("meta").eval(), traced_on  # eval: what a forward always runs (LayerDrop skips at random)

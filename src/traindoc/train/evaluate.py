"""Validation as a callback: built-in (sum, count) pairs reduced over the ranks, or your own hook.

Only metrics that are defined for the model are returned (a metric whose count stays 0 on every rank
is absent, never 0); names are ``val_*``; ``val_perplexity`` is added for token-level
negative log-likelihoods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..run.protocol import metric_name
from .loop import Callback, Loop
from .step import LM, EvalStep, to_device


class Evaluate(Callback):
    """Validation after each epoch (and when stopping early): built-in sums reduced over ranks, or yours."""

    def __init__(
        self,
        loader: Callable[[int, int], Any],
        eval_step: EvalStep | None = None,
        user: Callable[[nn.Module, Any], Mapping[str, float]] | None = None,
    ) -> None:
        self.loader = loader  # (rank, world) -> that share of the validation batches
        self.eval_step = eval_step
        self.user = user

    def after_epoch(self, loop: Loop) -> None:
        metrics = self.run(loop)
        if metrics:
            loop.session.evaluated(loop.step, loop.epoch, metrics)

    def run(self, loop: Loop) -> dict[str, float]:
        model, ctx = loop.parts.model, loop.session.ctx
        model.eval()
        try:
            with torch.no_grad(), loop.parts.optim.autocast():
                if self.user is not None:
                    return self._user(model, loop)
                if self.eval_step is None:
                    return {}
                sums: dict[str, list[Tensor]] = {}
                for batch in self.loader(ctx.rank, ctx.world):
                    for k, (s, n) in self.eval_step(model, to_device(batch, ctx.device)).items():
                        acc = sums.setdefault(k, [torch.zeros((), dtype=torch.float64, device=ctx.device)] * 2)
                        sums[k] = [acc[0] + s.double(), acc[1] + n.double()]
                return finish(reduce_sums(sums, ctx.world, ctx.device))
        finally:
            model.train()

    def _user(self, model: nn.Module, loop: Loop) -> dict[str, float]:
        assert self.user is not None
        out: dict[str, float] = {}
        if loop.session.ctx.main:
            result = self.user(model, self.loader(0, 1))
            if not isinstance(result, Mapping):
                raise TypeError(f"optim.evaluate returned a {type(result).__name__}; expected a mapping name -> float")
            for k, v in result.items():
                name = metric_name(k, "optim.evaluate")
                out[name if name.startswith("val_") else f"val_{name}"] = float(v)
        if loop.session.ctx.world > 1 and dist.is_initialized():
            dist.barrier()
        return out


def reduce_sums(sums: dict[str, list[Tensor]], world: int, device: torch.device) -> dict[str, tuple[float, float]]:
    """Add every rank's (sum, count) pairs; ranks agree on the names first (a shard may be empty)."""
    names = sorted(sums)
    if world > 1 and dist.is_initialized():
        gathered: list[list[str] | None] = [None] * world
        dist.all_gather_object(gathered, names)
        names = sorted({n for g in gathered for n in (g or [])})
    zero = torch.zeros((), dtype=torch.float64, device=device)
    table = torch.stack([torch.stack(sums.get(n, [zero, zero])) for n in names]) if names else None
    if table is None:
        return {}
    if world > 1 and dist.is_initialized():
        dist.all_reduce(table)
    return {n: (float(s), float(c)) for n, (s, c) in zip(names, table.cpu().tolist(), strict=True)}


def finish(sums: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Means of the defined metrics (count > 0), named ``val_*``; perplexity for token-level NLL."""
    out = {f"val_{k}": s / c for k, (s, c) in sums.items() if c > 0 and k != LM}
    if LM in sums and sums[LM][1] > 0 and "val_loss" in out and out["val_loss"] < 700:
        out["val_perplexity"] = math.exp(out["val_loss"])
    return out

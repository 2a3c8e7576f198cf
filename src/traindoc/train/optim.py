"""What sits between a loss and updated weights: AMP, scaling, accumulation, clipping, the schedule.

``Optimization`` is built once from ``spec.optim``. A loop calls ``backward(loss, scale)`` for each
batch of an accumulation group and ``step()`` after the last one; ``apply(loss)`` is both for a
group of one. Nothing here knows about batches or models' outputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn


class Optimization:
    def __init__(
        self,
        params: Iterable[nn.Parameter],
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        device: torch.device,
        amp: str | None = None,
        grad_clip: float | None = None,
        accumulate: int = 1,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.device = device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp] if amp and device.type == "cuda" else None
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype is torch.float16 else None
        self.grad_clip = grad_clip
        self.accumulate = accumulate
        self.steps = 0
        self.optimizer.zero_grad(set_to_none=True)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, scale: float = 1.0) -> None:
        """Add this batch's gradients (``scale`` = 1 / batches in the accumulation group)."""
        scaled = loss * scale if scale != 1.0 else loss
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()  # type: ignore[no-untyped-call]
        else:
            scaled.backward()  # type: ignore[no-untyped-call]

    def step(self) -> None:
        """Unscale, clip, step, update the scaler and the schedule, clear the gradients."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1

    def apply(self, loss: torch.Tensor) -> None:
        """One batch, one optimizer step."""
        self.backward(loss)
        self.step()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])


@contextlib.contextmanager
def no_sync_unless(net: nn.Module, last: bool) -> Iterator[None]:
    """Under DDP, skip the gradient all-reduce for every batch of a group but its last."""
    if last or not isinstance(net, nn.parallel.DistributedDataParallel):
        yield
        return
    with net.no_sync():
        yield

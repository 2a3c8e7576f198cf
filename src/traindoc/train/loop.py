"""The training loop: a plain ``fit()`` and callbacks for evaluation, checkpoints and the time budget.

``fit`` runs optimizer steps until the budget's limit: each step takes ``accumulate`` batches from
the :class:`~traindoc.train.data.BatchSource`, calls the :class:`~traindoc.train.step.TrainStep`,
hands the loss to :class:`~traindoc.train.optim.Optimization`, and records the result in the
:class:`~traindoc.train.session.Session` (one host sync per log window). Everything else happens in
callbacks: ``after_step`` (every step, every rank, same order), ``after_epoch`` (at an epoch's end
or when the loop stops early) and ``at_end``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import BatchError
from ..facts import policy
from ..facts.policy import Budget
from ..run.protocol import CheckpointRecord
from . import checkpoint as ckpt
from .data import BatchSource
from .optim import Optimization, no_sync_unless
from .session import Session
from .step import TrainStep

if TYPE_CHECKING:
    import argparse

    from ..spec.pipeline import Pipeline


@dataclass
class Parts:
    model: nn.Module  # the plain model: state dicts, evaluation, samples
    net: nn.Module  # what the step calls (DDP-wrapped under DDP)
    optim: Optimization
    step: TrainStep


@dataclass
class Loop:
    """What callbacks see and may change (``stop``)."""

    session: Session
    parts: Parts
    per_epoch: int
    limit: int
    step: int = 0
    epoch: int = 0
    stopped_because: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self, reason: str) -> None:
        self.stopped_because = reason
        self.limit = self.step


class Callback:
    def after_step(self, loop: Loop) -> None:
        """After every optimizer step."""

    def after_epoch(self, loop: Loop) -> None:
        """At the end of an epoch, or when the loop stops early."""

    def at_end(self, loop: Loop) -> None:
        """Once, after the last step."""


_END = object()
_PAGE = os.sysconf("SC_PAGE_SIZE")
_STATM: list[int] = []


def rss_bytes() -> int:
    """Resident set size, read every step: one pread on a file descriptor opened once."""
    try:
        if not _STATM:
            _STATM.append(os.open("/proc/self/statm", os.O_RDONLY))
        return int(os.pread(_STATM[0], 128, 0).split()[1]) * _PAGE
    except OSError:  # pragma: no cover
        return 0


def fit(
    session: Session,
    parts: Parts,
    source: BatchSource,
    *,
    epochs: int,
    budget: Budget,
    start_step: int = 0,
    log_every: int = 10,
    callbacks: Sequence[Callback] = (),
) -> Loop:
    per_epoch = source.steps_per_epoch()
    limit = budget.limit(per_epoch, epochs)
    loop = Loop(session, parts, per_epoch, limit, step=start_step)
    loop.stopped_because = (
        "completed all epochs" if limit == per_epoch * epochs else f"reached the step budget ({limit} steps)"
    )
    ctx, optim, acc = session.ctx, parts.optim, source.accumulate
    cuda = ctx.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    loop.epoch = loop.step // per_epoch if per_epoch else 0
    t_prev = time.perf_counter()
    while loop.step < loop.limit:
        skip = (loop.step - loop.epoch * per_epoch) * acc
        left = source.batches_per_epoch() - skip
        batches = source.epoch(loop.epoch, skip)
        while loop.step < loop.limit and left > 0:
            group = min(acc, left)
            left -= group
            events = _events() if cuda else None
            lr = optim.lr  # the rate this step uses (the scheduler moves it on inside the step)
            loss, samples, metrics, data_s, host_s = _one_step(parts, batches, group)
            if events is not None:
                events[1].record()
            loop.step += 1
            t_now = time.perf_counter()
            session.record(
                loop.step,
                loop.epoch,
                loss,
                samples=samples * ctx.world,
                lr=lr,
                metrics=metrics,
                data_s=data_s,
                host_s=host_s,
                step_s=t_now - t_prev,
                memory=torch.cuda.memory_allocated(ctx.device) if cuda else rss_bytes(),
                events=events,
            )
            t_prev = t_now
            if loop.step % log_every == 0 or loop.step == loop.limit:
                session.flush()
            for cb in callbacks:
                cb.after_step(loop)
        session.flush()
        if loop.step % per_epoch == 0 or loop.step >= loop.limit:
            for cb in callbacks:
                cb.after_epoch(loop)
        loop.epoch += 1
    session.flush()
    for cb in callbacks:
        cb.at_end(loop)
    return loop


def _events() -> tuple[Any, Any]:
    ev0 = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    ev1 = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    ev0.record()
    return ev0, ev1


def _one_step(parts: Parts, batches: Any, group: int) -> tuple[Tensor, int, dict[str, Any], float, float]:
    """``group`` batches through the step (gradients accumulated), then one optimizer step."""
    total: Tensor | None = None
    samples, data_s, host_s = 0, 0.0, 0.0
    metrics: dict[str, Any] = {}
    for i in range(group):
        t0 = time.perf_counter()
        batch = next(batches, _END)
        if batch is _END:
            raise BatchError(
                "the data ended before the epoch did: the sampler yields fewer indices than its len() says"
            )
        t1 = time.perf_counter()
        data_s += t1 - t0
        with no_sync_unless(parts.net, last=i == group - 1):
            with parts.optim.autocast():
                out = parts.step(parts.net, batch)
            parts.optim.backward(out.loss, 1.0 / group)
        part = out.loss.detach() / group
        total = part if total is None else total + part
        samples += out.samples
        for k, v in out.metrics.items():
            v = v.detach() if isinstance(v, Tensor) else float(v)
            metrics[k] = metrics.get(k, 0.0) + v / group
        host_s += time.perf_counter() - t1
    t2 = time.perf_counter()
    parts.optim.step()
    host_s += time.perf_counter() - t2
    assert total is not None
    return total, samples, metrics, data_s, host_s


def budget_of(spec: Pipeline, args: argparse.Namespace) -> Budget:
    """The budget this process trains with: the spec's limits, the docs budget, the command line's overrides."""
    t = spec.training
    return policy.budget(
        docs=args.docs,
        max_steps=t.max_steps,
        docs_max_steps=t.docs_run.max_steps,
        docs_max_seconds=t.docs_run.max_seconds,
        override_steps=args.max_steps,
        override_seconds=args.max_seconds,
    )


# --- callbacks ---------------------------------------------------------------------------------------


class TimeBudget(Callback):
    """Stop cleanly after the step in which ``max_seconds`` passed; the ranks agree every step."""

    def __init__(self, max_seconds: float | None) -> None:
        self.max_seconds = max_seconds

    def after_step(self, loop: Loop) -> None:
        if self.max_seconds is None:
            return
        late = time.perf_counter() - loop.session.started > self.max_seconds
        if loop.session.ctx.any_rank(late):
            loop.stop(f"reached the time budget ({self.max_seconds:g} s)")


class Checkpoint(Callback):
    """Atomic checkpoints every N steps and at the end (rank 0 writes, every rank waits)."""

    def __init__(self, folder: Path, *, every: int, keep_last: int, fmt: str, name: str, container_dir: str) -> None:
        self.folder, self.every, self.keep_last, self.fmt = folder, every, keep_last, fmt
        self.name, self.container_dir = name, container_dir
        self.last = -1

    def after_step(self, loop: Loop) -> None:
        if loop.step % self.every == 0:
            self.save(loop)

    def at_end(self, loop: Loop) -> None:
        if self.last != loop.step:
            self.save(loop)

    def save(self, loop: Loop) -> None:
        if loop.session.ctx.main:
            state = {
                "model": loop.parts.model.state_dict(),
                **loop.parts.optim.state_dict(),
                "step": loop.step,
                "epoch": loop.epoch,
                "rng": ckpt.rng_state(),
                "pipeline": self.name,
            }
            ckpt.save(self.folder, loop.step, self.fmt, state, self.keep_last)
        self.last = loop.step
        if loop.session.ctx.world > 1 and dist.is_initialized():
            dist.barrier()

    def on_disk(self) -> list[CheckpointRecord]:
        """The checkpoints that exist now (keep-last has deleted the others)."""
        return [
            CheckpointRecord(
                path=p.name, container_path=f"{self.container_dir.rstrip('/')}/{p.name}", bytes=p.stat().st_size, step=s
            )
            for s, p in ckpt.listed(self.folder)
        ]


def restore(parts: Parts, state: Mapping[str, Any]) -> int:
    """Load a checkpoint's model, optimizer, schedule and RNG state; returns its step."""
    parts.model.load_state_dict(state["model"])
    parts.optim.load_state_dict(dict(state))
    ckpt.set_rng_state(state["rng"])
    return int(state["step"])

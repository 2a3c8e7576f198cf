"""The training process: ``python -m traindoc.train PIPELINE --run-dir DIR`` (or under torchrun).

``traindoc.worker`` is the same entry point under its documented name. It builds the parts the spec
declares, then either runs traindoc's loop (:func:`~traindoc.train.loop.fit`) or, with
``training.script``, the user's own script (:mod:`traindoc.train.byo`). Either way the results
reach the runner only through the run protocol files.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..facts import policy
from ..run import protocol, runfolder
from ..spec.loader import call, load, resolve, user_traceback
from ..spec.pipeline import Pipeline
from . import checkpoint as ckpt
from .data import BatchSource, tensor_bytes, val_loader
from .evaluate import Evaluate
from .loop import Checkpoint, Parts, TimeBudget, budget_of, fit, restore
from .optim import Optimization
from .session import RankContext, Session, Terminated, close_output, failure_of, redirect_output
from .step import supervised, supervised_eval, user_step


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="traindoc.worker")
    p.add_argument("pipeline")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--docs", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--seed", type=int, default=None, help="overrides optim.seed")
    return p.parse_args(argv)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


def build_source(spec: Pipeline, file: Path, ctx: RankContext, seed: int) -> BatchSource:
    d = spec.data
    train = call(d.train, "data.train", file)
    custom = not (isinstance(d.sampler, str) and ":" not in d.sampler)
    shard = policy.sharding(str(d.sampler), d.shuffle, ctx.world, "custom" if custom else None)
    sampler = call(d.sampler, "data.sampler", file, train, ctx.rank, ctx.world, seed) if custom else None
    collate = resolve(d.collate_fn, "data.collate_fn", file) if d.collate_fn is not None else None
    gpu_memory = torch.cuda.get_device_properties(ctx.device).total_memory if ctx.device.type == "cuda" else None
    resident = policy.resident_ok(
        tensor_bytes(train), ctx.device.type, gpu_memory, d.device_resident, collate is not None
    )
    return BatchSource(
        train,
        batch_size=d.batch_size,
        device=ctx.device,
        seed=seed,
        shuffle=shard.shuffle,
        drop_last=d.drop_last,
        shards=shard.shards,
        rank=ctx.rank if shard.shards > 1 else 0,
        sampler=sampler,
        collate_fn=collate,
        resident=resident,
        num_workers=d.num_workers,
        pin_memory=d.pin_memory,
        accumulate=spec.optim.accumulate,
    )


def build_parts(spec: Pipeline, file: Path, ctx: RankContext) -> Parts:
    o = spec.optim
    model: nn.Module = call(spec.model.factory, "model.factory", file).to(ctx.device)
    optimizer = call(o.optimizer, "optim.optimizer", file, model.parameters())
    scheduler = call(o.scheduler, "optim.scheduler", file, optimizer) if o.scheduler else None
    net: nn.Module = model
    if ctx.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None
        )
    optim = Optimization(
        model.parameters(), optimizer, scheduler, device=ctx.device, amp=o.amp, grad_clip=o.grad_clip,
        accumulate=o.accumulate,
    )  # fmt: skip
    step = user_step(resolve(o.step, "optim.step", file)) if o.step is not None else supervised(
        _loss(spec, file), target=spec.data.target, ignore_index=o.ignore_index
    )  # fmt: skip
    return Parts(model, net, optim, step)


def _loss(spec: Pipeline, file: Path) -> Any:
    loss = spec.optim.loss
    if isinstance(loss, str) and loss in ("cross_entropy", "mse", "nll", "model"):
        return loss
    return resolve(loss, "optim.loss", file)


def build_evaluate(spec: Pipeline, file: Path, parts: Parts) -> Evaluate | None:
    d, o = spec.data, spec.optim
    if d.val is None:
        return None
    val = call(d.val, "data.val", file)
    collate = resolve(d.collate_fn, "data.collate_fn", file) if d.collate_fn is not None else None

    def loader(rank: int, world: int) -> Any:
        return val_loader(val, batch_size=d.batch_size, rank=rank, world=world, collate_fn=collate)

    if o.evaluate is not None:
        return Evaluate(loader, user=resolve(o.evaluate, "optim.evaluate", file))
    if o.step is not None:
        return Evaluate(loader, eval_step=_step_eval(parts))
    return Evaluate(loader, eval_step=supervised_eval(_loss(spec, file), target=d.target, ignore_index=o.ignore_index))


def _step_eval(parts: Parts) -> Any:
    """Validation through your own step: its loss and metrics, weighted by samples."""

    def evaluate(model: nn.Module, batch: Any) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        out = parts.step(model, batch)
        n = torch.tensor(float(out.samples), dtype=torch.float64, device=out.loss.device)
        sums = {"loss": (out.loss.detach().double() * n, n)}
        for k, v in out.metrics.items():
            sums[k] = (torch.as_tensor(v, device=n.device).detach().double() * n, n)
        return sums

    return evaluate


def train(spec: Pipeline, file: Path, args: argparse.Namespace, session: Session) -> protocol.WorkerSummary:
    ctx = session.ctx
    chosen = args.seed if args.seed is not None else spec.optim.seed
    seed = chosen if chosen is not None else 0
    if chosen is not None:
        seed_everything(seed)
    parts = build_parts(spec, file, ctx)
    source = build_source(spec, file, ctx, seed)
    folder = Path(args.run_dir) / protocol.CHECKPOINTS
    c = spec.checkpoint
    saver = Checkpoint(
        folder, every=c.every_steps, keep_last=c.keep_last, fmt=c.format, name=spec.name, container_dir=c.dir
    )
    start = 0
    resumed_from = None
    skipped: list[protocol.SkippedCheckpoint] = []
    resume_note = None
    if args.resume or c.resume:
        found, resume_note = ckpt.resume_point(folder)  # weights only, checksums verified
        skipped = [protocol.SkippedCheckpoint(path=x.path, reason=x.reason) for x in found.skipped]
        if found.state is not None:
            start = resumed_from = restore(parts, found.state)
        elif ctx.main:
            print(f"traindoc: {resume_note}", flush=True)
    budget = budget_of(spec, args)
    callbacks = [TimeBudget(budget.max_seconds), saver]
    evaluate = build_evaluate(spec, file, parts)
    if evaluate is not None:
        callbacks.insert(1, evaluate)
    loop = fit(session, parts, source, epochs=spec.training.epochs, budget=budget, start_step=start,
               log_every=spec.training.log_every, callbacks=callbacks)  # fmt: skip
    verified = texts = None
    if ctx.main:
        verified = verify(spec, file, parts.model, folder)
        texts = samples(spec, file, parts.model)
    cuda = ctx.device.type == "cuda"
    return protocol.WorkerSummary(
        steps=loop.step,
        epochs=loop.epoch,
        steps_per_epoch=loop.per_epoch,
        stopped_because=loop.stopped_because,
        checkpoints=saver.on_disk(),
        checkpoint_verified=verified,
        resumed_from=resumed_from,
        resident_data=source.resident,
        device=str(ctx.device),
        peak_cuda_bytes=torch.cuda.max_memory_allocated(ctx.device) if cuda else None,
        wall_s=time.perf_counter() - session.started,
        samples=texts or [],
        checkpoints_skipped=skipped,
        resume_note=resume_note,
    )


def verify(spec: Pipeline, file: Path, model: nn.Module, folder: Path) -> bool | None:
    """Load the newest checkpoint into a fresh model and compare every parameter."""
    found = ckpt.newest_valid(folder)
    if found is None:
        return None
    fresh = call(spec.model.factory, "model.factory", file)
    fresh.load_state_dict(found[1]["model"])
    return ckpt.params_equal(fresh, dict(model.state_dict()))


def samples(spec: Pipeline, file: Path, model: nn.Module) -> list[str]:
    """``monitoring.samples(model)``: text for the run page (eval mode, no grad)."""
    if spec.monitoring.samples is None:
        return []
    model.eval()
    with torch.no_grad():
        out = call(spec.monitoring.samples, "monitoring.samples", file, model)
    model.train()
    if not isinstance(out, (list, tuple)) or not all(isinstance(s, str) for s in out):
        raise TypeError(f"monitoring.samples returned {type(out).__name__}; expected a list of strings")
    return [s[:2000] for s in out[:20]]


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated("stopped by SIGTERM (the launcher tore the ranks down)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    run_dir = Path(args.run_dir)
    runfolder.mark_new(run_dir)  # started by hand: the folder becomes a run folder only if it is new or empty
    rank = int(os.environ.get("RANK", "0"))
    pump = redirect_output(run_dir / protocol.rank_log(rank))
    signal.signal(signal.SIGTERM, _on_sigterm)
    session: Session | None = None
    try:
        spec, file = load(args.pipeline)
        folder = run_dir / protocol.CHECKPOINTS
        resumed = (args.resume or spec.checkpoint.resume) and bool(ckpt.listed(folder))  # append to its logs
        if spec.training.script is not None:
            from .byo import run_script

            return run_script(spec, file, args, rank)
        ctx = RankContext.from_env(spec.devices)
        ctx.init_process_group()
        session = Session(run_dir, ctx, log_file=spec.monitoring.log_file, append=bool(resumed))
        summary = train(spec, file, args, session)
        session.writer.summary(summary)
        return 0
    except BaseException as exc:
        sys.stderr.write(user_traceback(exc))  # the user's frames only: the log tail is shown to people
        if session is not None:
            session.fail(exc)
        else:
            protocol.write_failure(run_dir, failure_of(exc, rank, 0))
        return 1
    finally:
        if session is not None:
            session.close()
        if dist.is_available() and dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
        close_output(pump)


if __name__ == "__main__":
    sys.exit(main())

"""The training process: ``python -m traindoc.worker PIPELINE --run-dir DIR`` (or under torchrun).

Reads RANK / LOCAL_RANK / WORLD_SIZE like nanoGPT; only rank 0 writes checkpoints and the step log.
Everything it learns goes to files in the run folder, which the runner reads:
``steps.jsonl`` (one line per step), ``worker.json`` (rank 0's summary), ``error-rank<N>.json``
(an exception, with the user's traceback) and ``rank<N>.log`` (the rank's stdout and stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from . import checkpoint as ckpt
from . import runfolder, worker_limits
from .atomic import write_text
from .errors import UserCodeError
from .introspect import device_facts, resident_ok, tensor_bytes
from .loader import call, load, user_traceback
from .redact import LineRedactor, redact
from .spec import Pipeline


class NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"loss became {value} at step {step}")
        self.step = step


class StepLog:
    """Rank 0's step log: JSON lines, flushed every window so a killed run still shows its progress."""

    def __init__(self, path: Path, enabled: bool, append: bool) -> None:
        self.fh = open(path, "a" if append else "w", encoding="utf-8") if enabled else None  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()  # no fsync: a torn last line is tolerated by the reader, a stall per window is not


_PAGE = os.sysconf("SC_PAGE_SIZE")
_STATM: list[int] = []


def _rss_bytes() -> int:
    """Resident set size, read every step: one pread on a file descriptor opened once."""
    try:
        if not _STATM:
            _STATM.append(os.open("/proc/self/statm", os.O_RDONLY))
        return int(os.pread(_STATM[0], 128, 0).split()[1]) * _PAGE
    except OSError:  # pragma: no cover
        return 0


def _loss_fn(spec: Pipeline, file: Path) -> Any:
    loss = spec.optim.loss
    if loss == "cross_entropy":
        return F.cross_entropy
    if loss == "mse":
        return F.mse_loss
    if loss == "nll":
        return F.nll_loss
    from .loader import resolve

    return resolve(loss, "optim.loss", file)


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool, rank: int, world: int) -> list[int]:
    """This rank's sample order for an epoch, as DistributedSampler would give it (deterministic)."""
    if shuffle:
        g = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    if world > 1:
        total = math.ceil(n / world) * world
        order = (order + order[: total - n])[rank:total:world]
    return order


def batches(order: list[int], batch: int, drop_last: bool) -> list[list[int]]:
    out = [order[i : i + batch] for i in range(0, len(order), batch)]
    if drop_last and out and len(out[-1]) < batch:
        out.pop()
    return out


def _to(value: Any, device: torch.device, non_blocking: bool) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device, non_blocking) for v in value)
    return value


class Trainer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_dir = Path(args.run_dir)
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.step = 0
        self.started = time.perf_counter()

    # -- set-up ------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.spec, self.file = load(self.args.pipeline)
        spec = self.spec
        devices = device_facts(spec.devices)
        want = os.environ.get("TRAINDOC_DEVICE") or devices.resolved
        if want == "cuda":
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world > 1:
            backend = os.environ.get("TRAINDOC_BACKEND", "nccl" if want == "cuda" else "gloo")
            dist.init_process_group(backend=backend, timeout=worker_limits.pg_timeout())
        self.seed = spec.optim.seed if spec.optim.seed is not None else 0
        if spec.optim.seed is not None:
            random.seed(self.seed)
            torch.manual_seed(self.seed)
            try:
                import numpy as np

                np.random.seed(self.seed)
            except ImportError:  # pragma: no cover
                pass
        model = call(spec.model.factory, "model.factory", self.file)
        self.model: nn.Module = model.to(self.device)
        self.optimizer = call(spec.optim.optimizer, "optim.optimizer", self.file, self.model.parameters())
        self.scheduler = (
            call(spec.optim.scheduler, "optim.scheduler", self.file, self.optimizer) if spec.optim.scheduler else None
        )
        self.loss_fn = _loss_fn(spec, self.file)
        self.net: nn.Module = self.model
        if self.world > 1:
            ids = [self.local_rank] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.train_ds = call(spec.data.train, "data.train", self.file)
        self.val_ds = call(spec.data.val, "data.val", self.file) if spec.data.val is not None else None
        self.resident = resident_ok(tensor_bytes(self.train_ds), devices, spec.data.device_resident)
        if self.resident:
            self.train_tensors = tuple(t.to(self.device) for t in self.train_ds.tensors)
        self.amp = (
            {"bf16": torch.bfloat16, "fp16": torch.float16}[spec.optim.amp]
            if spec.optim.amp and self.device.type == "cuda"
            else None
        )
        self.scaler = torch.amp.GradScaler("cuda") if self.amp is torch.float16 else None
        self.ckpt_dir = self.run_dir / "checkpoints"
        t = spec.training
        if self.args.docs:
            self.max_steps: int | None = t.docs_run.max_steps
            self.max_seconds: float | None = t.docs_run.max_seconds
        else:
            self.max_steps, self.max_seconds = t.max_steps, None
        if self.args.max_steps is not None:
            self.max_steps = self.args.max_steps
        if self.args.max_seconds is not None:
            self.max_seconds = self.args.max_seconds
        self.resumed_from: int | None = None
        self.ckpt_skipped: list[dict[str, str]] = []
        self.resume_note: str | None = None
        if self.args.resume or spec.checkpoint.resume:
            found, self.resume_note = ckpt.resume_point(self.ckpt_dir)
            self.ckpt_skipped = [s.as_dict() for s in found.skipped]
            if found.state is not None:
                self.restore(found.state)
                self.resumed_from = self.step
            elif self.rank == 0:
                print(f"traindoc: resume: {self.resume_note}", flush=True)
        self.log = StepLog(self.run_dir / "steps.jsonl", self.rank == 0, append=self.resumed_from is not None)

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        ckpt.set_rng_state(state["rng"])

    # -- data --------------------------------------------------------------------------------------
    def epoch_batches(self, epoch: int, skip: int) -> Iterator[Any]:
        d = self.spec.data
        shard = d.sampler == "auto"
        shuffle = d.shuffle if d.sampler == "auto" else d.sampler == "random"
        order = epoch_order(
            len(self.train_ds), epoch, self.seed, shuffle, self.rank if shard else 0, self.world if shard else 1
        )
        chunks = batches(order, d.batch_size, d.drop_last)[skip:]
        if self.resident:
            flat_idx = torch.tensor([i for c in chunks for i in c], device=self.device)  # one copy per epoch
            start = 0
            for chunk in chunks:
                idx = flat_idx[start : start + len(chunk)]
                start += len(chunk)
                yield tuple(t.index_select(0, idx) for t in self.train_tensors)
            return
        flat = [i for c in chunks for i in c]
        loader = DataLoader(
            self.train_ds,
            batch_size=d.batch_size,
            sampler=flat,
            num_workers=d.num_workers,
            pin_memory=d.pin_memory and self.device.type == "cuda",
            drop_last=d.drop_last,
        )
        non_blocking = d.pin_memory and self.device.type == "cuda"
        for batch in loader:
            yield _to(batch, self.device, non_blocking)

    def steps_per_epoch(self) -> int:
        d = self.spec.data
        n = math.ceil(len(self.train_ds) / (self.world if d.sampler == "auto" else 1))
        return n // d.batch_size if d.drop_last else math.ceil(n / d.batch_size)

    # -- training ----------------------------------------------------------------------------------
    def train_step(self, batch: Any) -> torch.Tensor:
        x, y = batch[0], batch[1]
        self.optimizer.zero_grad(set_to_none=True)
        if self.amp is not None:
            with torch.autocast(self.device.type, dtype=self.amp):
                out = self.net(x)
                loss = self.loss_fn(out, y)
        else:
            out = self.net(x)
            loss = self.loss_fn(out, y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.spec.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.optim.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        detached: torch.Tensor = loss.detach()
        return detached

    def evaluate(self) -> dict[str, float] | None:
        if self.val_ds is None:
            return None
        self.net.eval()
        n = len(self.val_ds)
        mine = list(range(self.rank, n, self.world))
        correct = torch.zeros(3, device=self.device, dtype=torch.float64)  # correct, count, loss sum
        with torch.no_grad():
            for chunk in batches(mine, max(self.spec.data.batch_size, 256), False):
                items = [self.val_ds[i] for i in chunk]
                x = torch.stack([it[0] for it in items]).to(self.device)
                y = torch.stack([torch.as_tensor(it[1]) for it in items]).to(self.device)
                with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                    out = self.net(x)
                loss = self.loss_fn(out.float(), y)
                correct[2] += float(loss) * len(chunk)
                if out.ndim == 2 and y.ndim == 1 and not torch.is_floating_point(y):
                    correct[0] += (out.argmax(1) == y).sum()
                correct[1] += len(chunk)
        if self.world > 1:
            dist.all_reduce(correct)
        self.net.train()
        count = max(1.0, float(correct[1]))
        return {"accuracy": float(correct[0]) / count, "loss": float(correct[2]) / count}

    def save_checkpoint(self, epoch: int) -> dict[str, Any] | None:
        c = self.spec.checkpoint
        info = None
        if self.rank == 0:
            state = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "step": self.step,
                "epoch": epoch,
                "rng": ckpt.rng_state(),
                "pipeline": self.spec.name,
            }
            path = ckpt.save(self.ckpt_dir, self.step, c.format, state, c.keep_last)
            info = {
                "path": path.name,
                "bytes": path.stat().st_size,
                "step": self.step,
                "container_path": f"{c.dir.rstrip('/')}/{path.name}",
            }
        if self.world > 1:
            dist.barrier()
        return info

    def run(self) -> dict[str, Any]:
        spec = self.spec
        per_epoch = self.steps_per_epoch()
        total = per_epoch * spec.training.epochs
        limit = min(total, self.max_steps) if self.max_steps else total
        log_every = spec.training.log_every
        cuda = self.device.type == "cuda"
        window: list[tuple[int, int, torch.Tensor, float, float, float, int, Any]] = []
        val_history: list[dict[str, Any]] = []
        checkpoints: list[dict[str, Any]] = []
        stopped = "completed all epochs" if limit == total else f"reached the step budget ({limit} steps)"
        last_ckpt_step = -1
        epoch = self.step // per_epoch if per_epoch else 0
        batch_items = spec.data.batch_size * self.world
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        t_prev = time.perf_counter()
        while self.step < limit:
            skip = self.step - epoch * per_epoch
            it = self.epoch_batches(epoch, skip)
            while self.step < limit:
                t0 = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                if cuda:
                    ev0 = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                    ev1 = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                    ev0.record()
                loss = self.train_step(batch)
                events: Any = None
                if cuda:
                    ev1.record()
                    events = (ev0, ev1)
                self.step += 1
                t2 = time.perf_counter()
                mem = torch.cuda.memory_allocated(self.device) if cuda else _rss_bytes()
                lr = float(self.optimizer.param_groups[0]["lr"])
                window.append((self.step, epoch, loss, t1 - t0, t2 - t1, t2 - t_prev, mem, (lr, events)))
                t_prev = t2
                if self.step % log_every == 0 or self.step == limit:
                    self.flush(window, batch_items)
                    window = []
                if worker_limits.time_up(self.started, self.max_seconds, self.device, self.world):
                    stopped = f"reached the time budget ({self.max_seconds:g} s)"
                    limit = self.step
                if self.step % spec.checkpoint.every_steps == 0:
                    info = self.save_checkpoint(epoch)
                    last_ckpt_step = self.step
                    if info:
                        checkpoints.append(info)
            if window:
                self.flush(window, batch_items)
                window = []
            if self.step % per_epoch == 0 or self.step >= limit:
                metrics = self.evaluate()
                if metrics is not None:
                    val_history.append({"epoch": epoch, "step": self.step, **metrics})
                    self.log.write({"event": "val", "epoch": epoch, "step": self.step, **metrics})
                    self.log.flush()
            epoch += 1
        if last_ckpt_step != self.step:
            info = self.save_checkpoint(epoch - 1)
            if info:
                checkpoints.append(info)
        verified = None
        if self.rank == 0:
            verified = self.verify()
        peak = torch.cuda.max_memory_allocated(self.device) if cuda else None
        return {
            "steps": self.step,
            "epochs": epoch,
            "steps_per_epoch": per_epoch,
            "stopped_because": stopped,
            "val": val_history,
            "checkpoints": checkpoints,
            "checkpoint_verified": verified,
            "resumed_from": self.resumed_from,
            "checkpoints_skipped": self.ckpt_skipped,
            "resume_note": self.resume_note,
            "resident_data": self.resident,
            "device": str(self.device),
            "peak_cuda_bytes": peak,
            "wall_s": time.perf_counter() - self.started,
        }

    def flush(self, window: list[Any], batch_items: int) -> None:
        losses = torch.stack([w[2] for w in window]).float().cpu().tolist()  # one sync per window
        for (step, epoch, _, data_s, host_s, step_s, mem, (lr, events)), value in zip(window, losses, strict=True):
            if not math.isfinite(value):
                raise NonFiniteLoss(step, value)
            compute_s = events[0].elapsed_time(events[1]) / 1000.0 if events is not None else host_s
            self.log.write(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": value,
                    "lr": lr,
                    "data_s": data_s,
                    "compute_s": compute_s,
                    "step_s": step_s,
                    "samples_per_s": batch_items / step_s if step_s > 0 else None,
                    "memory_bytes": mem,
                }
            )
        self.log.flush()

    def verify(self) -> bool | None:
        """Load the newest checkpoint into a fresh model and compare every parameter."""
        found = ckpt.newest_valid(self.ckpt_dir)
        if found is None:
            return None
        fresh = call(self.spec.model.factory, "model.factory", self.file)
        fresh.load_state_dict(found[1]["model"])
        return ckpt.params_equal(fresh, {k: v for k, v in self.model.state_dict().items()})


def _error_record(rank: int, exc: BaseException, step: int) -> dict[str, Any]:
    if isinstance(exc, NonFiniteLoss):
        kind, message, tb = "nan", f"non-finite loss: {exc}", ""
    elif isinstance(exc, torch.cuda.OutOfMemoryError):
        kind, message, tb = (
            "oom",
            f"CUDA out of memory at step {step + 1}: {str(exc).splitlines()[0]}",
            user_traceback(exc),
        )
    elif isinstance(exc, UserCodeError):
        kind, message, tb = "user_code", str(exc), exc.user_traceback
    elif hasattr(exc, "lines") and callable(exc.lines):
        kind, message, tb = "spec", "; ".join(exc.lines()), ""
    else:
        kind = "user_code"
        message = f"{type(exc).__name__}: {exc}"
        tb = user_traceback(exc)
    return {"rank": rank, "kind": kind, "message": redact(message), "traceback": redact(tb), "step": step}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="traindoc.worker")
    p.add_argument("pipeline")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--docs", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-seconds", type=float, default=None)
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    runfolder.mark_new(run_dir)
    rank = int(os.environ.get("RANK", "0"))
    pump = redirect_output(run_dir / f"rank{rank}.log")
    trainer = Trainer(args)
    try:
        trainer.setup()
        summary = trainer.run()
        if rank == 0:
            write_text(run_dir / "worker.json", json.dumps(summary, indent=1))
        return 0
    except BaseException as exc:
        traceback.print_exc()
        record = _error_record(rank, exc, trainer.step)
        write_text(run_dir / f"error-rank{rank}.json", json.dumps(record, indent=1))
        return 1
    finally:
        if dist.is_available() and dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
        close_output(pump)


def redirect_output(path: Path) -> threading.Thread:
    """Send this process's stdout and stderr (fds 1 and 2) through a redacting pump into ``path``."""
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115

    def pump() -> None:
        scrub = LineRedactor()  # remembers a PEM block that spans lines
        with open(path, "ab", buffering=0) as out, os.fdopen(read_fd, "rb") as src:
            for line in src:
                out.write(scrub(line.decode("utf-8", "replace")).encode("utf-8"))

    thread = threading.Thread(target=pump, name="traindoc-log", daemon=True)
    thread.start()
    return thread


def close_output(pump: threading.Thread) -> None:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.close(1)
    os.close(2)
    pump.join(timeout=5)


if __name__ == "__main__":
    sys.exit(main())

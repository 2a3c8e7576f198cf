"""One training process's side of the run protocol: who it is, what it records, how it fails.

:class:`RankContext` is the rank, world and device (``from_env`` reads torchrun's variables like
nanoGPT). :class:`Session` buffers step results as tensors and writes them with one host sync per
log window (raising :class:`~traindoc.errors.NonFiniteLoss` there), records evaluations, and turns
an exception into a typed :class:`~traindoc.run.protocol.RankFailure`. ``redirect_output`` sends the
process's stdout and stderr through a redacting pump into ``rank<N>.log``.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .._util.redact import LineRedactor, redact
from ..errors import BatchError, NonFiniteLoss, TraindocError, UserCodeError
from ..run.hang import DEFAULT_PG_TIMEOUT_S, PG_TIMEOUT_ENV
from ..run.protocol import EvalRecord, FailureKind, RankFailure, RunWriter, StepRecord
from ..spec.loader import _is_internal


@dataclass(frozen=True)
class RankContext:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_env(cls, declared: Any = "auto", env: Mapping[str, str] | None = None) -> RankContext:
        """RANK / LOCAL_RANK / WORLD_SIZE from torchrun; the device from TRAINDOC_DEVICE, else the spec."""
        env = os.environ if env is None else env
        rank, local, world = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")), int(env.get("WORLD_SIZE", "1"))
        want = env.get("TRAINDOC_DEVICE") or resolve_device(declared)
        if want == "cuda":
            torch.cuda.set_device(local)
            return cls(rank, local, world, torch.device("cuda", local))
        return cls(rank, local, world, torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def init_process_group(self, backend: str | None = None, timeout_s: float | None = None) -> None:
        if self.world <= 1 or dist.is_initialized():
            return
        backend = backend or os.environ.get("TRAINDOC_BACKEND") or ("nccl" if self.device.type == "cuda" else "gloo")
        timeout = timeout_s or float(os.environ.get(PG_TIMEOUT_ENV) or DEFAULT_PG_TIMEOUT_S)
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
        _CPU_GROUP.clear()
        if backend != "gloo":  # flags travel over gloo on the host: no CUDA sync per step
            _CPU_GROUP.append(dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout)))

    def any_rank(self, flag: bool) -> bool:
        """True when it is true on any rank (every rank must call it at the same point)."""
        if self.world <= 1 or not dist.is_initialized():
            return flag
        group = _CPU_GROUP[0] if _CPU_GROUP else None
        t = torch.tensor([1.0 if flag else 0.0], device="cpu" if group is not None else self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
        return bool(t.item() > 0)


_CPU_GROUP: list[Any] = []  # a host-side process group for per-step flags when the main one is NCCL


def resolve_device(declared: Any) -> str:
    """'cpu' or 'cuda' for a spec's ``devices`` (a list picks its first kind)."""
    if isinstance(declared, list):
        declared = str(declared[0]).split(":")[0]
    if declared == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(declared)


@dataclass
class _Pending:
    step: int
    epoch: int
    loss: torch.Tensor
    metrics: dict[str, torch.Tensor | float]
    lr: float | None
    samples: int
    data_s: float
    host_s: float
    step_s: float
    memory: int
    events: Any


class Session:
    """The protocol writer of one rank plus its step window (flushed every ``log_every`` steps)."""

    def __init__(self, run_dir: Path, ctx: RankContext, *, log_file: str | None = None, append: bool = False) -> None:
        self.run_dir = run_dir
        self.ctx = ctx
        self.writer = RunWriter(run_dir, ctx.rank, log_file=log_file, append=append)
        self.window: list[_Pending] = []
        self.step = 0
        self.started = time.perf_counter()
        self.evals: list[EvalRecord] = []

    def record(self, step: int, epoch: int, loss: torch.Tensor, *, samples: int, lr: float | None = None,
               metrics: Mapping[str, torch.Tensor | float] | None = None, data_s: float = 0.0, host_s: float = 0.0,
               step_s: float = 0.0, memory: int = 0, events: Any = None) -> None:  # fmt: skip
        """Keep one step's results (no host sync here)."""
        self.step = step
        self.window.append(
            _Pending(
                step, epoch, loss.detach(), dict(metrics or {}), lr, samples, data_s, host_s, step_s, memory, events
            )
        )

    def flush(self) -> list[StepRecord]:
        """Write the window with one device-to-host copy; a non-finite loss stops the run here."""
        if not self.window:
            return []
        rows = []
        for p in self.window:
            values = [p.loss.float().reshape(())]
            values += [
                torch.as_tensor(v, device=p.loss.device).detach().float().reshape(()) for v in p.metrics.values()
            ]
            rows.append(torch.stack(values))
        host = torch.stack(rows).cpu().tolist()  # one sync per window
        out = []
        for p, row in zip(self.window, host, strict=True):
            if not math.isfinite(row[0]):
                self.window = []
                raise NonFiniteLoss(p.step, row[0])
            compute = p.events[0].elapsed_time(p.events[1]) / 1000.0 if p.events is not None else p.host_s
            rec = StepRecord(
                step=p.step,
                epoch=p.epoch,
                loss=row[0],
                lr=p.lr,
                samples=p.samples,
                samples_per_s=p.samples / p.step_s if p.step_s > 0 else None,
                data_s=p.data_s,
                compute_s=compute,
                step_s=p.step_s,
                memory_bytes=p.memory,
                metrics=dict(zip(p.metrics, row[1:], strict=True)),
            )
            self.writer.write(rec)
            out.append(rec)
        self.writer.flush()
        self.window = []
        return out

    def evaluated(self, step: int, epoch: int, metrics: Mapping[str, float]) -> EvalRecord:
        rec = EvalRecord(epoch=epoch, step=step, metrics=dict(metrics))
        self.evals.append(rec)
        self.writer.write(rec)
        self.writer.flush()
        return rec

    def fail(self, exc: BaseException) -> RankFailure:
        failure = failure_of(exc, self.ctx.rank, self.step)
        self.window = []
        self.writer.failure(failure)
        return failure

    def close(self) -> None:
        self.writer.close()


def failure_of(exc: BaseException, rank: int, step: int) -> RankFailure:
    """Classify an exception: the kind decides whether it can be a run's root cause."""
    kind: FailureKind
    tb = ""
    if isinstance(exc, NonFiniteLoss):
        kind, message = "nan", f"non-finite loss: {exc}"
    elif isinstance(exc, torch.cuda.OutOfMemoryError):
        kind, message, tb = "oom", f"CUDA out of memory at step {step + 1}: {str(exc).splitlines()[0]}", user_tb(exc)
    elif isinstance(exc, Terminated):
        kind, message = "terminated", str(exc)
    elif isinstance(exc, BatchError):
        kind, message, tb = "batch", str(exc), user_tb(exc)
    elif _is_collective_timeout(exc) and dist.is_available() and dist.is_initialized():
        # a collective in the user's own code (or ours) waited for a rank that never came: the aftermath
        tb = exc.user_traceback if isinstance(exc, UserCodeError) else user_tb(exc)
        kind, message = (
            "peer_timeout",
            str(exc).splitlines()[0]
            if isinstance(exc, UserCodeError)
            else (f"{type(exc).__name__}: {exc}".splitlines()[0]),
        )
    elif isinstance(exc, UserCodeError):
        kind, message, tb = "user_code", str(exc), exc.user_traceback
    elif isinstance(exc, TraindocError):
        kind, message = "spec", "; ".join(exc.lines())
    elif _is_collective_timeout(exc):
        kind, message, tb = "peer_timeout", f"{type(exc).__name__}: {exc}".splitlines()[0], user_tb(exc)
    elif _is_peer_failure(exc):
        kind, message, tb = "peer", f"{type(exc).__name__}: {exc}".splitlines()[0], user_tb(exc)
    else:
        kind, message, tb = "user_code", f"{type(exc).__name__}: {exc}", user_tb(exc)
    return RankFailure(
        rank=rank, kind=kind, message=redact(message), traceback=redact(tb), step=step, timestamp=time.time()
    )


class Terminated(Exception):
    """SIGTERM (torchrun tearing the ranks down after another one failed)."""


_TIMED_OUT = ("timed out", "timeout waiting", "collective operation timeout", "watchdog caught collective")


def _is_collective_timeout(exc: BaseException) -> bool:
    """A collective that waited past the process-group timeout: another rank never arrived."""
    if isinstance(exc, (TimeoutError, getattr(dist, "DistTimeoutError", TimeoutError))):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, UserCodeError)) and any(s in text for s in _TIMED_OUT)


def _is_peer_failure(exc: BaseException) -> bool:
    """A collective that failed because another rank went away (gloo/NCCL), not this rank's own error."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return any(s in text for s in _PEER_GONE)


_PEER_GONE = (  # the transport's own words when the other end went away
    "Connection closed by peer",
    "Connection reset by peer",
    "Connection refused",
    "Broken pipe",
    "gloo/transport/",
    "remote worker",
    "NCCL communicator was aborted",
)


def user_tb(exc: BaseException) -> str:
    """The user's own frames only (no traindoc, importlib or runpy frames)."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not _is_internal(f.filename) and not f.filename.endswith("runpy.py")
    ]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


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

"""Bring your own script: the tiny API a user's ``train.py`` calls. No torch is imported here.

``traindoc.log(step=..., loss=..., **metrics)``, ``traindoc.checkpoint_dir()`` and
``traindoc.should_stop()`` (re-exported by the package) write the same run protocol as traindoc's
own loop, so the runner, the results, the cache and the docs cannot tell the two apart. traindoc
starts the script through ``python -m traindoc.worker`` (one process, or under torchrun), which sets
the run folder and budget in the environment; run by hand (``python train.py``) the calls still work:
``log`` only counts, ``checkpoint_dir`` is ``./checkpoints`` and ``should_stop`` follows the budget
variables if set.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import NonFiniteLoss
from ..run.protocol import CHECKPOINTS, EvalRecord, RunWriter, StepRecord, metric_name

ENV_RUN_DIR = "TRAINDOC_RUN_DIR"
ENV_MAX_STEPS = "TRAINDOC_MAX_STEPS"
ENV_MAX_SECONDS = "TRAINDOC_MAX_SECONDS"
ENV_STARTED = "TRAINDOC_STARTED"  # time.time() the run started: the time budget counts from there
ENV_LOG_FILE = "TRAINDOC_LOG_FILE"
ENV_APPEND = "TRAINDOC_APPEND"
ENV_SEED = "TRAINDOC_SEED"  # set when a comparison runs the pipeline with another seed (traindoc compare)


class ScriptRun:
    """This process's view of a script-mode run (built from the environment on first use)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        self.rank = int(env.get("RANK", "0"))
        self.world = int(env.get("WORLD_SIZE", "1"))
        folder = env.get(ENV_RUN_DIR)
        self.run_dir = Path(folder) if folder else None
        self.max_steps = int(env[ENV_MAX_STEPS]) if env.get(ENV_MAX_STEPS) else None
        self.max_seconds = float(env[ENV_MAX_SECONDS]) if env.get(ENV_MAX_SECONDS) else None
        self.started = float(env.get(ENV_STARTED) or time.time())
        self.writer: RunWriter | None = None
        if self.run_dir is not None:
            self.writer = RunWriter(
                self.run_dir, self.rank, log_file=env.get(ENV_LOG_FILE) or None, append=env.get(ENV_APPEND) == "1"
            )
        self.last_step = 0
        self.last_epoch = 0
        self.stopped_because: str | None = None
        self._prev: tuple[int, float] | None = None

    def log(self, step: int, loss: float | None, metrics: dict[str, Any]) -> None:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise TypeError(f"traindoc.log: step must be a non-negative int, got {step!r}")
        epoch = int(metrics.pop("epoch", self.last_epoch))
        lr = _number("lr", metrics.pop("lr", None))
        samples = metrics.pop("samples", None)
        values = {metric_name(k, "traindoc.log"): _number(k, v) for k, v in metrics.items()}
        train = {k: v for k, v in values.items() if not k.startswith("val_") and v is not None}
        val = {k: v for k, v in values.items() if k.startswith("val_") and v is not None}
        now = time.perf_counter()
        self.last_step, self.last_epoch = max(self.last_step, step), epoch
        if self.writer is None:
            return
        if loss is not None:
            value = _number("loss", loss)
            assert value is not None
            if not math.isfinite(value):
                raise NonFiniteLoss(step, value)
            step_s = None
            if self._prev is not None and step > self._prev[0]:
                step_s = (now - self._prev[1]) / (step - self._prev[0])
            n = int(samples) if samples is not None else None
            self.writer.write(
                StepRecord(
                    step=step,
                    epoch=epoch,
                    loss=value,
                    lr=lr,
                    samples=n,
                    samples_per_s=n / step_s if n and step_s else None,
                    step_s=step_s,
                    metrics=train,
                )
            )
            self._prev = (step, now)
        if val:
            self.writer.write(EvalRecord(epoch=epoch, step=step, metrics=val))
        self.writer.flush()

    def checkpoint_dir(self) -> Path:
        folder = (self.run_dir / CHECKPOINTS) if self.run_dir is not None else Path(CHECKPOINTS)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def should_stop(self) -> bool:
        reason = None
        if self.max_steps is not None and self.last_step >= self.max_steps:
            reason = f"reached the step budget ({self.max_steps} steps)"
        elif self.max_seconds is not None and time.time() - self.started > self.max_seconds:
            reason = f"reached the time budget ({self.max_seconds:g} s)"
        stop = _agree(reason is not None)
        if stop and self.stopped_because is None:
            self.stopped_because = reason or "another rank reached its budget"
        return stop


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)  # a 0-d tensor converts too (one host sync, the caller's choice)
    except (TypeError, ValueError):
        raise TypeError(f"traindoc.log: {name} must be a number, got {type(value).__name__}") from None


def _agree(flag: bool) -> bool:
    """Every rank stops together: a MAX all-reduce when the script itself set up torch.distributed."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    torch = sys.modules["torch"]
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


_CURRENT: list[ScriptRun] = []


def current() -> ScriptRun:
    if not _CURRENT:
        _CURRENT.append(ScriptRun())
    return _CURRENT[0]


def reset(run: ScriptRun | None = None) -> None:
    """Forget (or replace) this process's run; the script runner and tests use it."""
    _CURRENT.clear()
    if run is not None:
        _CURRENT.append(run)

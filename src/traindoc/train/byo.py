"""Bring your own script: run the user's ``train.py`` in this process, as ``python train.py`` would.

The script gets the run folder and the budget through the environment (read by
:mod:`traindoc.train.script`, so ``traindoc.log``/``checkpoint_dir``/``should_stop`` work, in child
processes too). Its output goes through the same redacting pump, an exception becomes the same
:class:`~traindoc.run.protocol.RankFailure`, and at a clean end rank 0 writes the same
:class:`~traindoc.run.protocol.WorkerSummary` as traindoc's own loop, listing the files left in the
checkpoint folder. Under torchrun each rank runs the script; it sets up ``torch.distributed`` itself.
"""

from __future__ import annotations

import argparse
import os
import re
import runpy
import sys
import time
from pathlib import Path

import torch

from ..errors import Problem, SpecError
from ..run import protocol
from ..spec.loader import user_traceback
from ..spec.pipeline import Pipeline
from . import script
from .session import failure_of, resolve_device

_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def script_path(spec: Pipeline, file: Path) -> Path:
    assert spec.training.script is not None
    path = (file.parent / spec.training.script).resolve()
    if not path.is_file():
        raise SpecError(
            [Problem(str(file), f"{spec.training.script!r} not found (looked for {path})", field="training.script")]
        )
    return path


def environment(spec: Pipeline, args: argparse.Namespace, started: float) -> dict[str, str]:
    from .loop import budget_of

    budget = budget_of(spec, args)
    env = {
        script.ENV_RUN_DIR: str(Path(args.run_dir).resolve()),
        script.ENV_STARTED: repr(started),
        script.ENV_LOG_FILE: spec.monitoring.log_file,
        script.ENV_APPEND: "1" if args.resume else "",
        script.ENV_MAX_STEPS: str(budget.max_steps) if budget.max_steps else "",
        script.ENV_MAX_SECONDS: repr(budget.max_seconds) if budget.max_seconds is not None else "",
        script.ENV_SEED: str(args.seed) if args.seed is not None else "",
    }
    return env


def run_script(spec: Pipeline, file: Path, args: argparse.Namespace, rank: int) -> int:
    path = script_path(spec, file)
    started = time.time()
    t0 = time.perf_counter()
    os.environ.update(environment(spec, args, started))
    run = script.ScriptRun()
    script.reset(run)
    sys.argv = [str(path), *spec.training.script_args]
    sys.path.insert(0, str(path.parent))
    try:
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise RuntimeError(f"the script exited with code {exc.code!r}") from None
    except BaseException as exc:
        sys.stderr.write(user_traceback(exc))  # the user's frames only: the log tail is shown to people
        if run.writer is not None:
            run.writer.flush()
        protocol.write_failure(Path(args.run_dir), failure_of(exc, rank, run.last_step))
        return 1
    finally:
        if run.writer is not None:
            run.writer.flush()
    if run.writer is not None:
        run.writer.summary(summary(spec, run, time.perf_counter() - t0))
        run.writer.close()
    return 0


def summary(spec: Pipeline, run: script.ScriptRun, wall_s: float) -> protocol.WorkerSummary:
    device = os.environ.get("TRAINDOC_DEVICE") or resolve_device(spec.devices)
    cuda = device == "cuda" and torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    return protocol.WorkerSummary(
        mode="script",
        steps=run.last_step,
        epochs=run.last_epoch + 1 if run.last_step else 0,
        steps_per_epoch=None,
        stopped_because=run.stopped_because or "the script finished",
        checkpoints=files_in(run.checkpoint_dir(), spec.checkpoint.dir),
        checkpoint_verified=None,
        resumed_from=None,
        resident_data=False,
        device=device,
        peak_cuda_bytes=torch.cuda.max_memory_allocated() if cuda else None,
        wall_s=wall_s,
    )


def files_in(folder: Path, container_dir: str) -> list[protocol.CheckpointRecord]:
    """The files the script left in its checkpoint folder, oldest first."""
    found = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=_mtime)
    out = []
    for p in found:
        m = _DIGITS.search(p.stem)
        out.append(
            protocol.CheckpointRecord(
                path=p.name,
                container_path=f"{container_dir.rstrip('/')}/{p.name}",
                bytes=p.stat().st_size,
                step=int(m.group(1)) if m else None,
            )
        )
    return out


def _mtime(p: Path) -> float:
    return p.stat().st_mtime

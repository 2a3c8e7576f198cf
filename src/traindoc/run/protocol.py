"""The run protocol: the only way a training process and the runner talk. Typed records; no torch.

One writer, :class:`RunWriter`, is used by the child side (traindoc's own loop in
:mod:`traindoc.train` and the bring-your-own-script API in :mod:`traindoc.train.script`); one set of
readers, below, is used by the runner. The run folder holds:

- ``steps.jsonl``: one :class:`StepRecord` per optimizer step and one :class:`EvalRecord` per
  evaluation (``"event": "val"``), written by rank 0 and flushed per log window, so a killed run
  still shows its progress; a torn last line is tolerated;
- ``worker.json``: rank 0's :class:`WorkerSummary`, written once, atomically, at a clean end;
- ``error-rank<N>.json``: a :class:`RankFailure` per rank that failed, with a wall-clock timestamp;
  as in torch elastic's error files, the earliest one is the root cause;
- ``rank<N>.log``: the rank's redacted stdout and stderr; its existence says the rank started;
- the ``monitoring.log_file`` (``train.log``): the same steps and evaluations as readable lines.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .._util.atomic import write_text
from ..errors import BatchError
from ..records import Record, RecordError

_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")

STEPS = "steps.jsonl"
SUMMARY = "worker.json"
CHECKPOINTS = "checkpoints"


def failure_file(rank: int) -> str:
    return f"error-rank{rank}.json"


def rank_log(rank: int) -> str:
    return f"rank{rank}.log"


FailureKind = Literal["user_code", "spec", "batch", "nan", "oom", "launch", "peer", "peer_timeout", "terminated"]
# 'peer': a collective failed because another rank went away; 'peer_timeout': a collective timed out
# waiting for another rank (which hung); 'terminated': SIGTERM from the launcher. All three are the
# aftermath of another rank's failure, never a root cause when a primary failure exists.
AFTERMATH: frozenset[str] = frozenset({"peer", "peer_timeout", "terminated"})


@dataclass(frozen=True, kw_only=True)
class StepRecord(Record):
    """One optimizer step on rank 0. Timings and memory are None where they were not measured."""

    step: int
    epoch: int
    loss: float
    lr: float | None = None
    samples: int | None = None  # across all ranks
    samples_per_s: float | None = None
    data_s: float | None = None
    compute_s: float | None = None
    step_s: float | None = None
    memory_bytes: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # a step's own scalars (user step, traindoc.log)


@dataclass(frozen=True, kw_only=True)
class EvalRecord(Record):
    """One evaluation: only metrics that are defined for this model (never a placeholder 0)."""

    event: Literal["val"] = "val"
    epoch: int
    step: int
    metrics: dict[str, float]  # val_loss, val_accuracy, val_token_accuracy, val_perplexity, val_<yours>


@dataclass(frozen=True, kw_only=True)
class CheckpointRecord(Record):
    path: str
    container_path: str
    bytes: int
    step: int | None  # None: a script's file whose name carries no step number


@dataclass(frozen=True, kw_only=True)
class SkippedCheckpoint(Record):
    """A checkpoint found but not used (damaged, unverifiable or not plain data), and why."""

    path: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class WorkerSummary(Record):
    """Rank 0's account of a run that ended cleanly."""

    mode: Literal["builtin", "script"] = "builtin"
    steps: int
    epochs: int
    steps_per_epoch: int | None
    stopped_because: str
    checkpoints: list[CheckpointRecord]  # those on disk at the end, oldest first
    checkpoint_verified: bool | None
    resumed_from: int | None
    resident_data: bool
    device: str
    peak_cuda_bytes: int | None
    wall_s: float
    samples: list[str] = field(default_factory=list)  # text from monitoring.samples
    checkpoints_skipped: list[SkippedCheckpoint] = field(default_factory=list)  # damaged ones, never loaded
    resume_note: str | None = None  # what a resume found ("no valid checkpoint: started from step 0")


@dataclass(frozen=True, kw_only=True)
class RankFailure(Record):
    rank: int
    kind: FailureKind
    message: str
    traceback: str
    step: int
    timestamp: float  # time.time() when it was caught: the earliest is the root cause

    @property
    def primary(self) -> bool:
        return self.kind not in AFTERMATH


def metric_name(name: object, where: str) -> str:
    """A recorded metric's name: it lands in tables and logs, so letters, digits, '_', '.', '-' only."""
    if not isinstance(name, str) or not _METRIC_NAME.match(name):
        raise BatchError(f"{where}: metric name {name!r} is not allowed (letters, digits, '_', '.', '-'; up to 64)")
    return name


# --- the writer (child side) ------------------------------------------------------------------------


def log_line(rec: StepRecord | EvalRecord) -> str:
    """The human-readable line for ``monitoring.log_file``."""
    if isinstance(rec, EvalRecord):
        parts = [f"eval  step {rec.step}", f"epoch {rec.epoch}"]
        parts += [f"{k} {v:.6g}" for k, v in rec.metrics.items()]
        return "  ".join(parts)
    parts = [f"step {rec.step}", f"epoch {rec.epoch}", f"loss {rec.loss:.6g}"]
    if rec.lr is not None:
        parts.append(f"lr {rec.lr:.3g}")
    if rec.samples_per_s is not None:
        parts.append(f"{rec.samples_per_s:,.0f} samples/s")
    parts += [f"{k} {v:.6g}" for k, v in rec.metrics.items()]
    return "  ".join(parts)


class RunWriter:
    """Writes the protocol files of one rank. Only rank 0 writes steps, evaluations and the summary."""

    def __init__(self, run_dir: Path, rank: int, *, log_file: str | None = None, append: bool = False) -> None:
        self.run_dir = run_dir
        self.rank = rank
        self._steps = None
        self._human = None
        if rank == 0:
            mode = "a" if append else "w"
            self._steps = open(run_dir / STEPS, mode, encoding="utf-8")  # noqa: SIM115
            if log_file:
                self._human = open(run_dir / log_file, mode, encoding="utf-8")  # noqa: SIM115

    def write(self, rec: StepRecord | EvalRecord) -> None:
        if self._steps is not None:
            self._steps.write(json.dumps(rec.model_dump(), allow_nan=True) + "\n")
        if self._human is not None:
            self._human.write(log_line(rec) + "\n")

    def flush(self) -> None:
        for fh in (self._steps, self._human):
            if fh is not None:
                fh.flush()  # no fsync: a torn last line is tolerated by the reader, a stall per window is not

    def summary(self, summary: WorkerSummary) -> None:
        if self.rank == 0:
            self.flush()
            write_text(self.run_dir / SUMMARY, json.dumps(summary.model_dump(), indent=1))

    def failure(self, failure: RankFailure) -> None:
        self.flush()
        write_failure(self.run_dir, failure)

    def close(self) -> None:
        self.flush()
        for fh in (self._steps, self._human):
            if fh is not None:
                fh.close()
        self._steps = self._human = None


def write_failure(run_dir: Path, failure: RankFailure) -> None:
    """A rank's error file (any rank, any moment: it needs no open writer)."""
    write_text(run_dir / failure_file(failure.rank), json.dumps(failure.model_dump(), indent=1))


# --- the readers (runner side) ----------------------------------------------------------------------


def parse_line(line: str) -> StepRecord | EvalRecord | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    try:
        if isinstance(data, dict) and data.get("event") == "val":
            return EvalRecord.model_validate(data)
        return StepRecord.model_validate(data)
    except RecordError:
        return None


def read_steps(path: Path) -> tuple[list[StepRecord], list[EvalRecord]]:
    """(steps, evaluations) from steps.jsonl, tolerating a torn last line; a resumed run's rewritten
    steps replace the earlier ones."""
    steps: dict[int, StepRecord] = {}
    evals: list[EvalRecord] = []
    if not path.is_file():
        return [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        rec = parse_line(line)
        if isinstance(rec, EvalRecord):
            evals.append(rec)
        elif rec is not None:
            steps[rec.step] = rec
    return [steps[k] for k in sorted(steps)], evals


def last_step(path: Path) -> StepRecord | None:
    """The newest step record, reading only the file's tail (for progress while it runs)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        rec = parse_line(line)
        if isinstance(rec, StepRecord):
            return rec
    return None


def read_summary(run_dir: Path) -> WorkerSummary | None:
    try:
        return WorkerSummary.model_validate_json((run_dir / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, RecordError):
        return None


def read_failures(run_dir: Path) -> list[RankFailure]:
    """Every rank's failure record, earliest first (unreadable files are skipped)."""
    out = []
    for path in run_dir.glob("error-rank*.json"):
        try:
            out.append(RankFailure.model_validate_json(path.read_text(encoding="utf-8")))
        except (OSError, RecordError):
            continue
    return sorted(out, key=lambda f: (f.timestamp, f.rank))


def started_ranks(run_dir: Path) -> list[int]:
    """Ranks whose log exists: they started and ran traindoc's code."""
    out = []
    for path in run_dir.glob("rank*.log"):
        digits = path.name.removeprefix("rank").removesuffix(".log")
        if digits.isdigit():
            out.append(int(digits))
    return sorted(out)


def root_cause(failures: list[RankFailure]) -> RankFailure | None:
    """The earliest primary failure; else the earliest aftermath one (torch elastic's rule)."""
    primary = [f for f in failures if f.primary]
    pool = primary or failures
    return min(pool, key=lambda f: (f.timestamp, f.rank)) if pool else None

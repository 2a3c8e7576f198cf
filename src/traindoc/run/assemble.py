"""From a finished run folder to a :class:`~traindoc.run.results.RunResult`. No torch; reads only protocol files.

``diagnose`` decides the status and the one-line reason from the typed records (the earliest
primary :class:`~traindoc.run.protocol.RankFailure` is the root cause, as in torch elastic; a rank that
started but left neither a failure nor a summary died without a word). ``log_tail`` picks what to
show of a failed run, and ``assemble`` puts the result together.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from pathlib import Path

from .._util.redact import redact, redact_lines
from ..facts import Facts
from . import protocol, results
from .results import RunResult, Status


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str
    failed_rank: int | None
    root: protocol.RankFailure | None


@dataclass(frozen=True)
class Launched:
    """What the runner knows about the processes it started."""

    codes: list[int]
    timed_out: bool
    timeout_s: float
    wall_s: float
    started_at: str
    world: int
    nnodes: int
    nproc: int
    backend: str
    docs: bool
    commit: str | None
    driver: str | None


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


_ROOT_CAUSE = re.compile(
    r"Root Cause \(first observed failure\):\s*\[\d+\]:(?:\s*\w+\s*:[^\n]*\n)*?\s*rank\s*:\s*(\d+)"
)


def first_failed_rank(run_dir: Path) -> int | None:
    """The rank torchrun saw fail first ("Root Cause (first observed failure)" in its log). A rank that
    dies silently takes its peers down: torchrun's SIGTERM can reach a peer blocked in a collective before
    it records anything, so two ranks are silent and only the launcher knows which one went first."""
    for log in sorted(run_dir.glob("launcher*.log")):
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        m = _ROOT_CAUSE.search(text)
        if m is not None:
            return int(m.group(1))
    return None


def diagnose(
    summary: protocol.WorkerSummary | None,
    failures: list[protocol.RankFailure],
    started: list[int],
    launched: Launched,
    last_step: int,
    first_failed: int | None = None,
) -> Outcome:
    if launched.timed_out:
        return Outcome(
            "timeout",
            f"timed out after {launched.timeout_s:g} s at step {last_step}; every rank was killed",
            None,
            None,
        )
    if not failures and not any(launched.codes) and summary is not None:
        return Outcome("passed", f"trained {summary.steps} steps; {summary.stopped_because}", None, None)
    # a rank stopped by the launcher's SIGTERM said nothing of its own: when its peers timed out waiting
    # in a collective, it is the one that hung
    waited = any(f.kind == "peer_timeout" for f in failures)
    reported = {f.rank for f in failures if not (waited and f.kind == "terminated")}
    silent = [r for r in started if r not in reported and not (r == 0 and summary is not None)]
    primary = [f for f in failures if f.primary]
    root = protocol.root_cause(failures)
    if not primary and silent and launched.world > 1:
        rank = first_failed if first_failed in silent else silent[0]
        waiting = sorted(f.rank for f in failures if f.kind == "peer_timeout")
        if waiting:  # its peers timed out in a collective it never reached: it hung
            who = f"rank {rank}" if len(silent) == 1 else "ranks " + ", ".join(map(str, silent))
            peers = ", ".join(map(str, waiting))
            reason = (
                f"{who} hung at step {last_step}: it never reached a collective operation, and rank(s) {peers} "
                "timed out waiting for it"
            )
            return Outcome("failed", reason, rank, None)
        return Outcome("failed", f"rank {rank} died at step {last_step} without reporting an error", rank, None)
    if root is not None:
        where = f"rank {root.rank}" if launched.world > 1 else "the training process"
        return Outcome("failed", f"{where}: {root.message}", root.rank, root)
    code = next((c for c in launched.codes if c), 0)
    who = "the launcher" if launched.world > 1 else "the training process"
    reason = f"{who} ended with {exit_text(code)} at step {last_step} without reporting an error"
    return Outcome("failed", reason, silent[0] if silent else 0, None)


def log_tail(run_dir: Path, outcome: Outcome) -> list[str]:
    """The failing rank's log tail (else the first log), then the user's own traceback."""
    logs = sorted(run_dir.glob("rank*.log")) + sorted(run_dir.glob("launcher*.log"))
    pick = run_dir / protocol.rank_log(outcome.failed_rank) if outcome.failed_rank is not None else None
    src = pick if pick is not None and pick.is_file() and pick.stat().st_size else (logs[0] if logs else None)
    lines: list[str] = []
    if src is not None:
        lines = [f"--- {src.name}", *results.tail(src)]
    if outcome.root is not None and outcome.root.traceback:
        lines += ["--- traceback (user code)", *redact_lines(outcome.root.traceback.splitlines())[-25:]]
    return lines


def assemble(facts: Facts, key: str, run_dir: Path, launched: Launched) -> RunResult:
    steps, evals = protocol.read_steps(run_dir / protocol.STEPS)
    summary = protocol.read_summary(run_dir)
    last = steps[-1].step if steps else 0
    failures, started = protocol.read_failures(run_dir), protocol.started_ranks(run_dir)
    outcome = diagnose(summary, failures, started, launched, last, first_failed_rank(run_dir))
    status, reason = outcome.status, outcome.reason
    stepsum = results.summarise_steps(steps, facts.training.log_every)
    measured = results.measured_metrics(stepsum, evals)
    expectations = results.check_expectations(facts.expect.model_dump(), measured)
    if status == "passed":
        unmet = [e for e in expectations if not e.passed]
        if unmet:
            status = "expectations_unmet"
            reason = "unmet expectation(s): " + "; ".join(e.text for e in unmet)
    memory = results.memory_trend(steps, "cuda_allocated" if facts.devices.resolved == "cuda" else "rss")
    if memory is not None and summary is not None and summary.peak_cuda_bytes:
        memory = memory.model_copy(update={"peak_bytes": summary.peak_cuda_bytes})
    d = facts.devices
    return RunResult(
        ok=status == "passed",
        status=status,
        reason=redact(reason),
        pipeline=facts.name,
        key=key,
        started_at=launched.started_at,
        commit=launched.commit,
        docs_budget=launched.docs,
        device=results.DeviceRecord(
            kind=d.resolved,
            sentence=d.sentence,
            gpus=[g.name for g in d.gpus],
            torch=d.torch_version,
            cuda=d.cuda_version,
            cudnn=d.cudnn_version,
            driver=launched.driver,
        ),
        world_size=launched.world,
        nnodes=launched.nnodes,
        nproc_per_node=launched.nproc,
        backend=launched.backend if launched.world > 1 else "none",
        steps=summary.steps if summary is not None else last,
        epochs=summary.epochs if summary is not None else 0,
        stopped_because=summary.stopped_because if summary is not None else None,
        wall_s=round(launched.wall_s, 3),
        samples_per_s=stepsum.samples_per_s,
        data_wait_share=stepsum.data_wait_share,
        memory=memory,
        first_loss=stepsum.first_loss,
        final_loss=stepsum.final_loss,
        loss_curve=stepsum.loss_curve,
        val=evals,
        final_val_accuracy=measured.get("val_accuracy"),
        final_val_loss=measured.get("val_loss"),
        final_metrics=measured,
        expectations=expectations,
        checkpoints=summary.checkpoints if summary is not None else on_disk(run_dir, facts.checkpoint.container_dir),
        checkpoint_verified=summary.checkpoint_verified if summary is not None else None,
        resumed_from=summary.resumed_from if summary is not None else None,
        resident_data=summary.resident_data if summary is not None else False,
        failed_rank=outcome.failed_rank if status == "failed" else None,
        log_tail=log_tail(run_dir, outcome) if status != "passed" else [],
        run_dir=str(run_dir),
        mode=summary.mode if summary is not None else "builtin",
        samples=[redact(s) for s in summary.samples] if summary is not None else [],
        checkpoints_skipped=summary.checkpoints_skipped if summary is not None else [],
        resume_note=summary.resume_note if summary is not None else None,
    )


def on_disk(run_dir: Path, container_dir: str) -> list[protocol.CheckpointRecord]:
    """Checkpoints a run that ended without a summary left behind (traindoc's own file names)."""
    folder = run_dir / protocol.CHECKPOINTS
    out = []
    for path in sorted(folder.glob("step_*")) if folder.is_dir() else []:
        digits = path.stem.removeprefix("step_")
        if path.is_file() and digits.isdigit() and not path.name.startswith("."):
            out.append(
                protocol.CheckpointRecord(
                    path=path.name,
                    container_path=f"{container_dir.rstrip('/')}/{path.name}",
                    bytes=path.stat().st_size,
                    step=int(digits),
                )
            )
    return out

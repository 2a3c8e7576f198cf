"""The results record of a run, assembled from the run folder's files. Pure; no torch.

``RunResult`` is what ``traindoc run --json`` prints, what the cache stores, and what the run report
template and the README ``results`` section read.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._util.redact import redact_lines
from ..records import Record
from .protocol import CheckpointRecord, EvalRecord, SkippedCheckpoint, StepRecord, read_steps

Status = Literal["passed", "failed", "expectations_unmet", "timeout"]
LEAK_MIN_BYTES = 32 << 20  # growth below this is never called a leak
LEAK_MIN_FRACTION = 0.10  # ... nor growth below 10 % of the starting level


@dataclass(frozen=True, kw_only=True)
class Expectation(Record):
    name: str
    threshold: float
    measured: float | None
    passed: bool
    text: str


ValRecord = EvalRecord  # one evaluation: only the metrics defined for the model


@dataclass(frozen=True, kw_only=True)
class MemoryTrend(Record):
    kind: Literal["cuda_allocated", "rss"]
    start_bytes: int
    end_bytes: int
    peak_bytes: int
    slope_bytes_per_step: float
    leak_suspected: bool
    text: str


@dataclass(frozen=True, kw_only=True)
class DeviceRecord(Record):
    kind: str
    sentence: str
    gpus: list[str]
    torch: str
    cuda: str | None
    cudnn: str | None
    driver: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunResult(Record):
    ok: bool
    status: Status
    reason: str
    pipeline: str
    key: str
    from_cache: bool = False
    started_at: str
    commit: str | None
    docs_budget: bool
    device: DeviceRecord
    world_size: int
    nnodes: int
    nproc_per_node: int
    backend: str
    steps: int
    epochs: int
    stopped_because: str | None
    wall_s: float
    samples_per_s: float | None
    data_wait_share: float | None
    memory: MemoryTrend | None
    first_loss: float | None
    final_loss: float | None
    loss_curve: list[tuple[int, float]]
    val: list[EvalRecord]
    final_val_accuracy: float | None  # None where accuracy is not defined for the model (never 0)
    final_val_loss: float | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)  # every metric measured at the end, by name
    expectations: list[Expectation]
    checkpoints: list[CheckpointRecord]
    checkpoint_verified: bool | None
    resumed_from: int | None
    resident_data: bool
    failed_rank: int | None
    log_tail: list[str]
    run_dir: str
    checkpoints_skipped: list[SkippedCheckpoint] = field(default_factory=list)
    resume_note: str | None = None
    mode: Literal["builtin", "script"] = "builtin"
    samples: list[str] = field(default_factory=list)  # text the model produced (monitoring.samples)


def memory_trend(steps: list[StepRecord], kind: Literal["cuda_allocated", "rss"]) -> MemoryTrend | None:
    series = [(r.step, r.memory_bytes) for r in steps if r.memory_bytes]
    if len(series) < 5:
        return None
    tail = series[len(series) // 5 :]  # skip warm-up
    xs = [float(s) for s, _ in tail]
    ys = [float(m) for _, m in tail]
    slope = statistics.linear_regression(xs, ys).slope if len(set(xs)) > 1 else 0.0
    growth = slope * (xs[-1] - xs[0])
    leak = growth > max(LEAK_MIN_BYTES, LEAK_MIN_FRACTION * ys[0])
    mib = 1 << 20
    text = (
        f"memory grows about {slope / mib:.2f} MiB per step ({growth / mib:.0f} MiB over the run): "
        "something keeps tensors alive between steps (e.g. accumulating losses without .item())"
        if leak
        else f"memory stable ({ys[0] / mib:.0f} → {ys[-1] / mib:.0f} MiB after warm-up)"
    )
    return MemoryTrend(
        kind=kind,
        start_bytes=int(series[0][1]),
        end_bytes=int(series[-1][1]),
        peak_bytes=int(max(m for _, m in series)),
        slope_bytes_per_step=slope,
        leak_suspected=leak,
        text=text,
    )


def _window_mean(values: list[float], n: int, last: bool) -> float | None:
    if not values:
        return None
    part = values[-n:] if last else values[:n]
    return sum(part) / len(part)


SHORTHANDS: dict[str, tuple[str, bool, str]] = {
    # shorthand -> (metric, at least (True) / at most (False), wording)
    "min_val_accuracy": ("val_accuracy", True, "validation accuracy {m} ≥ {t}"),
    "min_loss_drop": ("loss_drop", True, "training loss fell by {m} (≥ {t})"),
    "max_final_loss": ("final_loss", False, "final training loss {m} ≤ {t}"),
}


def check_expectations(expect: Mapping[str, Any], measured: Mapping[str, float | None]) -> list[Expectation]:
    """Each declared bound against the metric's final value; a metric never recorded fails, saying so.

    ``expect`` holds the shorthands and ``bounds`` ({metric: {"min": x, "max": y}}); ``measured`` the
    final value of every metric by name (``val_*``, ``final_loss``, ``first_loss``, ``loss_drop``, ...).
    """
    wanted: list[tuple[str, str, float, bool, str]] = []
    for name, (metric, at_least, text) in SHORTHANDS.items():
        if expect.get(name) is not None:
            wanted.append((name, metric, float(expect[name]), at_least, text))
    for metric, bound in (expect.get("bounds") or {}).items():
        for side, at_least in (("min", True), ("max", False)):
            if bound.get(side) is not None:
                text = "{name} {m} " + ("≥" if at_least else "≤") + " {t}"
                wanted.append((metric, metric, float(bound[side]), at_least, text))
    out: list[Expectation] = []
    for name, metric, t, at_least, text in wanted:
        m = measured.get(metric)
        ok = m is not None and (m >= t if at_least else m <= t)
        words = (
            text.format(name=metric, m=_f(m), t=f"{t:g}")
            if m is not None
            else f"{metric} was never recorded (expected {'≥' if at_least else '≤'} {t:g})"
        )
        out.append(Expectation(name=name, threshold=t, measured=m, passed=ok, text=words))
    return out


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.3g}"


def downsample(points: list[tuple[int, float]], n: int = 200) -> list[tuple[int, float]]:
    if len(points) <= n:
        return points
    stride = len(points) / n
    return [points[int(i * stride)] for i in range(n - 1)] + [points[-1]]


def tail(path: Path, lines: int = 30) -> list[str]:
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    return redact_lines(text.splitlines())[-lines:]  # the whole log: a PEM block may begin before the tail


@dataclass(frozen=True)
class StepSummary:
    first_loss: float | None
    final_loss: float | None
    samples_per_s: float | None
    data_wait_share: float | None  # None where data time was not measured (a script's own loop)
    loss_curve: list[tuple[int, float]]
    final_metrics: dict[str, float]  # a step's own metrics, averaged over the last window

    @property
    def loss_drop(self) -> float | None:
        first, final = self.first_loss, self.final_loss
        return (first - final) / first if first and final is not None and first > 0 else None


def summarise_steps(steps: list[StepRecord], log_every: int) -> StepSummary:
    losses = [r.loss for r in steps]
    window = max(1, min(log_every, len(losses) // 4 or 1))
    sps = [r.samples_per_s for r in steps[len(steps) // 10 :] if r.samples_per_s]
    timed = [r for r in steps if r.data_s is not None and r.compute_s is not None]
    data = sum(r.data_s or 0.0 for r in timed)
    comp = sum(r.compute_s or 0.0 for r in timed)
    names = sorted({k for r in steps for k in r.metrics})
    final_metrics = {}
    for name in names:
        mean = _window_mean([r.metrics[name] for r in steps if name in r.metrics], window, last=True)
        if mean is not None:
            final_metrics[name] = mean
    return StepSummary(
        first_loss=_window_mean(losses, window, last=False),
        final_loss=_window_mean(losses, window, last=True),
        samples_per_s=statistics.median(sps) if sps else None,
        data_wait_share=data / (data + comp) if timed and data + comp > 0 else None,
        loss_curve=downsample([(r.step, r.loss) for r in steps]),
        final_metrics=final_metrics,
    )


def measured_metrics(summary: StepSummary, evals: list[EvalRecord]) -> dict[str, float]:
    """The final value of every recorded metric, by name: what expectations and the pages read."""
    out: dict[str, float] = dict(summary.final_metrics)
    for name, value in (
        ("first_loss", summary.first_loss),
        ("final_loss", summary.final_loss),
        ("loss_drop", summary.loss_drop),
    ):
        if value is not None:
            out[name] = value
    latest: dict[str, float] = {}
    for rec in evals:
        latest.update(rec.metrics)  # the newest value of each evaluation metric
    out.update(latest)
    return out


__all__ = [
    "CheckpointRecord",
    "DeviceRecord",
    "EvalRecord",
    "Expectation",
    "MemoryTrend",
    "RunResult",
    "StepSummary",
    "ValRecord",
    "check_expectations",
    "measured_metrics",
    "memory_trend",
    "read_steps",
    "summarise_steps",
]

"""The results record of a run, assembled from the run folder's files. Pure; no torch.

``RunResult`` is what ``traindoc run --json`` prints, what the cache stores, and what the run report
template and the README ``results`` section read.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .records import Record
from .redact import redact_lines

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


@dataclass(frozen=True, kw_only=True)
class CheckpointRecord(Record):
    path: str
    container_path: str
    bytes: int
    step: int


@dataclass(frozen=True, kw_only=True)
class SkippedCheckpoint(Record):
    """A checkpoint found but not used (damaged, unverifiable or not plain data), and why."""

    path: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ValRecord(Record):
    epoch: int
    step: int
    accuracy: float
    loss: float


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
    val: list[ValRecord]
    final_val_accuracy: float | None
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


def read_steps(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(step records, val records) from steps.jsonl, tolerating a torn last line."""
    steps: list[dict[str, Any]] = []
    vals: list[dict[str, Any]] = []
    if not path.is_file():
        return steps, vals
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        (vals if rec.get("event") == "val" else steps).append(rec)
    by_step = {r["step"]: r for r in steps}  # a resumed run rewrites steps after its checkpoint
    return [by_step[k] for k in sorted(by_step)], vals


def memory_trend(steps: list[dict[str, Any]], kind: Literal["cuda_allocated", "rss"]) -> MemoryTrend | None:
    series = [(r["step"], r["memory_bytes"]) for r in steps if r.get("memory_bytes")]
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


def check_expectations(
    expect: dict[str, Any], final_acc: float | None, first: float | None, final: float | None
) -> list[Expectation]:
    """Each declared threshold against its measured value (a missing measurement fails)."""
    drop = (first - final) / first if first and final is not None and first > 0 else None
    # name -> (measured, at least (True) / at most (False), wording)
    checks: dict[str, tuple[float | None, bool, str]] = {
        "min_val_accuracy": (final_acc, True, "validation accuracy {m} ≥ {t}"),
        "min_loss_drop": (drop, True, "training loss fell by {m} (≥ {t})"),
        "max_final_loss": (final, False, "final training loss {m} ≤ {t}"),
    }
    out: list[Expectation] = []
    for name, (measured, at_least, text) in checks.items():
        if expect.get(name) is None:
            continue
        t = float(expect[name])
        ok = measured is not None and (measured >= t if at_least else measured <= t)
        out.append(
            Expectation(
                name=name, threshold=t, measured=measured, passed=ok, text=text.format(m=_f(measured), t=f"{t:g}")
            )
        )
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


def summarise_steps(steps: list[dict[str, Any]], log_every: int) -> dict[str, Any]:
    losses = [r["loss"] for r in steps if r.get("loss") is not None]
    window = max(1, min(log_every, len(losses) // 4 or 1))
    sps = [r["samples_per_s"] for r in steps[len(steps) // 10 :] if r.get("samples_per_s")]
    data = sum(r.get("data_s", 0.0) for r in steps)
    comp = sum(r.get("compute_s", 0.0) for r in steps)
    return {
        "first_loss": _window_mean(losses, window, last=False),
        "final_loss": _window_mean(losses, window, last=True),
        "samples_per_s": statistics.median(sps) if sps else None,
        "data_wait_share": data / (data + comp) if data + comp > 0 else None,
        "loss_curve": downsample([(r["step"], r["loss"]) for r in steps if r.get("loss") is not None]),
    }

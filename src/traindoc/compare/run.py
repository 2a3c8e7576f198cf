"""Run two pipelines over the same seeds and compare them: the data a comparison page is drawn from.

No torch in this process: each seed is an ordinary cached ``traindoc run`` (:func:`traindoc.run.runner.run`)
with the seed overridden, so a rebuild reuses every run whose inputs did not change. Seeds run side by
side where the machine has cores to spare. The verdict per metric comes from :mod:`.stats`; the
model diff from :mod:`.diff`; expectations on the comparison (``expect_compare``) make it a test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import CompareError
from ..facts import Facts
from ..run.results import Expectation, RunResult
from .diff import ModelDiff, diff_models
from .stats import Difference, compare_metric

LOWER_IS_BETTER = ("loss", "perplexity", "error", "wall")


def higher_is_better(metric: str) -> bool:
    return not any(word in metric for word in LOWER_IS_BETTER)


@dataclass(frozen=True)
class Side:
    label: str  # "A" or "B"
    ref: str
    facts: Facts
    runs: list[RunResult]

    @property
    def name(self) -> str:
        return self.facts.name

    def values(self, metric: str) -> list[float]:
        """The metric's final value in every run that measured it."""
        return [v for r in self.runs if (v := metric_value(r, metric)) is not None]


@dataclass(frozen=True)
class EnvChange:
    field: str
    a: str
    b: str


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    seeds: list[int]
    differences: list[Difference]
    model: ModelDiff
    environment: list[EnvChange]
    expectations: list[Expectation]

    @property
    def ok(self) -> bool:
        runs_ok = all(r.status in ("passed", "expectations_unmet") for r in self.a.runs + self.b.runs)
        return runs_ok and all(e.passed for e in self.expectations)


def metric_value(result: RunResult, metric: str) -> float | None:
    """A run's final value of a metric: final metrics first, then the record's own figures."""
    if metric in result.final_metrics:
        return float(result.final_metrics[metric])
    value = getattr(result, metric, None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


DEFAULT_METRICS = ("val_accuracy", "val_token_accuracy", "val_loss", "val_perplexity", "final_loss", "samples_per_s")


def metrics_to_compare(a: Side, b: Side, wanted: tuple[str, ...] = DEFAULT_METRICS) -> list[str]:
    """Metrics both sides measured, the usual ones first, then every other shared final metric."""
    names = [m for m in wanted if a.values(m) and b.values(m)]
    extra = sorted(set().union(*(r.final_metrics for r in a.runs)) & set().union(*(r.final_metrics for r in b.runs)))
    skip = {"first_loss"}  # where training started says nothing about the change
    return names + [m for m in extra if m not in names and m not in skip and a.values(m) and b.values(m)]


def environment_changes(a: Facts, b: Facts) -> list[EnvChange]:
    """What differs in the system a run is documented for: image, devices, world size, data path."""
    pairs: list[tuple[str, Any, Any]] = [
        ("image", a.environment.image, b.environment.image),
        ("devices", a.devices.requested, b.devices.requested),
        ("nnodes", a.distributed.nnodes, b.distributed.nnodes),
        ("nproc_per_node", a.distributed.nproc_per_node, b.distributed.nproc_per_node),
        ("backend", a.distributed.backend_declared, b.distributed.backend_declared),
        ("batch_size", a.data.batch_size, b.data.batch_size),
        ("dataset", a.data.dataset_class, b.data.dataset_class),
        ("device_resident", a.data.device_resident, b.data.device_resident),
    ]
    return [EnvChange(f, str(x), str(y)) for f, x, y in pairs if x != y]


def valid_expect(expect: object) -> bool:
    """``{metric: {min_delta: N, max_delta: N}}`` with numbers: checked before any run starts (CLI and fence)."""
    return isinstance(expect, dict) and all(
        isinstance(k, str)
        and isinstance(v, dict)
        and v
        and all(
            b in ("min_delta", "max_delta") and isinstance(t, (int, float)) and not isinstance(t, bool)
            for b, t in v.items()
        )
        for k, v in expect.items()
    )


def check_compare(expect: Mapping[str, Mapping[str, float]], diffs: list[Difference]) -> list[Expectation]:
    """``{"val_accuracy": {"min_delta": 0.0}}``: bounds on B − A (mean over seeds); a missing metric fails."""
    by_name = {d.metric: d for d in diffs}
    out: list[Expectation] = []
    for metric, bounds in expect.items():
        d = by_name.get(metric)
        for bound, threshold in bounds.items():
            if bound not in ("min_delta", "max_delta"):
                raise CompareError(f"expect_compare.{metric}: unknown bound {bound!r} (use min_delta or max_delta)")
            t = float(threshold)
            if d is None:
                text = f"{metric}: B − A {'≥' if bound == 'min_delta' else '≤'} {t:g} — not measured on both sides"
                out.append(Expectation(name=f"{metric}.{bound}", threshold=t, measured=None, passed=False, text=text))
                continue
            ok = d.delta >= t if bound == "min_delta" else d.delta <= t
            sign = "≥" if bound == "min_delta" else "≤"
            text = f"{metric}: B − A = {d.delta:+.4g} {sign} {t:g}"
            out.append(Expectation(name=f"{metric}.{bound}", threshold=t, measured=d.delta, passed=ok, text=text))
    return out


Runner = Callable[[str, int | None], RunResult]  # (pipeline, seed; None = the spec's own seed)
FactsFor = Callable[[str], Facts]


def parallel_slots(world_size: int, cores: int | None = None) -> int:
    """How many seeds may train at once: one slot per ``world_size`` cores, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, world_size))


def run_seeds(runner: Runner, ref: str, seeds: list[int], slots: int, own_seed: int | None) -> list[RunResult]:
    """One run per seed; the spec's own seed runs as the spec's own run (shared with the run page's cache)."""
    wanted: list[int | None] = [None if s == own_seed else s for s in seeds]
    if slots <= 1 or len(seeds) <= 1:
        return [runner(ref, s) for s in wanted]
    with ThreadPoolExecutor(max_workers=min(slots, len(seeds))) as pool:
        return list(pool.map(lambda s: runner(ref, s), wanted))


def compare(
    ref_a: str,
    ref_b: str,
    *,
    seeds: list[int],
    runner: Runner,
    facts_for: FactsFor,
    expect: Mapping[str, Mapping[str, float]] | None = None,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    nproc: int | None = None,
) -> Comparison:
    fa, fb = facts_for(ref_a), facts_for(ref_b)
    world = nproc or max(fa.distributed.nproc_per_node * fa.distributed.nnodes, 1)
    slots = parallel_slots(world)
    a = Side("A", ref_a, fa, run_seeds(runner, ref_a, seeds, slots, fa.optim.seed))
    b = Side("B", ref_b, fb, run_seeds(runner, ref_b, seeds, slots, fb.optim.seed))
    diffs = [
        compare_metric(m, a.values(m), b.values(m), higher_is_better=higher_is_better(m))
        for m in metrics_to_compare(a, b, metrics)
    ]
    return Comparison(
        a=a,
        b=b,
        seeds=list(seeds),
        differences=diffs,
        model=diff_models(fa.model, fb.model),
        environment=environment_changes(fa, fb),
        expectations=check_compare(expect or {}, diffs),
    )

"""Is a difference between two sets of runs larger than seed noise? Pure Python, no numpy, no scipy.

Each side of a comparison is one metric measured over N seeds. The difference of means gets a
Welch confidence interval (unequal variances; the degrees of freedom from Welch–Satterthwaite), and
the verdict is said in words. With fewer than :data:`MIN_SEEDS` runs on a side no interval is honest,
so the verdict says that no conclusion can be drawn — never a bare number that looks like one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

MIN_SEEDS = 3
Verdict = Literal["a_better", "b_better", "within_noise", "inconclusive"]


@dataclass(frozen=True)
class Difference:
    """``b - a`` for one metric, with its interval and what it means."""

    metric: str
    a: list[float]
    b: list[float]
    mean_a: float
    mean_b: float
    delta: float  # mean_b - mean_a
    low: float | None  # None: not enough seeds for an interval
    high: float | None
    confidence: float
    verdict: Verdict
    text: str


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Inverse of :func:`t_cdf` by bisection (p in (0, 1))."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of ``mean(b) - mean(a)`` (Welch). Needs two or more values per side."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ValueError("Welch's interval needs at least two values per side")
    va, vb = statistics.variance(a) / na, statistics.variance(b) / nb
    delta = statistics.fmean(b) - statistics.fmean(a)
    se2 = va + vb
    if se2 == 0.0:
        return delta, delta
    denom = (va * va) / (na - 1) + (vb * vb) / (nb - 1)
    # Welch–Satterthwaite; when the squares underflow, the smaller side's df is the conservative choice.
    df = se2 * se2 / denom if denom > 0 else float(min(na, nb) - 1)
    q = t_quantile(0.5 + confidence / 2.0, df)
    half = q * math.sqrt(se2)
    return delta - half, delta + half


def compare_metric(
    metric: str,
    a: Sequence[float],
    b: Sequence[float],
    *,
    higher_is_better: bool,
    confidence: float = 0.95,
) -> Difference:
    """The difference ``b - a`` of one metric and a verdict in words."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if not a or not b:
        raise ValueError(f"{metric}: both sides need at least one measured value")
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    delta = mean_b - mean_a
    if min(len(a), len(b)) < MIN_SEEDS:
        n = min(len(a), len(b))
        text = (
            f"{metric}: B − A = {delta:+.4g} from {n} seed{'s' if n != 1 else ''} per side — no conclusion "
            f"can be drawn (at least {MIN_SEEDS} seeds per side are needed to tell a difference from seed noise)"
        )
        return Difference(metric, a, b, mean_a, mean_b, delta, None, None, confidence, "inconclusive", text)
    low, high = welch_interval(a, b, confidence)
    pct = f"{confidence:.0%}"
    if low > 0 or high < 0:
        b_up = low > 0
        verdict: Verdict = "b_better" if b_up == higher_is_better else "a_better"
        who = "B" if verdict == "b_better" else "A"
        text = (
            f"{metric}: B − A = {delta:+.4g} ({pct} interval {low:+.4g} … {high:+.4g}); larger than seed "
            f"noise — {who} is better"
        )
    else:
        verdict = "within_noise"
        text = (
            f"{metric}: B − A = {delta:+.4g} ({pct} interval {low:+.4g} … {high:+.4g}); within seed noise — "
            "no difference shown"
        )
    return Difference(metric, a, b, mean_a, mean_b, delta, low, high, confidence, verdict, text)

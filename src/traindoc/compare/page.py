"""A comparison as Markdown: verdicts, side-by-side table, overlaid curves, model diff. No torch.

``block`` renders a :class:`~.run.Comparison` through ``compare.md.j2``; ``diagram`` is the model
diff as Mermaid (``compare_model.mmd.j2``); ``chart`` overlays every seed's loss curve of both
sides with each side's mean, drawn by :mod:`traindoc.render.charts`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from .._util.redact import for_page
from ..render import charts, escape
from ..render.env import render
from ..run.results import RunResult
from .run import Comparison, Side
from .view import diff_tree, walk

VERDICTS = {
    "a_better": "A better (beyond seed noise)",
    "b_better": "B better (beyond seed noise)",
    "within_noise": "within seed noise",
    "inconclusive": "no conclusion (too few seeds)",
}
COLORS = {"A": ("#9bb7d4", "#1f5fa8"), "B": ("#f2b28c", "#d9480f")}


def diagram(c: Comparison, templates: str | None = None) -> escape.Rendered:
    root = diff_tree(c.model, c.a.facts.model, c.b.facts.model)
    return render("compare_model.mmd.j2", templates, root=root, nodes=walk(root), a_name=c.a.name, b_name=c.b.name)


def _mean_curve(runs: Sequence[RunResult]) -> list[tuple[float, float]]:
    by_step: dict[int, list[float]] = {}
    for r in runs:
        for s, v in r.loss_curve:
            by_step.setdefault(int(s), []).append(float(v))
    return [(float(s), statistics.fmean(v)) for s, v in sorted(by_step.items()) if len(v) == len(runs)]


def chart(c: Comparison) -> str:
    """Every seed's training loss (thin) and each side's mean (bold), one panel; "" without curves."""
    lines: list[charts.Line] = []
    for side in (c.a, c.b):
        thin, bold = COLORS[side.label]
        for r in side.runs:
            if r.loss_curve:
                pts = [(float(s), float(v)) for s, v in r.loss_curve]
                lines.append(charts.Line("", pts, thin, width=1.0, opacity=0.7))  # every seed, thin, unlabelled
        mean = _mean_curve(side.runs)
        if mean:
            lines.append(charts.Line(f"{side.label} mean", mean, bold, width=2.5))
    if not lines:
        return ""
    panel = charts.Panel("Loss, all seeds", lines, height=260, robust=True)
    return charts.panels_svg([panel], title=f"{c.a.name} (A) vs {c.b.name} (B)")


def _median_sps(side: Side) -> float | None:
    values = [r.samples_per_s for r in side.runs if r.samples_per_s is not None]
    return statistics.median(values) if values else None


def _path(side: Side) -> str:
    return side.facts.data.loader


def _met(side: Side) -> str:
    ok = sum(1 for r in side.runs if r.status == "passed")
    return f"{ok} of {len(side.runs)}"


def block(c: Comparison, templates: str | None = None, root: Path | None = None, docs: bool = True) -> str:
    a_params, b_params = c.a.facts.model.total_params, c.b.facts.model.total_params
    change = f"{(b_params - a_params) / a_params:+.1%}" if a_params else "n/a"
    svg = chart(c)
    text = render(
        "compare.md.j2",
        templates,
        c=c,
        docs=docs,
        param_change=change,
        a_bytes=sum(c.a.facts.model.param_bytes.values()),
        b_bytes=sum(c.b.facts.model.param_bytes.values()),
        a_sps=_median_sps(c.a),
        b_sps=_median_sps(c.b),
        a_path=_path(c.a),
        b_path=_path(c.b),
        a_met=_met(c.a),
        b_met=_met(c.b),
        confidence=c.differences[0].confidence if c.differences else 0.95,
        verdicts=VERDICTS,
        chart=escape.Rendered(f'<div class="traindoc-chart">{svg}</div>') if svg else "",
        diagram=diagram(c, templates),
    )
    return for_page(text, root)


def summary(c: Comparison) -> str:
    """Terminal text: what was compared, the verdict per metric, the expectations."""
    lines = [
        f"A = {c.a.name} · B = {c.b.name} · seeds {', '.join(map(str, c.seeds))}",
        f"  parameters   {c.a.facts.model.total_params:,} → {c.b.facts.model.total_params:,}",
    ]
    changed = [f"{ch.status} {ch.name or 'model'}" for ch in c.model.changes]
    lines.append("  model diff   " + ("; ".join(changed[:6]) + (" …" if len(changed) > 6 else "") or "identical"))
    lines += [f"  {d.text}" for d in c.differences] or ["  no metric was measured on both sides"]
    lines += [f"  expect       {'✔' if e.passed else '✘'} {e.text}" for e in c.expectations]
    failed = [f"{s.label} seed {r.run_dir}: {r.status}" for s in (c.a, c.b) for r in s.runs if r.status == "failed"]
    lines += [f"  run failed   {x}" for x in failed]
    return "\n".join(escape.txt(x) for x in lines)


def as_dict(c: Comparison) -> dict[str, object]:
    """The comparison as JSON-ready data (runs by their result records)."""
    return {
        "a": {"pipeline": c.a.name, "runs": [r.model_dump() for r in c.a.runs]},
        "b": {"pipeline": c.b.name, "runs": [r.model_dump() for r in c.b.runs]},
        "seeds": c.seeds,
        "differences": [d.__dict__ for d in c.differences],
        "model_diff": [ch.__dict__ for ch in c.model.changes],
        "environment": [e.__dict__ for e in c.environment],
        "expectations": [e.model_dump() for e in c.expectations],
        "ok": c.ok,
    }

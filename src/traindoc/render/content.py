"""Generated Markdown blocks, shared by the docs (``traindoc`` fences) and README sections.

``block(kind, ...)`` renders one of :data:`BLOCKS` from facts and, for run reports, a results record
or a status notice. Every block is plain Markdown with ```` ```mermaid ```` fences, so GitHub,
GitLab, Material and mermaid2 all render it; the run report adds its training chart as inline SVG
(:mod:`traindoc.render.charts`), left out of README sections because GitHub strips inline SVG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._util.redact import for_page
from ..facts import Facts
from ..run import protocol
from ..run.results import RunResult
from . import charts, commands, diagrams, escape, lint, mermaid
from .env import render

DIAGRAMS = ("system", "model", "data", "distributed")
BLOCKS = (*DIAGRAMS, "model-table", "environment", "quickstart", "commands", "lint", "run", "results")


def run_summary(r: RunResult) -> str:
    """What ``traindoc run`` prints: the results record as terminal text."""
    return render("run_summary.txt.j2", None, r=r).rstrip("\n")


def diagram_block(
    facts: Facts, kind: str, depth: int | None, templates: str | None, direction: str | None = None
) -> str:
    d = diagrams.diagram(facts, kind, depth, templates, direction)
    return render("diagram.md.j2", templates, d=d, fence=mermaid.fenced(d.text), facts=facts)


def chart_series(result: RunResult) -> dict[str, list[tuple[float, float]]]:
    """The run's (step, value) series for the chart: loss and validation loss from the results record,
    learning rate and throughput from the run's step records when its folder is still there."""
    series: dict[str, list[tuple[float, float]]] = {
        "loss": [(float(s), float(v)) for s, v in result.loss_curve],
        "val_loss": [(float(v.step), float(v.metrics["val_loss"])) for v in result.val if "val_loss" in v.metrics],
        "lr": [],
        "throughput": [],
    }
    steps_file = Path(result.run_dir) / protocol.STEPS if result.run_dir else None
    if steps_file is not None and steps_file.is_file():
        steps, _ = protocol.read_steps(steps_file)
        series["lr"] = [(float(r.step), float(r.lr)) for r in steps if r.lr is not None]
        series["throughput"] = [
            (float(r.step), float(r.samples_per_s))
            for r in steps[1:]  # the first step pays for warm-up
            if r.samples_per_s is not None
        ]
    return series


def run_chart(result: RunResult, *, standalone: bool = False) -> str:
    """The run's training chart as SVG ("" without a loss curve)."""
    s = chart_series(result)
    title = f"Training of {result.pipeline}"
    return charts.training_chart(s["loss"], s["val_loss"], s["lr"], s["throughput"], title=title, standalone=standalone)


def run_block(
    facts: Facts, result: RunResult | None, notice: str | None, templates: str | None, chart: bool = True
) -> str:
    """The run report; ``chart=False`` leaves out the inline SVG chart (GitHub strips inline SVG from a
    README: link a file written by ``traindoc chart`` instead)."""
    svg = run_chart(result) if chart and result is not None else ""
    # charts.py escapes every text it draws: the SVG is already safe markup
    html = escape.Rendered(f'<div class="traindoc-chart">{svg}</div>') if svg else ""
    return render("run_report.md.j2", templates, facts=facts, r=result, notice=notice, chart=html)


def block(
    kind: str,
    facts: Facts,
    *,
    result: RunResult | None = None,
    notice: str | None = None,
    depth: int | None = None,
    templates: str | None = None,
    root: Path | None = None,
    chart: bool = True,
    direction: str | None = None,
) -> str:
    """One generated block, ready for a page or a README: every value escaped by its template, then
    secrets and this machine's absolute paths removed (:func:`traindoc._util.redact.for_page`)."""
    text = _block(
        kind, facts, result=result, notice=notice, depth=depth, templates=templates, chart=chart, direction=direction
    )
    return for_page(text, root)


def _block(
    kind: str,
    facts: Facts,
    *,
    result: RunResult | None,
    notice: str | None,
    depth: int | None,
    templates: str | None,
    chart: bool,
    direction: str | None,
) -> str:
    if kind in DIAGRAMS:
        return diagram_block(facts, kind, depth, templates, direction)
    if kind in ("run", "results"):
        return run_block(facts, result, notice, templates, chart)
    if kind == "commands":
        return commands.render_commands(facts, "all", templates)
    if kind == "quickstart":
        return render(
            "quickstart.md.j2",
            templates,
            facts=facts,
            commands=[commands.render_commands(facts, k, templates) for k in ("docker", "torchrun")],
        )
    if kind == "lint":
        return render("lint.md.j2", templates, findings=lint.lint(facts), facts=facts)
    if kind == "model-table":
        return render("model_table.md.j2", templates, facts=facts, rows=_model_rows(facts, depth or 1))
    if kind == "environment":
        return render("environment.md.j2", templates, facts=facts)
    raise ValueError(f"unknown block {kind!r}; allowed: {', '.join(BLOCKS)}")


def _model_rows(facts: Facts, depth: int) -> list[Any]:
    from .model.table import table_rows

    return list(table_rows(facts.model, depth))

"""Generated Markdown blocks, shared by the docs (``traindoc`` fences) and README sections.

``block(kind, ...)`` renders one of :data:`BLOCKS` from facts and, for run reports, a results record
or a status notice. Every block is plain Markdown with ```` ```mermaid ```` fences, so GitHub,
GitLab, Material and mermaid2 all render it.
"""

from __future__ import annotations

from typing import Any

from . import commands, diagrams, lint, mermaid
from .facts import Facts
from .render import render
from .results import RunResult

DIAGRAMS = ("system", "model", "data", "distributed")
BLOCKS = (*DIAGRAMS, "model-table", "environment", "quickstart", "commands", "lint", "run", "results")


def diagram_block(facts: Facts, kind: str, depth: int | None, templates: str | None) -> str:
    d = diagrams.diagram(facts, kind, depth, templates)
    return render("diagram.md.j2", templates, d=d, fence=mermaid.fenced(d.text), facts=facts)


def run_block(facts: Facts, result: RunResult | None, notice: str | None, templates: str | None) -> str:
    chart = ""
    if result is not None and result.loss_curve:
        steps = [s for s, _ in result.loss_curve]
        losses = [v for _, v in result.loss_curve]
        chart = mermaid.fenced(diagrams.loss_chart(steps, losses, templates).text)
    return render("run_report.md.j2", templates, facts=facts, r=result, notice=notice, chart=chart)


def block(
    kind: str,
    facts: Facts,
    *,
    result: RunResult | None = None,
    notice: str | None = None,
    depth: int | None = None,
    templates: str | None = None,
) -> str:
    if kind in DIAGRAMS:
        return diagram_block(facts, kind, depth, templates)
    if kind in ("run", "results"):
        return run_block(facts, result, notice, templates)
    if kind == "commands":
        return commands.render_commands(facts, "all", templates)
    if kind == "quickstart":
        return render(
            "quickstart.md.j2",
            templates,
            facts=facts,
            commands=commands.render_commands(facts, "docker", templates)
            + commands.render_commands(facts, "torchrun", templates),
        )
    if kind == "lint":
        return render("lint.md.j2", templates, findings=lint.lint(facts), facts=facts)
    if kind == "model-table":
        return render("model_table.md.j2", templates, facts=facts, rows=_model_rows(facts, depth or 1))
    if kind == "environment":
        return render("environment.md.j2", templates, facts=facts)
    raise ValueError(f"unknown block {kind!r}; allowed: {', '.join(BLOCKS)}")


def _model_rows(facts: Facts, depth: int) -> list[Any]:
    from .modeltable import table_rows

    return list(table_rows(facts.model, depth))

"""Diagrams from facts: system, model, data, distributed (the run chart is :mod:`traindoc.render.charts`).

Python decides structure (:mod:`.model.view`: folding runs, depth, which edges survive); the templates
(``<kind>.mmd.j2``) decide presentation. The model diagram's default depth is the deepest whose
estimated size fits a slide and a docs column; any depth is lowered, then levels capped, until it fits
Mermaid's default limits, and the notes say what was folded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import DiagramError
from ..facts import Facts, ModelFacts
from . import mermaid
from .env import render
from .model.size import ESTIMATE_SPREAD, estimate_px
from .model.view import ModelView, build_view, max_depth

Kind = Literal["system", "model", "data", "distributed"]
KINDS: tuple[Kind, ...] = ("system", "model", "data", "distributed")


@dataclass(frozen=True)
class Diagram:
    kind: str
    text: str
    nodes: int  # node shapes Mermaid will draw (clusters not counted)
    clusters: int
    edges: int
    notes: tuple[str, ...] = ()


_NODE_RE = re.compile(r'(?<![\w"])([A-Za-z][\w]*)(\[\[|\[\(|\(\(|\[/|\[\\|\[|\(\[|\(|\{\{|\{|>)"')


def count(text: str) -> tuple[int, int, int]:
    """(nodes, clusters, edges) of a flowchart we emitted: every node is defined with a quoted label."""
    nodes: set[str] = set()
    clusters = 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("%%"):
            continue
        if stripped.startswith("subgraph "):
            clusters += 1
            continue
        for m in _NODE_RE.finditer(re.sub(r'"[^"]*"', '""', stripped)):
            nodes.add(m.group(1))
    return len(nodes), clusters, mermaid.measure(text).edges


# Mermaid wraps an HTML subgraph title at 200 px and lays the boxes out as if it had one line, so the
# second line hides under the first row of boxes (a long CJK + English title did). One line always:
# Mermaid then sizes the subgraph to the title. A directive, so the site, exports and READMEs all get it.
TITLE_CSS = (
    ".cluster-label div, .cluster-label span, .cluster-label p "
    "{ white-space: nowrap !important; max-width: none !important; }"
)
TITLE_DIRECTIVE = '%%{init: {"themeCSS": "' + TITLE_CSS + '"}}%%'


def with_one_line_titles(text: str) -> str:
    """``text`` with :data:`TITLE_DIRECTIVE` before its ``flowchart`` line (once; other text unchanged)."""
    if TITLE_DIRECTIVE in text:
        return text
    return re.sub(r"^(flowchart\b)", TITLE_DIRECTIVE.replace("\\", "\\\\") + "\n\\1", text, count=1, flags=re.M)


def _diagram(kind: str, text: str, notes: tuple[str, ...] = ()) -> Diagram:
    text = with_one_line_titles(text)
    nodes, clusters, edges = count(text)
    return Diagram(kind=kind, text=text, nodes=nodes, clusters=clusters, edges=edges, notes=notes)


# --- model ---------------------------------------------------------------------------------------

SLIDE_PX = (1920, 1080)  # must fit at >= 0.5 scale
COLUMN_PX = 700  # a docs column; text must stay >= MIN_TEXT_PX there
FONT_PX, MIN_TEXT_PX = 16, 9
MAX_WIDTH_PX = COLUMN_PX * FONT_PX // MIN_TEXT_PX  # 1244: wider renders shrink text below 9 px
MAX_HEIGHT_PX = 2 * SLIDE_PX[1]


def _on_slide(view: ModelView) -> bool:
    """Estimated to fit a 1920×1080 slide at half scale or more."""
    w, h = estimate_px(view)
    return w <= 2 * SLIDE_PX[0] and h <= MAX_HEIGHT_PX


def _on_page(view: ModelView) -> bool:
    """Estimated to fit a slide and a docs column (text no smaller than 9 px): what a default depth needs."""
    return _on_slide(view) and estimate_px(view)[0] <= MAX_WIDTH_PX


def _slide_note(view: ModelView) -> str:
    """Said only where the estimate misses the slide: certain beyond the calibrated spread, else "may"."""
    w, h = estimate_px(view)
    if h > MAX_HEIGHT_PX * ESTIMATE_SPREAD:
        return "larger than a slide at half scale at this depth (the default depth fits)"
    return (
        f"may be larger than a slide at half scale at this depth (estimated {w:,} × {h:,} px; the default depth fits)"
    )


def _fitting(model: ModelFacts, depth: int | None, full: int) -> tuple[int, int | None, bool]:
    """Default: the deepest view that fits a slide and a column, else fewer boxes per level. An explicit
    depth is kept: drawn compact (:mod:`.model.compact`) when the plain drawing misses the slide, and with
    fewer boxes per level only when the compact one surely misses it too (boxes are not dropped on a guess)."""
    if depth is None:
        candidates: list[tuple[int, int | None, bool]] = [(d, None, False) for d in range(full, 0, -1)]
        for d, cap, compact in [*candidates, *((1, c, False) for c in (30, 12, 6))]:
            if _on_page(build_view(model, d, cap, compact)[0]):
                return d, cap, compact
        return 1, 6, False
    d = min(depth, full)
    if _on_slide(build_view(model, d, None)[0]):
        return d, None, False
    squeezed = build_view(model, d, None, True)[0]
    w, h = estimate_px(squeezed)
    if _on_slide(squeezed) or (h <= MAX_HEIGHT_PX * ESTIMATE_SPREAD and w <= 2 * SLIDE_PX[0]):
        return d, None, True
    for cap in (30, 12):
        if _on_slide(build_view(model, d, cap, True)[0]):
            return d, cap, True
    return d, None, True


def check_depth(depth: int | None) -> None:
    if depth is not None and depth < 1:
        raise DiagramError(f"--depth must be 1 or more (1 = the model's top-level blocks), got {depth}")


def model_diagram(facts: Facts, depth: int | None = None, templates: str | None = None) -> Diagram:
    """The call structure as a flowchart. Default depth: the deepest that fits a slide and a docs column;
    an explicit depth is honoured unless Mermaid's own limits force it down (said in the notes)."""
    check_depth(depth)
    model = facts.model
    if not model.traced:
        untraced = render("model.mmd.j2", templates, view=None, facts=facts, notes=())
        return _diagram("model", untraced, ("not traced: " + model.untraced_reason.splitlines()[0],))
    full = max(1, max_depth(model))
    chosen_depth, chosen_cap, compact = _fitting(model, depth, full)
    attempts = [(d, chosen_cap) for d in range(chosen_depth, 0, -1)]  # then Mermaid's own limits
    attempts += [(1, c) for c in (60, 30, 12, 6) if chosen_cap is None or c < chosen_cap]
    text: str = ""
    notes: tuple[str, ...] = ()
    for d, cap in attempts:
        view, folded = build_view(model, d, cap, compact)
        notes_list = [*model.trace_notes, *folded]
        if d < chosen_depth:
            notes_list.append(f"depth limited to {d} of {full} to stay within Mermaid's limits")
        elif d < full:
            notes_list.append(f"depth {d} of {full}")
        if cap is not None:
            notes_list.append(f"at most {cap} boxes per level")
        if not _on_slide(view):
            notes_list.append(_slide_note(view))
        notes = tuple(notes_list)
        text = render("model.mmd.j2", templates, view=view, facts=facts, notes=notes)
        if mermaid.measure(text).within_budget:
            break
    return _diagram("model", text, notes)


# --- the others ------------------------------------------------------------------------------------


def _node_label_parts(facts: Facts) -> dict[str, Any]:
    d = facts.distributed
    gpu_names = sorted({g.name for g in facts.devices.gpus})
    return {
        "gpu_name": gpu_names[0] if gpu_names else ("CUDA GPU" if facts.devices.requested != "cpu" else ""),
        "uses_gpu": facts.devices.requested != "cpu",
        "gpu_count": d.nproc_per_node if facts.devices.requested != "cpu" else 0,
        "ran_on_gpu": facts.devices.resolved == "cuda",  # the machine that built these docs
    }


Direction = Literal["auto", "TB", "LR"]
DIRECTIONS: tuple[Direction, ...] = ("auto", "TB", "LR")


def flow_direction(direction: str | None) -> str:
    """Mermaid's flowchart direction. ``auto`` is top-down: a docs column is ~700 px wide, and the
    left-to-right system and data diagrams were ~2,400 px wide (text shrank to ~5 px); ``LR`` suits slides."""
    if direction in (None, "auto"):
        return "TB"
    if direction not in DIRECTIONS:
        raise DiagramError(f"unknown direction {direction!r}; allowed: {', '.join(DIRECTIONS)}")
    return str(direction)


def system_diagram(facts: Facts, templates: str | None = None, direction: str | None = None) -> Diagram:
    parts = _node_label_parts(facts)
    return _diagram(
        "system", render("system.mmd.j2", templates, facts=facts, direction=flow_direction(direction), **parts)
    )


def data_diagram(facts: Facts, templates: str | None = None, direction: str | None = None) -> Diagram:
    parts = _node_label_parts(facts)
    return _diagram("data", render("data.mmd.j2", templates, facts=facts, direction=flow_direction(direction), **parts))


FOLD_NODES_ABOVE = 4


def distributed_diagram(facts: Facts, templates: str | None = None, direction: str | None = None) -> Diagram:
    d = facts.distributed
    if d.nnodes > FOLD_NODES_ABOVE:
        shown = [0, 1, d.nnodes - 1]
        hidden = d.nnodes - len(shown)
    else:
        shown, hidden = list(range(d.nnodes)), 0
    nodes = [
        {"rank": n, "first_rank": n * d.nproc_per_node, "last_rank": (n + 1) * d.nproc_per_node - 1} for n in shown
    ]
    text = render(
        "distributed.mmd.j2",
        templates,
        facts=facts,
        nodes=nodes,
        hidden=hidden,
        direction=flow_direction(direction),
        **_node_label_parts(facts),
    )
    return _diagram("distributed", text)


def diagram(
    facts: Facts, kind: str, depth: int | None = None, templates: str | None = None, direction: str | None = None
) -> Diagram:
    """One diagram; ``direction`` (auto, TB, LR) applies to system, data and distributed."""
    check_depth(depth)
    if kind == "model":
        return model_diagram(facts, depth, templates)
    builders = {"system": system_diagram, "data": data_diagram, "distributed": distributed_diagram}
    if kind not in builders:
        raise DiagramError(f"unknown diagram kind {kind!r}; allowed: {', '.join(KINDS)}")
    return builders[kind](facts, templates, direction)

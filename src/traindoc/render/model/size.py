"""A model diagram's rendered size, estimated without a browser, to choose the default depth.

Height: ranks by longest path (a U's rising edges counted upwards) plus the subgraph titles above
them. Width: Mermaid's dagre layout keeps every subgraph a rectangle, so a subgraph that spans the
same ranks as a sibling sits beside it whatever boxes those ranks hold. The width of a level is the
widest rank's sum of the boxes and child subgraphs that span it (each subgraph measured the same way,
inside out), and a box is as wide as its longest line (Mermaid wraps at 200 px).

Calibrated against Chromium on the zoo and two outside models (DPT, UperNet, from ``transformers``
configs): the sum alone was 0.50–1.35 of the rendered width, median 0.78, hence :data:`WIDTH_FACTOR`
for the edges and edge labels between boxes it does not count. The slow tests measure the real thing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

CHAR_PX, BOX_PAD_PX, GAP_PX, CLUSTER_PAD_PX, OP_PX = 8.0, 30, 30, 16, 50


@dataclass(frozen=True)
class Spacing:
    """What one rank of the drawing costs, for one set of Mermaid flowchart settings."""

    wrap: int  # Mermaid wraps a label at spaces past this width
    rank: int  # a rank of boxes of two lines, its edge and the edge's shape label
    op_rank: int  # a rank of ops only (a residual add's circle and its edge)
    line: int  # each further line of the tallest box on a rank
    title: int  # one level of subgraph titles


PLAIN = Spacing(wrap=200, rank=120, op_rank=120, line=24, title=40)
# compact (rankSpacing 22, padding 8, wrappingWidth 300 in model.mmd.j2), calibrated on 187 compact
# diagrams of 50 models: estimate / Chromium height 0.97–1.30, never below 1 where a slide is missed
COMPACT = Spacing(wrap=300, rank=112, op_rank=72, line=28, title=32)
ESTIMATE_SPREAD = 1.3  # an estimate is at most this much above the rendered height (both calibrations)
WIDTH_FACTOR = 1.28


class Box(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def detail(self) -> str: ...

    @property
    def subgraph(self) -> bool: ...

    @property
    def children(self) -> Sequence[Box]: ...


class View(Protocol):
    @property
    def nodes(self) -> Sequence[Box]: ...
    @property
    def edges(self) -> list[tuple[str, str, str]]: ...
    @property
    def inputs(self) -> list[tuple[str, str]]: ...
    @property
    def rising(self) -> frozenset[tuple[str, str]]: ...
    @property
    def compact(self) -> bool: ...


def ranks(view: View) -> dict[str, int]:
    """Longest path from the inputs, relaxed until stable (a U's rising edges counted upwards)."""
    rank: dict[str, int] = {i: 0 for i, _ in view.inputs}
    for _ in range(len(view.edges) + 1):
        changed = False
        for s, d, _ in view.edges:
            s, d = (d, s) if (s, d) in view.rising else (s, d)
            r = rank.setdefault(s, 0) + 1
            if rank.get(d, -1) < r:
                rank[d], changed = r, True
        if not changed:
            break
    return rank


def _lines(text: str) -> list[str]:
    return [line for line in re.split(r"\n|<br>", text) if line]


def _text_px(text: str) -> float:
    return max((len(line) for line in _lines(text)), default=0) * CHAR_PX


def _word_px(text: str) -> float:
    return max((len(w) for w in text.split()), default=0) * CHAR_PX


def _box_px(n: Box, wrap: int) -> float:
    """Mermaid wraps a label at spaces past 200 px; one word longer than that (a class name such as
    ``MBartLearnedPositionalEmbedding``) widens the box instead."""
    if n.kind == "op":
        return OP_PX
    text = max(_text_px(n.title), _text_px(n.detail))
    return max(min(text, wrap), _word_px(n.title), _word_px(n.detail)) + BOX_PAD_PX


def _box_lines(n: Box, wrap: int) -> int:
    """Lines of text in a box once Mermaid has wrapped them."""
    if n.kind == "op":
        return 1
    return sum(max(1, math.ceil(len(line) * CHAR_PX / wrap)) for line in _lines(f"{n.title}\n{n.detail}"))


def estimate_px(view: View) -> tuple[int, int]:
    """A rough rendered size (width, height) in px."""
    rank = ranks(view)
    sp = COMPACT if view.compact else PLAIN
    wrap = sp.wrap

    def span(n: Box) -> tuple[int, int]:
        if not n.subgraph:
            return rank.get(n.id, 0), rank.get(n.id, 0)
        spans = [span(c) for c in n.children] or [(0, 0)]
        return min(a for a, _ in spans), max(b for _, b in spans)

    def width(items: Sequence[Box], title: str) -> float:
        rows: dict[int, list[float]] = {}
        for it in items:
            first, last = span(it)
            w = width(it.children, it.title) if it.subgraph else _box_px(it, wrap)
            for r in range(first, last + 1):
                rows.setdefault(r, []).append(w)
        inner = max((sum(ws) + GAP_PX * (len(ws) - 1) for ws in rows.values()), default=0.0)
        return max(inner, _text_px(title)) + (2 * CLUSTER_PAD_PX if title else 0)

    def nesting(nodes: Sequence[Box]) -> int:
        return max((1 + nesting(n.children) for n in nodes if n.subgraph), default=0)

    def leaves(nodes: Sequence[Box]) -> list[Box]:
        return [x for n in nodes for x in (leaves(n.children) if n.subgraph else [n])]

    lines: dict[int, int] = {}  # the most lines of any box on each rank
    boxed: set[int] = set()
    circles: set[int] = set()
    for n in leaves(view.nodes):
        r = rank.get(n.id, 0)
        lines[r] = max(lines.get(r, 1), _box_lines(n, wrap))
        (circles if n.kind == "op" else boxed).add(r)
    inputs = [_Pill(i, "input " + label) for i, label in view.inputs]
    w = width([*view.nodes, *inputs], "") * WIDTH_FACTOR
    extra = sum(max(0, k - 2) for k in lines.values()) * sp.line  # a rank of two-line boxes is sp.rank
    height = (max(rank.values(), default=0) + 1) * sp.rank - len(circles - boxed) * (sp.rank - sp.op_rank)
    return round(w), height + extra + nesting(view.nodes) * sp.title


@dataclass
class _Pill:
    """An input's pill, measured like a box."""

    id: str
    title: str
    kind: str = "io"
    detail: str = ""
    subgraph: bool = False
    children: list[Box] = field(default_factory=list)

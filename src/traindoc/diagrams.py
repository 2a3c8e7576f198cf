"""Diagrams from facts: system, model, data, distributed (the run chart is :mod:`traindoc.charts`).

Python decides structure (folding identical blocks, depth, which edges survive); the templates
(``<kind>.mmd.j2``) decide presentation. The model diagram is re-rendered at lower depth, then with
fewer nodes per group, until it fits Mermaid's default limits, and says what it folded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from . import mermaid
from .facts import Facts, ModelFacts, ModuleFact
from .render import render

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


def _diagram(kind: str, text: str, notes: tuple[str, ...] = ()) -> Diagram:
    nodes, clusters, edges = count(text)
    return Diagram(kind=kind, text=text, nodes=nodes, clusters=clusters, edges=edges, notes=notes)


# --- model ---------------------------------------------------------------------------------------


@dataclass
class ViewNode:
    """One thing drawn: a box (leaf or folded run) or a subgraph (group)."""

    id: str
    name: str
    cls: str
    params: int
    shapes: list[str]
    kind: Literal["leaf", "group", "folded", "more"]
    children: list[ViewNode] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # qualified names covered (folded/more)
    first: str = ""
    last: str = ""
    count: int = 1  # blocks in a folded run, modules in a "more" node

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1] if self.name else self.name


@dataclass(frozen=True)
class ModelView:
    root_class: str
    nodes: list[ViewNode]
    edges: list[tuple[str, str, str]]
    input_id: str
    output_id: str
    input_shape: str
    output_shape: str
    total_params: int
    notes: tuple[str, ...]


def _children(modules: list[ModuleFact]) -> dict[str, list[ModuleFact]]:
    kids: dict[str, list[ModuleFact]] = {}
    names = {m.name for m in modules}
    for m in modules:
        if not m.name:
            continue
        parent = m.name.rsplit(".", 1)[0] if "." in m.name else ""
        while parent not in names:  # a shared module listed under another name's subtree
            parent = parent.rsplit(".", 1)[0] if "." in parent else ""
        kids.setdefault(parent, []).append(m)
    return kids


def _runs(mods: list[ModuleFact]) -> list[list[ModuleFact]]:
    runs: list[list[ModuleFact]] = []
    for m in mods:
        if runs and runs[-1][0].signature == m.signature and m.total_params > 0:
            runs[-1].append(m)
        else:
            runs.append([m])
    return runs


def build_view(model: ModelFacts, depth: int | None, cap: int | None) -> tuple[ModelView, list[str]]:
    kids = _children(model.modules)
    folded_notes: list[str] = []

    def subtree(name: str) -> list[str]:
        out = [name]
        for k in kids.get(name, []):
            out += subtree(k.name)
        return out

    def view(m: ModuleFact, level: int) -> ViewNode:
        children = kids.get(m.name, [])
        leaf = not children or (depth is not None and level >= depth)
        return ViewNode(
            mermaid.node_id(m.name, "m" if leaf else "g"),
            m.name,
            m.cls,
            m.total_params,
            m.output_shapes,
            "leaf" if leaf else "group",
            children=[] if leaf else level_nodes(children, level + 1),
            members=subtree(m.name) if leaf else [m.name],
        )

    def level_nodes(mods: list[ModuleFact], level: int) -> list[ViewNode]:
        out: list[ViewNode] = []
        for run in _runs(mods):
            if len(run) >= 2:
                members = [n for r in run for n in subtree(r.name)]
                out.append(
                    ViewNode(
                        mermaid.node_id(run[0].name + "*", "f"),
                        run[0].name,
                        run[0].cls,
                        run[0].total_params,
                        run[-1].output_shapes,
                        "folded",
                        members=members,
                        first=run[0].name,
                        last=run[-1].name,
                        count=len(run),
                    )
                )
                folded_notes.append(f"{run[0].name} … {run[-1].name}: {run[0].cls} × {len(run)}")
            else:
                out.append(view(run[0], level))
        if cap is not None and len(out) > cap:
            keep, rest = out[: cap - 1], out[cap - 1 :]
            members = [n for r in rest for n in (r.members or [r.name])]
            out = [
                *keep,
                ViewNode(
                    mermaid.node_id(rest[0].name + "+", "r"),
                    rest[0].name,
                    f"{len(rest)} more modules",
                    sum(r.params for r in rest),
                    rest[-1].shapes,
                    "more",
                    members=members,
                    first=rest[0].name,
                    last=rest[-1].name,
                    count=len(rest),
                ),
            ]
        return out

    roots = kids.get("", [])
    nodes = level_nodes(roots, 1) if roots else [view(model.modules[0], 0)]
    owner: dict[str, str] = {}

    def assign(n: ViewNode) -> None:
        if n.kind == "group":
            for c in n.children:
                assign(c)
        else:
            for member in n.members:
                owner[member] = n.id

    for n in nodes:
        assign(n)
    input_id, output_id = "io_input", "io_output"

    def target(name: str) -> str | None:
        if name == "input":
            return input_id
        if name == "output":
            return output_id
        probe = name
        while True:
            if probe in owner:
                return owner[probe]
            if "." not in probe:
                return owner.get(probe)
            probe = probe.rsplit(".", 1)[0]

    edges: dict[tuple[str, str], str] = {}
    for e in model.edges:
        s, d = target(e.src), target(e.dst)
        if s and d and s != d:
            edges.setdefault((s, d), e.shape)
    view_ = ModelView(
        root_class=model.root_class,
        nodes=nodes,
        edges=[(s, d, shape) for (s, d), shape in edges.items()],
        input_id=input_id,
        output_id=output_id,
        input_shape=model.input_shape,
        output_shape=model.output_shape,
        total_params=model.total_params,
        notes=(),
    )
    return view_, folded_notes


def max_depth(model: ModelFacts) -> int:
    return max((m.depth for m in model.modules), default=0)


def model_diagram(facts: Facts, depth: int | None = None, templates: str | None = None) -> Diagram:
    """The module tree as a flowchart, folded and depth-limited until it fits Mermaid's limits."""
    full = max(1, max_depth(facts.model))
    start = full if depth is None else max(1, min(depth, full))
    attempts: list[tuple[int, int | None]] = [(d, None) for d in range(start, 0, -1)]
    attempts += [(1, c) for c in (60, 30, 12, 6)]
    text, notes = "", tuple[str, ...]()
    for d, cap in attempts:
        view, folded = build_view(facts.model, d, cap)
        notes_list = [f"folded {f}" for f in folded]
        if d < start:
            notes_list.append(f"depth limited to {d} of {full} to stay within Mermaid's limits")
        elif d < full:
            notes_list.append(f"depth {d} of {full}")
        if cap is not None:
            notes_list.append(f"at most {cap} nodes per level to stay within Mermaid's limits")
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
        raise ValueError(f"unknown direction {direction!r}; allowed: {', '.join(DIRECTIONS)}")
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
    if kind == "model":
        return model_diagram(facts, depth, templates)
    builders = {"system": system_diagram, "data": data_diagram, "distributed": distributed_diagram}
    if kind not in builders:
        raise ValueError(f"unknown diagram kind {kind!r}; allowed: {', '.join(KINDS)}")
    return builders[kind](facts, templates, direction)

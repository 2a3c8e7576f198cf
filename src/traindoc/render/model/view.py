"""From a model's traced calls to what the model diagram draws (pure; no torch).

The view is the *call* tree: the children of a call are the calls made inside it, in order (a module
called three times is three calls). At each level, :func:`~traindoc.render.model.fold.fold_runs`
groups calls into units:

- a sequential run of identical blocks (block i feeds block i+1): ``Block × N``; a shared module
  called N times in a row: ``Layer × N calls``;
- a repeating pattern of different blocks (hybrid stacks): ``[A → B] × N``;
- identical siblings of one container that do not feed each other (experts): ``Expert × E parallel``;
  experts fused into one module (stacked parameters, :mod:`traindoc.facts.moe`) read the same way, as one
  box ``Experts × E experts`` never opened onto its kernels;
- anything else stays one unit, so parallel siblings (q, k, v) are drawn side by side.

A unit at a level below ``depth`` is opened: a group shows its calls, a folded run shows one
representative member's inside, marked ``× N``; the other members' calls are routed onto the
representative's, and edges from one member to the next (the recurrence) are left out.
:func:`cap_level` replaces the tail of a crowded level with one "more" box; :func:`route_edges`
maps every traced edge onto the boxes drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...facts import CallFact, ModelFacts, ModuleFact
from .. import mermaid
from .compact import compact_chains
from .fold import CallTree, Unit, fold_runs
from .labels import INDEXED as _INDEXED
from .labels import TITLE_CHARS, call_label, cluster_title, container_name, params_line, run_labels
from .merge import merge_weightless
from .ushape import rising_edges


@dataclass
class ViewNode:
    """One thing drawn: a box (``leaf``/``op``/``folded``/``parallel``/``more``) or a subgraph
    (``group``, or an opened ``folded`` run whose ``children`` show one representative member)."""

    id: str
    kind: Literal["leaf", "op", "group", "folded", "parallel", "more"]
    title: str
    detail: str = ""
    children: list[ViewNode] = field(default_factory=list)
    opened: bool = False
    weightless: str = ""  # a parameter-free leaf's class (ReLU, Dropout): drawn inside the box it follows
    box_title: str = ""  # a group's title uncut, for when it is drawn as one box (compact)

    @property
    def subgraph(self) -> bool:
        return self.kind == "group" or (self.kind == "folded" and self.opened)


@dataclass(frozen=True)
class ModelView:
    root_class: str
    nodes: list[ViewNode]
    edges: list[tuple[str, str, str]]
    inputs: list[tuple[str, str]]  # (node id, label)
    output_id: str
    output_shape: str
    total_params: int
    notes: tuple[str, ...]
    quiet: frozenset[tuple[str, str]] = frozenset()  # edges drawn without a label (their shape is on the source)
    rising: frozenset[tuple[str, str]] = frozenset()  # edges drawn bottom-up: the decoder side of a U
    compact: bool = False  # drawn compact (.compact): wider boxes and tighter ranks too


class _Builder:
    def __init__(self, model: ModelFacts, depth: int, cap: int | None) -> None:
        self.tree = CallTree(model)
        self.depth = depth
        self.cap = cap
        self.owner: dict[str, str] = {}
        self.alias: dict[str, str] = {}
        self.member: dict[str, list[tuple[int, int]]] = {}  # call -> [(run number, member index)]
        self.runs = 0
        self.folded: list[str] = []

    def nid(self, c: CallFact, prefix: str) -> str:
        return mermaid.node_id(c.id or "root", prefix)

    def own(self, cids: list[str], node: str) -> None:
        for cid in cids:
            self.owner.setdefault(cid, node)

    def level(self, parent: str | None, level: int) -> list[ViewNode]:
        items = self.tree.kids.get(parent, [])
        units = fold_runs(items, self.tree)
        return cap_level([self.unit(u, level) for u in units], units, self.cap, self)

    def single(self, c: CallFact, level: int) -> ViewNode:
        if c.op:
            node = ViewNode(self.nid(c, "o"), "op", c.op)
            self.own([c.id], node.id)
            return node
        title, detail = call_label(c, self.tree)
        m = self.tree.module(c)
        if m is not None and m.moe == "experts":  # fused experts: one box, never opened onto its kernels
            node = ViewNode(self.nid(c, "p"), "parallel", title, detail)
            self.own(self.tree.subtree(c.id), node.id)
            return node
        if self.tree.kids.get(c.id) and level < self.depth:
            node = ViewNode(self.nid(c, "g"), "group", cluster_title(title, c, self.tree), detail, box_title=title)
            node.children = self.level(c.id, level + 1)
            if len(node.children) == 1 and node.children[0].subgraph:
                return node.children[0]  # one subgraph straight inside another: their titles would collide
            self.own([c.id], node.children[0].id if node.children else node.id)
            return node
        node = ViewNode(self.nid(c, "m"), "leaf", title, detail)
        if m is not None and not m.total_params and not m.tied_to and not self.tree.kids.get(c.id):
            node.weightless = m.cls
        self.own(self.tree.subtree(c.id), node.id)
        return node

    def unit(self, u: Unit, level: int) -> ViewNode:
        if u.kind == "single":
            return self.single(u.first, level)
        if u.kind == "parallel":
            m = self.tree.module(u.first)
            node = ViewNode(
                self.nid(u.first, "p"),
                "parallel",
                f"{m.cls if m else u.first.op} × {len(u.members)} in parallel",
                f"{params_line(m)} each" if m and m.total_params else "",
            )
            self.own([cid for c in u.calls for cid in self.tree.subtree(c.id)], node.id)
            return node
        title, detail = run_labels(u, self.tree)
        self.folded.append(f"{title} ({detail})")
        node = ViewNode(self.nid(u.first, "f"), "folded", title, detail)
        run = self.runs = self.runs + 1
        for j, member in enumerate(u.members):
            for c in member:
                for cid in self.tree.subtree(c.id):
                    self.member.setdefault(cid, []).append((run, j))
        if level >= self.depth:
            self.own([cid for c in u.calls for cid in self.tree.subtree(c.id)], node.id)
            return node
        node.opened = True
        if len(title) > TITLE_CHARS:
            container = _INDEXED.sub(r"\1", u.first.module)
            node.title = f"{container_name(container)} × {len(u.members)}"
        rep = u.members[0]
        if len(rep) == 1 and not rep[0].op and self.tree.kids.get(rep[0].id):
            node.children = self.level(rep[0].id, level + 1)  # the representative's inside, directly
        else:
            node.children = [self.single(c, level + 1) for c in rep]
        for member in u.members[1:]:
            for c_other, c_rep in zip(member, rep, strict=True):
                self._alias(c_other.id, c_rep.id)
        return node

    def _alias(self, other: str, rep: str) -> None:
        self.alias[other] = rep
        a, b = self.tree.kids.get(other, []), self.tree.kids.get(rep, [])
        if len(a) == len(b):
            for x, y in zip(a, b, strict=True):
                self._alias(x.id, y.id)
        else:
            for cid in self.tree.subtree(other)[1:]:
                self.alias[cid] = rep

    def runs_of(self, cid: str) -> dict[int, int]:
        """Folded runs the call belongs to, with its member index, along its alias chain (first wins)."""
        out: dict[int, int] = {}
        for _ in range(64):
            for run, j in self.member.get(cid, []):
                out.setdefault(run, j)
            if cid not in self.alias:
                break
            cid = self.alias[cid]
        return out

    def resolve(self, cid: str) -> str | None:
        seen = 0
        while cid not in self.owner and cid in self.alias and seen < 64:
            cid, seen = self.alias[cid], seen + 1
        return self.owner.get(cid)


def join_first_titles(nodes: list[ViewNode], rising: frozenset[str] = frozenset()) -> None:
    """Mermaid leaves no room for a subgraph's title above a subgraph that opens at its top: the inner
    box is drawn over the outer title (measured in Chromium: ``features · Sequential`` hidden, and a title
    pushed one line down lands on the first box). So the outer title moves onto the inner one, as a path
    (``features · Sequential › 0 · ConvBlock``), and the outer box shows none. In a subgraph drawn bottom-up
    (``rising``: the decoder of a U) the child at the top is the last one."""
    for n in nodes:
        if not n.subgraph:
            continue
        top = (n.children[-1] if n.id in rising else n.children[0]) if n.children else None
        if top is not None and top.subgraph and n.title.strip():
            top.title = f"{n.title} › {top.title}"
            n.title = " "
        join_first_titles(n.children, rising)


def rising_subgraphs(nodes: list[ViewNode], rising: frozenset[tuple[str, str]]) -> frozenset[str]:
    """Subgraphs drawn bottom-up: an edge between two boxes inside them rises."""
    out: set[str] = set()

    def walk(n: ViewNode) -> set[str]:
        inside = {n.id} if not n.subgraph else set().union(*(walk(c) for c in n.children))
        if n.subgraph and any(s in inside and d in inside for s, d in rising):
            out.add(n.id)
        return inside

    for n in nodes:
        walk(n)
    return frozenset(out)


def cap_level(nodes: list[ViewNode], units: list[Unit], cap: int | None, b: _Builder) -> list[ViewNode]:
    """At most ``cap`` nodes on one level: the tail becomes one "N more" box."""
    if cap is None or len(nodes) <= cap:
        return nodes
    rest = units[cap - 1 :]
    more = ViewNode(mermaid.node_id((rest[0].first.id or "root") + "+", "r"), "more", f"… {len(rest)} more")
    for u in rest:
        for c in u.calls:
            for cid in b.tree.subtree(c.id):
                b.owner[cid] = more.id
    return [*nodes[: cap - 1], more]


def route_edges(b: _Builder, model: ModelFacts, ends: dict[str, str]) -> list[tuple[str, str, str]]:
    """Traced edges mapped onto drawn boxes; recurrences between folded members and loops left out."""
    order = {c.id: i for i, c in enumerate(model.calls)}
    out: dict[tuple[str, str], str] = {}
    for e in sorted(model.edges, key=lambda e: (order.get(e.src, -1), order.get(e.dst, len(order)))):
        s = ends.get(e.src) or b.resolve(e.src)
        d = ends.get(e.dst) or b.resolve(e.dst)
        if not s or not d or s == d:
            continue
        ms, md = b.runs_of(e.src), b.runs_of(e.dst)
        if any(run in md and md[run] != j for run, j in ms.items()):
            continue  # one folded member feeding the next: that is the "× N"
        out.setdefault((s, d), e.shape)
    return [(s, d, shape) for (s, d), shape in out.items()]


def quiet_entering_edges(
    nodes: list[ViewNode],
    edges: list[tuple[str, str, str]],
    inputs: frozenset[str] = frozenset(),
    rising: frozenset[tuple[str, str]] = frozenset(),
) -> frozenset[tuple[str, str]]:
    """Edges that enter a subgraph lose their label: Mermaid puts it on the subgraph's border, on top of
    the subgraph's title. The shape moves onto the source box as a "→ shape" line, so nothing is lost; an
    input's shape is on the input already. From an op (a small circle) the label goes only when an edge into
    the op shows the same shape (a residual add's output is its inputs' shape); from a subgraph it stays.
    A rising edge (written target-first) that leaves a subgraph enters it for Mermaid, through its title at
    the top: its label moves onto its source box the same way."""
    inside: dict[str, frozenset[str]] = {}  # node id -> the subgraphs around it (itself, for a subgraph)
    boxes: dict[str, ViewNode] = {}

    def walk(ns: list[ViewNode], outer: frozenset[str]) -> None:
        for n in ns:
            boxes[n.id] = n
            if n.subgraph:
                inside[n.id] = outer | {n.id}
                walk(n.children, outer | {n.id})
            else:
                inside[n.id] = outer

    walk(nodes, frozenset())
    quiet: set[tuple[str, str]] = set()
    moved: dict[str, list[str]] = {}
    shown_into: dict[str, set[str]] = {}
    for _, d, shape in edges:
        if shape:
            shown_into.setdefault(d, set()).add(shape)
    for s, d, shape in edges:
        drawn_src, drawn_dst = (d, s) if (s, d) in rising else (s, d)
        if inside.get(drawn_dst, frozenset()) <= inside.get(drawn_src, frozenset()):
            continue
        src = boxes.get(s)
        if s in inputs:  # the input's box already says its shape
            quiet.add((s, d))
        elif src is not None and not src.subgraph and src.kind != "op":
            quiet.add((s, d))
            if shape and shape not in moved.setdefault(s, []):
                moved[s].append(shape)
        elif src is not None and src.kind == "op" and shape in shown_into.get(s, set()):
            quiet.add((s, d))
        # otherwise (a subgraph, an op whose shape changes) the label stays: no box to carry the shape
    for sid, shapes in moved.items():
        n = boxes[sid]
        line = "→ " + " · ".join(shapes)
        if line not in n.detail.split("\n"):  # idempotent: a second pass over the same nodes adds nothing
            n.detail = f"{n.detail}\n{line}" if n.detail else line
    return frozenset(quiet)


def never_called(model: ModelFacts) -> list[str]:
    used_through_ties = {m.tied_to for m in model.modules if m.tied_to and m.calls}
    names = [
        m
        for m in model.modules
        if m.name and m.calls == 0 and m.own_params and not m.tied_to and m.name not in used_through_ties
    ]
    tops: list[ModuleFact] = []
    for m in names:
        if not any(m.name.startswith(t.name + ".") for t in tops):
            tops.append(m)
    return [f"{m.name} ({m.cls})" for m in tops]


def build_view(model: ModelFacts, depth: int, cap: int | None, compact: bool = False) -> tuple[ModelView, list[str]]:
    """``compact``: containers of boxes that read as one box are drawn as that box (:mod:`.compact`)."""
    b = _Builder(model, depth, cap)
    root = next((c for c in model.calls if c.parent is None), None)
    nodes = b.level(root.id, 1) if root is not None else []
    inputs = sorted({e.src for e in model.edges if e.src.startswith("input")})
    ends = {i: mermaid.node_id(i, "io") for i in inputs} | {"output": "io_output"}
    shape_of = {e.src: e.shape for e in reversed(model.edges)}
    labels = {i: f"{i.partition(':')[2]} {shape_of[i]}".strip() for i in inputs}
    edges = merge_weightless(nodes, route_edges(b, model, ends))  # type: ignore[arg-type]
    collapsed = 0
    if compact:
        edges, collapsed = compact_chains(nodes, edges)  # type: ignore[arg-type]
    tops = top_level(nodes)
    rising = rising_edges(edges, "io_output", lambda n: tops.get(n, n))
    join_first_titles(nodes, rising_subgraphs(nodes, rising))
    view = ModelView(
        root_class=model.root_class,
        nodes=nodes,
        edges=edges,
        quiet=quiet_entering_edges(nodes, edges, frozenset(ends[i] for i in inputs), rising),
        rising=rising,
        inputs=[(ends[i], labels[i]) for i in inputs],
        output_id="io_output",
        output_shape=model.output_shape,
        total_params=model.total_params,
        notes=(),
        compact=compact,
    )
    notes = [f"folded {f}" for f in b.folded]
    if collapsed:
        notes.append(f"compact: {collapsed} block(s) drawn as one box listing the layers inside")
    missing = never_called(model)
    if missing:
        notes.append("not called in the traced forward: " + ", ".join(missing))
    return view, notes


def top_level(nodes: list[ViewNode]) -> dict[str, str]:
    """Every drawn node's id -> the id of the top-level box or subgraph that holds it."""
    out: dict[str, str] = {}

    def walk(n: ViewNode, top: str) -> None:
        out[n.id] = top
        for c in n.children:
            walk(c, top)

    for n in nodes:
        walk(n, n.id)
    return out


def max_depth(model: ModelFacts) -> int:
    calls = {c.id: c for c in model.calls}

    def depth_of(c: CallFact) -> int:
        d = 0
        while c.parent is not None:
            d, c = d + 1, calls[c.parent]
        return d

    return max((depth_of(c) for c in model.calls), default=1)

"""The model diff as a tree the diagram template draws: changed parts opened, identical parts folded.

Pure data, no Mermaid syntax here (the template ``compare_model.mmd.j2`` holds the presentation).
A module is opened only when something inside it changed; a run of identical siblings becomes one
folded node ("3 identical modules"). Removed modules of A appear beside B's, marked removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..facts import ModelFacts, ModuleFact
from ..render.env import human
from ..render.mermaid import node_id
from .diff import ModelDiff, ModuleChange

DEPTH = 3


@dataclass(frozen=True)
class DiffNode:
    key: str
    label: str
    status: str  # same | added | removed | changed | renamed | folded
    children: list[DiffNode] = field(default_factory=list)

    @property
    def id(self) -> str:
        return node_id(self.key, "d")


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1] if name else "model"


def _params(change: ModuleChange | None, m: ModuleFact) -> str:
    if change is not None and change.status == "changed" and change.params_a != change.params_b:
        return f"{human(change.params_a)} → {human(change.params_b)} params"
    return f"{human(m.total_params)} params"


def diff_tree(diff: ModelDiff, a: ModelFacts, b: ModelFacts, depth: int = DEPTH) -> DiffNode:
    """The root of the diff tree (B's structure, with A's removed modules put back, marked)."""
    changes = {c.name: c for c in diff.changes}
    mods = {m.name: m for m in b.modules}
    order = [m.name for m in b.modules]
    for c in diff.changes:
        if c.status == "removed":
            removed = next(m for m in a.modules if m.name == c.name)
            mods[c.name] = removed
            order.append(c.name)
    kids: dict[str, list[str]] = {}
    for name in order:
        if name:
            kids.setdefault(_parent(name), []).append(name)
    dirty = set()  # modules with a change at or below them
    for c in diff.changes:
        n: str | None = c.name
        while n is not None:
            dirty.add(n)
            n = _parent(n) if n else None

    def node(name: str, level: int) -> DiffNode:
        m, ch = mods[name], changes.get(name)
        status = ch.status if ch else "same"
        title = _short(name) if not (ch and ch.renamed_from) else f"{_short(name)} (was {ch.renamed_from})"
        label = f"{title} · {m.cls} · {_params(ch, m)}"
        children: list[DiffNode] = []
        if name in dirty and status in ("same", "changed") and level < depth:
            children = fold([node(k, level + 1) for k in kids.get(name, [])])
        return DiffNode(name or "model", label, status, children)

    return node("", 0)


def fold(nodes: list[DiffNode]) -> list[DiffNode]:
    """Runs of identical siblings become one folded node; a single identical sibling stays itself."""
    out: list[DiffNode] = []
    run: list[DiffNode] = []

    def close() -> None:
        if len(run) > 1:
            names = ", ".join(n.key.rsplit(".", 1)[-1] for n in run[:3]) + (" …" if len(run) > 3 else "")
            out.append(DiffNode(run[0].key + "~fold", f"{len(run)} identical modules ({names})", "folded"))
        else:
            out.extend(run)
        run.clear()

    for n in nodes:
        if n.status == "same" and not n.children:
            run.append(n)
        else:
            close()
            out.append(n)
    close()
    return out


def walk(root: DiffNode) -> list[tuple[DiffNode, DiffNode | None]]:
    """(node, parent) pairs depth-first, for templates."""
    out: list[tuple[DiffNode, DiffNode | None]] = []
    stack: list[tuple[DiffNode, DiffNode | None]] = [(root, None)]
    while stack:
        n, p = stack.pop()
        out.append((n, p))
        stack.extend((c, n) for c in reversed(n.children))
    return out

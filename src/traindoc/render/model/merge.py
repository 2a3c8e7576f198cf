"""Parameter-free layers drawn inside the box they follow, as on a whiteboard: ``fc1 · Linear → GELU``.

A leaf call without parameters (an activation, a dropout, an identity) takes a rank of its own in a
top-down flowchart, so a conv–ReLU–conv–ReLU stack is twice as tall as the layers that hold weights.
:func:`merge_weightless` folds such a call into its source box when nothing is lost: its only input is
that box's only output, both sit in the same subgraph, and it keeps the shape (every edge leaving it
carries the shape that entered it, so the label that moves onto the merged box's edges is the same).
Anything else (a pooling that changes the shape, a dropout fed by two boxes) stays its own box.
"""

from __future__ import annotations

from typing import Protocol


class Node(Protocol):
    id: str
    kind: str
    title: str
    detail: str
    weightless: str
    children: list[Node]


Edge = tuple[str, str, str]


def merge_weightless(nodes: list[Node], edges: list[Edge]) -> list[Edge]:
    """Merge in place (titles and the node lists change); returns the edges between what is still drawn."""
    container: dict[str, list[Node]] = {}
    boxes: dict[str, Node] = {}
    order: list[Node] = []

    def walk(ns: list[Node]) -> None:
        for n in ns:
            container[n.id], boxes[n.id] = ns, n
            order.append(n)
            walk(n.children)

    walk(nodes)
    edges = list(dict.fromkeys(edges))
    for n in order:
        if not n.weightless or n.kind != "leaf":
            continue
        ins = [e for e in edges if e[1] == n.id]
        if len(ins) != 1:
            continue
        s, _, shape = ins[0]
        src = boxes.get(s)
        if src is None or src.kind != "leaf" or container[s] is not container[n.id]:
            continue
        if [e for e in edges if e[0] == s] != ins:
            continue  # the source also feeds something else: the layer is not simply "after" it
        outs = [e for e in edges if e[0] == n.id]
        if any(o[2] not in ("", shape) for o in outs):
            continue  # it changes the shape: keep the box that says so
        src.title = f"{src.title} → {n.weightless}"
        container[n.id].remove(n)
        edges = [(s if a == n.id else a, b, sh) for a, b, sh in edges if (a, b) != (s, n.id)]
        edges = [(a, b, sh or (shape if a == s else sh)) for a, b, sh in dict.fromkeys(edges)]
    return edges

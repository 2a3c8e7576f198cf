"""The deepest level listed inside its container's box, for an explicit depth that misses the slide.

At ``--depth 3`` a UperNet draws each ``ConvModule`` as a subgraph of two boxes, ``conv · Conv2d`` then
``batch_norm · BatchNorm2d → ReLU``: two ranks and a title for what a whiteboard shows as one box,
``ConvModule: Conv2d → BatchNorm2d → ReLU``. :func:`compact_chains` draws such a container as one box
when nothing is lost:

- a subgraph whose children are two or more plain layer boxes forming a straight chain (each feeds only
  the next, the chain is entered only at its head and left only from its tail) becomes one box: the
  container's own title, the chain's classes in order, the container's parameter count;
- a subgraph around a single box becomes that box, with the container's title on top (and the
  container's own count, "N params in all", where it holds more than that box).

A chain longer than :data:`MAX_CHAIN_CHARS` keeps its boxes: Mermaid labels are cut at 200 characters,
which would take the end of the chain and its parameter count.

Only containers whose insides are boxes are drawn this way, so every level above stays opened as the
depth asks. A layer with anything more to say than its parameter count (shared, tied, frozen, a shape
moved onto it) keeps the container opened.
"""

from __future__ import annotations

import re
from typing import Protocol

PLAIN_DETAIL = re.compile(r"^(\S+ params)?$")
MAX_CHAIN_CHARS = 90  # about three lines of a 300-px box: a longer chain stays drawn as its boxes


class Node(Protocol):
    id: str
    kind: str
    title: str
    detail: str
    box_title: str
    children: list[Node]

    @property
    def subgraph(self) -> bool: ...


Edge = tuple[str, str, str]


def _chain(kids: list[Node], edges: list[Edge]) -> list[Node] | None:
    """The children in feeding order when they form one straight chain entered at its head only."""
    ids = {k.id: k for k in kids}
    inner = [(s, d) for s, d, _ in edges if s in ids and d in ids]
    if len(inner) != len(kids) - 1:
        return None
    nxt = dict(inner)
    heads = set(ids) - {d for _, d in inner}
    if len(nxt) != len(inner) or len(heads) != 1:
        return None
    order = [ids[heads.pop()]]
    while order[-1].id in nxt:
        order.append(ids[nxt[order[-1].id]])
    if len(order) != len(kids):
        return None
    head, tail = order[0].id, order[-1].id
    for s, d, _ in edges:
        crossing = (s in ids) != (d in ids)
        if crossing and ((d in ids and d != head) or (s in ids and s != tail)):
            return None
    return order


def _one_box(n: Node, edges: list[Edge]) -> tuple[Node, dict[str, str]] | None:
    """``n`` drawn as one box, and the ids it replaces; None when its inside must stay drawn."""
    if not n.subgraph or n.kind != "group" or not n.children or any(k.subgraph for k in n.children):
        return None
    kids = n.children
    if len(kids) == 1:
        k = kids[0]
        if k.kind in ("op", "more"):
            return None
        own = f"{n.detail} in all" if n.detail and n.detail != k.detail else ""  # the block holds more
        k.detail = "\n".join(x for x in (k.title, k.detail, own) if x)
        k.title = n.box_title or n.title
        return k, {}
    if any(k.kind != "leaf" or not PLAIN_DETAIL.match(k.detail) for k in kids):
        return None
    order = _chain(kids, edges)
    if order is None:
        return None
    head = order[0]
    chain = " → ".join(k.title.split(" · ", 1)[-1] for k in order)
    if len(chain) > MAX_CHAIN_CHARS:  # Mermaid labels are cut at 200 characters: the params line would go
        return None
    head.title = n.box_title or n.title
    head.detail = "\n".join(x for x in (chain, n.detail) if x)
    return head, {k.id: head.id for k in order[1:]}


def compact_chains(nodes: list[Node], edges: list[Edge]) -> tuple[list[Edge], int]:
    """Draw every container of boxes that reads as one box as that box (in place); returns the edges
    between what is still drawn and how many containers were drawn as one box."""
    renamed: dict[str, str] = {}
    collapsed = 0

    def walk(ns: list[Node]) -> None:
        nonlocal collapsed
        for i, n in enumerate(ns):
            if not n.subgraph:
                continue
            one = _one_box(n, edges)
            if one is None:
                walk(n.children)
                continue
            ns[i], ids = one
            renamed.update(ids)
            collapsed += 1

    walk(nodes)
    out: dict[tuple[str, str], str] = {}
    for s, d, shape in edges:
        s, d = renamed.get(s, s), renamed.get(d, d)
        if s != d:
            out.setdefault((s, d), shape)
    return [(s, d, shape) for (s, d), shape in out.items()], collapsed

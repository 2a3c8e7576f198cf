"""Graph checks the model-diagram tests share: cycles, reachability, every node of a view."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def has_cycle(edges: Iterable[tuple[str, str]]) -> bool:
    succ: dict[str, list[str]] = {}
    for s, d in edges:
        succ.setdefault(s, []).append(d)
    state: dict[str, int] = {}

    def visit(n: str) -> bool:
        state[n] = 1
        for m in succ.get(n, []):
            if state.get(m) == 1 or (state.get(m) is None and visit(m)):
                return True
        state[n] = 2
        return False

    return any(state.get(n) is None and visit(n) for n in list(succ))


def reach(edges: Iterable[tuple[str, str, str]], keep: set[str]) -> set[tuple[str, str]]:
    """Every (a, b) of ``keep`` with a path a → b."""
    nxt: dict[str, set[str]] = {}
    for s, d, _ in edges:
        nxt.setdefault(s, set()).add(d)
    out = set()
    for start in keep:
        seen, todo = set(), [start]
        while todo:
            for d in nxt.get(todo.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        out |= {(start, d) for d in seen if d in keep}
    return out


def all_nodes(nodes: Iterable[Any]) -> dict[str, Any]:
    """Every box and subgraph of a view, nested ones included, by id."""
    out: dict[str, Any] = {}
    for n in nodes:
        out[n.id] = n
        out |= all_nodes(n.children)
    return out

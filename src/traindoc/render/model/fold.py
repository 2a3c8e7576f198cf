"""Folding a level of the call tree into units (pure; no torch): sequential runs of identical blocks,
repeating patterns of different blocks, parallel identical siblings; everything else stays single.

:mod:`traindoc.render.model.view` draws the units; this module only decides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...facts import CallFact, ModelFacts, ModuleFact
from .labels import INDEXED as _INDEXED

MAX_PERIOD = 4


@dataclass
class Unit:
    kind: Literal["single", "run", "parallel"]
    members: list[list[CallFact]]  # single: [[c]]; run: N members of `period` calls; parallel: [[c], ...]

    @property
    def first(self) -> CallFact:
        return self.members[0][0]

    @property
    def calls(self) -> list[CallFact]:
        return [c for m in self.members for c in m]


class CallTree:
    """Children of each call, each call's subtree, module facts by name."""

    def __init__(self, model: ModelFacts) -> None:
        self.calls = {c.id: c for c in model.calls}
        self.kids: dict[str | None, list[CallFact]] = {}
        for c in model.calls:
            self.kids.setdefault(c.parent, []).append(c)
        self.modules = {m.name: m for m in model.modules}
        self.edges = model.edges
        self._sub: dict[str, list[str]] = {}
        self._sig: dict[str, str] = {}

    def subtree(self, cid: str) -> list[str]:
        if cid not in self._sub:
            out = [cid]
            for k in self.kids.get(cid, []):
                out += self.subtree(k.id)
            self._sub[cid] = out
        return self._sub[cid]

    def module(self, c: CallFact) -> ModuleFact | None:
        return self.modules.get(c.module) if not c.op else None

    def signature(self, c: CallFact) -> str:
        """What a call is and what it does: its module's signature and, in order, its calls' signatures.
        Two calls of equal modules that call different things inside (DPT's first fusion layer skips the
        residual branch the others run) are not the same block, so a run does not fold over them."""
        if c.id not in self._sig:
            m = self.module(c)
            own = f"op:{c.op}" if m is None else m.signature
            inner = ",".join(self.signature(k) for k in self.kids.get(c.id, []))
            self._sig[c.id] = f"{own}({inner})" if inner else own
        return self._sig[c.id]

    def links(self, items: list[CallFact]) -> set[tuple[int, int]]:
        """(i, j): some call inside item i feeds some call inside item j."""
        where = {cid: i for i, c in enumerate(items) for cid in self.subtree(c.id)}
        return {
            (where[e.src], where[e.dst])
            for e in self.edges
            if e.src in where and e.dst in where and where[e.src] != where[e.dst]
        }


# --- folding ---------------------------------------------------------------------------------------


def _run_length(sigs: list[str], linked: set[tuple[int, int]], i: int, p: int) -> int:
    """How many consecutive members of period p start at i, each feeding the next."""
    k = 1
    while i + (k + 1) * p <= len(sigs) and sigs[i + k * p : i + (k + 1) * p] == sigs[i : i + p]:
        prev = range(i + (k - 1) * p, i + k * p)
        nxt = range(i + k * p, i + (k + 1) * p)
        if not any((a, b) in linked for a in prev for b in nxt):
            break
        k += 1
    return k


def _parallel_length(items: list[CallFact], tree: CallTree, linked: set[tuple[int, int]], i: int) -> int:
    m = _INDEXED.match(items[i].module) if not items[i].op else None
    if m is None:
        return 1
    k = 1
    while i + k < len(items):
        c = items[i + k]
        mk = _INDEXED.match(c.module) if not c.op else None
        if mk is None or mk.group(1) != m.group(1) or tree.signature(c) != tree.signature(items[i]):
            break
        if any((a, i + k) in linked or (i + k, a) in linked for a in range(i, i + k)):
            break
        k += 1
    return k


def fold_runs(items: list[CallFact], tree: CallTree) -> list[Unit]:
    sigs = [tree.signature(c) for c in items]
    linked = tree.links(items)
    units: list[Unit] = []
    i = 0
    while i < len(items):
        best_p, best_k = 1, 1
        if not items[i].op:
            for p in range(1, MAX_PERIOD + 1):
                if p > 1 and len(set(sigs[i : i + p])) == 1:
                    continue  # a period of identical blocks is period 1
                if p > 1 and not all(tree.kids.get(c.id) for c in items[i : i + p]):
                    continue  # patterns are of blocks (conv → bn → conv → bn stays as drawn)
                if any(c.op for c in items[i : i + p]) and p == 1:
                    continue
                k = _run_length(sigs, linked, i, p)
                if k >= 2 and p * k > best_p * best_k:
                    best_p, best_k = p, k
        if best_k >= 2:
            units.append(Unit("run", [items[i + j * best_p : i + (j + 1) * best_p] for j in range(best_k)]))
            i += best_p * best_k
            continue
        n = _parallel_length(items, tree, linked, i)
        if n >= 2:
            units.append(Unit("parallel", [[c] for c in items[i : i + n]]))
            i += n
            continue
        units.append(Unit("single", [[items[i]]]))
        i += 1
    return units


# --- the view --------------------------------------------------------------------------------------

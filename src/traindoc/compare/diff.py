"""What differs between two models, from their facts alone (no torch): added, removed, changed, renamed.

Modules are matched by qualified name. A module present on both sides whose subtree signature (class
and parameter shapes) is equal is identical and folded away; a different signature is *changed*. A
module only in B is *added*, only in A *removed* — unless a module of the other side has the same
signature, in which case the block was only *renamed* (moved under another name, same contents).
Only the top-most module of an added/removed/renamed subtree is listed: its children come with it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from ..facts import ModelFacts, ModuleFact

Status = Literal["added", "removed", "changed", "renamed"]


@dataclass(frozen=True)
class ModuleChange:
    status: Status
    name: str  # the name on side B (on side A for "removed")
    cls: str
    params_a: int | None
    params_b: int | None
    renamed_from: str | None = None


@dataclass(frozen=True)
class ModelDiff:
    changes: list[ModuleChange]
    identical: int  # modules present on both sides with equal subtrees (top-most only)
    params_a: int
    params_b: int

    @property
    def same(self) -> bool:
        return not self.changes

    def status_of(self, name: str) -> Status | None:
        for c in self.changes:
            if c.name == name:
                return c.status
        return None


def _parent(name: str) -> str | None:
    if not name:
        return None
    return name.rsplit(".", 1)[0] if "." in name else ""


def _under(name: str, roots: set[str]) -> bool:
    """True when an ancestor of ``name`` is in ``roots``."""
    p = _parent(name)
    while p is not None:
        if p in roots:
            return True
        p = _parent(p)
    return False


def diff_models(a: ModelFacts, b: ModelFacts) -> ModelDiff:
    ma = {m.name: m for m in a.modules}
    mb = {m.name: m for m in b.modules}
    only_a = [n for n in ma if n not in mb]
    only_b = [n for n in mb if n not in ma]

    # Renamed: an unmatched B module whose subtree equals an unmatched A module's (first come, first paired).
    by_sig: dict[str, list[str]] = defaultdict(list)
    for n in only_a:
        by_sig[ma[n].signature].append(n)
    renamed: dict[str, str] = {}  # b name -> a name
    for n in only_b:
        pool = by_sig.get(mb[n].signature)
        if pool and not _under(n, set(renamed)):
            renamed[n] = pool.pop(0)
    renamed_a = set(renamed.values())

    changes: list[ModuleChange] = []
    added_roots: set[str] = set()
    for n in only_b:
        if _under(n, added_roots | set(renamed)):
            continue
        m = mb[n]
        if n in renamed:
            changes.append(ModuleChange("renamed", n, m.cls, ma[renamed[n]].total_params, m.total_params, renamed[n]))
        else:
            added_roots.add(n)
            changes.append(ModuleChange("added", n, m.cls, None, m.total_params))
    removed_roots: set[str] = set()
    for n in only_a:
        if n in renamed_a or _under(n, removed_roots | renamed_a):
            continue
        removed_roots.add(n)
        changes.append(ModuleChange("removed", n, ma[n].cls, ma[n].total_params, None))

    identical = 0
    same_roots: set[str] = set()
    for n in mb:
        if n not in ma:
            continue
        x, y = ma[n], mb[n]
        if x.signature == y.signature and x.cls == y.cls:
            if not _under(n, same_roots):
                identical += 1
            same_roots.add(n)
        else:
            changes.append(ModuleChange("changed", n, _cls_text(x, y), x.total_params, y.total_params))
    changes.sort(key=lambda c: (c.name.count("."), c.name))
    return ModelDiff(changes, identical, a.total_params, b.total_params)


def _cls_text(x: ModuleFact, y: ModuleFact) -> str:
    return y.cls if x.cls == y.cls else f"{x.cls} → {y.cls}"

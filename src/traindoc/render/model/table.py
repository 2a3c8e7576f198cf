"""The model table of the README and docs: rows fold like the diagram and add up to the total."""

from __future__ import annotations

from dataclasses import dataclass

from ...facts import ModelFacts, ModuleFact
from .labels import INDEXED as _INDEXED


@dataclass(frozen=True)
class TableRow:
    name: str
    cls: str
    depth: int
    params: int  # counted once: tied parameters where they first appear, so one level's rows add up
    output_shapes: list[str]
    note: str


def table_rows(model: ModelFacts, depth: int) -> list[TableRow]:
    """Module rows down to ``depth``, consecutive identical siblings folded like the diagram."""
    kids: dict[str, list[ModuleFact]] = {}
    for m in model.modules:
        if m.name:
            kids.setdefault(m.name.rsplit(".", 1)[0] if "." in m.name else "", []).append(m)
    rows: list[TableRow] = []
    root = next((m for m in model.modules if not m.name), None)
    if root is not None and root.own_params:
        rows.append(TableRow("(root)", root.cls, 1, root.own_params, [], "the model's own parameters"))

    used = {m.tied_to for m in model.modules if m.tied_to and m.calls}
    used |= {m.name for m in model.modules if m.calls}
    for name in list(used):
        while "." in name:
            name = name.rsplit(".", 1)[0]
            used.add(name)

    def note(m: ModuleFact) -> str:
        if m.tied_to:
            return f"tied to {m.tied_to} (counted there)"
        if m.total_params and m.frozen_params == m.total_params:
            return "frozen"
        if m.name not in used and m.total_params and model.traced:
            return "not called"
        return f"{m.experts} experts in one module" if m.moe == "experts" else ""

    def level_of(parent: str) -> list[ModuleFact]:
        out: list[ModuleFact] = []
        for m in kids.get(parent, []):
            if m.calls == 0 and not m.own_params and kids.get(m.name) and m.name in used:
                out += level_of(m.name)  # a container never called itself (ModuleList): its blocks stand here
            else:
                out.append(m)
        return out

    def walk(parent: str, level: int) -> None:
        siblings = level_of(parent)
        i = 0
        while i < len(siblings):
            m = siblings[i]
            j = i + 1
            while (
                j < len(siblings)
                and _INDEXED.match(siblings[j].name)
                and siblings[j].signature == m.signature
                and not siblings[j].tied_to
            ):
                j += 1
            if j - i >= 2 and _INDEXED.match(m.name):
                run = siblings[i:j]
                last = _INDEXED.match(run[-1].name)
                name = f"{m.name}–{last.group(2) if last else ''}"
                total = sum(r.counted_params for r in run)
                rows.append(TableRow(name, f"{m.cls} × {len(run)}", level, total, run[-1].output_shapes, note(m)))
            else:
                run = [m]
                rows.append(TableRow(m.name, m.cls, level, m.counted_params, m.output_shapes, note(m)))
                if level < depth:
                    walk(m.name, level + 1)
            i += len(run)

    walk("", 1)
    return rows

"""Short labels for the model diagram: no dotted paths, one-line subgraph titles, params in words."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ...facts import CallFact, ModuleFact

if TYPE_CHECKING:
    from .fold import CallTree, Unit

TITLE_CHARS = 24  # about 200 px at 16 px: Mermaid wraps longer subgraph titles onto a second line
INDEXED = re.compile(r"^(.*)\.(\d+)$")


def human(n: int) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            v = n / div
            return f"{v:.3g}{suffix}"
    return str(n)


def short_name(module: str) -> str:
    return module.rsplit(".", 1)[-1] if module else "model"


def container_name(name: str) -> str:
    """``layers`` for ``model.layers``; ``layers[0]`` for ``layers.0`` (no dotted paths in labels)."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[-1].isdigit():
        return f"{parts[-2]}[{parts[-1]}]"
    return parts[-1] or "model"


def params_line(m: ModuleFact | None) -> str:
    if m is None:
        return ""
    if m.tied_to:
        return f"tied to {m.tied_to}"
    if not m.total_params:
        return ""
    frozen = " · frozen" if m.frozen_params == m.total_params else (" · part frozen" if m.frozen_params else "")
    return f"{human(m.total_params)} params{frozen}"


def run_labels(unit: Unit, tree: CallTree) -> tuple[str, str]:
    period = unit.members[0]
    n = len(unit.members)
    mods = [tree.module(c) for c in period]
    classes = [m.cls if m else c.op for m, c in zip(mods, period, strict=True)]
    if len({c.module for c in unit.calls}) == 1:  # one shared module called n times
        m = tree.module(unit.first)
        return f"{classes[0]} × {n} calls", f"shared weights · {params_line(m) or 'no params'}"
    head = classes[0] if len(period) == 1 else "[" + " → ".join(classes) + "]"
    first, last = unit.first.module, unit.members[-1][-1].module
    fm, lm = INDEXED.match(first), INDEXED.match(last)
    where = f"{container_name(fm.group(1))} {fm.group(2)}–{lm.group(2)}" if fm and lm else short_name(first)
    each = sum(m.total_params for m in mods if m)
    return f"{head} × {n}", f"{where} · {human(each)} params each" if each else where


def call_label(c: CallFact, tree: CallTree) -> tuple[str, str]:
    m = tree.module(c)
    if m is None:
        return c.op, ""
    title = f"{short_name(c.module)} · {m.cls}"
    detail = params_line(m)
    if m.moe == "experts":  # E experts fused in one module: drawn like E parallel expert modules
        title = f"{m.cls} × {m.experts} experts"
        detail = f"{human(m.total_params // m.experts)} params each · fused" if m.total_params else "fused"
    elif m.moe == "router" and "router" not in title.lower():
        detail = "router" + (f" · {detail}" if detail else "")
    elif m.moe == "block":
        detail = f"router → experts × {m.experts}" + (f" · {detail}" if detail else "")
    if m.calls > 1:
        k = int(c.id.rsplit("@", 1)[1]) if "@" in c.id else 1
        detail = (detail + " · " if detail else "") + f"call {k} of {m.calls}, shared"
    return title, detail


def cluster_title(title: str, c: CallFact, tree: CallTree) -> str:
    """Subgraph titles stay on one line (Mermaid wraps at 200 px and a second line overlaps the inside)."""
    if len(title) <= TITLE_CHARS:
        return title
    m = tree.module(c)
    cls = m.cls if m else c.op
    return cls if len(cls) <= TITLE_CHARS else cls[: TITLE_CHARS - 1] + "…"

"""Mixture-of-experts parts that no module boundary shows: E experts fused into one module.

Newer models (transformers 5's Mixtral, Qwen-MoE, gpt-oss) keep their experts as *one* module whose
parameters are stacked, ``(E, out, in)``, instead of a list of E modules; the trace sees one call. Found
here from the parameters alone, so no model name is special:

- ``experts``: a module whose parameters all lead with the same E ≥ 2, at least one of them 3-D, and that
  says it holds experts: an ``E``-valued ``num_experts``-like attribute, or "expert" in its name or class;
- ``router``: a sibling (same parent) with a 2-D parameter leading with E (E logits per token), preferring
  one named like a router or gate;
- ``block``: the parent holding both, so a diagram that does not open it can still say what is inside.
"""

from __future__ import annotations

from torch import nn

EXPERT_ATTRS = ("num_experts", "num_local_experts", "n_experts", "n_routed_experts")


def fused_experts(name: str, module: nn.Module) -> int:
    """E when ``module`` holds E experts as stacked parameters, else 0."""
    params = list(module.parameters())
    if not params or not any(p.dim() >= 3 for p in params) or any(p.dim() < 2 for p in params):
        return 0
    leading = {int(p.shape[0]) for p in params}
    if len(leading) != 1:
        return 0
    e = leading.pop()
    said = any(getattr(module, a, None) == e for a in EXPERT_ATTRS)
    named = "expert" in name.rsplit(".", 1)[-1].lower() or "expert" in type(module).__name__.lower()
    return e if e >= 2 and (said or named) else 0


def _router(block: nn.Module, experts: str, e: int) -> str:
    found = [
        n
        for n, m in block.named_children()
        if n != experts and any(p.dim() == 2 and p.shape[0] == e for p in m.parameters(recurse=False))
    ]
    routerish = [n for n in found if any(w in (n + type(getattr(block, n)).__name__).lower() for w in ("rout", "gate"))]
    return (routerish or found or [""])[0]


def roles(model: nn.Module) -> dict[str, tuple[str, int]]:
    """Module name -> ("experts" | "router" | "block", E), for every fused-experts module found."""
    out: dict[str, tuple[str, int]] = {}
    for name, module in model.named_modules():
        inside = any(r == "experts" and name.startswith(k + ".") for k, (r, _) in out.items())
        e = fused_experts(name, module) if name and not inside else 0
        if not e:
            continue
        out[name] = ("experts", e)
        parent_name, _, own = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        router = _router(parent, own, e)
        if router:
            out.setdefault(f"{parent_name}.{router}" if parent_name else router, ("router", e))
        if parent_name:
            out.setdefault(parent_name, ("block", e))
    return out


def opaque(model: nn.Module) -> frozenset[str]:
    """Fused-experts modules: traced as one call (their inside is kernels and routing bookkeeping)."""
    return frozenset(n for n, (role, _) in roles(model).items() if role == "experts")

"""Tracing a model's call structure on meta tensors: which call's output is an input of which call.

One node per *call* (a module called three times is three nodes: ``drop``, ``drop@2``, ``drop@3``),
plus one node per tensor operation that merges the outputs of two or more calls (a residual add, a
concatenation, an attention product). Every tensor carries exactly one producer — the last leaf call
or merge that made it — so an edge means "the output of A is an input of B": a residual add is
exactly one extra edge and the edge count grows linearly with the number of calls.

Chains of merges that only feed each other inside one module call (``q·cos + rot(q)·sin`` then
``attention(q, k, v)``) are contracted into the last one, as a person would draw "attention".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

INPUT, OUTPUT = "input", "output"

_OP_NAMES = {
    "add": "+",
    "__add__": "+",
    "__radd__": "+",
    "__iadd__": "+",
    "add_": "+",
    "sub": "−",
    "__sub__": "−",
    "__rsub__": "−",
    "mul": "×",
    "__mul__": "×",
    "__rmul__": "×",
    "__imul__": "×",
    "mul_": "×",
    "cat": "concat",
    "concat": "concat",
    "stack": "stack",
    "matmul": "matmul",
    "__matmul__": "matmul",
    "bmm": "matmul",
    "einsum": "einsum",
    "scaled_dot_product_attention": "attention",
    "where": "where",
    "div": "÷",
    "__truediv__": "÷",
}


def shape_str(shape: Any) -> str:
    return "×".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def op_label(func: Any) -> str:
    name = getattr(func, "__name__", None) or str(func)
    return _OP_NAMES.get(name, name.strip("_"))


@dataclass
class Call:
    id: str
    module: str  # qualified module name; "" for the root and for ops
    op: str  # "" for a module call
    parent: str | None
    index: int  # order of the call's start
    output_shapes: list[str] = field(default_factory=list)
    leaf: bool = True  # no module call happened inside it


@dataclass
class Trace:
    calls: dict[str, Call]
    edges: dict[tuple[str, str], str]  # (src, dst) -> shape of the tensor src produced
    outputs: list[torch.Tensor]


class _Tracer(TorchFunctionMode):
    """Hooks every module call and every tensor op; keeps one producer per tensor."""

    def __init__(self, names_of: dict[int, str], static_leaf: set[str]) -> None:
        super().__init__()
        self.names_of = names_of
        self.static_leaf = static_leaf
        self.producer: dict[int, tuple[str, str]] = {}  # id(tensor) -> (call id, shape)
        self.keep: list[torch.Tensor] = []  # keeps tensor ids unique for the trace's lifetime
        self.calls: dict[str, Call] = {}
        self.count: dict[str, int] = {}
        self.stack: list[str] = []
        self.inputs_of: dict[str, list[tuple[str, str]]] = {}
        self.edges: dict[tuple[str, str], str] = {}
        self.ops_in: dict[str, int] = {}

    # -- tensors --------------------------------------------------------------------------------
    def producers(self, value: Any) -> list[tuple[str, str]]:
        seen: dict[str, str] = {}
        for leaf in tree_flatten(value)[0]:
            if isinstance(leaf, torch.Tensor):
                got = self.producer.get(id(leaf))
                if got is not None:
                    seen.setdefault(got[0], got[1])
        return list(seen.items())

    def mark(self, value: Any, call_id: str, shape: str | None = None) -> None:
        """``shape``: what the producer made, kept through views and reshapes of its output."""
        for leaf in tree_flatten(value)[0]:
            if isinstance(leaf, torch.Tensor):
                self.producer[id(leaf)] = (call_id, shape or shape_str(leaf.shape))
                self.keep.append(leaf)

    def _inside_leaf(self) -> bool:
        return bool(self.stack) and self.calls[self.stack[-1]].module in self.static_leaf

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self._inside_leaf():
            return result  # a leaf's output is marked when it returns
        srcs = self.producers((args, kwargs))
        if len(srcs) == 1:
            self.mark(result, srcs[0][0], srcs[0][1])
        elif len(srcs) >= 2:
            parent = self.stack[-1] if self.stack else None
            n = self.ops_in.get(parent or "", 0) + 1
            self.ops_in[parent or ""] = n
            op_id = f"{parent or ''}/{op_label(func)}#{n}"
            call = Call(op_id, "", op_label(func), parent, len(self.calls))
            call.output_shapes = [shape_str(t.shape) for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor)][
                :4
            ]
            self.calls[op_id] = call
            for src, shape in srcs:
                self.edges.setdefault((src, op_id), shape)
            self.mark(result, op_id)
        return result

    # -- modules --------------------------------------------------------------------------------
    def pre(self, mod: nn.Module, args: Any, kwargs: Any) -> None:
        name = self.names_of[id(mod)]
        k = self.count.get(name, 0) + 1
        self.count[name] = k
        call_id = name if k == 1 else f"{name}@{k}"
        parent = self.stack[-1] if self.stack else None
        if parent is not None:
            self.calls[parent].leaf = False
        self.calls[call_id] = Call(call_id, name, "", parent, len(self.calls))
        self.inputs_of[call_id] = self.producers((args, kwargs))
        self.stack.append(call_id)

    def post(self, mod: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
        call_id = self.stack.pop()
        call = self.calls[call_id]
        call.output_shapes = [shape_str(t.shape) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)][:4]
        if call.leaf:
            for src, shape in self.inputs_of[call_id]:
                if src != call_id:
                    self.edges.setdefault((src, call_id), shape)
            self.mark(out, call_id)


def trace(
    model: nn.Module, inputs: dict[str, torch.Tensor], invoke: Callable[[], Any], opaque: frozenset[str] = frozenset()
) -> Trace:
    """Run ``invoke()`` (the model's forward on ``inputs``) under hooks; raises :class:`TraceFailed`.
    ``opaque``: modules traced as one leaf call, their inside unseen (fused experts and their kernels)."""
    named = {
        n: m for n, m in model.named_modules(remove_duplicate=False) if not any(n.startswith(o + ".") for o in opaque)
    }
    names_of: dict[int, str] = {}
    for name, mod in named.items():
        names_of.setdefault(id(mod), name)
    static_leaf = {n for n, m in named.items() if (not list(m.children()) or n in opaque) and names_of[id(m)] == n}
    tracer = _Tracer(names_of, static_leaf)
    for key, tensor in inputs.items():
        tracer.mark(tensor, key)
    handles = []
    for mod in {id(m): m for m in named.values()}.values():
        handles.append(mod.register_forward_pre_hook(tracer.pre, with_kwargs=True))
        handles.append(mod.register_forward_hook(tracer.post, with_kwargs=True))
    try:
        with torch.no_grad(), tracer:
            y = invoke()
    except Exception as exc:
        failing = next((c for c in reversed(tracer.stack) if tracer.calls[c].module), "")
        raise TraceFailed(tracer.calls[failing].module if failing else "", exc) from exc
    finally:
        handles_remove(handles)
    outs = [t for t in tree_flatten(_plain(y))[0] if isinstance(t, torch.Tensor)]
    for t in outs[:1]:
        got = tracer.producer.get(id(t))
        if got is not None:
            tracer.edges.setdefault((got[0], OUTPUT), shape_str(t.shape))
    calls, edges = contract(tracer.calls, tracer.edges)
    return Trace(calls=calls, edges=edges, outputs=outs)


# A kernel that demands a reduced-precision dtype, as torch's grouped matmul under transformers' fused
# mixture-of-experts does even on meta: "Expected inputs of BF16 type but got mat_a.dtype=torch.float32 ...".
# Only a demand ("expected/requires/only supports ... BF16"), never a mismatch between two operands.
_NEEDS_DTYPE = re.compile(
    r"\b(?:expected|expects|requires?|needs?|only supports?|must be)\b"
    r"[^\n]{0,40}?\b(bf16|bfloat16|fp16|float16|half)\b",
    re.IGNORECASE,
)
_MISMATCH = re.compile(r"same dtype|scalar type|dtype mismatch", re.IGNORECASE)
_DTYPE_WORDS = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
_DTYPE_WORDS |= {"fp16": torch.float16, "float16": torch.float16, "half": torch.float16}


def required_dtype(error: BaseException) -> torch.dtype | None:
    """The floating-point dtype a kernel demanded, or None for any other error (retry nothing else)."""
    if not isinstance(error, (RuntimeError, TypeError, ValueError)):
        return None
    text = str(error)
    found = _NEEDS_DTYPE.search(text)
    if found is None or _MISMATCH.search(text):
        return None
    return _DTYPE_WORDS[found.group(1).lower()]


def cast_floats(value: Any, dtype: torch.dtype) -> Any:
    """Floating-point tensors in ``value`` cast to ``dtype``; integers (token ids, masks) stay as they are."""

    def one(t: Any) -> Any:
        return t.to(dtype) if isinstance(t, torch.Tensor) and t.dtype.is_floating_point else t

    return tree_map(one, value)


class TraceFailed(Exception):
    """The forward raised: ``module`` is the innermost module running ("" for the model's own code)."""

    def __init__(self, module: str, error: BaseException) -> None:
        super().__init__(module)
        self.module = module
        self.error = error


def handles_remove(handles: list[Any]) -> None:
    for h in handles:
        h.remove()


def _plain(value: Any) -> Any:
    """Model outputs that are dataclass-like (Hugging Face ``ModelOutput``): their tensors, in order."""
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "to_tuple"):
        return tuple(value.to_tuple())
    return value


def contract(
    calls: dict[str, Call], edges: dict[tuple[str, str], str]
) -> tuple[dict[str, Call], dict[tuple[str, str], str]]:
    """Fold a merge op into its only consumer when that consumer is a merge op of the same call."""
    edges = dict(edges)
    calls = dict(calls)
    changed = True
    while changed:
        changed = False
        outs: dict[str, list[str]] = {}
        for s, d in edges:
            outs.setdefault(s, []).append(d)
        for cid, call in list(calls.items()):
            if not call.op:
                continue
            targets = outs.get(cid, [])
            if len(targets) != 1:
                continue
            dst = calls.get(targets[0])
            if dst is None or not dst.op or dst.parent != call.parent:
                continue
            for (s, d), shape in list(edges.items()):
                if d == cid:
                    del edges[(s, d)]
                    if s != dst.id:
                        edges.setdefault((s, dst.id), shape)
            del edges[(cid, dst.id)]
            del calls[cid]
            changed = True
            break
    return calls, edges

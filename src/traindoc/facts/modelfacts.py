"""The model part of the facts: build on meta (:mod:`.modelbuild`), trace (:mod:`.modeltrace`),
account for parameters, list the module tree. A model that cannot be built or traced yields facts
that say why (``traced=False``), so every other diagram, lint and the commands still work.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import SpecError, TraindocError, UserCodeError
from ..spec.loader import call, user_traceback
from ..spec.pipeline import Pipeline
from ..spec.training import SampleInput
from . import CallFact, EdgeFact, ModelFacts, ModuleFact, modelbuild, modeltrace, moe
from .modeltrace import shape_str

DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
}
LABEL_KEYS = ("labels", "label", "target", "targets", "y")


# --- sample inputs ---------------------------------------------------------------------------------


def _meta(s: SampleInput) -> torch.Tensor:
    return torch.zeros(s.shape, dtype=DTYPES[s.dtype], device="meta")


def first_batch_inputs(spec: Pipeline, file: Path) -> Any:
    """The model inputs of one real training sample, batched as 1 (labels left out)."""
    from torch.utils.data import default_collate

    train = call(spec.data.train, "data.train", file)
    batch = default_collate([train[0]])
    if isinstance(batch, dict):
        return {k: v for k, v in batch.items() if k not in LABEL_KEYS}
    if isinstance(batch, (list, tuple)):
        return batch[0] if len(batch) == 2 else list(batch[:-1])
    return batch


def _named(value: Any) -> dict[str, torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return {modeltrace.INPUT: value}
    if isinstance(value, dict):
        return {f"{modeltrace.INPUT}:{k}": v for k, v in value.items() if isinstance(v, torch.Tensor)}
    return {f"{modeltrace.INPUT}:{i}": v for i, v in enumerate(value) if isinstance(v, torch.Tensor)}


def sample_mismatches(
    spec: Pipeline, file: Path, model: nn.Module, inputs: dict[str, torch.Tensor], tr: modeltrace.Trace
) -> list[str]:
    """How the declared sample input differs from one real training sample (shape past the batch
    dimension, dtype, token ids beyond an embedding's table): traced shapes would otherwise be made up."""
    if spec.model.sample_input == "from_data":
        return []
    try:
        real = _named(first_batch_inputs(spec, file))
    except Exception:
        return []
    out = []
    for key, t in real.items():
        name = key.partition(":")[2] or "the input"
        s = inputs.get(key)
        if s is None:
            out.append(f"a real batch has {name}, the sample input does not")
            continue
        if tuple(s.shape[1:]) != tuple(t.shape[1:]):
            out.append(f"{name}: sample shape {shape_str(s.shape)}, a real sample {shape_str(t.shape)} (batch aside)")
        if s.dtype != t.dtype:
            out.append(f"{name}: sample dtype {str(s.dtype)[6:]}, real data {str(t.dtype)[6:]}")
        if t.dtype.is_floating_point or t.numel() == 0:
            continue
        for src, dst in tr.edges:
            call = tr.calls.get(dst)
            sub = model.get_submodule(call.module) if src == key and call is not None and call.module else None
            if isinstance(sub, nn.Embedding) and int(t.max()) >= sub.num_embeddings:
                out.append(
                    f"{name}: a real sample holds index {int(t.max())}, beyond {call.module}'s "  # type: ignore[union-attr]
                    f"{sub.num_embeddings} rows"
                )
    out += [
        f"the sample input has {k.partition(':')[2] or 'an input'} that a real batch lacks"
        for k in inputs
        if k not in real
    ]
    return out


def sample_inputs(spec: Pipeline, file: Path) -> tuple[dict[str, torch.Tensor], Any]:
    """(named meta inputs for the trace, the call's arguments: a tensor, a dict or a list)."""
    sample = spec.model.sample_input
    if sample == "from_data":
        real = first_batch_inputs(spec, file)
        as_meta: Any = torch.utils._pytree.tree_map(
            lambda t: torch.empty(t.shape, dtype=t.dtype, device="meta") if isinstance(t, torch.Tensor) else t, real
        )
    elif isinstance(sample, SampleInput):
        as_meta = _meta(sample)
    elif isinstance(sample, dict):
        as_meta = {k: _meta(v) for k, v in sample.items()}
    else:
        as_meta = [_meta(v) for v in sample]
    return _named(as_meta), as_meta


def _real(args: Any) -> Any:
    """CPU stand-ins for meta sample inputs: ones for integers (valid ids, an all-ones mask), zeros else."""

    def one(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        make = torch.zeros if t.dtype.is_floating_point or t.dtype.is_complex else torch.ones
        return make(t.shape, dtype=t.dtype, device="cpu")

    return torch.utils._pytree.tree_map(one, args)


def _invoke(model: nn.Module, args: Any) -> Any:
    if isinstance(args, dict):
        return model(**args)
    if isinstance(args, list):
        return model(*args)
    return model(args)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _trace_cast(
    model: nn.Module, args: Any, dtype: torch.dtype, failed: modeltrace.TraceFailed
) -> tuple[modeltrace.Trace, str]:
    """The one retry after a kernel demanded ``dtype`` (a fused mixture-of-experts matmul wants bfloat16
    even on meta): a copy of the meta model and the floating-point inputs cast to it, traced on meta again
    (free: no storage). Never built for real. ``model`` keeps its own dtypes, so parameter bytes stay true.
    Raises ``failed`` (the first error, the one worth reading) if this trace fails too."""
    try:
        cast = copy.deepcopy(model).to(dtype)
    except Exception:
        raise failed from None
    cast_args = modeltrace.cast_floats(args, dtype)
    try:
        tr = modeltrace.trace(cast, _named(cast_args), lambda: _invoke(cast, cast_args), moe.opaque(model))
    except modeltrace.TraceFailed:
        raise failed from None
    where = (
        f"{failed.module} ({type(model.get_submodule(failed.module)).__name__})"
        if failed.module
        else "the model's own forward"
    )
    said = (str(failed.error).splitlines() or [type(failed.error).__name__])[0].rstrip(".")
    said = said if len(said) <= 64 else said[:63] + "…"
    return tr, (
        f"traced in {_dtype_name(dtype)} (weights and float inputs cast on meta): {where} demands it "
        f"({said}), parameter bytes are the model's own dtypes"
    )


# --- accounting ------------------------------------------------------------------------------------


def _signature(module: nn.Module) -> str:
    parts = [type(module).__qualname__]
    parts += [f"{n}:{tuple(p.shape)}:{p.dtype}" for n, p in module.named_parameters()]
    parts += [f"{n}/{type(m).__qualname__}" for n, m in module.named_modules()]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def account(model: nn.Module) -> dict[str, Any]:
    """Totals over unique parameters (tied weights once), bytes by dtype."""
    unique = dict(model.named_parameters())  # remove_duplicate=True: tied weights once
    every = list(model.named_parameters(remove_duplicate=False))
    param_bytes: dict[str, int] = {}
    for p in unique.values():
        key = str(p.dtype).removeprefix("torch.")
        param_bytes[key] = param_bytes.get(key, 0) + p.numel() * p.element_size()
    total = sum(p.numel() for p in unique.values())
    trainable = sum(p.numel() for p in unique.values() if p.requires_grad)
    return {
        "total_params": total,
        "trainable_params": trainable,
        "frozen_params": total - trainable,
        "tied_params": sum(p.numel() for _, p in every) - total,
        "buffers": sum(b.numel() for b in model.buffers()),
        "param_bytes": param_bytes,
    }


def module_rows(model: nn.Module, calls: dict[str, int], outputs: dict[str, list[str]]) -> list[ModuleFact]:
    named = dict(model.named_modules(remove_duplicate=False))
    first_name: dict[int, str] = {}
    for name, mod in named.items():
        first_name.setdefault(id(mod), name)
    owner: dict[int, str] = {}  # parameter id -> first leaf-most module holding it directly
    for name, mod in named.items():
        for p in mod.parameters(recurse=False):
            owner.setdefault(id(p), name)
    rows = []
    moe_roles = moe.roles(model)
    for name, mod in named.items():
        if first_name[id(mod)] != name:
            continue  # a shared submodule appears once, under its first name
        params = list({id(p): p for p in mod.parameters()}.values())
        inside = name + "." if name else ""
        counted = sum(p.numel() for p in params if owner[id(p)] == name or owner[id(p)].startswith(inside))
        trainable = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
        owners = {owner[id(p)] for p in params}
        tied_to = ""
        if params and all(not (o == name or o.startswith(name + ".")) for o in owners) and name:
            tied_to = sorted(owners)[0]
        rows.append(
            ModuleFact(
                name=name,
                cls=type(mod).__name__,
                depth=0 if not name else name.count(".") + 1,
                own_params=sum(p.numel() for p in mod.parameters(recurse=False)),
                total_params=total,
                trainable_params=trainable,
                frozen_params=total - trainable,
                buffers=sum(b.numel() for b in mod.buffers(recurse=False)),
                signature=_signature(mod),
                calls=calls.get(name, 0),
                output_shapes=outputs.get(name, []),
                tied_to=tied_to,
                counted_params=counted,
                moe=moe_roles.get(name, ("", 0))[0],
                experts=moe_roles.get(name, ("", 0))[1],
            )
        )
    return rows


# --- the model facts -------------------------------------------------------------------------------


def untraced(spec: Pipeline, reason: str, model: nn.Module | None = None, traced_on: str = "not built") -> ModelFacts:
    sample = spec.model.sample_input
    acct = account(model) if model is not None else {}
    return ModelFacts(
        root_class=type(model).__name__ if model is not None else "model",
        modules=module_rows(model, {}, {}) if model is not None else [],
        edges=[],
        total_params=acct.get("total_params", 0),
        trainable_params=acct.get("trainable_params", 0),
        frozen_params=acct.get("frozen_params", 0),
        tied_params=acct.get("tied_params", 0),
        buffers=acct.get("buffers", 0),
        param_bytes=acct.get("param_bytes", {}),
        input_shape=shape_str(sample.shape) if isinstance(sample, SampleInput) else "n/a",
        output_shape="n/a",
        traced_on=traced_on,
        traced=False,
        untraced_reason=reason,
    )


def model_facts(spec: Pipeline, file: Path, strict: bool = True) -> ModelFacts:
    """Build, trace, account. ``strict=False``: a model that cannot be built or traced gives facts
    that say why instead of raising (the rest of the pipeline is still documented)."""
    model: nn.Module | None = None
    traced_on = "not built"
    trace_notes: list[str] = []
    try:
        model, traced_on = modelbuild.build(spec, file)
        inputs, args = sample_inputs(spec, file)
        try:
            try:
                built = model
                tr = modeltrace.trace(built, inputs, lambda: _invoke(built, args), moe.opaque(model))
            except modeltrace.TraceFailed as on_meta:
                dtype = modeltrace.required_dtype(on_meta.error)
                if dtype is not None:
                    tr, note = _trace_cast(model, args, dtype, on_meta)
                    traced_on, trace_notes = f"{traced_on}, cast to {_dtype_name(dtype)}", [note]
                elif "meta tensors" not in str(on_meta.error):
                    raise
                else:
                    # the forward reads a tensor's value (``mask.all()``): trace a real CPU instance instead
                    model, traced_on = modelbuild.build_real(spec, file)
                    args = _real(args)
                    inputs = _named(args)
                    real = model
                    with torch.no_grad():
                        tr = modeltrace.trace(real, inputs, lambda: _invoke(real, args), moe.opaque(real))
        except modeltrace.TraceFailed as failed:
            exc = failed.error
            where = (
                f"submodule '{failed.module}' ({type(model.get_submodule(failed.module)).__name__})"
                if failed.module
                else "the model's own forward"
            )
            shapes = ", ".join(
                f"{k} {shape_str(v.shape)} {str(v.dtype).removeprefix('torch.')}" for k, v in inputs.items()
            )
            raise UserCodeError(
                f"{file}: model.sample_input: forward on {shapes} failed in {where}: {type(exc).__name__}: {exc}",
                user_traceback(exc),
            ) from None
    except SpecError:
        raise
    except TraindocError as exc:
        if strict:
            raise
        return untraced(spec, "\n".join(exc.lines()), model, traced_on)
    calls = [c for c in tr.calls.values()]
    count: dict[str, int] = {}
    outputs: dict[str, list[str]] = {}
    for c in calls:
        if not c.op:
            count[c.module] = count.get(c.module, 0) + 1
            outputs.setdefault(c.module, c.output_shapes)
    out = tr.outputs[0] if tr.outputs else None
    return ModelFacts(
        root_class=type(model).__name__,
        modules=module_rows(model, count, outputs),
        edges=[EdgeFact(src=s, dst=d, shape=shape) for (s, d), shape in tr.edges.items()],
        calls=[
            CallFact(id=c.id, module=c.module, op=c.op, parent=c.parent, output_shapes=c.output_shapes) for c in calls
        ],
        input_shape=", ".join(
            shape_str(v.shape) if k == modeltrace.INPUT else f"{k.split(':', 1)[1]} {shape_str(v.shape)}"
            for k, v in inputs.items()
        ),
        output_shape=shape_str(out.shape) if out is not None else "none",
        traced_on=traced_on,
        trace_notes=trace_notes,
        sample_mismatch=sample_mismatches(spec, file, model, inputs, tr),
        **account(model),
    )

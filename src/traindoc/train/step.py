"""The step protocol: what one training (or evaluation) step does with a model and a batch.

A :class:`TrainStep` takes the model and a batch already on the device and returns a
:class:`StepOutput` (the loss plus any scalar metrics); backward, AMP scaling, accumulation and
clipping are :class:`~traindoc.train.optim.Optimization`'s job, never the step's. ``supervised``
is the built-in step: it splits a batch into inputs and target by the spec's convention, calls the
model, and applies a built-in or user loss. ``user_step`` adapts ``optim.step(model, batch)``.
An :class:`EvalStep` returns ``{name: (sum, count)}`` so ranks can add them up before dividing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils._pytree import tree_flatten, tree_map

from ..errors import BatchError
from ..run.protocol import metric_name


@dataclass(frozen=True)
class StepOutput:
    loss: Tensor  # scalar, still attached to the graph
    samples: int
    metrics: Mapping[str, Tensor | float] = field(default_factory=dict)


class TrainStep(Protocol):
    def __call__(self, model: nn.Module, batch: Any) -> StepOutput: ...


class EvalStep(Protocol):
    def __call__(self, model: nn.Module, batch: Any) -> Mapping[str, tuple[Tensor, Tensor]]: ...


# --- batches -----------------------------------------------------------------------------------------


def _is_dataclass_instance(x: Any) -> bool:
    return dataclasses.is_dataclass(x) and not isinstance(x, type)


def to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor in a batch (tuples, lists, dicts, namedtuples, dataclasses, nested) to ``device``."""

    def leaf(x: Any) -> Any:
        if isinstance(x, Tensor):
            return x.to(device, non_blocking=non_blocking)
        if _is_dataclass_instance(x):  # pytree leaves: a dataclass, or a mapping that is not a dict
            moved = {f.name: to_device(getattr(x, f.name), device, non_blocking) for f in dataclasses.fields(x)}
            return dataclasses.replace(x, **moved)
        if isinstance(x, Mapping):  # e.g. a tokenizer's BatchEncoding (a UserDict): a plain dict is enough
            return {k: to_device(v, device, non_blocking) for k, v in x.items()}
        return x

    return tree_map(leaf, batch)


def batch_samples(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor (1 when it holds none)."""
    leaves = tree_flatten(as_mapping(batch) if _is_dataclass_instance(batch) else batch)[0]
    first = next((t for t in leaves if isinstance(t, Tensor) and t.ndim > 0), None)
    return int(first.shape[0]) if first is not None else 1


def as_mapping(batch: Any) -> Mapping[str, Any] | None:
    if isinstance(batch, Mapping):
        return batch
    if _is_dataclass_instance(batch):
        return {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    return None


def describe(batch: Any) -> str:
    """A short description of a batch for error lines: its kind and keys or length."""
    mapping = as_mapping(batch)
    if mapping is not None:
        return f"a {type(batch).__name__} with keys {sorted(map(str, mapping))}"
    if isinstance(batch, (tuple, list)):
        return f"a {type(batch).__name__} of {len(batch)} item(s)"
    if isinstance(batch, Tensor):
        return f"a single tensor of shape {tuple(batch.shape)}"
    return f"a {type(batch).__name__}"


@dataclass(frozen=True)
class Split:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    target: Any


def split(batch: Any, target: int | str | None) -> Split:
    """Inputs and target by convention: index 1 of a sequence, key 'labels' of a mapping (or ``target``)."""
    mapping = as_mapping(batch)
    if mapping is not None:
        key = "labels" if target is None else target
        if not isinstance(key, str) or key not in mapping:
            raise BatchError(
                f"batch does not fit: received {describe(batch)}; expected a key {key!r} holding the target "
                "(set data.target to the key that holds it, or use optim.loss 'model' / optim.step)"
            )
        rest = {k: v for k, v in mapping.items() if k != key}
        if len(rest) == 1:
            return Split((next(iter(rest.values())),), {}, mapping[key])
        return Split((), rest, mapping[key])
    if isinstance(batch, (tuple, list)):
        index = 1 if target is None else target
        if not isinstance(index, int) or not -len(batch) <= index < len(batch) or len(batch) < 2:
            raise BatchError(
                f"batch does not fit: received {describe(batch)}; expected (inputs, target) with the target at "
                f"index {index!r} (set data.target, or return a dict batch)"
            )
        pos = index % len(batch)
        return Split(tuple(v for i, v in enumerate(batch) if i != pos), {}, batch[pos])
    raise BatchError(
        f"batch does not fit: received {describe(batch)}; expected a tuple/list (inputs, target) or a dict "
        "with a 'labels' key (or give optim.step to handle this batch yourself)"
    )


def call_model(model: nn.Module, batch: Any) -> Any:
    """The model applied to a whole batch (for loss 'model'): keys as keyword arguments, items positionally."""
    mapping = as_mapping(batch)
    if mapping is not None:
        return model(**mapping)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


# --- losses and metrics ------------------------------------------------------------------------------


def logits_of(out: Any) -> Tensor:
    """The prediction tensor of a model output: the tensor, ``.logits``/``['logits']``, or the first item."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, Mapping) and "logits" in out:
        return out["logits"]  # type: ignore[no-any-return]
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise BatchError(f"model output does not fit: received a {type(out).__name__}; expected a tensor or logits")


def model_loss(out: Any) -> Tensor:
    """The loss a model computed itself (loss 'model'): the ``.loss`` attribute or the ``'loss'`` key."""
    loss = out.get("loss") if isinstance(out, Mapping) else getattr(out, "loss", None)
    if not isinstance(loss, Tensor):
        raise BatchError(
            f"optim.loss is 'model' but the model returned a {type(out).__name__} without a 'loss' "
            "(pass the labels in the batch so the model computes it, or choose a built-in loss)"
        )
    return loss


def class_last(logits: Tensor, target: Tensor) -> bool:
    """Sequence layout (B, T, V) against (B, T): classes in the last dimension."""
    return logits.ndim == target.ndim + 1 and tuple(logits.shape[:-1]) == tuple(target.shape)


def builtin_loss(name: str, logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    if name == "mse":
        if logits.shape != target.shape and tuple(logits.shape) == (*target.shape, 1):
            logits = logits.squeeze(-1)
        if logits.shape != target.shape:
            raise BatchError(f"mse needs matching shapes: output {tuple(logits.shape)} vs target {tuple(target.shape)}")
        return F.mse_loss(logits.float(), target.float())
    fn = F.cross_entropy if name == "cross_entropy" else F.nll_loss
    if class_last(logits, target) and logits.ndim > 2:
        return fn(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=ignore_index)
    if logits.ndim >= 2 and logits.shape[0] == target.shape[0] and logits.shape[2:] == target.shape[1:]:
        return fn(logits.float(), target, ignore_index=ignore_index)  # (B, C, ...) vs (B, ...), or soft targets
    raise BatchError(
        f"{name} does not fit: output {tuple(logits.shape)} vs target {tuple(target.shape)}; expected (B, C) vs "
        "(B,), or (B, T, V) vs (B, T)"
    )


def accuracy_sums(logits: Tensor, target: Tensor, ignore_index: int) -> dict[str, tuple[Tensor, Tensor]]:
    """Accuracy only where it is defined: classification (B, C) vs (B,), or tokens (B, T, V) vs (B, T)."""
    if torch.is_floating_point(target):
        return {}
    if logits.ndim == 2 and target.ndim == 1 and logits.shape[0] == target.shape[0]:
        hits = logits.argmax(-1) == target
        keep = target != ignore_index
        return {"accuracy": ((hits & keep).sum(), keep.sum())}
    if logits.ndim > 2 and class_last(logits, target):
        keep = target != ignore_index
        hits = (logits.argmax(-1) == target) & keep
        return {"token_accuracy": (hits.sum(), keep.sum())}
    return {}


# --- steps -------------------------------------------------------------------------------------------

LossFn = Callable[[Any, Any], Tensor]
LM = "_lm"  # internal eval key: the loss is a token-level negative log-likelihood


def supervised(loss: str | LossFn, *, target: int | str | None = None, ignore_index: int = -100) -> TrainStep:
    """The built-in step: split the batch, call the model, apply the loss."""

    def step(model: nn.Module, batch: Any) -> StepOutput:
        return StepOutput(_loss_and_output(model, batch, loss, target, ignore_index)[0], batch_samples(batch))

    return step


def _loss_and_output(
    model: nn.Module, batch: Any, loss: str | LossFn, target: int | str | None, ignore_index: int
) -> tuple[Tensor, Any, Any]:
    if loss == "model":
        out = call_model(model, batch)
        return model_loss(out), out, None
    parts = split(batch, target)
    out = model(*parts.args, **parts.kwargs)
    if isinstance(loss, str):
        return builtin_loss(loss, logits_of(out), parts.target, ignore_index), out, parts.target
    return loss(out, parts.target), out, parts.target


def supervised_eval(loss: str | LossFn, *, target: int | str | None = None, ignore_index: int = -100) -> EvalStep:
    """Loss (weighted by samples, or by counted tokens for sequences) plus accuracy where defined."""

    def evaluate(model: nn.Module, batch: Any) -> Mapping[str, tuple[Tensor, Tensor]]:
        value, out, y = _loss_and_output(model, batch, loss, target, ignore_index)
        sums: dict[str, tuple[Tensor, Tensor]] = {}
        weight = torch.tensor(float(batch_samples(batch)), device=value.device)
        one = torch.ones((), dtype=torch.float64, device=value.device)
        if isinstance(y, Tensor) and loss in ("cross_entropy", "nll"):
            logits = logits_of(out)
            if logits.ndim > 2 and class_last(logits, y):
                weight = (y != ignore_index).sum().to(torch.float64)
                sums[LM] = (one, one)  # a mean negative log-likelihood over tokens: perplexity is exp(loss)
            sums.update(accuracy_sums(logits.detach(), y, ignore_index))
        elif loss == "model":
            with contextlib.suppress(BatchError):
                logits = logits_of(out)
                if logits.ndim > 2:
                    sums[LM] = (one, one)  # a language model's own loss (its labels may be shifted inside)
                elif logits.ndim == 2 and isinstance(batch, Mapping):
                    labels = batch.get(target if isinstance(target, str) else "labels")
                    if isinstance(labels, Tensor):  # a classifier with its own loss: (B, C) logits vs (B,) labels
                        sums.update(accuracy_sums(logits.detach(), labels.to(logits.device), ignore_index))
        elif isinstance(y, Tensor) and not isinstance(loss, str):
            with contextlib.suppress(BatchError):
                sums.update(accuracy_sums(logits_of(out).detach(), y, ignore_index))
        sums["loss"] = (value.detach().double() * weight, weight.double())
        return sums

    return evaluate


def user_step(fn: Callable[[nn.Module, Any], Any]) -> TrainStep:
    """``optim.step(model, batch)`` returning a loss tensor, or a mapping with 'loss' and scalar metrics."""

    def step(model: nn.Module, batch: Any) -> StepOutput:
        result = fn(model, batch)
        if isinstance(result, Tensor):
            return StepOutput(result, batch_samples(batch))
        if isinstance(result, Mapping) and isinstance(result.get("loss"), Tensor):
            metrics = {metric_name(k, "optim.step"): v for k, v in result.items() if k != "loss"}
            for k, v in metrics.items():
                if not isinstance(v, (int, float)) and not (isinstance(v, Tensor) and v.numel() == 1):
                    raise BatchError(f"optim.step returned metric {k!r} as a {type(v).__name__}; expected a scalar")
            return StepOutput(result["loss"], batch_samples(batch), metrics)
        raise BatchError(
            f"optim.step returned a {type(result).__name__}; expected a loss tensor or a mapping with a 'loss' tensor"
        )

    return step

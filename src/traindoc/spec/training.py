"""What a pipeline trains: model, data, optimizer, training budget, checkpoints, distribution."""

from __future__ import annotations

import ipaddress
import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
)

from .types import (
    _HOST_RE,
    _RDZV_ID_RE,
    Factory,
    Text,
    _full,
    _Model,
)


class SampleInput(_Model):
    """One input batch's shape and dtype, used to trace the model (on the meta device)."""

    shape: list[int] = Field(min_length=1, description="Shape including the batch dimension, e.g. [1, 1, 8, 8].")
    dtype: Literal["float32", "float16", "bfloat16", "float64", "int64", "int32"] = Field(
        "float32", description="Tensor dtype of the sample input."
    )

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(d <= 0 for d in v):
            raise ValueError(f"every dimension must be >= 1, got {v}")
        return v


class ModelSpec(_Model):
    """The model."""

    factory: Factory = Field(description="Zero-argument callable returning an nn.Module (or 'module:attr').")
    sample_input: SampleInput | dict[str, SampleInput] | list[SampleInput] | Literal["from_data"] = Field(
        description=(
            "Sample input for tracing shapes: one shape/dtype (called as model(x)), a dict of them (called "
            "as model(**inputs), e.g. input_ids and attention_mask), a list (model(*inputs)), or "
            "'from_data' (the shapes and dtypes of the first training sample as a batch of one, labels left out)."
        )
    )


class DataSpec(_Model):
    """Datasets and how they are loaded."""

    train: Factory = Field(description="Zero-argument callable returning the training Dataset.")
    val: Factory | None = Field(None, description="Zero-argument callable returning the validation Dataset.")
    batch_size: int = Field(gt=0, description="Per-rank batch size.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    shuffle: bool = Field(True, description="Shuffle training data each epoch.")
    pin_memory: bool = Field(True, description="Pin host memory for faster host-to-device copies (CUDA).")
    drop_last: bool = Field(False, description="Drop the last incomplete batch.")
    sampler: Literal["auto", "random", "sequential"] | Factory = Field(
        "auto",
        description="'auto' = DistributedSampler under DDP (each rank its shard), else random/sequential by `shuffle`; "
        "'random'/'sequential' never shard (every rank sees all data); or a callable "
        "`sampler(dataset, rank, world, seed) -> Sampler` that shards itself (it is given this rank and the world "
        "size; `set_epoch(epoch)` is called each epoch when it has one). Indices, never code, are read from it.",
    )
    collate_fn: Factory | None = Field(
        None,
        description="Callable `collate_fn(list_of_samples) -> batch` (or 'module:attr') for the DataLoader; "
        "None = torch's default collate. A custom collate turns off device-resident data.",
    )
    target: int | str | None = Field(
        None,
        description="Where the target is in a batch: an index for tuple/list batches, a key for dict batches. "
        "None = index 1 for sequences, key 'labels' for mappings. The other items are the model's inputs "
        "(keyword arguments for a dict, positional when exactly one remains).",
    )
    device_resident: Literal["auto", "never"] = Field(
        "auto",
        description="'auto' keeps a tensor dataset on the device when it fits (no DataLoader); "
        "'never' always uses a DataLoader.",
    )


class OptimSpec(_Model):
    """Optimisation."""

    optimizer: Factory = Field(description="Callable taking the model's parameters, returning an Optimizer.")
    loss: Literal["cross_entropy", "mse", "nll", "model"] | Factory = Field(
        "cross_entropy",
        description="Loss: 'cross_entropy'/'nll' ((B, C) vs (B,), or sequences (B, T, V) vs (B, T) with "
        "`ignore_index`), 'mse' (any matching shape), 'model' (the model computes it: the output's `.loss` "
        "attribute or 'loss' key; the whole batch, target included, goes to the model), or a callable "
        "(output, target) -> loss tensor.",
    )
    ignore_index: int = Field(
        -100, description="Target value the built-in cross_entropy/nll losses and token accuracy ignore (padding)."
    )
    accumulate: int = Field(1, ge=1, description="Gradient accumulation: batches per optimizer step.")
    step: Factory | None = Field(
        None,
        description="Your own training step `step(model, batch) -> loss` (a tensor) or a mapping holding "
        "'loss' plus scalar metrics to record. traindoc still does backward, AMP, clipping, accumulation, "
        "DDP, checkpoints and budgets around it. None = the built-in supervised step.",
    )
    evaluate: Factory | None = Field(
        None,
        description="Your own evaluation `evaluate(model, val_loader) -> {name: float}`, run on rank 0 over the "
        "whole validation set; names are recorded with a 'val_' prefix. None = built-in loss/accuracy.",
    )
    scheduler: Factory | None = Field(
        None, description="Callable taking the optimizer, returning an LR scheduler (stepped per step)."
    )
    amp: Literal["bf16", "fp16"] | None = Field(None, description="Autocast dtype on CUDA; None = full precision.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the gradient norm to this value.")
    seed: int | None = Field(None, ge=0, description="Seed for torch, numpy and random; None = not seeded.")


class DocsRun(_Model):
    """The small budget the docs build trains with."""

    max_steps: int = Field(200, gt=0, description="Stop after this many optimizer steps.")
    max_seconds: float = Field(120.0, gt=0, description="Stop (cleanly, after a step) after this many seconds.")


class Training(_Model):
    """How long to train."""

    epochs: int = Field(1, gt=0, description="Training epochs.")
    max_steps: int | None = Field(
        None, gt=0, description="Stop after this many steps (across epochs); None = all epochs."
    )
    log_every: int = Field(10, gt=0, description="Flush metrics (and check for NaN/Inf) every N steps.")
    timeout_s: float = Field(1800.0, gt=0, description="Hard timeout: the whole process group is killed after it.")
    docs_run: DocsRun = Field(
        default_factory=DocsRun, description="Budget used by `traindoc run --docs` and the docs build."
    )
    script: str | None = Field(
        None,
        description="Bring your own script: a `train.py` (path relative to the pipeline file) that traindoc "
        "runs instead of its own loop, as one process or under torchrun, with the same timeout and kill. It "
        "reports through `traindoc.log()`, `traindoc.checkpoint_dir()` and `traindoc.should_stop()`.",
    )
    script_args: list[str] = Field(default_factory=list, description="Command-line arguments for `script`.")

    @field_validator("script")
    @classmethod
    def _script(cls, v: str | None) -> str | None:
        if v is not None and (not v.endswith(".py") or PurePosixPath(v).is_absolute() or "\x00" in v):
            raise ValueError(f"must be a relative path to a .py file, got {v!r}")
        return v


class Checkpoint(_Model):
    """Checkpoints."""

    dir: Text = Field(description="Absolute directory (container path) for checkpoints, e.g. '/checkpoints'.")
    format: Literal[".pt", ".pth"] = Field(".pt", description="File extension of checkpoint files.")
    every_steps: int = Field(100, gt=0, description="Write a checkpoint every N steps (and at the end).")
    keep_last: int = Field(3, ge=1, description="Keep the N newest checkpoints, delete older ones.")
    resume: bool = Field(False, description="Resume from the newest checkpoint when one exists.")

    @field_validator("dir")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"must be an absolute container path such as '/checkpoints', got {v!r}")
        return str(PurePosixPath(v))


class Distributed(_Model):
    """Distributed data parallel (DDP) set-up; launched with torchrun."""

    backend: Literal["auto", "nccl", "gloo"] = Field("auto", description="'auto' = nccl on CUDA, gloo on CPU.")
    nnodes: int = Field(1, ge=1, description="Number of machines.")
    nproc_per_node: int | Literal["auto"] = Field(
        1, description="Ranks per machine; 'auto' = number of visible GPUs (1 on CPU)."
    )
    rdzv_endpoint: Text = Field("127.0.0.1:29500", description="c10d rendezvous endpoint 'host:port' (multi-node).")
    rdzv_id: Annotated[Text, _full(_RDZV_ID_RE, "letters, digits, '_', '.', '-'")] = Field(
        "traindoc", description="Rendezvous job id."
    )

    @field_validator("nproc_per_node")
    @classmethod
    def _nproc(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be >= 1 or 'auto'")
        return v

    @field_validator("rdzv_endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
            raise ValueError(f"must be 'host:port', got {v!r}")
        if host.startswith("[") and host.endswith("]"):
            ipaddress.IPv6Address(host[1:-1])
        elif not _HOST_RE.fullmatch(host) or len(host) > 253:
            raise ValueError(f"host must be a host name or an IP address, got {host!r}")
        return v

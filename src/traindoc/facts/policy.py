"""Rules the docs and the run must agree on, in one place. Pure; no torch.

Introspection (the facts the docs show) and the training process (what really runs) both call these:
how the training set is sharded, how many optimizer steps an epoch has, what budget a run trains
with, whether a dataset is kept on the device, and whether this machine has a GPU for every rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import DevicesUnavailable, Problem

RESIDENT_FRACTION = 0.25  # keep a tensor dataset on the GPU when it takes at most this share of its memory
CPU_RESIDENT_LIMIT = 2 << 30  # ... and on the CPU (no DataLoader) up to this many bytes


@dataclass(frozen=True)
class Sharding:
    """How one epoch's training samples are spread over the ranks."""

    sampler: str  # what the docs call it: DistributedSampler, RandomSampler, SequentialSampler, or yours
    shards: int  # 1 = every rank sees the whole set
    shuffle: bool


def sharding(sampler: str, shuffle: bool, world: int, custom: str | None = None) -> Sharding:
    """``data.sampler`` under a world size. A custom sampler is given (rank, world) and shards itself."""
    if custom is not None:
        return Sharding(custom, world, shuffle)
    if sampler == "auto":
        if world > 1:
            return Sharding("DistributedSampler", world, shuffle)
        return Sharding("RandomSampler" if shuffle else "SequentialSampler", 1, shuffle)
    return Sharding("RandomSampler" if sampler == "random" else "SequentialSampler", 1, sampler == "random")


def items_per_rank(n: int, shards: int) -> int:
    """DistributedSampler's count: the set is padded to a multiple of the shard count."""
    return math.ceil(n / shards)


def batches_per_epoch(items: int, batch_size: int, drop_last: bool) -> int:
    return items // batch_size if drop_last else math.ceil(items / batch_size)


def steps_per_epoch(batches: int, accumulate: int = 1) -> int:
    """Optimizer steps per epoch: a step every ``accumulate`` batches, and one for a partial group at the end."""
    return math.ceil(batches / accumulate)


def epoch_steps(n: int, batch_size: int, drop_last: bool, shards: int, accumulate: int = 1) -> int:
    """Steps per epoch of a dataset of ``n`` samples (sampler given by ``shards``)."""
    return steps_per_epoch(batches_per_epoch(items_per_rank(n, shards), batch_size, drop_last), accumulate)


@dataclass(frozen=True)
class Budget:
    """How long a run trains: a step cap (None = all epochs) and a clean time stop (None = none)."""

    max_steps: int | None
    max_seconds: float | None

    def limit(self, per_epoch: int, epochs: int) -> int:
        """The step count the run stops at, given the epoch length."""
        total = per_epoch * epochs
        return min(total, self.max_steps) if self.max_steps else total


def budget(
    *,
    docs: bool,
    max_steps: int | None,
    docs_max_steps: int,
    docs_max_seconds: float,
    override_steps: int | None = None,
    override_seconds: float | None = None,
) -> Budget:
    """The docs budget (``training.docs_run``) or the full run (``training.max_steps``), then overrides."""
    steps, seconds = (docs_max_steps, docs_max_seconds) if docs else (max_steps, None)
    if override_steps is not None:
        steps = override_steps
    if override_seconds is not None:
        seconds = override_seconds
    return Budget(steps, seconds)


def resident_ok(nbytes: int | None, device: str, gpu_memory_bytes: int | None, policy: str, collate: bool) -> bool:
    """Keep the training set on the device (no DataLoader): a tensor dataset that fits, no custom collate."""
    if nbytes is None or policy == "never" or collate:
        return False
    if device == "cuda" and gpu_memory_bytes:
        return nbytes <= RESIDENT_FRACTION * gpu_memory_bytes
    return nbytes <= CPU_RESIDENT_LIMIT


def check_ranks_fit(nproc: int, device: str, gpu_count: int, source: str = "pipeline spec") -> None:
    """DDP on CUDA gives each local rank its own GPU (``cuda:LOCAL_RANK``): more ranks than GPUs would fail
    inside the launched ranks with an invalid-device error. Refused before anything starts, naming the fix.
    On the CPU any number of gloo ranks share the cores."""
    if device == "cuda" and nproc > gpu_count:
        raise DevicesUnavailable(
            [
                Problem(
                    file=source,
                    field="distributed.nproc_per_node",
                    message=f"{nproc} ranks need {nproc} CUDA GPUs (one each) and this machine has {gpu_count}; "
                    f"run with --nproc {max(1, gpu_count)} (plugin option nproc) or set nproc_per_node: auto",
                )
            ]
        )

"""Batches for each epoch, deterministic so a resumed run continues exactly where it stopped.

``epoch_order`` gives this rank's sample order as DistributedSampler would (or a user sampler's
order for that epoch); ``batches`` cuts it. A :class:`BatchSource` yields the epoch's batches on
the device, either from a device-resident tensor dataset (no DataLoader, one index copy per epoch)
or through a DataLoader with the spec's ``collate_fn``. Sharding and epoch length come from
:mod:`traindoc.facts.policy`, the same rules the docs are written from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..facts import policy
from .step import to_device


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool, rank: int, world: int) -> list[int]:
    """This rank's sample order for an epoch, as DistributedSampler would give it (deterministic)."""
    if shuffle:
        g = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    if world > 1:
        total = math.ceil(n / world) * world
        pad = total - n  # repeated from the start like DistributedSampler (even when the set is tiny)
        order = (order + (order * math.ceil(pad / n))[:pad])[rank:total:world]
    return order


def batches(order: list[int], batch: int, drop_last: bool) -> list[list[int]]:
    out = [order[i : i + batch] for i in range(0, len(order), batch)]
    if drop_last and out and len(out[-1]) < batch:
        out.pop()
    return out


def tensor_bytes(dataset: Any) -> int | None:
    """Bytes of a TensorDataset-like dataset (``.tensors``), else None."""
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple) and tensors and all(isinstance(t, torch.Tensor) for t in tensors):
        return int(sum(t.numel() * t.element_size() for t in tensors))
    return None


class BatchSource:
    """One rank's training batches, epoch by epoch."""

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        batch_size: int,
        device: torch.device,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        shards: int = 1,
        rank: int = 0,
        sampler: Any = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        resident: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        accumulate: int = 1,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = device
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.shards = shards
        self.rank = rank
        self.sampler = sampler
        self.collate_fn = collate_fn
        self.num_workers = num_workers
        self.pin_memory = pin_memory and device.type == "cuda"
        self.accumulate = accumulate
        self.tensors: tuple[torch.Tensor, ...] | None = None
        if resident:
            self.tensors = tuple(t.to(device) for t in dataset.tensors)  # type: ignore[attr-defined]

    @property
    def resident(self) -> bool:
        return self.tensors is not None

    def order(self, epoch: int) -> list[int]:
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            return [int(i) for i in self.sampler]
        n = len(self.dataset)  # type: ignore[arg-type]
        return epoch_order(n, epoch, self.seed, self.shuffle, self.rank, self.shards)

    def batches_per_epoch(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)  # type: ignore[arg-type]
        items = n if self.sampler is not None else policy.items_per_rank(n, self.shards)
        return policy.batches_per_epoch(items, self.batch_size, self.drop_last)

    def steps_per_epoch(self) -> int:
        return policy.steps_per_epoch(self.batches_per_epoch(), self.accumulate)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Any]:
        """The epoch's batches on the device, skipping the first ``skip`` (a resumed run)."""
        chunks = batches(self.order(epoch), self.batch_size, self.drop_last)[skip:]
        if self.tensors is not None:
            flat = torch.tensor([i for c in chunks for i in c], device=self.device)  # one copy per epoch
            start = 0
            for chunk in chunks:
                idx = flat[start : start + len(chunk)]
                start += len(chunk)
                yield tuple(t.index_select(0, idx) for t in self.tensors)
            return
        loader = DataLoader(
            self.dataset,
            batch_sampler=chunks,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=self.collate_fn,
        )
        for batch in loader:
            yield to_device(batch, self.device, self.pin_memory)


def val_loader(
    dataset: Dataset[Any], *, batch_size: int, rank: int, world: int, collate_fn: Any = None, num_workers: int = 0
) -> DataLoader[Any]:
    """Validation batches: this rank's share (every ``world``-th sample), in order. ``world=1`` = all."""
    n = len(dataset)  # type: ignore[arg-type]
    return DataLoader(
        dataset,
        batch_sampler=batches(list(range(rank, n, world)), batch_size, False),
        collate_fn=collate_fn,
        num_workers=num_workers,
    )

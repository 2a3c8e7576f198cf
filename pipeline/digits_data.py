"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download) as tensor datasets."""

from __future__ import annotations

from functools import cache

import torch
from torch.utils.data import TensorDataset

VAL_FRACTION = 0.2
SPLIT_SEED = 0


@cache
def _tensors() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(digits.target, dtype=torch.long)
    return x, y


def _split() -> tuple[torch.Tensor, torch.Tensor]:
    x, _ = _tensors()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = int(len(x) * VAL_FRACTION)
    return order[n_val:], order[:n_val]


def train_set() -> TensorDataset:
    x, y = _tensors()
    idx, _ = _split()
    return TensorDataset(x[idx], y[idx])


def val_set() -> TensorDataset:
    x, y = _tensors()
    _, idx = _split()
    return TensorDataset(x[idx], y[idx])

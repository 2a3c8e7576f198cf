"""Two interleaved spirals (a classic that a straight line cannot separate) and a small MLP for them.

Shared by the team's own ``train.py`` and by the pipeline spec, which only describes them for the docs.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import TensorDataset


def spirals(n: int, seed: int, noise: float = 0.15) -> TensorDataset:
    """``n`` points ``(x, y)`` on two spirals (labels 0 and 1), with Gaussian noise; deterministic per seed."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 2, (n,), generator=g)
    t = torch.rand(n, generator=g) * 2 * math.pi + 0.5
    angle = t + label * math.pi
    points = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1) / (2 * math.pi)
    points = points + noise / (2 * math.pi) * torch.randn(n, 2, generator=g)
    return TensorDataset(points.float(), label)


def train_set() -> TensorDataset:
    return spirals(2048, seed=0)


def val_set() -> TensorDataset:
    return spirals(512, seed=1)


class SpiralNet(nn.Module):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(2, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out

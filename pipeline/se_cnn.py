"""A small CNN with squeeze-and-excitation channel attention for 8x8 digit images."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Channel attention: global-average-pool, bottleneck MLP, sigmoid gate per channel."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, max(1, channels // reduction))
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(max(1, channels // reduction), channels)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.pool(x).flatten(1)
        w = self.gate(self.fc2(self.act(self.fc1(w))))
        return x * w[:, :, None, None]


class ConvBlock(nn.Module):
    """Conv -> BatchNorm -> ReLU -> squeeze-and-excitation (or nothing, for the comparison baseline)."""

    def __init__(self, c_in: int, c_out: int, se: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()
        if se:
            self.se = SqueezeExcite(c_out)
        self.use_se = se

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn(self.conv(x)))
        return self.se(y) if self.use_se else y


class SECNN(nn.Module):
    """Two SE conv blocks with pooling, then a linear classifier over 10 digits."""

    def __init__(self, width: int = 32, classes: int = 10, se: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(
            ConvBlock(1, width, se),
            nn.MaxPool2d(2),
            ConvBlock(width, 2 * width, se),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(2 * width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

"""Encoder–decoders and look-alikes for the U layout (render/model/ushape.py), written the way people
write them: upsampling by ``F.interpolate`` (no module to draw), folded runs on both sides, and a
transformer residual inside a convolution's residual (a three-dim token tensor, not a smaller image)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU()
    )


class UNetInterp(nn.Module):
    """The zoo UNet upsampling with ``F.interpolate`` and a 1×1 conv: the tensor meeting each skip is
    drawn at its size before the interpolation."""

    def __init__(self) -> None:
        super().__init__()
        self.down1, self.down2, self.pool = double_conv(1, 8), double_conv(8, 16), nn.MaxPool2d(2)
        self.bottom = double_conv(16, 32)
        self.red2, self.dec2 = nn.Conv2d(32, 16, 1), double_conv(32, 16)
        self.red1, self.dec1 = nn.Conv2d(16, 8, 1), double_conv(16, 8)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(self.pool(d1))
        b = self.bottom(self.pool(d2))
        u2 = self.dec2(torch.cat([F.interpolate(self.red2(b), scale_factor=2), d2], 1))
        u1 = self.dec1(torch.cat([F.interpolate(self.red1(u2), scale_factor=2), d1], 1))
        return self.out(u1)


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.relu(self.c1(x)))


class Level(nn.Module):
    def __init__(self, c_in: int, c: int) -> None:
        super().__init__()
        self.proj, self.blocks = nn.Conv2d(c_in, c, 1), nn.Sequential(ResBlock(c), ResBlock(c), ResBlock(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.proj(x))


class UNetFolded(nn.Module):
    """Three levels of three identical residual blocks: folded runs and nested subgraphs on both sides,
    so a rising level's title sits above its *last* child."""

    def __init__(self) -> None:
        super().__init__()
        ch = [8, 16, 32]
        self.enc = nn.ModuleList([Level(1 if i == 0 else ch[i - 1], c) for i, c in enumerate(ch)])
        self.pool, self.mid = nn.MaxPool2d(2), Level(32, 64)
        self.ups = nn.ModuleList([nn.ConvTranspose2d(2 * c, c, 2, stride=2) for c in ch])
        self.dec = nn.ModuleList([Level(2 * c, c) for c in ch])
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
            x = self.pool(x)
        x = self.mid(x)
        for i in reversed(range(3)):
            x = self.dec[i](torch.cat([self.ups[i](x), skips[i]], 1))
        return self.out(x)


class TokenMixerInConvResidual(nn.Module):
    """A convolution residual around two transformer residuals on tokens (1×HW×C): no encoder, no
    decoder, though ``1×256×16`` inside ``1×16×16×16`` looks like a smaller size."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.ln1, self.mix, self.ln2, self.mlp = nn.LayerNorm(c), nn.Linear(c, c), nn.LayerNorm(c), nn.Linear(c, c)
        self.conv, self.head = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        t = s.flatten(2).transpose(1, 2)
        t = t + self.mix(self.ln1(t))
        t = t + self.mlp(self.ln2(t))
        y = self.conv(t.transpose(1, 2).reshape(s.shape))
        return self.head(y + s)

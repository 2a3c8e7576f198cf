"""Architectures written here (no downloads, no torchvision) to exercise introspection and diagrams."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from zoo_hf import (
    albert,
    bert,
    dpt,
    gpt2,
    gpt2_2,
    gpt2_8,
    hf_resnet,
    llama,
    mixtral,
    swin2sr,
    t5,
    upernet,
    vit,
    wav2vec2_layerdrop,
)
from zoo_u import TokenMixerInConvResidual, UNetFolded, UNetInterp, double_conv


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.down(x) if self.down is not None else x))


class ResNetish(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), blocks: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers = []
        c = widths[0]
        for i, w in enumerate(widths):
            layers.append(
                nn.Sequential(
                    *[BasicBlock(c if j == 0 else w, w, 2 if (j == 0 and i > 0) else 1) for j in range(blocks)]
                )
            )
            c = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


class TransformerClassifier(nn.Module):
    def __init__(self, vocab: int = 1000, d: int = 64, layers: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=4 * d, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(1))


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d)
        self.act = nn.GELU()
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = MLP(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2 layout with the output head tied to the token embedding."""

    def __init__(self, vocab: int = 50257, ctx: int = 1024, d: int = 1600, layers: int = 48, heads: int = 25) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def gpt2_xl() -> GPT:
    return GPT()


def gpt_small() -> GPT:
    return GPT(vocab=512, ctx=64, d=64, layers=4, heads=4)


GPT2_XL_PARAMS = 50257 * 1600 + 1024 * 1600 + 48 * (12 * 1600 * 1600 + 13 * 1600) + 2 * 1600


class LSTMTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(500, 32)
        self.lstm = nn.LSTM(32, 64, num_layers=2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(128, 9)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        seq, _ = self.lstm(self.embed(tokens))
        return self.out(seq)


class UNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down1 = double_conv(1, 8)
        self.down2 = double_conv(8, 16)
        self.pool = nn.MaxPool2d(2)
        self.bottom = double_conv(16, 32)
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec2 = double_conv(32, 16)
        self.up1 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec1 = double_conv(16, 8)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(self.pool(d1))
        b = self.bottom(self.pool(d2))
        u2 = self.dec2(torch.cat([self.up2(b), d2], dim=1))
        u1 = self.dec1(torch.cat([self.up1(u2), d1], dim=1))
        return self.out(u1)


class SharedTwice(nn.Module):
    """One projection module applied at two places (its weights exist once)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 32)
        self.shared = nn.Sequential(nn.Linear(32, 32), nn.Tanh())
        self.mid = nn.Linear(32, 32)
        self.out = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shared(self.inp(x))
        x = self.shared(self.mid(x))
        return self.out(x)


class Deep(nn.Module):
    """240 identical residual MLP blocks."""

    def __init__(self, n: int = 240, d: int = 32) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(d, d), nn.ReLU()) for _ in range(n)])
        self.head = nn.Linear(d, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


class Wide(nn.Module):
    """600 different-width layers in a row: nothing folds, so the diagram must cap nodes per level."""

    def __init__(self) -> None:
        super().__init__()
        dims = [8 + (i % 7) for i in range(601)]
        self.layers = nn.Sequential(*[nn.Linear(dims[i], dims[i + 1]) for i in range(600)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Flat(nn.Module):
    """600 different layers directly on the root: no folding, no depth to cut, so levels are capped."""

    def __init__(self) -> None:
        super().__init__()
        dims = [8 + (i % 7) for i in range(601)]
        for i in range(600):
            self.add_module(f"l{i}", nn.Linear(dims[i], dims[i + 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x


class GRULM(nn.Module):
    """One dropout module applied twice (before and after the GRU): two calls, never a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.drop = nn.Dropout(0.1)
        self.gru = nn.GRU(16, 32, batch_first=True)
        self.head = nn.Linear(32, 100)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        seq, _ = self.gru(self.drop(self.embed(tokens)))
        return self.head(self.drop(seq))


class Expert(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.up = nn.Linear(d, 2 * d)
        self.down = nn.Linear(2 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.up(x)))


class MoELayer(nn.Module):
    """A router and E experts (dense on meta: every expert sees every token, weighted by the router)."""

    def __init__(self, d: int, experts: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.router = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList([Expert(d) for _ in range(experts)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        w = self.router(h).softmax(-1)
        out = sum(w[..., i : i + 1] * e(h) for i, e in enumerate(self.experts))
        return x + out


class MoE(nn.Module):
    def __init__(self, d: int = 32, layers: int = 3, experts: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, d)
        self.layers = nn.ModuleList([MoELayer(d, experts) for _ in range(layers)])
        self.head = nn.Linear(d, 100)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class ConvMix(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.conv = nn.Conv1d(d, d, 3, padding=1, groups=d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.norm(x).transpose(1, 2)).transpose(1, 2)


class Hybrid(nn.Module):
    """Interleaved layer kinds (attention, conv, conv) × 4, like hybrid SSM/attention stacks."""

    def __init__(self, d: int = 32, repeats: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, d)
        kinds: list[nn.Module] = []
        for _ in range(repeats):
            kinds += [Block(d, 4), ConvMix(d), ConvMix(d)]
        self.layers = nn.ModuleList(kinds)
        self.head = nn.Linear(d, 100)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class LinspaceInInit(nn.Module):
    """Reads a value back while building (``.item()``), which the meta device cannot do."""

    def __init__(self, d: int = 4096, layers: int = 32) -> None:
        super().__init__()
        rates = [float(torch.linspace(0, 0.1, layers)[i].item()) for i in range(layers)]
        self.layers = nn.Sequential(*[nn.Sequential(nn.Linear(d, d), nn.Dropout(r)) for r in rates])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def seven_b_shape() -> LinspaceInInit:
    return LinspaceInInit(d=4096, layers=32 * 12)  # ~6.4B parameters: 25 GB if ever built for real


class MetaRefusing(nn.Module):
    """A kernel that refuses meta tensors (as some MoE kernels do)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = torch.nonzero(self.proj(x) > 0)  # data-dependent: fails on meta
        return x[top[:, 0]]


class NeedsBF16ThenRefuses(nn.Module):
    """Demands bfloat16 like a fused mixture-of-experts kernel, then refuses meta anyway (data-dependent
    indexing): the bfloat16 retry fails too, so the model stays untraced with its first reason."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.bfloat16:
            raise RuntimeError(f"Expected inputs of BF16 type but got x.dtype={x.dtype}.")
        return x[torch.nonzero(self.proj(x) > 0)[:, 0]]


class StackedExperts(nn.Module):
    """E experts as stacked weights in one module (no list of modules), dense on every token."""

    def __init__(self, d: int, experts: int) -> None:
        super().__init__()
        self.up = nn.Parameter(torch.zeros(experts, d, 2 * d))
        self.down = nn.Parameter(torch.zeros(experts, 2 * d, d))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        h = F.silu(torch.einsum("btd,edh->bteh", x, self.up))
        return torch.einsum("bteh,ehd,bte->btd", h, self.down, weights)


class StackedMoE(nn.Module):
    """Hand-written fused experts (no transformers, no name of its own kind): drawn × E all the same."""

    def __init__(self, d: int = 16, experts: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, d)
        self.router = nn.Linear(d, experts, bias=False)
        self.experts = StackedExperts(d, experts)
        self.head = nn.Linear(d, 100)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        return self.head(x + self.experts(x, self.router(x).softmax(-1)))


def _one(shape: list[int], dtype: str = "float32") -> dict[str, Any]:
    return {"shape": shape, "dtype": dtype}


TOKENS = _one([1, 16], "int64")
# models nobody here wrote: transformers, from small configs, on meta, no downloads (tests/zoo_hf.py)
ZOO: dict[str, tuple[Any, Any]] = {
    "resnet": (ResNetish, _one([1, 3, 32, 32])),
    "transformer": (TransformerClassifier, TOKENS),
    "gpt_tied": (gpt_small, TOKENS),
    "lstm": (LSTMTagger, _one([1, 12], "int64")),
    "unet": (UNet, _one([1, 1, 32, 32])),
    "shared": (SharedTwice, _one([1, 16])),
    "gpt2_xl": (gpt2_xl, _one([1, 32], "int64")),
    "deep240": (Deep, _one([1, 32])),
    "wide600": (Wide, _one([1, 8])),
    "flat600": (Flat, _one([1, 8])),
    "gru_lm": (GRULM, TOKENS),
    "moe": (MoE, TOKENS),
    "hybrid": (Hybrid, TOKENS),
    "bert": (bert, TOKENS),
    "gpt2": (gpt2, TOKENS),
    "llama": (llama, TOKENS),
    "t5": (t5, {"input_ids": TOKENS, "decoder_input_ids": _one([1, 8], "int64")}),
    "vit": (vit, _one([1, 3, 32, 32])),
    "hf_resnet": (hf_resnet, _one([1, 3, 64, 64])),
    "albert": (albert, TOKENS),
    "mixtral": (mixtral, TOKENS),
    "dpt": (dpt, _one([1, 3, 32, 32])),
    "upernet": (upernet, _one([2, 3, 64, 64])),  # batch 2: its pyramid pooling batch-norms a 1×1 map
}
# models drawn in the readability tests (feed-forward, no cycles allowed)
OUTSIDE = ("bert", "gpt2", "llama", "t5", "vit", "hf_resnet", "albert", "mixtral", "dpt", "upernet")
EXTRA: dict[str, tuple[Any, Any]] = {
    "gpt2_2": (gpt2_2, TOKENS),
    "gpt2_8": (gpt2_8, TOKENS),
    "seven_b": (seven_b_shape, _one([1, 4096])),
    "meta_refusing": (MetaRefusing, _one([1, 8])),
    "bf16_then_refusing": (NeedsBF16ThenRefuses, _one([1, 8])),
    "stacked_moe": (StackedMoE, TOKENS),
    "unet_interp": (UNetInterp, _one([1, 1, 32, 32])),
    "unet_folded": (UNetFolded, _one([1, 1, 32, 32])),
    "tokres": (TokenMixerInConvResidual, _one([1, 3, 16, 16])),
    "swin2sr": (swin2sr, _one([1, 3, 16, 16])),
    "wav2vec2_layerdrop": (wav2vec2_layerdrop, _one([1, 1600])),
}


def spec_for(name: str) -> Any:
    from traindoc.spec import Pipeline

    factory, sample = {**ZOO, **EXTRA}[name]
    return Pipeline(
        name=name,
        environment={"image": "img:1", "user": "1000", "volumes": [{"host": "./c", "container": "/c"}]},
        devices="cpu",
        model={"factory": factory, "sample_input": sample},
        data={"train": small_data, "batch_size": 4},
        optim={"optimizer": "torch.optim:SGD", "seed": 0},
        checkpoint={"dir": "/c"},
    )


@cache
def facts_for(name: str) -> Any:
    """Facts for a zoo model through the real spec and introspection (once per test session: facts are frozen)."""
    from traindoc.facts.introspect import facts

    return facts(spec_for(name), Path(__file__))


def small_data() -> torch.utils.data.TensorDataset:
    return torch.utils.data.TensorDataset(torch.zeros(8, 4), torch.zeros(8, dtype=torch.long))

"""The second example: a tiny character-level GPT trained on Python's own standard library.

Real language-model training, written the way people write it: dataset items are token windows, a
``collate_fn`` turns them into ``{"input_ids", "labels"}`` dict batches, the model returns
``(B, T, vocab)`` logits scored by sequence cross-entropy, the learning rate warms up then follows a
cosine, and validation reports token accuracy and perplexity. A ``samples`` hook generates a few short
texts after training, so the docs show what the model writes, not only numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from charlm_data import CONTEXT, VOCAB, collate, decode, encode, train_set, val_set
from charlm_model import TinyGPT

from traindoc.spec import Pipeline

DOCS_STEPS = 250
WARMUP_STEPS = 20
MIN_LR_FRACTION = 0.1
PROMPTS = ("def ", "class ", "    return ")


def model() -> torch.nn.Module:
    if not torch.cuda.is_available():
        # A model this small is faster on one CPU thread: two threads spend their time waiting on each
        # other (measured: 6x slower on a busy 2-core machine). torchrun already sets one per rank.
        torch.set_num_threads(1)
    return TinyGPT(vocab=len(VOCAB), context=CONTEXT, dim=48, heads=4, layers=2)


def optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=6e-3, betas=(0.9, 0.95), weight_decay=0.01)


def lr_factor(step: int) -> float:
    """Linear warm-up, then a cosine down to 10 % at the end of the docs budget, then flat."""
    if step < WARMUP_STEPS:
        return (step + 1) / WARMUP_STEPS
    progress = min(1.0, (step - WARMUP_STEPS) / (DOCS_STEPS - WARMUP_STEPS))
    return MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))


def schedule(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)


def samples(net: torch.nn.Module) -> list[str]:
    """Three short continuations (temperature 0.6, a fixed seed: the same model writes the same text)."""
    assert isinstance(net, TinyGPT)
    device = next(net.parameters()).device
    generator = torch.Generator().manual_seed(0)
    was_training = net.training
    net.eval()
    try:
        out = []
        for prompt in PROMPTS:
            ids = net.generate(encode(prompt).unsqueeze(0).to(device), 60, 0.6, generator)
            out.append(decode(ids[0].cpu()))
        return out
    finally:
        net.train(was_training)


pipeline = Pipeline(
    name="charlm",
    description=(
        "A two-block character-level GPT (tied embedding and head) learns to write Python from the "
        "standard library's own source, read from the running interpreter: no download. Dict batches "
        "from a collate_fn, sequence cross-entropy, warm-up and cosine schedule; validation reports "
        "token accuracy and perplexity, and the model writes a few samples after training."
    ),
    environment={
        "image": "pytorch/pytorch:2.13.0-cpu",
        "user": "1000:1000",
        "volumes": [{"host": "./checkpoints", "container": "/checkpoints"}, {"host": ".", "container": "/workspace"}],
    },
    devices="auto",
    model={"factory": model, "sample_input": {"shape": [1, CONTEXT], "dtype": "int64"}},
    data={"train": train_set, "val": val_set, "batch_size": 32, "collate_fn": collate, "num_workers": 0},
    optim={
        "optimizer": optimizer,
        "loss": "cross_entropy",
        "scheduler": schedule,
        "grad_clip": 1.0,
        "seed": 0,
    },
    training={
        "epochs": 10,
        "log_every": 25,
        "docs_run": {"max_steps": DOCS_STEPS, "max_seconds": 120},
    },
    checkpoint={"dir": "/checkpoints", "every_steps": 125, "keep_last": 2},
    monitoring={"samples": samples},
    expect={
        "min_loss_drop": 0.3,
        "val_loss": {"max": 2.6},
        "val_token_accuracy": {"min": 0.33},
    },
)

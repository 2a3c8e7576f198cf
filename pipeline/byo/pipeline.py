"""Bring your own ``train.py``: traindoc runs the team's script and documents it.

The declarative parts (model, data, optimizer, DDP) are what the diagrams and tables are drawn from;
``training.script`` names the script that actually trains, with its own arguments. The script reports
through ``traindoc.log``, ``traindoc.should_stop`` and ``traindoc.checkpoint_dir``, so its run page,
expectations and checkpoint list look exactly like a built-in run's.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from spirals import SpiralNet, train_set, val_set

from traindoc.spec import Pipeline

LR = 2e-2
EPOCHS = 40


def model() -> torch.nn.Module:
    return SpiralNet()


def optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=LR)  # what train.py builds; declared here for the docs


pipeline = Pipeline(
    name="byo",
    description=(
        "A team's existing train.py (a small MLP separating two interleaved spirals, DDP over gloo) "
        "run and documented by traindoc without rewriting it."
    ),
    environment={
        "image": "pytorch/pytorch:2.13.0-cpu",
        "user": "1000:1000",
        "volumes": [{"host": "./checkpoints", "container": "/checkpoints"}, {"host": ".", "container": "/workspace"}],
    },
    devices="cpu",
    model={"factory": model, "sample_input": {"shape": [1, 2]}},
    data={"train": train_set, "val": val_set, "batch_size": 64},
    optim={"optimizer": optimizer, "loss": "cross_entropy", "seed": 0},
    training={
        "script": "train.py",
        "epochs": EPOCHS,  # what train.py is told below: progress and the docs read it from here
        "script_args": ["--epochs", str(EPOCHS), "--lr", str(LR), "--batch-size", "64"],
        "docs_run": {"max_steps": 100, "max_seconds": 180},
        "timeout_s": 600,
    },
    # train.py saves after each epoch (16 steps at 2 ranks) and keeps the newest two
    checkpoint={"dir": "/checkpoints", "every_steps": 16, "keep_last": 2},
    distributed={"backend": "gloo", "nproc_per_node": 2, "rdzv_endpoint": "127.0.0.1:29531"},
    expect={"val_accuracy": {"min": 0.95}, "min_loss_drop": 0.5},
)

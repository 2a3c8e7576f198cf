"""The example pipeline that traindoc's own docs document.

A squeeze-and-excitation CNN classifies scikit-learn's bundled 8x8 digits inside a
``pytorch-cuda`` container reached over Jupyter and SSH; DDP uses NCCL on GPUs and gloo on CPU.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from digits_data import train_set, val_set
from se_cnn import SECNN

from traindoc.spec import Pipeline


def model() -> torch.nn.Module:
    return SECNN(width=32)


def optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=3e-3, weight_decay=1e-4)


def schedule(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=400)


pipeline = Pipeline(
    name="digits",
    description=(
        "A small CNN with squeeze-and-excitation channel attention learns scikit-learn's 8x8 "
        "handwritten digits. It runs in a CUDA container reached over Jupyter and SSH and scales "
        "out with DDP."
    ),
    environment={
        "image": "pytorch-cuda:v2.6-cuda11.8",
        "user": "1000:1000",
        "ports": [{"host": 8888, "container": 8888}, {"host": 2222, "container": 22}],
        "volumes": [
            {"host": "./data", "container": "/data", "read_only": True},
            {"host": "./checkpoints", "container": "/checkpoints"},
            {"host": ".", "container": "/workspace"},
        ],
        "env": ["JUPYTER_TOKEN", "WANDB_API_KEY"],
        "shm_size": "8g",
    },
    access={
        "jupyter": {"port": 8888, "bind": "0.0.0.0", "token_env": "JUPYTER_TOKEN"},
        "ssh": {"port": 22, "user": "dev", "auth": "key"},
    },
    devices="auto",
    model={"factory": model, "sample_input": {"shape": [1, 1, 8, 8]}},
    data={
        "train": train_set,
        "val": val_set,
        "batch_size": 64,
        "num_workers": 0,
        "pin_memory": True,
    },
    optim={"optimizer": optimizer, "loss": "cross_entropy", "scheduler": schedule, "grad_clip": 1.0, "seed": 0},
    training={"epochs": 20, "log_every": 10, "docs_run": {"max_steps": 120, "max_seconds": 90}},
    checkpoint={"dir": "/checkpoints", "format": ".pt", "every_steps": 50, "keep_last": 2},
    distributed={"backend": "auto", "nproc_per_node": 2, "rdzv_endpoint": "127.0.0.1:29500"},
    expect={"min_val_accuracy": 0.9, "min_loss_drop": 0.5},
)

"""traindoc: documentation-as-code for PyTorch training pipelines.

The core works without MkDocs: spec -> facts -> templates -> Markdown/Mermaid, and a runner whose
results record the templates read too. Importing this package never imports torch.

A training script of your own reports to traindoc with three calls (see :mod:`traindoc.train.script`):
``traindoc.log(step=..., loss=..., **metrics)``, ``traindoc.checkpoint_dir()`` and
``traindoc.should_stop()`` (and ``traindoc.seed(default)`` for comparisons over seeds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "checkpoint_dir", "log", "seed", "should_stop"]


def log(step: int, loss: float | None = None, **metrics: Any) -> None:
    """Record one step (rank 0 writes). ``loss`` and the metrics are numbers (0-d tensors convert).

    Metrics named ``val_*`` are evaluation metrics (``val_loss``, ``val_accuracy``, ...); the others
    are recorded with the step. ``epoch=``, ``lr=`` and ``samples=`` (samples in this step, all ranks)
    fill the step record's own fields.
    """
    from .train.script import current

    current().log(step, loss, dict(metrics))


def checkpoint_dir() -> Path:
    """The folder to save checkpoints in (created); the run report lists the files left in it."""
    from .train.script import current

    return current().checkpoint_dir()


def should_stop() -> bool:
    """True once the docs budget (steps logged or seconds since the start) is reached.

    Under torchrun every rank must call it at the same point: the ranks agree (one all-reduce).
    """
    from .train.script import current

    return current().should_stop()


def seed(default: int = 0) -> int:
    """The seed to use: the one ``traindoc compare`` runs this script with, else ``default``."""
    import os

    from .train.script import ENV_SEED

    value = os.environ.get(ENV_SEED, "")
    return int(value) if value.strip().lstrip("-").isdigit() else default

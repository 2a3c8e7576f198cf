"""Checkpoints: atomic writes, keep-last-N, newest-valid lookup and verification (imports torch).

Files are ``step_00000050.pt`` in one folder. Each is written to a temporary file, fsynced and
renamed, so a SIGKILL at any moment leaves the previous checkpoint intact; a file that fails to
load is skipped in favour of the one before it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import atomic

_NAME = re.compile(r"^step_(\d{8})\.(pt|pth)$")


def path_for(folder: Path, step: int, fmt: str) -> Path:
    return folder / f"step_{step:08d}{fmt}"


def listed(folder: Path) -> list[tuple[int, Path]]:
    """Checkpoints in a folder, oldest first (temporary files never match)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        state["numpy"] = (
            str(kind),
            torch.from_numpy(np.asarray(keys).astype("int64")),
            int(pos),
            int(has_gauss),
            float(cached),
        )
    except ImportError:  # pragma: no cover
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))


def save(folder: Path, step: int, fmt: str, state: dict[str, Any], keep_last: int) -> Path:
    """Write atomically, then delete all but the newest ``keep_last``."""
    path = path_for(folder, step, fmt)
    atomic.write_with(path, lambda fh: torch.save(state, fh))
    for _, old in listed(folder)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def load(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state


def newest_valid(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads; damaged ones are skipped."""
    for _, path in reversed(listed(folder)):
        try:
            state = load(path)
        except Exception:
            continue
        if isinstance(state, dict) and "model" in state and "step" in state:
            return path, state
    return None


def params_equal(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    mine = model.state_dict()
    if set(mine) != set(state):
        return False
    return all(torch.equal(mine[k].detach().cpu(), state[k].detach().cpu()) for k in mine)

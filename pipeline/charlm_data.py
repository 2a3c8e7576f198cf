"""Text that ships with Python itself, as character windows: no download, the same on every machine
with the same Python.

The corpus is the source of a fixed list of standard-library modules, read from the running
interpreter's ``stdlib`` directory (``sysconfig``). Characters map to a fixed 96-symbol vocabulary
(newline and printable ASCII; anything else becomes ``?``). The last 10 % of each file is held out
for validation. A dataset item is a window of ``CONTEXT + 1`` token ids; :func:`collate` stacks
windows into the ``{"input_ids", "labels"}`` batch a causal LM trains on (labels shifted by one).
"""

from __future__ import annotations

import sysconfig
from functools import cache
from pathlib import Path

import torch
from torch.utils.data import Dataset

MODULES = ("textwrap", "shlex", "fnmatch", "glob", "bisect", "heapq", "queue", "sched", "string", "colorsys", "abc")
CONTEXT = 64
VAL_FRACTION = 0.1
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))  # 96 symbols
UNKNOWN = VOCAB.index("?")
_INDEX = {ch: i for i, ch in enumerate(VOCAB)}


def encode(text: str) -> torch.Tensor:
    return torch.tensor([_INDEX.get(ch, UNKNOWN) for ch in text.replace("\t", "    ")], dtype=torch.long)


def decode(ids: torch.Tensor | list[int]) -> str:
    values = ids.tolist() if isinstance(ids, torch.Tensor) else ids
    return "".join(VOCAB[i] for i in values)


@cache
def _splits() -> tuple[torch.Tensor, torch.Tensor]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    train, val = [], []
    for name in MODULES:
        path = stdlib / f"{name}.py"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: this Python ships without standard-library sources")
        ids = encode(path.read_text(encoding="utf-8"))
        cut = int(len(ids) * (1 - VAL_FRACTION))
        train.append(ids[:cut])
        val.append(ids[cut:])
    return torch.cat(train), torch.cat(val)


class Windows(Dataset[torch.Tensor]):
    """Windows of ``context + 1`` ids over one token stream, starting every ``stride`` tokens."""

    def __init__(self, ids: torch.Tensor, context: int, stride: int) -> None:
        self.ids, self.span, self.stride = ids, context + 1, stride
        self.count = (len(ids) - self.span) // stride + 1

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.count:
            raise IndexError(i)
        start = i * self.stride
        return self.ids[start : start + self.span]


def train_set() -> Windows:
    return Windows(_splits()[0], CONTEXT, stride=CONTEXT // 2)


def val_set() -> Windows:
    return Windows(_splits()[1], CONTEXT, stride=CONTEXT)


def collate(windows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stack windows into a causal-LM batch: predict token ``t + 1`` from tokens ``..t``."""
    block = torch.stack(windows)
    return {"input_ids": block[:, :-1], "labels": block[:, 1:]}

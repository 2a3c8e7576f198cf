"""Two limits a training rank obeys, kept apart from the loop so any loop can call them (torch here).

* :func:`pg_timeout` — the process-group timeout the runner derived from the run's hard timeout
  (:mod:`traindoc.hang`), so a rank waiting on a hung peer fails in time and the peer is named.
* :func:`time_up` — the docs budget's ``max_seconds``, checked after *every* step. Under DDP the
  ranks agree through an all-reduce of a one-element stop flag, so they all stop after the same step
  (a rank that stopped alone would leave its peers waiting in the next gradient all-reduce).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist

from .hang import DEFAULT_PG_TIMEOUT_S, PG_TIMEOUT_ENV


def pg_timeout() -> timedelta:
    try:
        seconds = float(os.environ.get(PG_TIMEOUT_ENV, DEFAULT_PG_TIMEOUT_S))
    except ValueError:
        seconds = DEFAULT_PG_TIMEOUT_S
    return timedelta(seconds=max(1.0, seconds))


def time_up(started: float, max_seconds: float | None, device: torch.device, world: int) -> bool:
    """Whether the time budget is spent (``started`` from ``time.perf_counter``); all ranks agree."""
    if max_seconds is None:
        return False  # every rank has the same budget: no collective needed to agree on "never"
    late = time.perf_counter() - started > max_seconds
    if world > 1:
        flag = torch.tensor([1.0 if late else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        late = bool(flag.item() > 0)
    return late

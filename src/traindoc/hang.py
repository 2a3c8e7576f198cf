"""Which rank hung: torch-free rules shared by the runner (which sets them) and the worker (which obeys).

A rank that never reaches a collective leaves its peers waiting in it. The peers are the ones that
fail, with a timeout error, after the process-group timeout; the rank that hung reports nothing.
So the hung ranks are those that reported no error while a peer reported a collective timeout.
The process-group timeout comes from the run's own hard timeout (half of it), so a hang is named by
its peers while the run still has time to report it, and a run with a long budget is not cut short
by a fixed 120 s limit on a slow barrier (a big checkpoint written by rank 0).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PG_TIMEOUT_ENV = "TRAINDOC_PG_TIMEOUT_S"
DEFAULT_PG_TIMEOUT_S = 120.0  # a rank started by hand (torchrun from the docs) keeps torch's usual wait
_COLLECTIVE_TIMEOUT = re.compile(r"(?i)timed out|collective operation timeout|timeout.{0,40}(collective|waiting)")


def pg_timeout_s(run_timeout_s: float) -> float:
    """The process-group timeout for a run with this hard timeout: half of it, at least one second."""
    return max(1.0, run_timeout_s / 2)


def is_collective_timeout(message: str) -> bool:
    return bool(_COLLECTIVE_TIMEOUT.search(message))


def hung_ranks(errors: Iterable[Mapping[str, Any]], world: int) -> list[int]:
    """Ranks that hung: silent while a peer timed out waiting in a collective. Empty when none did."""
    errors = list(errors)
    if world < 2 or not any(is_collective_timeout(str(e.get("message", ""))) for e in errors):
        return []
    reported = {int(e.get("rank", 0)) for e in errors}
    return [r for r in range(world) if r not in reported]


def hung_reason(hung: list[int], errors: Iterable[Mapping[str, Any]], step: int) -> str:
    waiting = sorted(int(e.get("rank", 0)) for e in errors if is_collective_timeout(str(e.get("message", ""))))
    who = f"rank {hung[0]}" if len(hung) == 1 else "ranks " + ", ".join(map(str, hung))
    peers = ", ".join(map(str, waiting))
    return (
        f"{who} hung at step {step}: it never reached a collective operation, and rank(s) {peers} "
        "timed out waiting for it"
    )

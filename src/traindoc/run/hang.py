"""The process-group timeout: set by the runner from the run's timeout, obeyed by every rank. Torch-free.

A rank that never reaches a collective leaves its peers waiting in it. The peers fail with a timeout
after the process-group timeout (their failure kind is ``peer_timeout``) while the hung rank reports
nothing, so :func:`traindoc.run.assemble.diagnose` names the silent rank.
The process-group timeout comes from the run's own hard timeout (half of it), so a hang is named by
its peers while the run still has time to report it, and a run with a long budget is not cut short
by a fixed 120 s limit on a slow barrier (a big checkpoint written by rank 0).
"""

from __future__ import annotations

PG_TIMEOUT_ENV = "TRAINDOC_PG_TIMEOUT_S"
DEFAULT_PG_TIMEOUT_S = 120.0  # a rank started by hand (torchrun from the docs) keeps torch's usual wait


def pg_timeout_s(run_timeout_s: float) -> float:
    """The process-group timeout for a run with this hard timeout: half of it, at least one second."""
    return max(1.0, run_timeout_s / 2)

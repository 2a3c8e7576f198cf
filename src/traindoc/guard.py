"""Exec wrapper that makes a process die with its parent: ``python -m traindoc.guard -- PROGRAM ARGS...``.

Every process traindoc starts goes through it (the launcher, torchrun's ranks through ``--no-python``,
the introspection child). It asks the kernel for ``SIGKILL`` when the parent dies
(``prctl(PR_SET_PDEATHSIG)``, which survives ``execve``), then checks that the parent did not die
before that request was armed, then execs the program. No ``preexec_fn``: that is unsafe in a
threaded parent (``mkdocs serve``), and torchrun, which starts the ranks, has no such hook.

The check walks the parent chain up to the supervisor named in ``TRAINDOC_SUPERVISOR``
(``pid:start-time``, written by :mod:`traindoc._util.procs`). Every process on that chain was started
through this wrapper, so once the chain is intact the kernel takes care of the rest: when the
supervisor dies, each link is killed by the death of the one above it.

Only the standard library, so it costs one bare interpreter start (about 20 ms).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1
SUPERVISOR_ENV = "TRAINDOC_SUPERVISOR"
ORPHANED = 125  # exit code when the parent was already gone: nothing ran


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, ...]; field 22 (start time) is index 19."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: with the pid, a name that is never reused."""
    fields = stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def supervised(supervisor: str | None) -> bool:
    """Whether the parent chain still reaches the live supervisor (``pid:start``)."""
    if not supervisor:
        return os.getppid() != 1
    sup_pid, _, sup_start = supervisor.partition(":")
    pid = os.getppid()
    for _ in range(64):
        if pid <= 1:
            return False
        fields = stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        if str(pid) == sup_pid:
            return fields[19] == sup_start
        pid = int(fields[1])
    return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m traindoc.guard -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    set_parent_death_signal()
    if not supervised(os.environ.get(SUPERVISOR_ENV)):
        return ORPHANED
    os.execvp(args[0], args)


if __name__ == "__main__":
    sys.exit(main())

"""Every process traindoc starts lives in a :class:`Tree` and dies with it. No torch here.

One mechanism, three layers:

* **The kernel** (covers ``SIGKILL`` of traindoc, which no handler sees): each process is started
  through :mod:`traindoc.guard`, which sets ``PR_SET_PDEATHSIG=SIGKILL`` before exec. torchrun's
  ranks get the same wrapper through ``--no-python`` (see :func:`traindoc.run.launch.plan`), so killing
  traindoc kills the launcher, and the launcher's death kills every rank.
* **A tag**: every process of a tree carries ``TRAINDOC_RUN_TAG=<uuid>`` in its environment, inherited
  by whatever it starts. Killing a tree kills its process groups, their descendants and every process
  carrying the tag (processes that left the tree by a double fork or a dead parent included).
* **Signals and shutdown**: :func:`install_signal_handlers` (the CLI, the MkDocs plugin) makes
  SIGTERM/SIGHUP/SIGINT kill every live tree at once, then unwind through ``with Tree()``;
  :func:`kill_all` does the same for ``mkdocs serve`` shutting down with background runs.

A run folder records its tree in ``procs.json`` (supervisor, tag, pids with start times), so a later
run in the same folder finds leftovers: :func:`clear_leftovers`.

PR_SET_PDEATHSIG fires when the *thread* that started the child ends, not the process. A tree must
therefore be started and waited on by the same thread (``runner.execute`` and ``service`` do: the
plugin's background thread lives until its run is over).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from ..errors import Cancelled, Interrupted, LeftoverProcesses
from ..guard import SUPERVISOR_ENV, start_time, stat_fields
from .atomic import read_regular, write_text

TAG_ENV = "TRAINDOC_RUN_TAG"
RECORD = "procs.json"
KILL_WAIT_S = 10.0

_LIVE: set[Tree] = set()
_LIVE_LOCK = threading.RLock()


def supervisor_id() -> str:
    pid = os.getpid()
    return f"{pid}:{start_time(pid)}"


def guarded(argv: Sequence[str]) -> list[str]:
    """``argv`` run through the parent-death wrapper."""
    return [sys.executable, "-m", "traindoc.guard", "--", *argv]


def alive(pid: int, start: str | None = None) -> bool:
    """Running (not a zombie) and, when ``start`` is given, the same process that was recorded."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start is None or (len(fields) > 19 and fields[19] == start)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its ranks in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(int(stat.parent.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tagged(tag: str) -> list[int]:
    """Every live process whose environment carries ``TRAINDOC_RUN_TAG=tag`` (same user only)."""
    needle = f"{TAG_ENV}={tag}".encode()
    out = []
    for entry in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = entry.read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            out.append(int(entry.parent.name))
    return [p for p in out if p != os.getpid() and alive(p)]


def _sigkill(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _wait_gone(pids: Sequence[int], limit_s: float = KILL_WAIT_S) -> list[int]:
    deadline = time.monotonic() + limit_s
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left


class Tree:
    """The processes of one run or one introspection: started guarded and tagged, killed as a whole.

    Use as a context manager; leaving it (normally, by an exception, an interrupt or a timeout)
    kills everything still running. ``record`` names a run folder's ``procs.json``.
    """

    def __init__(self, record: Path | None = None) -> None:
        self.tag = uuid.uuid4().hex
        self.record = record
        self.procs: list[subprocess.Popen[bytes]] = []
        self.cancelled = threading.Event()
        self.seen: dict[int, str] = {}

    def __enter__(self) -> Tree:
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.kill()
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(self)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, **(extra or {}), TAG_ENV: self.tag, SUPERVISOR_ENV: supervisor_id()}

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` guarded, tagged, in a session of its own (terminal signals reach only us)."""
        if self.cancelled.is_set():
            raise Cancelled("stopped before it started: traindoc is shutting down")
        proc = subprocess.Popen(
            guarded(argv),
            env=self.env(env),
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(proc)
        self.refresh()
        return proc

    def members(self) -> list[int]:
        # A launcher not yet reaped keeps its pid (even as a zombie), so walking below it never reaches
        # a stranger; once reaped its pid may be reused, and what it left behind is found by the tag.
        live = [p for p in self.procs if p.returncode is None]
        pids = {p.pid for p in live}
        for p in live:
            pids.update(descendants(p.pid))
        pids.update(tagged(self.tag))
        return sorted(pids)

    def refresh(self) -> None:
        """Write the run folder's record of live processes (pid + start time), new ones added."""
        if self.record is None:
            return
        for pid in self.members():
            start = start_time(pid)
            if start is not None:
                self.seen.setdefault(pid, start)
        payload = {
            "supervisor": supervisor_id(),
            "tag": self.tag,
            "processes": [{"pid": pid, "start": start} for pid, start in sorted(self.seen.items())],
        }
        with contextlib.suppress(OSError):
            write_text(self.record, json.dumps(payload, indent=1))

    def kill(self, *, reap: bool = True) -> None:
        """SIGKILL every group, descendant and tagged process; wait until all are gone.

        ``reap`` waits for the launchers too. Only the thread that owns the tree may reap: a signal
        handler runs on top of whatever the main thread was doing, possibly inside ``Popen.poll``
        holding the lock ``Popen.wait`` needs, so :func:`kill_all` never reaps (a zombie is gone too).
        """
        victims = self.members()
        for p in self.procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
        _sigkill(victims)
        if reap:
            for p in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):  # with a timeout, wait never blocks on
                    p.wait(timeout=KILL_WAIT_S)  # a lock an interrupted poll may have left held
        stragglers = tagged(self.tag)  # anything started between the scan and the kill
        _sigkill(stragglers)
        _wait_gone([*victims, *stragglers])

    def cancel(self) -> None:
        """Kill without reaping, from any thread or a signal handler; the owner raises :class:`Cancelled`."""
        self.cancelled.set()
        self.kill(reap=False)


def run(argv: Sequence[str], *, cwd: Path | str | None, timeout_s: float) -> tuple[int | None, str, str]:
    """Run a short helper command (``npm pack``) in its own tree: (exit code or None on timeout, stdout, stderr)."""
    with Tree() as tree:
        proc = tree.spawn(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            tree.kill()
            out, err = proc.communicate()
            return None, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def kill_all() -> None:
    """Cancel and kill every live tree of this process (shutdown of a docs server, a signal)."""
    with _LIVE_LOCK:
        trees = list(_LIVE)
    for tree in trees:
        tree.cancel()


# -- a deadline shared by every stage of one run (introspection, then training) --------------------------

_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "traindoc_deadline", default=None
)


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Within this block (this thread), :func:`remaining` counts down from ``seconds``; None = no limit."""
    token = _DEADLINE.set((time.monotonic() + seconds, seconds) if seconds is not None else None)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining(default: float) -> float:
    """Seconds left of the enclosing :func:`deadline`, or ``default`` when none is set (never more)."""
    current = _DEADLINE.get()
    if current is None:
        return default
    return max(0.0, min(default, current[0] - time.monotonic()))


def limit(default: float) -> float:
    """The enclosing deadline's whole length (what a user set), or ``default``."""
    current = _DEADLINE.get()
    return default if current is None else current[1]


# -- leftovers of an earlier run in the same folder --------------------------------------------------------


def clear_leftovers(run_dir: Path) -> list[int]:
    """Kill what an earlier, dead traindoc left running in ``run_dir``; refuse if that traindoc still runs.

    Returns the pids killed. Raises :class:`LeftoverProcesses` when the recorded supervisor is alive
    and its processes too: a live run in this folder is someone's work, never ours to kill.
    """
    try:
        rec = json.loads(read_regular(run_dir / RECORD))
        tag = str(rec["tag"])
        recorded = [(int(p["pid"]), str(p["start"])) for p in rec.get("processes", [])]
        sup_pid, _, sup_start = str(rec["supervisor"]).partition(":")
    except (OSError, ValueError, KeyError, TypeError):
        return []
    left = sorted({pid for pid, start in recorded if alive(pid, start)} | set(tagged(tag)))
    if not left:
        return []
    if alive(int(sup_pid), sup_start):
        raise LeftoverProcesses(
            f"{run_dir}: a run is still going on in this folder (traindoc pid {sup_pid}, "
            f"processes {', '.join(map(str, left))}); wait for it to end or stop it first"
        )
    _sigkill(left)
    still = _wait_gone(left)
    if still:
        raise LeftoverProcesses(f"{run_dir}: leftover processes of an earlier run would not die: {still}")
    print(
        f"traindoc: killed {len(left)} leftover process(es) of an earlier run in {run_dir}: "
        + ", ".join(map(str, left)),
        file=sys.stderr,
    )
    return left


# -- signals -----------------------------------------------------------------------------------------------

_HANDLED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
_interrupting = threading.Event()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    kill_all()  # at once, whatever the main thread is doing (a docs server's shutdown takes seconds)
    if _interrupting.is_set():
        return  # already unwinding: let the cleanup finish
    _interrupting.set()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def install_signal_handlers(*, only_default: bool = False) -> Callable[[], None]:
    """SIGTERM, SIGHUP and SIGINT kill every tree at once, then unwind the main thread.

    SIGINT raises KeyboardInterrupt as usual; SIGTERM and SIGHUP raise :class:`Interrupted`, which
    unwinds the same way. ``only_default`` leaves a handler the host application installed alone
    (the MkDocs plugin). Returns a function that
    puts the previous handlers back (a no-op off the main thread, where handlers cannot be set).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _interrupting.clear()
    previous: dict[int, Any] = {}
    for sig in _HANDLED:
        default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        if only_default and signal.getsignal(sig) is not default:
            continue
        previous[sig] = signal.signal(sig, _on_signal)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore

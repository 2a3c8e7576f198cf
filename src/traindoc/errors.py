"""One error root for everything traindoc reports to a user.

Every error renders as one line per problem, ``file(line): message`` in the style of cog, so the
CLI, the MkDocs plugin and tests all print the same thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class TraindocError(Exception):
    """Root of every error traindoc raises on purpose. ``exit_code`` is what the CLI returns; ``meaning``
    is the exit code's line in the CLI reference (one class per code says it: :func:`exit_codes`)."""

    exit_code = 1
    meaning = "any other error"

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One problem in one input: where it is, which field, what was found and what is allowed."""

    file: str
    message: str
    line: int | None = None
    field: str | None = None

    def render(self) -> str:
        where = self.file if self.line is None else f"{self.file}({self.line})"
        field = f"{self.field}: " if self.field else ""
        return f"{where}: {field}{self.message}"


class SpecError(TraindocError):
    """The pipeline spec is invalid. Carries one :class:`Problem` per bad field."""

    exit_code = 3
    meaning = "invalid spec"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))

    def lines(self) -> list[str]:
        return [p.render() for p in self.problems]


class BackendUnavailable(SpecError):
    """The spec's distributed backend cannot run on this machine's devices (``nccl`` without CUDA)."""


class DevicesUnavailable(SpecError):
    """The run asks for more CUDA ranks on this machine than it has GPUs (each rank needs its own)."""


class LoadError(TraindocError):
    """The pipeline could not be found or picked (missing file, no pipeline, several pipelines)."""

    exit_code = 2
    meaning = "pipeline not found, not picked, or outside the project; or a command-line usage error"


class UserCodeError(TraindocError):
    """User code raised. ``user_traceback`` holds the user's own frames only, formatted."""

    exit_code = 4
    meaning = "error in user code (the model, data or step raised; a batch does not fit)"

    def __init__(self, message: str, user_traceback: str = "") -> None:
        self.user_traceback = user_traceback
        super().__init__(message)

    def lines(self) -> list[str]:
        out = [str(self)]
        if self.user_traceback:
            out.append(self.user_traceback.rstrip("\n"))
        return out


class RunFailed(TraindocError):
    """A training run failed or missed its expectations; the results record says why."""

    exit_code = 5
    meaning = "run failed or missed its expectations"


class MarkerError(TraindocError):
    """README markers are unbalanced, nested or unknown."""

    exit_code = 6
    meaning = "bad README markers"


class StaleError(TraindocError):
    """``--check`` found generated content out of date."""

    exit_code = 7
    meaning = "--check found stale content"


class BrowserUnavailable(TraindocError):
    """No headless Chromium (or Playwright, the pinned Mermaid build or, for exports, the pinned fonts)."""

    exit_code = 8
    meaning = "no browser, pinned Mermaid build or export fonts"


class LintFailed(TraindocError):
    """``lint --strict`` found warnings."""

    exit_code = 9
    meaning = "lint --strict found warnings"


class RecordError(TraindocError, ValueError):
    """A stored record (a facts, results or run-protocol file) does not have the shape its class declares."""


class CacheCorrupt(TraindocError):
    """A cache entry failed its integrity check (it is re-run, never trusted)."""


class RunFolderRefused(TraindocError):
    """``--out`` (or a cache run folder) may not be used: a file, a protected folder, or a non-empty
    folder that traindoc did not create. Nothing was written or deleted."""

    exit_code = 10
    meaning = "run folder refused (--out is a file, a protected folder, or a non-empty folder traindoc did not make)"


class PipelineOutsideProject(LoadError):
    """A docs page or README marker names a pipeline file outside the project folder."""


class TimedOut(RunFailed):
    """The hard timeout ran out before training started (loading or introspecting the pipeline hung)."""


class LeftoverProcesses(TraindocError):
    """Processes of another, still running traindoc occupy the run folder (or would not die)."""


class Cancelled(TraindocError):
    """A run was stopped because the process hosting it is shutting down (``mkdocs serve`` stopped)."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (never swallowed by ``except Exception``) so that
    every process traindoc started is killed on the way out. ``exit_code`` is 128 + the signal number.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class NonFiniteLoss(TraindocError):
    """The training loss became NaN or infinite (found at the next log window)."""

    exit_code = 5

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"loss became {value} at step {step}")
        self.step = step


class BatchError(TraindocError):
    """A batch does not fit the training contract: one line naming what came and what was expected."""

    exit_code = 4


class ModelTooLarge(TraindocError):
    """The model cannot be built on meta, and building it for real would exceed the build budget."""

    exit_code = 4


class DiagramError(TraindocError):
    """A diagram was asked for with an unknown kind or an impossible depth."""


class ChartError(TraindocError):
    """No run (or no loss values) to draw a training chart from."""

    exit_code = 1


class ExportFormatError(TraindocError):
    """The export format does not match the output file's extension (or the extension is unknown)."""

    exit_code = 1


class CompareError(TraindocError):
    """A comparison cannot be made as asked (bad seeds, unknown expectation bound, pipelines missing)."""

    exit_code = 1


def exit_codes() -> list[tuple[int, str]]:
    """(code, meaning) for every exit code, built from the classes (the CLI docstring and reference read it)."""
    seen: dict[int, str] = {0: "ok"}
    todo: list[type[TraindocError]] = [TraindocError]
    while todo:
        cls = todo.pop(0)
        if "meaning" in cls.__dict__ and cls.exit_code not in seen:
            seen[cls.exit_code] = cls.meaning
        todo.extend(cls.__subclasses__())
    return sorted(seen.items())


def to_record(exc: TraindocError) -> dict[str, Any]:
    """An error as plain JSON, for a child process to hand to its parent (never text to parse back)."""
    return {
        "kind": type(exc).__name__,
        "message": str(exc),
        "exit_code": exc.exit_code,
        "user_traceback": getattr(exc, "user_traceback", ""),
        "problems": [dataclasses.asdict(p) for p in getattr(exc, "problems", [])],
    }


_PROBLEM_TYPES = {"file": (str,), "message": (str,), "line": (int, type(None)), "field": (str, type(None))}


def _problem(p: Any) -> Problem:
    ok = (
        isinstance(p, dict)
        and set(p) <= set(_PROBLEM_TYPES)
        and {"file", "message"} <= set(p)
        and all(isinstance(v, _PROBLEM_TYPES[k]) and not isinstance(v, bool) for k, v in p.items())
    )
    if not ok:
        raise RecordError(f"an error record holds a malformed problem: {str(p)[:200]!r}")
    return Problem(**p)


def from_record(record: dict[str, Any]) -> TraindocError:
    """The error a child raised, rebuilt as the same class (a generic one with its exit code if unknown).

    The record comes from a process that ran user code, so nothing in it is trusted: the class is looked
    up among this module's error classes only, problems are type-checked (a malformed record is a
    :class:`RecordError`), and a known class keeps its own exit code; an unknown kind gets the record's
    code only when it is a failure code (1–125), never 0 or a signal's."""
    kind, message = record.get("kind"), record.get("message")
    if not isinstance(kind, str) or not isinstance(message, str):
        raise RecordError("an error record without a kind and a message")
    cls = globals().get(kind)
    err: TraindocError
    if isinstance(cls, type) and issubclass(cls, SpecError):
        raw = record.get("problems") or []
        problems = [_problem(p) for p in (raw if isinstance(raw, list) else [raw])]
        err = cls(problems or [Problem(file="pipeline", message=message)])
    elif cls is UserCodeError:
        tb = record.get("user_traceback")
        err = UserCodeError(message, tb if isinstance(tb, str) else "")
    elif isinstance(cls, type) and issubclass(cls, TraindocError):
        try:
            err = cls(message)
        except TypeError:  # a class with a richer constructor: keep its words and the class's code
            err = TraindocError(message)
            err.exit_code = cls.exit_code
    else:
        err = TraindocError(message)
        code = record.get("exit_code")
        if isinstance(code, int) and not isinstance(code, bool) and 1 <= code <= 125:
            err.exit_code = code
    return err

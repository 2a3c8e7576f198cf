"""Run folders: traindoc deletes only inside folders it created, and one run uses a folder at a time.

A run folder carries a marker file, ``.traindoc-run``, whose first line is :data:`SIGNATURE` (in the
spirit of the Cache Directory Tagging spec's ``CACHEDIR.TAG``). :func:`claim` is the one way every
run folder is created, cleared and locked — ``traindoc run --out DIR`` and the cache's own run
folders alike:

- a missing or empty folder becomes a run folder (the marker is written first);
- a non-empty folder without the marker is refused, untouched;
- ``/``, the home folder, the project root, any ancestor of the project root or of the home folder,
  and any folder holding ``.git`` are refused even when they carry a marker;
- a path naming a file is refused;
- the folder is locked (``fcntl.flock`` on the marker) for the whole run; a second run on the same
  folder prints one line and waits for the first to finish;
- only then, for a fresh run, is the folder's content removed (the marker stays).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import RunFolderRefused, TimedOut

MARKER = ".traindoc-run"
SIGNATURE = "Signature: traindoc run folder v1"
_MARKER_TEXT = (
    f"{SIGNATURE}\n"
    "# This folder was created by traindoc for one training run.\n"
    "# `traindoc run --out` may delete everything in it; it deletes nothing in folders without this file.\n"
)


def is_run_folder(folder: Path) -> bool:
    """True when ``folder`` holds a marker that traindoc wrote (its first line is the signature)."""
    marker = folder / MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        with open(marker, "rb") as fh:
            first = fh.readline(len(SIGNATURE) + 2)
    except OSError:
        return False
    return first.rstrip(b"\r\n") == SIGNATURE.encode()


def _homes() -> set[Path]:
    """The home folder as ``$HOME`` says and as the password database says (both are refused)."""
    found = set()
    candidates = [os.environ.get("HOME")]
    with contextlib.suppress(KeyError, ImportError):
        import pwd

        candidates.append(pwd.getpwuid(os.getuid()).pw_dir)
    for home in candidates:
        if home:
            with contextlib.suppress(OSError, RuntimeError):
                found.add(Path(home).resolve())
    return found


def refusal(path: Path, project_root: Path | None = None) -> str | None:
    """Why ``path`` may never be used as a run folder, in words; None when it may be.

    Checks the resolved path (symbolic links followed), so a link to the home folder is the home folder.
    """
    shown = str(path)
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:
        return f"{shown}: cannot resolve the path ({exc})"
    if real.exists() and not real.is_dir():
        return f"{shown} is a file, not a folder; give --out a folder for the run"
    if real == Path(real.anchor):
        return f"{shown} is the file-system root; refusing to use it as a run folder"
    for home in _homes():
        if real == home or real in home.parents:
            what = "the home folder" if real == home else "a folder that contains the home folder"
            return f"{shown} is {what}; refusing to use it as a run folder"
    if project_root is not None:
        root = project_root.resolve()
        if real == root or real in root.parents:
            what = "the project root" if real == root else "a folder that contains the project root"
            return f"{shown} is {what}; give --out a new folder such as runs/NAME"
    if (real / ".git").exists() or (real / ".git").is_symlink():
        return f"{shown} holds a .git repository; refusing to use it as a run folder"
    return None


def check(path: Path, project_root: Path | None = None) -> None:
    """Raise :class:`RunFolderRefused` unless ``path`` may become (or already is) a run folder."""
    why = refusal(path, project_root)
    if why is not None:
        raise RunFolderRefused(why)
    real = path.resolve()
    if real.is_dir() and not is_run_folder(real) and _has_content(real):
        raise RunFolderRefused(
            f"{path} is not empty and was not created by traindoc (no {MARKER} file); "
            "refusing to touch it — give --out a new or empty folder"
        )


def _has_content(folder: Path) -> bool:
    """Anything in the folder besides a marker being written by a concurrent claim."""
    return any(not c.name.startswith(MARKER + ".") for c in folder.iterdir())


def _write_marker(folder: Path) -> None:
    """Create the marker complete and at once, never replacing one (a lock may be held on it)."""
    tmp = folder / f"{MARKER}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_MARKER_TEXT)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, folder / MARKER)
    finally:
        tmp.unlink(missing_ok=True)


def mark_new(folder: Path) -> None:
    """Create ``folder`` if needed and mark it as a run folder when it is new or empty (the worker
    started on its own, without the runner's claim). Deletes nothing and never marks a folder with
    content in it."""
    folder.mkdir(parents=True, exist_ok=True)
    if not is_run_folder(folder) and not _has_content(folder):
        _write_marker(folder)


def _in_use(marker: Path) -> bool:
    """True when a traindoc run holds the lock on this marker right now."""
    try:
        with open(marker, "rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _clear(folder: Path) -> None:
    """Remove everything in a run folder except its marker. Only ever called on a marked folder,
    never while a run folder nested inside it is in use by another run (its lock is held)."""
    if not is_run_folder(folder):  # the one guard in front of every delete
        raise RunFolderRefused(f"{folder}: no {MARKER} marker; nothing was deleted")
    for marker in folder.rglob(MARKER):  # rglob does not follow symbolic links
        if marker.parent != folder and _in_use(marker):
            raise RunFolderRefused(
                f"{folder}: {marker.parent.relative_to(folder)} inside it is in use by another traindoc run; "
                "nothing was deleted"
            )
    for child in folder.iterdir():
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink(missing_ok=True)


def _drop_special_files(folder: Path) -> None:
    """Remove FIFOs, sockets and device nodes from a run folder kept for a resume: traindoc never
    creates them, and opening a FIFO where a log or checkpoint belongs blocks forever."""
    if not is_run_folder(folder):
        return
    for p in folder.rglob("*"):  # rglob does not follow symbolic links
        with contextlib.suppress(OSError):
            mode = p.lstat().st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                p.unlink()


def _say(message: str) -> None:
    print(f"traindoc: {message}", file=sys.stderr, flush=True)


def _wait_for_lock(fd: int, path: Path, wait_s: float | None) -> None:
    if wait_s is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    end = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= end:
                raise TimedOut(
                    f"timed out after {wait_s:g} s waiting for {path}: another traindoc run still holds it"
                ) from None
            time.sleep(0.2)


@contextlib.contextmanager
def claim(
    path: Path,
    *,
    resume: bool,
    project_root: Path | None = None,
    on_wait: Callable[[str], None] = _say,
    wait_s: float | None = None,
) -> Iterator[Path]:
    """Check, create, lock and (unless ``resume``) clear a run folder; yields its resolved path.

    The lock is held until the block ends; a second claim on the same folder calls ``on_wait`` once
    and blocks until the first is released, or raises :class:`TimedOut` after ``wait_s`` seconds (a
    run's hard timeout covers the wait: a holder stopped with Ctrl-Z never hangs the next run)."""
    check(path, project_root)
    folder = path.resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not is_run_folder(folder):
            check(path, project_root)  # a file that appeared since the first check is someone else's
            _write_marker(folder)
    except OSError as exc:
        raise RunFolderRefused(f"{path}: cannot create a run folder there ({exc.strerror or exc})") from None
    with open(folder / MARKER, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(f"{path} is in use by another traindoc run; waiting for it to finish")
            _wait_for_lock(fh.fileno(), path, wait_s)
        try:
            check(path, project_root)  # unchanged while we waited?
            if not resume:
                _clear(folder)
            else:
                _drop_special_files(folder)
            yield folder
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

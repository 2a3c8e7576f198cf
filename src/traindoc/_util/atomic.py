"""Atomic, durable writes: a temporary file in the same folder, fsync, rename, fsync the folder.

A crash or SIGKILL at any moment leaves either the old file or the new one, never a torn one. A file
rewritten in place keeps its permission bits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def read_regular(path: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file. A FIFO, socket or device in its place raises ``OSError`` at once
    instead of blocking forever (opened non-blocking, checked with ``fstat`` before any read); so
    does a file larger than ``max_bytes``. Missing files raise ``FileNotFoundError`` as usual."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if max_bytes is not None and st.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _open_temp(path: Path) -> tuple[int, Path]:
    """A new temporary file beside ``path``, with the permission bits ``path`` has (or would get).

    An existing file keeps its mode (a 644 README stays 644); a new one gets 666 less the umask,
    as ``open()`` would give it — never mkstemp's 600."""
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        if mode is not None:
            os.fchmod(fd, mode)
        return fd, tmp


def write_with(path: Path, writer: Callable[[IO[bytes]], None]) -> None:
    """Call ``writer`` on a temporary binary file, then atomically put it at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    def writer(fh: IO[bytes]) -> None:
        fh.write(data)

    write_with(path, writer)


def write_text(path: Path, text: str) -> None:
    """Write text exactly (no newline translation, so CRLF files stay CRLF)."""
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def locked(path: Path, wait_s: float | None = None) -> Iterator[None]:
    """An exclusive advisory lock (fcntl) held for the block; concurrent builds wait their turn, at
    most ``wait_s`` seconds when given (then :class:`~traindoc.errors.TimedOut`): a holder stopped
    with Ctrl-Z never hangs the next build past its timeout."""
    import fcntl
    import time

    from ..errors import TimedOut

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        end = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if end is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if end is not None and time.monotonic() >= end:
                    raise TimedOut(
                        f"timed out after {wait_s:g} s waiting for another traindoc process ({path.name})"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

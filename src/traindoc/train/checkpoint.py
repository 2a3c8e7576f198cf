"""Checkpoints: atomic writes with a checksum, keep-last-N, newest-valid lookup (imports torch).

Files are ``step_00000050.pt`` in one folder, each with a sidecar ``step_00000050.pt.sha256.json``
holding the SHA-256 and size of the checkpoint's bytes. Both are written to a temporary file,
fsynced and renamed (checkpoint first), so a SIGKILL at any moment leaves the previous checkpoint
intact and a checkpoint without its sidecar is never trusted.

Loading is data only: the bytes are read once, checked against the sidecar, and unpickled with
``torch.load(weights_only=True)`` — torch's restricted unpickler, which rejects any global outside
tensors and plain containers, so a crafted pickle cannot run code. Everything traindoc saves (model,
optimizer, scheduler, RNG states) is tensors and plain Python values. A checkpoint that fails any
check is skipped *and reported* (:class:`Skipped`). Retention keeps the newest ``keep_last``
checkpoints whose bytes match their sidecar, always including the one just written, and never
touches a checkpoint it cannot vouch for or one numbered above the one just written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from .._util import atomic

_NAME = re.compile(r"^step_(\d{8})\.(pt|pth)$")
_TEMP = re.compile(r"^\.step_\d{8}\.(pt|pth)(\.sha256\.json)?\..*\.tmp$")  # atomic.write_with's names
FORMAT = "traindoc-checkpoint-sha256-v1"
_SIDECAR_MAX = 64 * 1024  # a checksum file is ~150 bytes


@dataclass(frozen=True)
class Skipped:
    """A checkpoint that was not used, and why."""

    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Found:
    """The newest valid checkpoint (or none) and every newer one that was skipped."""

    path: Path | None
    state: dict[str, Any] | None
    skipped: list[Skipped] = field(default_factory=list)


class Invalid(Exception):
    """A checkpoint failed a check; the message says which."""


def path_for(folder: Path, step: int, fmt: str) -> Path:
    return folder / f"step_{step:08d}{fmt}"


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def listed(folder: Path) -> list[tuple[int, Path]]:
    """Checkpoints in a folder, oldest first (temporary files and sidecars never match)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def clean_stale(folder: Path) -> list[str]:
    """Remove temporary files left by interrupted writes (one writer per run folder: any found is stale)."""
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if _TEMP.match(p.name) and p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p.name)
    return sorted(removed)


# --- RNG state as tensors and plain values (loadable with weights_only=True) ---------------------


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
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))


# --- save ------------------------------------------------------------------------------------------


class _Hashing:
    """A write-only file that hashes what passes through it (no second read of a large checkpoint)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def save(folder: Path, step: int, fmt: str, state: dict[str, Any], keep_last: int) -> Path:
    """Write the checkpoint and its sidecar atomically, then apply retention."""
    clean_stale(folder)
    path = path_for(folder, step, fmt)
    digest: dict[str, Any] = {}

    def writer(fh: IO[bytes]) -> None:
        hashing = _Hashing(fh)
        torch.save(state, hashing)  # type: ignore[arg-type]
        digest.update(sha256=hashing.sha.hexdigest(), bytes=hashing.size)

    atomic.write_with(path, writer)
    record = {"format": FORMAT, "file": path.name, "step": step, **digest}
    atomic.write_text(sidecar(path), json.dumps(record, indent=1) + "\n")
    _remember(path)
    retain(folder, keep_last, path)
    return path


_VERIFIED: dict[Path, tuple[int, int]] = {}  # checkpoints whose bytes matched their sidecar: (size, mtime_ns)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _remember(path: Path) -> None:
    with contextlib.suppress(OSError):
        _VERIFIED[path] = _stamp(path)


def _checksum_ok(path: Path) -> bool:
    """The file's bytes match its sidecar; hashed once per process (what this process wrote, never)."""
    try:
        if _VERIFIED.get(path) == _stamp(path):
            return True
        record = json.loads(atomic.read_regular(sidecar(path), _SIDECAR_MAX))
        data = atomic.read_regular(path)
        ok = bool(
            record["file"] == path.name
            and record["bytes"] == len(data)
            and record["sha256"] == hashlib.sha256(data).hexdigest()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if ok:
        _remember(path)
    return ok


def retain(folder: Path, keep_last: int, just_written: Path) -> list[Path]:
    """Delete all but the newest ``keep_last`` valid checkpoints up to ``just_written``, which stays.

    Valid means the bytes match the sidecar. Checkpoints numbered above the one just written are not
    this run's lineage (the run resumed below them, or started afresh) and, like damaged ones, are
    neither counted nor deleted. Returns what was deleted."""
    mine = int(_NAME.match(just_written.name).group(1))  # type: ignore[union-attr]
    good = [p for step, p in listed(folder) if step <= mine and (p == just_written or _checksum_ok(p))]
    keep = set(good[-keep_last:]) | {just_written}
    deleted = []
    for p in good:
        if p not in keep:
            p.unlink(missing_ok=True)
            sidecar(p).unlink(missing_ok=True)
            _VERIFIED.pop(p, None)
            deleted.append(p)
    return deleted


# --- load ------------------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    """Read, verify against the sidecar, and unpickle as data only. Raises :class:`Invalid`."""
    try:
        record = json.loads(atomic.read_regular(sidecar(path), _SIDECAR_MAX))
    except FileNotFoundError:
        raise Invalid("no checksum file (an interrupted save, or not written by traindoc)") from None
    except (OSError, ValueError) as exc:
        raise Invalid(f"unreadable checksum file ({type(exc).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("file") != path.name:
        raise Invalid("checksum file is not traindoc's or names another file")
    try:
        data = atomic.read_regular(path)  # a FIFO named step_N.pt is refused, never waited on
    except OSError as exc:
        raise Invalid(f"unreadable ({exc.strerror or type(exc).__name__})") from None
    if len(data) != record.get("bytes") or hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise Invalid(f"checksum mismatch: {len(data)} bytes do not match the recorded SHA-256 (damaged)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for bad archives
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise Invalid(f"not loadable as plain data (weights_only): {first}") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise Invalid("not a traindoc checkpoint (no model state or step)")
    return state


def find(folder: Path) -> Found:
    """The newest checkpoint that passes every check; each newer one is skipped with its reason."""
    skipped: list[Skipped] = []
    for _, path in reversed(listed(folder)):
        try:
            return Found(path, load(path), skipped)
        except Invalid as exc:
            skipped.append(Skipped(path.name, str(exc)))
    return Found(None, None, skipped)


def newest_valid(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """(path, state) of the newest valid checkpoint, or None."""
    found = find(folder)
    return (found.path, found.state) if found.path is not None and found.state is not None else None


def resume_point(folder: Path) -> tuple[Found, str | None]:
    """For a resume: clean stale temporary files, find the newest valid checkpoint, and say what
    happened when there is none (the run then starts from step 0)."""
    clean_stale(folder)
    found = find(folder)
    note = None
    if found.state is None:
        why = f"{len(found.skipped)} skipped as invalid" if found.skipped else "none written yet"
        note = f"no valid checkpoint in {folder.name}/ ({why}); started from step 0"
    return found, note


def params_equal(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    mine = model.state_dict()
    if set(mine) != set(state):
        return False
    return all(torch.equal(mine[k].detach().cpu(), state[k].detach().cpu()) for k in mine)

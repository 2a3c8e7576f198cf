"""What introspection read: files the pipeline opened and the third-party packages it imported.

The facts depend on more than the pipeline's own sources: a model factory may read a ``config.json``,
and an upgrade of ``transformers`` may change the model. :func:`recording` watches ``open`` through
a Python audit hook while the pipeline is loaded and introspected; :func:`reads` turns what was seen
into ``{"read:<path>": digest, "package:<name>": version}``, which the cache adds to the key
(:func:`current` recomputes the same entries now, to tell whether a cached entry still holds).
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

_ACTIVE: list[set[str]] = []
_HOOKED = False
_OWN = str(Path(__file__).resolve().parents[1])  # the traindoc package
HASH_LIMIT = 64 << 20  # larger files (weights) are keyed by size and modification time


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _ACTIVE or not args:
        return
    path, mode = args[0], args[1] if len(args) > 1 else None
    if not isinstance(path, (str, os.PathLike)) or (isinstance(mode, str) and any(c in mode for c in "wax+")):
        return
    for seen in _ACTIVE:
        seen.add(os.fspath(path))


@contextmanager
def recording() -> Iterator[set[str]]:
    """Collect the paths opened for reading inside the block (audit hooks cannot be removed: one is
    installed once and does nothing while no recording is active)."""
    global _HOOKED
    if not _HOOKED:
        sys.addaudithook(_hook)
        _HOOKED = True
    seen: set[str] = set()
    _ACTIVE.append(seen)
    try:
        yield seen
    finally:
        _ACTIVE.remove(seen)


def _excluded_roots() -> list[str]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.prefix, sys.base_prefix, _OWN, "/proc", "/sys", "/dev", "/etc", "/usr/lib", "/usr/share"}
    return sorted(str(Path(r).resolve()) for r in roots if r)


def file_stamp(path: Path) -> str:
    try:
        st = path.stat()
        if st.st_size > HASH_LIMIT:
            return f"size {st.st_size} mtime {st.st_mtime_ns}"
        return hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    except OSError:
        return "absent"


def _package_versions(modules: list[str]) -> dict[str, str]:
    dists = metadata.packages_distributions()
    out: dict[str, str] = {}
    stdlib = set(sys.stdlib_module_names)
    for name in modules:
        top = name.partition(".")[0]
        if top in stdlib or top == "traindoc" or top.startswith("_"):
            continue
        for dist in dists.get(top, []):
            try:
                out[f"package:{dist}"] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    return out


def reads(opened: set[str], modules: list[str], root: Path, skip: set[Path] | None = None) -> dict[str, str]:
    """Key entries for what was read: regular files outside Python's own trees (relative to the project
    root when inside it), and package versions."""
    roots = _excluded_roots()
    out: dict[str, str] = {}
    for raw in sorted(opened):
        path = Path(raw)
        try:
            resolved = path.resolve()
        except OSError:
            continue
        text = str(resolved)
        if resolved.suffix == ".pyc" or any(text == r or text.startswith(r + os.sep) for r in roots):
            continue
        if (skip and resolved in skip) or not resolved.is_file():
            continue
        name = resolved.relative_to(root.resolve()).as_posix() if resolved.is_relative_to(root.resolve()) else text
        out[f"read:{name}"] = file_stamp(resolved)
    return out | _package_versions(modules)


def current(recorded: dict[str, str], root: Path) -> dict[str, str]:
    """The same entries as ``recorded``, as they are now (a changed file or version changes the key)."""
    out: dict[str, str] = {}
    for key in recorded:
        kind, _, name = key.partition(":")
        if kind == "read":
            out[key] = file_stamp(root / name)  # an absolute name stays absolute
        elif kind == "package":
            try:
                out[key] = metadata.version(name)
            except metadata.PackageNotFoundError:
                out[key] = "absent"
    return out

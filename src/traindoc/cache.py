"""Fingerprints and cache entries. Deciding a hit never imports torch or executes user code.

The key covers: the pipeline file and every project-local module it imports (found by reading
``import`` statements, recursively, never executing them), the torch version (package metadata),
the device kind, traindoc's own source, the Python version, and the options of the run. Spec
values enter through the files that define them.

Every file the cache serves from (facts, run entries, the latest result of each pipeline, the run
folder's inputs, reference pages) is a JSON entry holding a SHA-256 of its payload: a torn,
non-UTF-8 or edited entry is detected and re-computed, never trusted and never a crash. Nothing in
the cache is code: no pickle, no compiled templates. Failed runs are never stored.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from ._util import atomic
from .errors import CacheCorrupt

DEFAULT_DIR = Path(".cache") / "traindoc"
_OWN_PACKAGE = Path(__file__).resolve().parent
_EXCLUDED_PARTS = {"site-packages", "dist-packages", ".venv", "venv", ".tox", ".nox"}


def default_dir(root: Path | None = None) -> Path:
    env = os.environ.get("TRAINDOC_CACHE_DIR")
    if env:
        return Path(env)
    return (root or Path.cwd()) / DEFAULT_DIR


# --- local imports -------------------------------------------------------------------------------


def _imported_names(tree: ast.AST, package: str | None) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package is not None:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1] if node.level > 1 else parts
                base = ".".join([*parts, base] if base else parts)
            if base:
                names.append(base)
                names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def _find_module(name: str, roots: list[Path]) -> Path | None:
    rel = Path(*name.split("."))
    for root in roots:
        for cand in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
            if cand.is_file() and not (_EXCLUDED_PARTS & set(cand.parts)):
                return cand
    return None


def _package_of(file: Path, roots: list[Path]) -> str | None:
    for root in roots:
        try:
            rel = file.relative_to(root)
        except ValueError:
            continue
        parts = list(rel.with_suffix("").parts)[:-1]  # pkg/__init__.py and pkg/mod.py both live in "pkg"
        return ".".join(parts) if parts else None
    return None


_SOURCES_MEMO: dict[tuple[Path, Path], tuple[tuple[tuple[str, int, int], ...], list[Path]]] = {}


def _stamp(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            return ()
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


def local_sources(entry: Path, project_root: Path) -> list[Path]:
    """The pipeline file plus every project-local module it imports, transitively (sorted).

    Remembered per process while none of the files found changed (size and mtime), so a docs rebuild
    re-reads imports only after an edit."""
    key = (entry.resolve(), project_root.resolve())
    memo = _SOURCES_MEMO.get(key)
    if memo is not None and memo[0] and _stamp(memo[1]) == memo[0]:
        return list(memo[1])
    found = _scan_sources(*key)
    _SOURCES_MEMO[key] = (_stamp(found), found)
    return list(found)


def _scan_sources(entry: Path, project_root: Path) -> list[Path]:
    entry = entry.resolve()
    roots = [entry.parent, project_root.resolve(), project_root.resolve() / "src"]
    seen: dict[Path, None] = {entry: None}
    todo = [entry]
    while todo:
        file = todo.pop()
        try:
            tree = ast.parse(file.read_bytes(), filename=str(file))
        except (SyntaxError, ValueError):
            continue  # the file is still hashed; the loader reports the syntax error
        for name in _imported_names(tree, _package_of(file, roots)):
            found = _find_module(name, roots)
            if found is not None and found.resolve().is_relative_to(_OWN_PACKAGE):
                continue  # traindoc itself is in the key through its own source digest
            if found is not None and found.resolve() not in seen:
                seen[found.resolve()] = None
                todo.append(found.resolve())
    return sorted(seen)


# --- environment -------------------------------------------------------------------------------


def torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "absent"


def device_kind() -> str:
    """'cuda:N' when NVIDIA GPUs are visible to this process (read from /proc, no torch), else 'cpu'."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return "cpu"
    gpus = Path("/proc/driver/nvidia/gpus")
    count = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    if count and visible:
        count = min(count, len([v for v in visible.split(",") if v.strip()]))
    return f"cuda:{count}" if count else "cpu"


OWN_SOURCE_PATTERNS = ("*.py", "*.j2")  # every module of every subpackage, and the package's templates


@lru_cache(maxsize=4)
def own_source_digest(root: Path | None = None) -> str:
    """traindoc's own code and templates, hashed once per process (code already imported cannot change
    under us). Every file under the package (``root``, by default traindoc's own folder) matching
    :data:`OWN_SOURCE_PATTERNS`, in subpackages too, sorted by relative path; the relative path is
    hashed with the content, so a moved file changes the digest as well."""
    base = root or _OWN_PACKAGE
    files = {f.relative_to(base).as_posix(): f for pattern in OWN_SOURCE_PATTERNS for f in base.rglob(pattern)}
    h = hashlib.sha256()
    for rel in sorted(files):
        data = files[rel].read_bytes()
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    key: str
    inputs: dict[str, str]  # what went into the key, for "stale because ..." messages


def fingerprint(
    entry: Path, project_root: Path, options: dict[str, Any] | None = None, reads: dict[str, str] | None = None
) -> Fingerprint:
    """``reads``: what introspection was seen to read (:mod:`traindoc.facts.readset`), as it is now."""
    inputs: dict[str, str] = dict(reads or {})
    root = project_root.resolve()
    for file in local_sources(entry, root):
        try:
            name = file.relative_to(root).as_posix()
        except ValueError:
            name = str(file)
        inputs[f"file:{name}"] = file_digest(file)
    inputs["torch"] = torch_version()
    inputs["device"] = device_kind()
    inputs["python"] = f"{sys.version_info.major}.{sys.version_info.minor}"
    inputs["traindoc"] = f"{__version__}+{own_source_digest()}"
    for k, v in sorted((options or {}).items()):
        inputs[f"option:{k}"] = json.dumps(v, sort_keys=True)
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]
    return Fingerprint(key=key, inputs=inputs)


def explain(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Why two fingerprints differ, in words: 'pipeline/se_cnn.py changed', 'torch 2.12 -> 2.13'."""
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) == new.get(k):
            continue
        kind, _, name = k.partition(":")
        if kind == "file":
            out.append(f"{name} {'changed' if k in old and k in new else 'added' if k in new else 'removed'}")
        else:
            out.append(f"{k}: {old.get(k, '—')} -> {new.get(k, '—')}")
    return out


# --- entries -----------------------------------------------------------------------------------


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def write_entry(path: Path, key: str, payload: Any, inputs: dict[str, str] | None = None) -> bool:
    """Store a checked entry atomically. Best effort: a cache that cannot be written (read-only,
    or something else in the entry's place) costs a recomputation later, never the build."""
    record = {"key": key, "sha256": _digest(payload), "inputs": inputs or {}, "payload": payload}
    try:
        atomic.write_text(path, json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True))
    except OSError:
        return False
    return True


def read_entry(path: Path, key: str | None = None) -> Any | None:
    """The payload, or None when absent. Raises CacheCorrupt when present but damaged in any way
    (unreadable, not UTF-8, not JSON, edited, or recorded for another ``key`` when one is given)."""
    try:
        raw = atomic.read_regular(path)  # a FIFO planted in the cache fails here instead of hanging
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CacheCorrupt(f"{path}: cache entry is unreadable ({exc.strerror}); it will be recomputed") from None
    try:
        record = json.loads(raw.decode("utf-8"))
        payload = record["payload"]
        ok = record.get("sha256") == _digest(payload) and (key is None or record.get("key") == key)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        ok, payload = False, None
    if not ok:
        raise CacheCorrupt(f"{path}: cache entry failed its integrity check; it will be recomputed")
    return payload


def read_inputs(path: Path) -> dict[str, str]:
    """The fingerprint inputs recorded in a run folder's ``inputs.json`` entry ({} when damaged)."""
    try:
        data = read_entry(path)
        return {str(k): str(v) for k, v in data["inputs"].items()} if data is not None else {}
    except (CacheCorrupt, KeyError, TypeError, AttributeError):
        return {}


class Layout:
    """Where things live inside one cache folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def facts(self, key: str) -> Path:
        return self.root / "facts" / f"{key}.json"

    def run_dir(self, key: str) -> Path:
        return self.root / "runs" / key

    def run_entry(self, key: str) -> Path:
        return self.run_dir(key) / "entry.json"

    def lock(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def reference(self, name: str) -> Path:
        return self.root / "reference" / f"{name}.json"

    def latest(self, name: str) -> Path:
        """The newest result of a pipeline, whatever its inputs (for 'last known' displays)."""
        return self.root / "latest" / f"{name}.json"

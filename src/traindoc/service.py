"""Facts for a pipeline reference, cached: a hit reads JSON and never imports torch.

A miss introspects either in this process (the CLI) or in a child process (the MkDocs plugin, so a
docs server never imports torch or runs user code in its own process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import cache
from .atomic import locked
from .errors import CacheCorrupt, LoadError, TraindocError, UserCodeError
from .facts import Facts
from .loader import parse_ref, source_file
from .project import find_root, known_names_hint, resolve_name
from .redact import redact


@dataclass(frozen=True)
class Target:
    """A resolved pipeline reference: the text to load, its source file and project root."""

    ref: str
    file: Path
    root: Path
    attr: str | None


def target(ref: str, root: Path | None = None) -> Target:
    root = root or find_root()
    text = resolve_name(ref, root)
    parsed = parse_ref(text, root)
    try:
        file = source_file(parsed)
    except LoadError:
        hint = known_names_hint(ref, root) if text == ref else ""
        if not hint:
            raise
        raise LoadError(f"{ref}: unknown pipeline{hint}") from None
    if parsed.path is not None:  # normalise to an absolute file reference
        text = f"{parsed.path}:{parsed.attr}" if parsed.attr else str(parsed.path)
    return Target(ref=text, file=file, root=root, attr=parsed.attr)


def facts_fingerprint(t: Target) -> cache.Fingerprint:
    return cache.fingerprint(t.file, t.root, {"what": "facts", "attr": t.attr or ""})


def facts_for(
    ref: str, *, cache_dir: str | Path | None = None, in_process: bool = False, root: Path | None = None
) -> Facts:
    t = target(ref, root)
    layout = cache.Layout(Path(cache_dir) if cache_dir else cache.default_dir(t.root))
    fp = facts_fingerprint(t)
    path = layout.facts(fp.key)
    hit = _cached_facts(path, fp.key)  # entries are written atomically: a hit needs no lock
    if hit is not None:
        return hit
    with locked(layout.lock("facts-" + fp.key)):
        hit = _cached_facts(path, fp.key)  # another build may have computed it while we waited
        if hit is not None:
            return hit
        facts = introspect_here(t) if in_process else introspect_child(t)
        cache.write_entry(path, fp.key, facts.model_dump(mode="json"), fp.inputs)
        return facts


def _cached_facts(path: Path, key: str) -> Facts | None:
    try:
        payload = cache.read_entry(path, key)
    except CacheCorrupt:
        return None
    return Facts.model_validate(payload) if payload is not None else None


def introspect_here(t: Target) -> Facts:
    from .introspect import facts as compute
    from .loader import load

    spec, file = load(t.ref, t.root)
    return compute(spec, file, t.root)


def introspect_child(t: Target) -> Facts:
    """Run ``python -m traindoc inspect --json`` in a child; its errors come back as ours."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "facts.json"  # a file, not stdout: user modules may print while imported
        proc = subprocess.run(
            [sys.executable, "-m", "traindoc", "inspect", t.ref, "--no-cache", "--json-file", str(out)],
            cwd=t.root,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            return Facts.model_validate(json.loads(out.read_text(encoding="utf-8")))
    message = redact(proc.stderr.strip()) or f"introspection exited with {proc.returncode}"
    first, _, rest = message.partition("\n")
    first = first.removeprefix("traindoc: ")
    if proc.returncode == 4:
        raise UserCodeError(first, rest)
    if proc.returncode == 2:
        raise LoadError(first)
    err = TraindocError(message.replace("traindoc: ", ""))
    err.exit_code = proc.returncode
    raise err

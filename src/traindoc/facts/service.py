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
from typing import Any

from .. import cache
from .._util import procs
from .._util.atomic import locked
from .._util.redact import redact
from ..errors import CacheCorrupt, Cancelled, LoadError, PipelineOutsideProject, TimedOut, TraindocError, from_record
from ..project import find_root, known_names_hint, resolve_name
from ..spec.loader import parse_ref, source_file
from . import Facts, readset

INSPECT_TIMEOUT_S = 300.0  # loading and introspecting a pipeline outside a run with its own timeout


@dataclass(frozen=True)
class Target:
    """A resolved pipeline reference: the text to load, its source file and project root."""

    ref: str
    file: Path
    root: Path
    attr: str | None


def target(ref: str, root: Path | None = None, *, confine: bool = False) -> Target:
    """Resolve a reference. With ``confine`` (a docs page or a README marker names it), a pipeline file
    must lie inside the project root; a module reference must be importable (installed or on the path)."""
    root = root or find_root()
    text = resolve_name(ref, root)
    parsed = parse_ref(text, root)
    if confine and parsed.path is not None and not parsed.path.is_relative_to(root.resolve()):
        raise PipelineOutsideProject(
            f"{ref}: a docs page or README may only name a pipeline inside the project folder or an installed "
            "module; this one is outside it"
        )
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


def facts_fingerprint(t: Target, reads: dict[str, str] | None = None) -> cache.Fingerprint:
    return cache.fingerprint(t.file, t.root, {"what": "facts", "attr": t.attr or ""}, reads)


def _reads_index(layout: cache.Layout, base: cache.Fingerprint) -> Path:
    """Which files and packages the last introspection of these sources read (keys only matter)."""
    return layout.facts(base.key + "-reads")


def _recorded_reads(path: Path, key: str) -> dict[str, str]:
    try:
        payload = cache.read_entry(path, key)
    except CacheCorrupt:
        return {}
    return dict(payload) if isinstance(payload, dict) else {}


def facts_for(
    ref: str,
    *,
    cache_dir: str | Path | None = None,
    in_process: bool = False,
    root: Path | None = None,
    confine: bool = False,
) -> Facts:
    t = target(ref, root, confine=confine)
    layout = cache.Layout(Path(cache_dir) if cache_dir else cache.default_dir(t.root))
    base = facts_fingerprint(t)
    index = _reads_index(layout, base)
    fp = facts_fingerprint(t, readset.current(_recorded_reads(index, base.key), t.root))
    path = layout.facts(fp.key)
    hit = _cached_facts(path, fp.key)  # entries are written atomically: a hit needs no lock
    if hit is not None:
        return hit
    with locked(layout.lock("facts-" + fp.key), procs.remaining(INSPECT_TIMEOUT_S)):
        hit = _cached_facts(path, fp.key)  # another build may have computed it while we waited
        if hit is not None:
            return hit
        facts = introspect_here(t) if in_process else introspect_child(t)
        fp = facts_fingerprint(t, facts.reads)  # keyed on what this introspection read
        cache.write_entry(_reads_index(layout, base), base.key, facts.reads)
        cache.write_entry(layout.facts(fp.key), fp.key, facts.model_dump(mode="json"), fp.inputs)
        return facts


def _cached_facts(path: Path, key: str) -> Facts | None:
    try:
        payload = cache.read_entry(path, key)
        return Facts.model_validate(payload) if payload is not None else None
    except (CacheCorrupt, ValueError):  # damaged, or a verified entry of another shape: recompute
        return None


def introspect_here(t: Target) -> Facts:
    from ..spec.loader import load
    from .introspect import facts as compute

    with readset.recording() as opened:
        spec, file = load(t.ref, t.root)
        facts = compute(spec, file, t.root)
    skip = set(cache.local_sources(t.file, t.root))  # already in the key by content
    facts = facts.model_copy(update={"reads": readset.reads(opened, sorted(sys.modules), t.root, skip)})
    return redact_facts(facts)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def redact_facts(facts: Facts) -> Facts:
    """Facts with every secret-looking string masked (``***``): nothing downstream (cache, pages,
    README, lint) ever holds a secret written into a spec field; the ``secret-in-spec`` lint rule
    names the fields."""
    return Facts.model_validate(_redacted(facts.model_dump(mode="json")))


def introspect_child(t: Target) -> Facts:
    """Introspect in a child (:mod:`traindoc.facts.child`); its error comes back as the same class.

    The child is guarded and killed with its tree (:mod:`traindoc._util.procs`). It gets what is left of the
    run's hard timeout, or :data:`INSPECT_TIMEOUT_S` outside a run: an import or a factory that never
    returns ends in :class:`TimedOut`, never in a hang.
    """
    limit = procs.remaining(INSPECT_TIMEOUT_S)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "facts.json"
        err_path = Path(tmp) / "stderr.txt"
        with procs.Tree() as tree, open(err_path, "wb") as err_file:
            proc = tree.spawn(
                [sys.executable, "-m", "traindoc.facts.child", t.ref, str(t.root), str(out)],
                cwd=t.root,
                stdout=subprocess.DEVNULL,
                stderr=err_file,
            )
            try:
                code = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                code = None
        if tree.cancelled.is_set():
            raise Cancelled("introspection was stopped: traindoc is shutting down")
        stderr = err_path.read_text(encoding="utf-8", errors="replace")
        tail = " | ".join(redact(stderr).strip().splitlines()[-3:])
        if code is None:
            raise TimedOut(
                f"timed out after {procs.limit(INSPECT_TIMEOUT_S):g} s while loading the pipeline "
                "and introspecting its model (a child process, now killed)" + (f"; it printed: {tail}" if tail else "")
            )
        try:
            payload = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            payload = None
    if isinstance(payload, dict) and isinstance(payload.get("facts"), dict):
        return Facts.model_validate(payload["facts"])
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        raise from_record(_redacted(payload["error"]))
    # The child died without writing its record (killed, out of memory, a crash in native code).
    raise TraindocError(f"introspection exited with {code} before writing its result" + (f": {tail}" if tail else ""))

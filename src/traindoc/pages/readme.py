"""``traindoc readme FILE``: regenerate the file's marked sections from the pipelines they name."""

from __future__ import annotations

import difflib
import shlex
from pathlib import Path

from .._util import atomic
from ..errors import MarkerError
from ..facts import service
from ..project import find_root, named_pipelines
from ..render import content
from ..render.env import project_templates_dir
from ..run import runner
from . import sections


def _pipeline_for(section: sections.Section, filename: str, root: Path) -> str:
    name = section.params.get("pipeline")
    if name:
        return name
    named = named_pipelines(root)
    if len(named) == 1:
        return next(iter(named))
    raise MarkerError(
        f"{filename}({section.line_no}): name the pipeline, e.g. 'traindoc:begin {section.kind} pipeline=NAME'"
    )


def generate_text(text: str, filename: str, root: Path, cache_dir: str | None = None) -> str:
    templates = project_templates_dir(root)

    def generate(s: sections.Section) -> str:
        if s.kind == "compare":
            return _compare_section(s, filename, root, cache_dir, templates)
        ref = _pipeline_for(s, filename, root)
        facts = service.facts_for(ref, cache_dir=cache_dir, in_process=True, root=root, confine=True)
        depth = int(s.params["depth"]) if s.params.get("depth", "").isdigit() else None
        result = None
        notice = None
        if s.kind in ("run", "results"):
            opts = runner.RunOptions(cache_dir=Path(cache_dir) if cache_dir else None)
            result = runner.latest(ref, opts, root)
            again = f"traindoc run {shlex.quote(facts.source)} --docs"
            if result is None:
                notice = f"No run recorded yet: {again}"
            else:
                why = runner.stale_because(ref, opts, root, pipeline_only=True)
                if why:  # the figures are true of the run, not of the pipeline as it is now: say so
                    notice = (
                        f"Recorded before the pipeline last changed ({'; '.join(why[:3])}): "
                        f"{again}, then traindoc readme, to refresh."
                    )
        return content.block(
            s.kind, facts, result=result, notice=notice, depth=depth, templates=templates, root=root, chart=False
        )

    return sections.replace(text, generate, filename, (*content.BLOCKS, "compare"))


def _compare_section(
    s: sections.Section, filename: str, root: Path, cache_dir: str | None, templates: str | None
) -> str:
    """``<!-- traindoc:begin compare a=NAME b=NAME seeds=3 -->``: from cached runs only."""
    from ..compare import cached_comparison
    from ..compare.page import block

    a, b = s.params.get("a"), s.params.get("b")
    if not a or not b:
        raise MarkerError(f"{filename}({s.line_no}): name both sides, e.g. 'traindoc:begin compare a=NAME b=NAME'")
    seeds = int(s.params["seeds"]) if s.params.get("seeds", "").isdigit() else 3
    nproc = int(s.params["nproc"]) if s.params.get("nproc", "").isdigit() else None
    cache = Path(cache_dir) if cache_dir else None
    c = cached_comparison(a, b, seeds=seeds, root=root, cache_dir=cache, nproc=nproc)
    if c is None:
        from ..render.escape import md_code

        run = md_code(f"traindoc compare {shlex.quote(a)} {shlex.quote(b)} --seeds {seeds} --docs")
        again = md_code(f"traindoc readme {shlex.quote(Path(filename).name)}")
        return f"No recorded comparison yet: {run}, then {again}.\n"
    return block(c, templates, root, docs=True)


def update_file(path: Path, *, check: bool = False, cache_dir: str | None = None) -> tuple[bool, str]:
    """(changed, unified diff). With ``check`` nothing is written. Writes are atomic."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MarkerError(
            f"{path}: not UTF-8 text (byte {exc.start}); traindoc reads and writes README files as UTF-8"
        ) from None
    root = find_root(path.resolve().parent)
    new = generate_text(text, str(path), root, cache_dir)
    if new == text:
        return False, ""
    diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True), new.splitlines(keepends=True), f"{path} (current)", f"{path} (generated)"
        )
    )
    if not check:
        atomic.write_text(path.resolve(), new)  # through a symbolic link (README.md -> docs/index.md), never over it
    return True, diff

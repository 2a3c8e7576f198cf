"""``traindoc`` fences in Markdown pages, expanded to generated Markdown. No MkDocs needed.

    ```traindoc
    pipeline: digits
    show: system          # system | model | data | distributed | run | environment | commands |
                          # quickstart | lint | model-table | spec-reference | cli-reference
    depth: 2              # model diagram / table only
    direction: auto       # system / data / distributed: auto (top-down), TB or LR
    ```

    ```traindoc
    show: compare         # two pipelines over the same seeds, with a verdict and a model diff
    pipelines: [digits-plain, digits]    # A (baseline), B (the change)
    seeds: 3              # runs per side (default 3; fewer gives no verdict)
    expect: {val_accuracy: {min_delta: 0.0}}   # bounds on B − A: the build fails when one is missed
    ```

A :class:`Provider` supplies facts and run results; the MkDocs plugin passes one that caches and
runs in the background, ``formatter`` (a pymdownx.superfences formatter, for Zensical or plain
Python-Markdown) uses :class:`CachedProvider`.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..errors import CacheCorrupt, TraindocError
from ..facts import Facts
from ..render import content
from ..render.diagrams import DIRECTIONS
from ..run.results import RunResult

SHOW = (*content.BLOCKS, "compare", "spec-reference", "cli-reference")
KEYS = ("pipeline", "pipelines", "show", "depth", "direction", "seeds", "expect", "nproc")
FENCE_RE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*traindoc[ \t]*\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S,
)


class FenceError(TraindocError):
    """A traindoc fence is malformed (unknown key, unknown show, missing pipeline)."""


@dataclass(frozen=True)
class FenceOptions:
    show: str
    pipeline: str | None
    depth: int | None
    direction: str | None = None
    pipelines: tuple[str, str] | None = None  # show: compare
    seeds: int = 3
    expect: dict[str, dict[str, float]] | None = None
    nproc: int | None = None  # show: compare: processes per run (default: the spec's)


def parse_options(body: str, where: str) -> FenceOptions:
    try:
        data = yaml.safe_load(body) or {}
    except yaml.YAMLError as exc:
        raise FenceError(f"{where}: traindoc fence is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise FenceError(f"{where}: traindoc fence must hold 'key: value' lines ({', '.join(KEYS)})")
    unknown = set(data) - set(KEYS)
    if unknown:
        raise FenceError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(KEYS)}")
    show = str(data.get("show", "system"))
    if show not in SHOW:
        raise FenceError(f"{where}: show: {show!r} is not one of {', '.join(SHOW)}")
    if show == "compare":
        return _compare_options(data, where)
    pipeline = data.get("pipeline")
    if pipeline is None and show not in ("spec-reference", "cli-reference"):
        raise FenceError(f"{where}: show: {show} needs 'pipeline: NAME'")
    depth = data.get("depth")
    if depth is not None and (not isinstance(depth, int) or depth < 1):
        raise FenceError(f"{where}: depth must be a positive integer, got {depth!r}")
    direction = data.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise FenceError(f"{where}: direction: {direction!r} is not one of {', '.join(DIRECTIONS)}")
    return FenceOptions(
        show=show, pipeline=str(pipeline) if pipeline is not None else None, depth=depth, direction=direction
    )


def _compare_options(data: dict[Any, Any], where: str) -> FenceOptions:
    pair = data.get("pipelines")
    if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
        raise FenceError(f"{where}: show: compare needs 'pipelines: [A, B]' (two pipeline names)")
    seeds = data.get("seeds", 3)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= 20:
        raise FenceError(f"{where}: seeds must be an integer from 1 to 20, got {seeds!r}")
    expect = data.get("expect")
    from ..compare.run import valid_expect

    if expect is not None and not valid_expect(expect):
        raise FenceError(f"{where}: expect must map metrics to {{min_delta: N}} and/or {{max_delta: N}}")
    nproc = data.get("nproc")
    if nproc is not None and (not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1):
        raise FenceError(f"{where}: nproc must be a positive integer, got {nproc!r}")
    return FenceOptions(
        show="compare",
        pipeline=None,
        depth=None,
        pipelines=(pair[0], pair[1]),
        seeds=seeds,
        expect=expect,
        nproc=nproc,
    )


class Provider(Protocol):
    templates: str | None

    def facts(self, pipeline: str) -> Facts: ...

    def run(self, pipeline: str) -> tuple[RunResult | None, str | None]: ...

    def run_seed(self, pipeline: str, seed: int | None, nproc: int | None = None) -> RunResult: ...


def render_fence(opts: FenceOptions, provider: Provider) -> str:
    if opts.show in ("spec-reference", "cli-reference"):
        return reference_page(opts.show)
    if opts.show == "compare":
        return compare_fence(opts, provider)
    assert opts.pipeline is not None
    facts = provider.facts(opts.pipeline)
    result, notice = (None, None)
    if opts.show in ("run", "results"):
        result, notice = provider.run(opts.pipeline)
    return content.block(
        opts.show,
        facts,
        result=result,
        notice=notice,
        depth=opts.depth,
        templates=provider.templates,
        root=getattr(provider, "root", None),
        direction=opts.direction,
    )


def compare_fence(opts: FenceOptions, provider: Provider) -> str:
    """Both pipelines over the same seeds (docs budget; cached runs reused), then the comparison section.
    A failed run or a missed expectation on B − A fails the build like a single run does."""
    from ..compare import run as compare_run
    from ..compare import seeds_for
    from ..compare.page import block

    assert opts.pipelines is not None
    a, b = opts.pipelines
    c = compare_run.compare(
        a,
        b,
        seeds=seeds_for(opts.seeds),
        runner=lambda name, seed: provider.run_seed(name, seed, opts.nproc),
        facts_for=provider.facts,
        expect=opts.expect,
        nproc=opts.nproc,
    )
    report = getattr(provider, "report", None)
    if report is not None and not c.ok:
        missed = [e.text for e in c.expectations if not e.passed]
        report(f"compare {a} vs {b}: " + ("; ".join(missed) if missed else "a run failed"))
    return block(c, provider.templates, getattr(provider, "root", None), docs=True)


def reference_page(show: str) -> str:
    """The spec or CLI reference; it depends only on traindoc's code, so it is cached by its digest
    (a checked cache entry: a damaged one is regenerated, never served)."""
    from .. import cache

    key = f"{show}-{cache.own_source_digest()}"
    path = cache.Layout(cache.default_dir()).reference(key)
    with contextlib.suppress(CacheCorrupt):
        text = cache.read_entry(path, key)
        if isinstance(text, str):
            return text
    from ..cli.parser import build_parser
    from ..render import reference

    text = reference.spec_reference() if show == "spec-reference" else reference.cli_reference(build_parser())
    cache.write_entry(path, key, text)
    return text


def error_block(message: str, root: Path | None = None) -> str:
    """What a page shows when its generated content failed (the build may still fail in strict mode):
    the message in a code block it cannot end, without secrets or this machine's paths."""
    from .._util.redact import for_page
    from ..render.escape import fence

    return "**traindoc could not generate this block.**\n\n" + fence(for_page(message, root), "text")


def expand(markdown: str, provider: Provider, page: str, on_error: Any = None) -> str:
    """Replace every ```traindoc fence; errors go to ``on_error(message)`` and onto the page."""

    def sub(m: re.Match[str]) -> str:
        line = markdown.count("\n", 0, m.start()) + 1
        where = f"{page}({line})"
        try:
            out = render_fence(parse_options(m.group("body"), where), provider)
        except TraindocError as exc:
            message = "\n".join(exc.lines())
            if on_error is None:
                raise
            on_error(f"{where}: {message}" if not message.startswith(page) else message)
            out = error_block(message, getattr(provider, "root", None))
        indent = m.group("indent")
        return "\n".join(indent + x if x else x for x in out.rstrip("\n").split("\n"))

    return FENCE_RE.sub(sub, markdown)


# --- superfences formatter (works without the MkDocs plugin, e.g. under Zensical) -------------------------


class CachedProvider:
    """Facts from the cache (or a child process); run results from the cache, else a notice."""

    def __init__(self, root: Path | None = None, cache_dir: Path | None = None, execute: str = "never") -> None:
        from ..project import find_root
        from ..render.env import project_templates_dir

        self.root = root or find_root()
        self.cache_dir = cache_dir
        self.execute = execute
        self.templates = project_templates_dir(self.root)

    def facts(self, pipeline: str) -> Facts:
        from ..facts import service

        return service.facts_for(pipeline, cache_dir=self.cache_dir, root=self.root, confine=True)

    def run(self, pipeline: str) -> tuple[RunResult | None, str | None]:
        from ..run import runner

        opts = runner.RunOptions(docs=True, cache_dir=self.cache_dir, progress=False)
        hit = runner.lookup(pipeline, opts, self.root)
        if hit is not None or self.execute == "never":
            return hit, None if hit else "No cached run for these inputs (execute: never)."
        return runner.run(pipeline, opts, self.root), None

    def run_seed(self, pipeline: str, seed: int | None, nproc: int | None = None) -> RunResult:
        from ..errors import CompareError
        from ..run import runner

        opts = runner.RunOptions(docs=True, seed=seed, cache_dir=self.cache_dir, progress=False, nproc=nproc)
        if self.execute == "never":
            hit = runner.lookup(pipeline, opts, self.root)
            if hit is None:
                raise CompareError(f"{pipeline}: no cached run for seed {seed} (execute: never)")
            return hit
        return runner.run(pipeline, opts, self.root)


def formatter(source: str, language: str, css_class: str, options: dict[str, Any], md: Any, **kwargs: Any) -> str:
    """pymdownx.superfences custom-fence formatter: ``format: !!python/name:traindoc.docsgen.formatter``."""
    import markdown as _markdown  # type: ignore[import-untyped]
    from pymdownx.superfences import fence_code_format

    text = render_fence(parse_options(source, "traindoc fence"), CachedProvider())
    inner = _markdown.Markdown(
        extensions=["tables", "pymdownx.superfences"],
        extension_configs={
            "pymdownx.superfences": {
                "custom_fences": [{"name": "mermaid", "class": "mermaid", "format": fence_code_format}]
            }
        },
    )
    return f'<div class="traindoc">{inner.convert(text)}</div>'

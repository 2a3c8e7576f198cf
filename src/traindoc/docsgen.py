"""``traindoc`` fences in Markdown pages, expanded to generated Markdown. No MkDocs needed.

    ```traindoc
    pipeline: digits
    show: system          # system | model | data | distributed | run | environment | commands |
                          # quickstart | lint | model-table | spec-reference | cli-reference
    depth: 2              # model diagram / table only
    direction: auto       # system / data / distributed: auto (top-down), TB or LR
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

from . import content
from .diagrams import DIRECTIONS
from .errors import CacheCorrupt, TraindocError
from .facts import Facts
from .results import RunResult

SHOW = (*content.BLOCKS, "spec-reference", "cli-reference")
KEYS = ("pipeline", "show", "depth", "direction")
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


class Provider(Protocol):
    templates: str | None

    def facts(self, pipeline: str) -> Facts: ...

    def run(self, pipeline: str) -> tuple[RunResult | None, str | None]: ...


def render_fence(opts: FenceOptions, provider: Provider) -> str:
    if opts.show in ("spec-reference", "cli-reference"):
        return reference_page(opts.show)
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


def reference_page(show: str) -> str:
    """The spec or CLI reference; it depends only on traindoc's code, so it is cached by its digest
    (a checked cache entry: a damaged one is regenerated, never served)."""
    from . import cache

    key = f"{show}-{cache.own_source_digest()}"
    path = cache.Layout(cache.default_dir()).reference(key)
    with contextlib.suppress(CacheCorrupt):
        text = cache.read_entry(path, key)
        if isinstance(text, str):
            return text
    from . import reference

    text = reference.spec_reference() if show == "spec-reference" else reference.cli_reference()
    cache.write_entry(path, key, text)
    return text


def error_block(message: str, root: Path | None = None) -> str:
    """What a page shows when its generated content failed (the build may still fail in strict mode):
    the message in a code block it cannot end, without secrets or this machine's paths."""
    from .escape import fence
    from .redact import for_page

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
        from .project import find_root
        from .render import project_templates_dir

        self.root = root or find_root()
        self.cache_dir = cache_dir
        self.execute = execute
        self.templates = project_templates_dir(self.root)

    def facts(self, pipeline: str) -> Facts:
        from . import service

        return service.facts_for(pipeline, cache_dir=self.cache_dir, root=self.root, confine=True)

    def run(self, pipeline: str) -> tuple[RunResult | None, str | None]:
        from . import runner

        opts = runner.RunOptions(docs=True, cache_dir=self.cache_dir, progress=False)
        hit = runner.lookup(pipeline, opts, self.root)
        if hit is not None or self.execute == "never":
            return hit, None if hit else "No cached run for these inputs (execute: never)."
        return runner.run(pipeline, opts, self.root), None


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

"""The Jinja2 environment: package templates, overridable by a project's ``templates/`` by file name.

Templates hold presentation (labels, layout, wording); Python hands them plain data and a few
filters. Every ``{{ ... }}`` goes through the escaping filter of its destination (:mod:`traindoc.escape`:
``md_text``/``md_cell``, ``md_code``, ``html``, ``mmd_label``, ``mmd_comment``, ``mmd_id``, ``fence``, ``sh``,
``txt``, ``num``) or a number formatter, so every template, including a user's override, is safe.
Compiled templates live only in this process's memory: no bytecode cache on disk (that is marshalled code,
and the cache folder is shared between CI runs).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from . import escape, mermaid

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"


def human(n: float | int | None) -> str:
    """22242 -> '22.2k', 1_557_611_200 -> '1.56B'."""
    if n is None:
        return "—"
    value = float(n)
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{int(value)}" if value == int(value) else f"{value:.3g}"


def human_bytes(n: float | int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def thousands(n: int | float | None) -> str:
    return "—" if n is None else f"{n:,}"


def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "—"
    return format(value, spec)


@lru_cache(maxsize=8)
def environment(project_templates: str | None = None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if project_templates:
        loaders.append(jinja2.FileSystemLoader(project_templates))
    loaders.append(jinja2.FileSystemLoader(str(PACKAGE_TEMPLATES)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(escape.FILTERS)
    env.filters.update(
        mmd_label=mermaid.label,
        nid=mermaid.node_id,
        human=human,
        bytes=human_bytes,
        thousands=thousands,
        fmt=fmt,
        # the names project templates written for earlier versions use
        q=mermaid.label,
        esc=mermaid.escape,
        cell=escape.md_cell,
        code=escape.md_code,
    )
    return env


def project_templates_dir(root: Path | None) -> str | None:
    """A project's ``templates/`` folder, when it exists."""
    if root is None:
        return None
    folder = root / "templates"
    return str(folder.resolve()) if folder.is_dir() else None


def render(name: str, templates: str | None = None, **context: Any) -> escape.Rendered:
    """Render one template by file name; a project's template of that name wins."""
    return escape.Rendered(environment(templates).get_template(name).render(**context))

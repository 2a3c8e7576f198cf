"""The Jinja2 environment: package templates, overridable by a project's ``templates/`` by file name.

Templates hold presentation (labels, layout, wording); Python hands them plain data and a few
filters. Every ``{{ ... }}`` goes through the escaping filter of its destination (:mod:`traindoc.render.escape`:
``md_text``/``md_cell``, ``md_code``, ``html``, ``mmd_label``, ``mmd_comment``, ``mmd_id``, ``fence``, ``sh``,
``txt``, ``num``) or a number formatter, so every template, including a user's override, is safe.
Compiled templates are code, so they are kept only in memory and in a private per-user folder
(:class:`PrivateBytecodeCache`), never in the project's cache folder, which is shared between CI runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache

from .._util import atomic
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


class PrivateBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates in a private per-user folder, so a fresh ``mkdocs build`` need not compile
    them again. Compiled templates are code: they are never put in the project's shared cache. The
    folder must be a real directory owned by this user with no access for anyone else (mode 700), and
    each file owned by this user and writable by no one else, or it is not used. Writes are atomic;
    an unusable entry just means compiling again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, bucket: jinja2.bccache.Bucket) -> Path:
        return self.folder / f"{bucket.key}.cache"

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            with open(self._path(bucket), "rb") as fh:
                st = os.fstat(fh.fileno())
                if st.st_uid != os.getuid() or st.st_mode & 0o022:
                    return
                bucket.load_bytecode(fh)
        except (OSError, EOFError, ValueError, TypeError):
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        buffer = io.BytesIO()
        bucket.write_bytecode(buffer)
        with contextlib.suppress(OSError):  # a read-only folder only costs compile time
            atomic.write_bytes(self._path(bucket), buffer.getvalue())
            os.chmod(self._path(bucket), 0o600)


def private_cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/traindoc-bytecode`` (default ``~/.cache/traindoc-bytecode``), created with mode
    700; None when it is not private to this user or lies inside the project's shared cache."""
    from ..cache import default_dir

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "traindoc-bytecode"
    try:
        shared, real = default_dir().resolve(), folder.resolve()
        if real == shared or shared in real.parents:
            return None
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.lstat()
    except (OSError, RuntimeError):
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return folder


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
        bytecode_cache=PrivateBytecodeCache(folder) if (folder := private_cache_dir()) else None,
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

"""The project around a pipeline: its root, its named pipelines, its templates. No torch here."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import LoadError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def find_root(start: Path | None = None) -> Path:
    """The nearest folder (from ``start`` up) holding pyproject.toml or mkdocs.yml; else ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() or (folder / "mkdocs.yml").is_file():
            return folder
    return here


def named_pipelines(root: Path) -> dict[str, str]:
    """``[tool.traindoc] pipelines = {name = "path.py"}`` from the project's pyproject.toml."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LoadError(f"{pyproject}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("traindoc", {}).get("pipelines", {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise LoadError(f"{pyproject}: [tool.traindoc].pipelines must map names to pipeline references")
    return dict(table)


def resolve_name(name_or_ref: str, root: Path) -> str:
    """A pipeline name from pyproject.toml, or the reference itself."""
    return named_pipelines(root).get(name_or_ref, name_or_ref)


def known_names_hint(ref: str, root: Path) -> str:
    """For a bare name that matched nothing: the pipelines pyproject.toml does name ("" for paths)."""
    if any(c in ref for c in "/\\:") or ref.endswith(".py") or "." in ref:
        return ""
    try:
        names = sorted(named_pipelines(root))
    except LoadError:
        return ""
    where = root / "pyproject.toml"
    if not names:
        return f'; {where} names no pipelines ([tool.traindoc] pipelines = {{ NAME = "path/to/file.py" }})'
    return f"; not a pipeline named in {where}, which knows: {', '.join(names)}"

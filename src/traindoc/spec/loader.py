"""Load a pipeline from a file or module reference, and resolve the factories it names.

References: ``pipeline/digits.py``, ``pipeline/digits.py:pipeline``, ``package.module:name`` and
``package.module``. A spec error becomes one :class:`~traindoc.errors.Problem` per field; an error
inside the user's module is re-raised as :class:`~traindoc.errors.UserCodeError` carrying the
user's own traceback frames, not ours.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import LoadError, Problem, SpecError, UserCodeError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from .pipeline import Pipeline


@dataclass(frozen=True)
class PipelineRef:
    """A parsed reference: either a file path or a module name, plus an optional attribute."""

    path: Path | None
    module: str | None
    attr: str | None

    @property
    def display(self) -> str:
        base = str(self.path) if self.path is not None else str(self.module)
        return f"{base}:{self.attr}" if self.attr else base


def parse_ref(text: str, base_dir: Path | None = None) -> PipelineRef:
    """Parse a pipeline reference without importing anything."""
    base = base_dir or Path.cwd()
    head, sep, attr = text.rpartition(":")
    if not sep or "/" in attr or attr.endswith(".py"):
        head, attr = text, ""
    if head.endswith(".py") or "/" in head or "\\" in head:
        path = Path(head)
        if not path.is_absolute():
            path = base / path
        return PipelineRef(path=path.resolve(), module=None, attr=attr or None)
    return PipelineRef(path=None, module=head, attr=attr or None)


def source_file(ref: PipelineRef) -> Path:
    """The file a reference points at (for modules, found via importlib without executing it)."""
    if ref.path is not None:
        if not ref.path.is_file():
            raise LoadError(f"{ref.path}: pipeline file not found")
        return ref.path
    assert ref.module is not None
    try:
        found = importlib.util.find_spec(ref.module)
    except (ImportError, ValueError) as exc:
        raise LoadError(f"{ref.module}: cannot locate module ({exc})") from None
    if found is None or not found.origin or not found.has_location:
        raise LoadError(f"{ref.module}: module not found (is it installed or on sys.path?)")
    return Path(found.origin)


def load(text: str | PipelineRef, base_dir: Path | None = None) -> tuple[Pipeline, Path]:
    """Import the module a reference names and return its pipeline and source file."""
    ref = parse_ref(text, base_dir) if isinstance(text, str) else text
    file = source_file(ref)
    module = _import(ref, file)
    return pick(module, ref.attr, file), file


def pick(module: ModuleType, attr: str | None, file: Path) -> Pipeline:
    """Choose the pipeline in a module: the named attribute, or the only one."""
    from .pipeline import Pipeline

    if attr:
        value = module
        for part in attr.split("."):
            if not hasattr(value, part):
                raise LoadError(f"{file}: no attribute {attr!r} in the pipeline module")
            value = getattr(value, part)
        if not isinstance(value, Pipeline):
            raise LoadError(f"{file}: {attr!r} is a {type(value).__name__}, not a traindoc Pipeline")
        return value
    found = {name: v for name, v in vars(module).items() if isinstance(v, Pipeline)}
    if not found:
        raise LoadError(f"{file}: no Pipeline defined at module level (expected e.g. `pipeline = Pipeline(...)`)")
    if len(found) > 1:
        names = ", ".join(sorted(found))
        raise LoadError(f"{file}: several pipelines ({names}); name one as '{file.name}:NAME'")
    return next(iter(found.values()))


def _module_name(file: Path) -> str:
    return f"traindoc_user_{file.stem}" if file.stem in sys.builtin_module_names else file.stem


def _import(ref: PipelineRef, file: Path) -> ModuleType:
    from pydantic import ValidationError

    if ref.module is not None:
        importer: Callable[[], ModuleType] = lambda: importlib.import_module(ref.module or "")  # noqa: E731
    else:
        folder = str(file.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = _module_name(file)
        existing = sys.modules.get(name)
        if existing is not None and getattr(existing, "__file__", None) == str(file):
            return existing
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise LoadError(f"{file}: not an importable Python file")
        module = importlib.util.module_from_spec(spec)

        def importer() -> ModuleType:
            sys.modules[name] = module
            # as importlib does: marks the module "partially initialized" while it runs, so a circular
            # import keeps Python's own hint ("most likely due to a circular import")
            spec._initializing = True  # type: ignore[attr-defined]
            try:
                assert spec.loader is not None
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            finally:
                spec._initializing = False  # type: ignore[attr-defined]
            return module

    try:
        return importer()
    except ValidationError as exc:
        raise spec_error(exc, file, _user_line(exc.__traceback__, file)) from None
    except SyntaxError as exc:
        where = f"{exc.filename}({exc.lineno})" if exc.filename else str(file)
        raise UserCodeError(f"{where}: syntax error: {exc.msg}", user_traceback(exc)) from None
    except Exception as exc:
        raise UserCodeError(
            f"{file}: importing the pipeline raised {type(exc).__name__}: {exc}", user_traceback(exc)
        ) from None


def _user_line(tb: TracebackType | None, file: Path) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if Path(frame.f_code.co_filename) == file:
            line = lineno
    return line


def user_traceback(exc: BaseException) -> str:
    """Format an exception keeping only frames outside traindoc and importlib: the user's own."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_internal(f.filename)]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def _is_internal(filename: str) -> bool:
    here = str(Path(__file__).parents[1])  # the traindoc package, every subpackage
    return filename.startswith(here) or "importlib" in filename or filename.startswith("<frozen")


# --- spec errors -------------------------------------------------------------------------------


def _paths(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    from .fields import _submodel

    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        if sub is not None:
            yield sub.__name__, sub
            yield from _paths(sub, f"{prefix}{name}.")


def _prefix_for(title: str) -> str:
    """Field path of a nested spec class inside Pipeline (e.g. 'Checkpoint' -> 'checkpoint.')."""
    from .pipeline import Pipeline

    if title == Pipeline.__name__:
        return ""

    def walk(model: type[BaseModel], prefix: str) -> str | None:
        from .fields import _submodel

        for name, field in model.model_fields.items():
            sub = _submodel(field.annotation)
            if sub is None:
                continue
            if sub.__name__ == title:
                return f"{prefix}{name}."
            deeper = walk(sub, f"{prefix}{name}.")
            if deeper is not None:
                return deeper
        return None

    return walk(Pipeline, "") or f"{title}."


def _allowed(title: str, loc: tuple[Any, ...]) -> list[str]:
    from .fields import _submodel
    from .pipeline import Pipeline

    models = {Pipeline.__name__: Pipeline} | {n: m for n, m in _paths(Pipeline)}
    model: type[BaseModel] | None = models.get(title)
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _submodel(field.annotation) if field is not None else None
        if model is None and field is not None:
            for arg in getattr(field.annotation, "__args__", ()) or ():
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    model = arg
    return sorted(model.model_fields) if model is not None else []


def _loc_text(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix.rstrip(".")
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or str(part).startswith("function"):  # pydantic's union/validator branch names
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(pipeline)"


def spec_error(exc: ValidationError, file: Path, line: int | None = None) -> SpecError:
    """Turn pydantic's errors into one Problem per field: path, bad value, what is allowed."""
    prefix = _prefix_for(exc.title)
    problems: list[Problem] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _loc_text(prefix, loc)
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed(exc.title, loc))
            message = f"unknown field; allowed here: {allowed}"
        else:
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] not in ("missing",):
                message += f" (got {_short(err.get('input'))})"
        key = f"{path}:{message}"
        if key in seen:
            continue
        seen.add(key)
        problems.append(Problem(file=str(file), line=line, field=path, message=message))
    return SpecError(problems)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- factories -----------------------------------------------------------------------------------


def resolve(value: Any, field: str, file: Path) -> Callable[..., Any]:
    """Resolve a factory (callable or 'module:attr') to a callable; errors name the field."""
    if callable(value):
        return value  # type: ignore[no-any-return]
    module_name, _, attr = str(value).partition(":")
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise SpecError(
            [Problem(str(file), f"{value!r} does not import: {type(exc).__name__}: {exc}", field=field)]
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(
                [Problem(str(file), f"{value!r}: module {module_name!r} has no attribute {part!r}", field=field)]
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError([Problem(str(file), f"{value!r} is not callable", field=field)])
    return obj  # type: ignore[no-any-return]


def call(value: Any, field: str, file: Path, *args: Any) -> Any:
    """Resolve and call a factory; an exception becomes a UserCodeError with the user's traceback."""
    fn = resolve(value, field, file)
    try:
        return fn(*args)
    except Exception as exc:
        raise UserCodeError(
            f"{file}: {field} ({_short(value) if isinstance(value, str) else getattr(fn, '__qualname__', fn)}) "
            f"raised {type(exc).__name__}: {exc}",
            user_traceback(exc),
        ) from None

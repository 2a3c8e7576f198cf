"""The package's stage layout, checked from the source alone (``ast``; nothing is imported).

Stages, lowest first: ``errors``/``records``/``_util`` → ``project``/``cache``/``spec`` → ``facts`` →
``run`` (parent side of a run) / ``train`` (child side) → ``render`` → ``compare`` → ``pages``/``export``
→ ``cli``. A module may import its own stage and the stages :data:`ALLOWED` names for it; anything
else must be listed in :data:`EXCEPTIONS` with its reason. The graph includes imports inside
functions (lazy imports still run) but not those under ``if TYPE_CHECKING:``. An import of
``traindoc.a.b`` is an edge to that module and to package ``a`` (whose ``__init__`` Python runs first),
unless the importing module is inside ``a`` itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "traindoc"

# Stage of a module = its subpackage, or the module's own name at the top level. Targets are stages or
# single modules (``run.protocol``): a target covers itself and every module below it.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "records": {"errors"},  # RecordError lives in the error root
    "guard": set(),  # `python -m traindoc.guard`: the parent-death wrapper every child starts through
    "_util": {"errors", "guard"},
    "project": {"errors", "_util"},
    "cache": {"traindoc", "errors", "records", "_util"},  # `traindoc`: the root package, for __version__
    "spec": {"errors", "records", "_util", "project"},
    "facts": {"traindoc", "spec", "project", "cache", "errors", "records", "_util", "guard"},
    "run": {"facts", "spec", "project", "cache", "errors", "records", "_util", "guard"},
    # the child side: never the runner, render, pages, cli
    "train": {
        "spec",
        "facts.policy",
        "run.protocol",
        "run.runfolder",
        "run.hang",
        "errors",
        "records",
        "_util",
        "traindoc",
    },
    # presentation: records of the run (results, protocol, the pure launch plan), never its orchestration
    "render": {
        "facts",
        "spec",
        "run.results",
        "run.protocol",
        "run.launch",
        "project",
        "cache",
        "errors",
        "records",
        "_util",
    },
    "compare": {"render", "run", "facts", "spec", "project", "cache", "errors", "records", "_util"},
    "export": {"render", "facts", "spec", "project", "cache", "errors", "records", "_util"},
    "pages": {"compare", "export", "render", "run", "facts", "spec", "project", "cache", "errors", "records", "_util"},
    "cli": {
        "traindoc",
        "compare",
        "export",
        "pages",
        "render",
        "run",
        "facts",
        "spec",
        "project",
        "cache",
        "errors",
        "records",
        "_util",
    },
    "traindoc": {"train.script"},  # the root package: traindoc.log/checkpoint_dir/should_stop/seed
    "__main__": {"cli"},
    # compatibility shims (nothing inside traindoc imports them; see SHIMS)
    "worker": {"train.__main__"},
    "docsgen": {"pages.docsgen"},
    "mkdocs_plugin": {"pages.mkdocs_plugin"},
}

# Module paths kept for users and installed configs; tiny re-exports that nothing inside traindoc imports.
# `traindoc.worker` is also the documented launch name (`python -m traindoc.worker`, in the launch lines
# and the Kubernetes manifest people copy): started by name as a process, never imported.
SHIMS = {"worker", "docsgen", "mkdocs_plugin"}

# Imports against the table above, each with why it is there today.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("spec.pipeline", "render.lint"): "LintSpec.ignore is checked against lint's rule ids (lazy import)",
    ("facts.introspect", "run.launch"): "the facts carry the launcher argv (design review §2.2.4)",
    ("pages.docsgen", "cli.parser"): "the cli-reference fence renders the CLI's grammar (cli.parser imports "
    "argparse and errors only: a leaf, no cycle)",
}

# Import cycles allowed today. Every other cycle fails.
KNOWN_CYCLES: set[frozenset[str]] = set()  # cli <-> render.reference ended: reference takes the parser

# Modules that import torch: the facts stage (introspection) and the training child, nothing else.
TORCH_STAGES = {"facts", "train"}
TORCH_EXCEPTIONS: dict[str, str] = {}  # module -> reason; none today


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # file:line
    package: bool = False  # an edge to a package whose __init__ runs because a module inside it is imported

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.target}"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name relative to the package ('traindoc' for the root) -> (file, is a package)."""
    found = {}
    for file in sorted(PACKAGE.rglob("*.py")):
        parts = list(file.relative_to(PACKAGE).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        found[".".join(parts) or "traindoc"] = (file, is_pkg)
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skip.update(id(n) for n in ast.walk(inner))
    return skip


def _absolute(name: str) -> str:
    """'traindoc.a.b' -> 'a.b'; 'traindoc' -> 'traindoc'."""
    return name.removeprefix("traindoc.") if name != "traindoc" else "traindoc"


def _imports(mods: dict[str, tuple[Path, bool]]) -> tuple[list[Edge], dict[str, list[str]]]:
    """Internal import edges, and the lines that import torch per module."""
    edges: list[Edge] = []
    torch_lines: dict[str, list[str]] = defaultdict(list)
    for mod, (file, is_pkg) in mods.items():
        tree = ast.parse(file.read_text(), filename=str(file))
        skip = _type_checking_nodes(tree)
        full = "traindoc" if mod == "traindoc" else f"traindoc.{mod}"
        where = f"{file.relative_to(PACKAGE.parents[1])}"
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = full.split(".") if is_pkg else full.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                for alias in node.names:
                    candidate = f"{prefix}.{alias.name}"
                    targets.append(candidate if _absolute(candidate) in mods else prefix)
            for target in targets:
                if target.split(".")[0] == "torch":
                    torch_lines[mod].append(f"{where}:{node.lineno}")
                if target == "traindoc" or target.startswith("traindoc."):
                    name = _absolute(target)
                    edges.append(Edge(mod, name, f"{where}:{node.lineno}"))
                    parts = name.split(".")
                    for i in range(1, len(parts)):  # the packages whose __init__ runs on the way
                        package = ".".join(parts[:i])
                        if package in mods and not _covers(package, mod):
                            edges.append(Edge(mod, package, f"{where}:{node.lineno} (package {package})", True))
    return edges, torch_lines


def _stage(mod: str) -> str:
    return mod.split(".")[0]


def _covers(allowed: str, target: str) -> bool:
    return target == allowed or target.startswith(allowed + ".")


def _sccs(nodes: set[str], graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            out.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def _graph() -> tuple[dict[str, tuple[Path, bool]], list[Edge], dict[str, list[str]]]:
    mods = _modules()
    edges, torch_lines = _imports(mods)
    return mods, edges, torch_lines


def cycles(edges: list[Edge], nodes: set[str]) -> list[str]:
    """One message per import cycle not in KNOWN_CYCLES, naming each import in it (file:line)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        if e.source != e.target:
            graph[e.source].add(e.target)
    problems = []
    for component in _sccs(nodes, graph):
        if len(component) < 2 or frozenset(component) in KNOWN_CYCLES:
            continue
        inside = sorted(str(e) for e in edges if e.source in component and e.target in component)
        problems.append(f"import cycle between {', '.join(sorted(component))}:\n    " + "\n    ".join(inside))
    return problems


def through_packages(edges: list[Edge]) -> list[Edge]:
    """An import of ``a.b`` runs ``a/__init__``: whatever that ``__init__`` imports is imported on the
    importer's behalf, so it is checked as the importer's own import (a re-export added to
    ``run/__init__`` cannot smuggle the runner into ``train/``). Package edges themselves are dropped."""
    out_of: dict[str, list[Edge]] = defaultdict(list)
    for e in edges:
        if not e.package:
            out_of[e.source].append(e)
    checked: list[Edge] = []
    for e in edges:
        if not e.package:
            checked.append(e)
            continue
        for inner in out_of.get(e.target, []):
            checked.append(Edge(e.source, inner.target, f"{e.where} -> {inner.where}"))
    return checked


def layer_violations(edges: list[Edge]) -> list[str]:
    problems = []
    for e in through_packages(edges):
        src, dst = _stage(e.source), e.target
        if dst in SHIMS and src not in SHIMS:
            problems.append(f"{e}: {dst} is a compatibility shim; import what it re-exports instead")
        elif src == _stage(dst) and src != "traindoc":
            continue  # within one stage
        elif any(s == e.source and _covers(t, dst) for s, t in EXCEPTIONS):
            continue
        elif src not in ALLOWED:
            problems.append(f"{e}: stage {src!r} is not in ALLOWED; add it with what it may import")
        elif not any(_covers(a, dst) for a in ALLOWED[src]):
            problems.append(f"{e}: {src} may import only {', '.join(sorted(ALLOWED[src])) or 'nothing internal'}")
    return problems


def torch_violations(torch_lines: dict[str, list[str]]) -> list[str]:
    return [
        f"{line}: {mod} imports torch (only {', '.join(sorted(TORCH_STAGES))}/ may; or add it to TORCH_EXCEPTIONS)"
        for mod, lines in sorted(torch_lines.items())
        if _stage(mod) not in TORCH_STAGES and mod not in TORCH_EXCEPTIONS
        for line in lines
    ]


def test_no_import_cycles() -> None:
    mods, edges, _ = _graph()
    problems = cycles(edges, set(mods))
    assert not problems, "\n".join(problems)


def test_known_cycles_still_exist() -> None:
    """A cycle that is gone is taken off KNOWN_CYCLES, so it cannot come back unnoticed."""
    _, edges, _ = _graph()
    pairs = {(e.source, e.target) for e in edges}
    for cycle in KNOWN_CYCLES:
        a, b = sorted(cycle)
        assert (a, b) in pairs and (b, a) in pairs, f"the cycle {a} <-> {b} is gone: remove it from KNOWN_CYCLES"


def test_lower_layers_never_import_higher_ones() -> None:
    _, edges, _ = _graph()
    problems = layer_violations(edges)
    assert not problems, "layer rule broken:\n" + "\n".join(problems)


def test_only_facts_and_train_import_torch() -> None:
    _, _, torch_lines = _graph()
    problems = torch_violations(torch_lines)
    assert not problems, "\n".join(problems)
    assert torch_lines, "no module imports torch: the scan is broken"


def test_every_stage_is_in_the_table() -> None:
    mods, _, _ = _graph()
    missing = sorted({_stage(m) for m in mods} - set(ALLOWED))
    assert not missing, f"stages without a row in ALLOWED: {missing}"


def test_nothing_imports_a_shim_and_nothing_but_main_imports_cli() -> None:
    _, edges, _ = _graph()
    edges = [e for e in edges if not e.package]  # a package's __init__ is checked through the modules it imports
    bad = [str(e) for e in edges if e.target in SHIMS and e.source not in SHIMS]
    bad += [
        str(e)
        for e in edges
        if _covers("cli", e.target)
        and _stage(e.source) not in {"cli", "__main__"}
        and (e.source, e.target) != ("pages.docsgen", "cli.parser")
    ]
    assert not bad, "\n".join(bad)


def test_the_checks_catch_a_bad_import() -> None:
    """The checks fail, naming file:line, on an import that breaks each rule."""
    spec_to_render = Edge("spec.types", "render.env", "src/traindoc/spec/types.py:12")
    assert layer_violations([spec_to_render]) == [
        "src/traindoc/spec/types.py:12: spec.types imports render.env: spec may import only _util, errors, project, records"
    ]
    loop = [Edge("facts.service", "run.runner", "a.py:1"), Edge("run.runner", "facts.service", "b.py:2")]
    (message,) = cycles(loop, {"facts.service", "run.runner"})
    assert "a.py:1: facts.service imports run.runner" in message and "b.py:2" in message
    # A re-export in run/__init__ would load the runner whenever train/ imports run.protocol.
    smuggled = [
        Edge("train.loop", "run.protocol", "src/traindoc/train/loop.py:27"),
        Edge("train.loop", "run", "src/traindoc/train/loop.py:27 (package run)", True),
        Edge("run", "run.runner", "src/traindoc/run/__init__.py:3"),
    ]
    (through,) = layer_violations(smuggled)
    assert through.startswith("src/traindoc/train/loop.py:27 (package run) -> src/traindoc/run/__init__.py:3: ")
    assert "train.loop imports run.runner" in through
    assert torch_violations({"render.env": ["src/traindoc/render/env.py:3"]}) == [
        "src/traindoc/render/env.py:3: render.env imports torch (only facts, train/ may; or add it to TORCH_EXCEPTIONS)"
    ]


def test_cache_hit_path_imports_neither_pydantic_nor_torch() -> None:
    """The spec package re-exports lazily: its loader, and what a docs rebuild imports, stay light."""
    code = (
        "import sys\n"
        "import traindoc.spec, traindoc.spec.loader, traindoc.facts.service, traindoc.run.runner\n"
        "import traindoc.pages.docsgen, traindoc.cli\n"
        "assert 'pydantic' not in sys.modules and 'torch' not in sys.modules, 'heavy import'\n"
        "from traindoc.spec import Pipeline, split_image\n"
        "assert Pipeline.__name__ == 'Pipeline'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "name", ["Pipeline", "Environment", "Checkpoint", "split_image", "describe_fields", "LintSpec"]
)
def test_spec_reexports(name: str) -> None:
    import traindoc.spec

    assert name in traindoc.spec.__all__
    assert getattr(traindoc.spec, name) is not None

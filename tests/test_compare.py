"""Comparisons: the statistics behind the verdict and the model diff, on synthetic inputs with known answers."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, ProjectFactory
from traindoc.compare.diff import diff_models
from traindoc.compare.stats import MIN_SEEDS, compare_metric, t_quantile, welch_interval
from traindoc.facts import ModelFacts, ModuleFact


def test_t_quantile_matches_known_table_values() -> None:
    # Student's t table (two-sided 95 % → p = 0.975).
    for df, q in [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)]:
        assert t_quantile(0.975, df) == pytest.approx(q, abs=5e-4)


def test_known_difference_is_called_larger_than_noise() -> None:
    rng = random.Random(1)
    a = [0.90 + rng.gauss(0, 0.004) for _ in range(5)]
    b = [0.95 + rng.gauss(0, 0.004) for _ in range(5)]
    d = compare_metric("val_accuracy", a, b, higher_is_better=True)
    assert d.verdict == "b_better"
    assert d.low is not None and d.high is not None and 0 < d.low < 0.05 < d.high
    assert "larger than seed noise" in d.text and "B is better" in d.text


def test_lower_is_better_flips_the_winner() -> None:
    d = compare_metric("val_loss", [1.0, 1.01, 0.99], [0.5, 0.51, 0.49], higher_is_better=False)
    assert d.delta < 0 and d.verdict == "b_better"
    d = compare_metric("val_loss", [0.5, 0.51, 0.49], [1.0, 1.01, 0.99], higher_is_better=False)
    assert d.verdict == "a_better"


def test_no_difference_stays_within_noise() -> None:
    rng = random.Random(7)
    same = [0.9 + rng.gauss(0, 0.01) for _ in range(8)]
    d = compare_metric("val_accuracy", same[:4], same[4:], higher_is_better=True)
    assert d.verdict == "within_noise"
    assert d.low is not None and d.high is not None and d.low < 0 < d.high
    assert "within seed noise" in d.text


@pytest.mark.parametrize("n", [1, MIN_SEEDS - 1])
def test_too_few_seeds_says_no_conclusion(n: int) -> None:
    d = compare_metric("val_accuracy", [0.5] * n, [0.9] * n, higher_is_better=True)
    assert d.verdict == "inconclusive" and d.low is None
    assert "no conclusion can be drawn" in d.text


@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=8),
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=8),
)
def test_interval_contains_the_observed_difference(a: list[float], b: list[float]) -> None:
    low, high = welch_interval(a, b)
    delta = sum(b) / len(b) - sum(a) / len(a)
    assert low <= delta + 1e-9 and delta - 1e-9 <= high


def _mod(name: str, cls: str, params: int, sig: str | None = None) -> ModuleFact:
    return ModuleFact(
        name=name,
        cls=cls,
        depth=0 if not name else name.count(".") + 1,
        own_params=params,
        total_params=params,
        trainable_params=params,
        frozen_params=0,
        buffers=0,
        signature=sig or f"{cls}:{params}",
        calls=1,
        output_shapes=[],
    )


def _model(mods: list[ModuleFact]) -> ModelFacts:
    fields = {f.name for f in dataclasses.fields(ModelFacts)}
    values = {
        "root_class": mods[0].cls,
        "modules": mods,
        "edges": [],
        "total_params": mods[0].total_params,
        "trainable_params": mods[0].total_params,
        "frozen_params": 0,
        "tied_params": 0,
        "buffers": 0,
        "param_bytes": {},
        "input_shape": "",
        "output_shape": "",
        "traced_on": "meta",
    }
    return ModelFacts(**{k: v for k, v in values.items() if k in fields})  # type: ignore[arg-type]


def test_diff_finds_added_removed_changed_and_folds_identical() -> None:
    a = _model(
        [
            _mod("", "Net", 100, "Net:a"),
            _mod("stem", "Conv2d", 10),
            _mod("block", "Block", 50, "Block:a"),
            _mod("block.conv", "Conv2d", 50),
            _mod("old", "Dropout", 0),
            _mod("head", "Linear", 40),
        ]
    )
    b = _model(
        [
            _mod("", "Net", 130, "Net:b"),
            _mod("stem", "Conv2d", 10),
            _mod("block", "Block", 80, "Block:b"),
            _mod("block.conv", "Conv2d", 50),
            _mod("block.se", "SqueezeExcite", 30, "SE:30"),
            _mod("block.se.fc1", "Linear", 15),
            _mod("head", "Linear", 40),
        ]
    )
    d = diff_models(a, b)
    got = {(c.status, c.name) for c in d.changes}
    assert got == {("changed", ""), ("changed", "block"), ("added", "block.se"), ("removed", "old")}
    # block.se.fc1 comes with its added parent; stem, block.conv and head are identical and folded away
    assert d.identical == 3
    assert d.params_a == 100 and d.params_b == 130


def test_renamed_but_identical_block_is_not_added_and_removed() -> None:
    a = _model([_mod("", "Net", 60, "Net:x"), _mod("encoder", "Enc", 50, "Enc:50"), _mod("encoder.l", "Linear", 50)])
    b = _model([_mod("", "Net", 60, "Net:x"), _mod("backbone", "Enc", 50, "Enc:50"), _mod("backbone.l", "Linear", 50)])
    d = diff_models(a, b)
    assert [(c.status, c.name, c.renamed_from) for c in d.changes] == [("renamed", "backbone", "encoder")]


def test_identical_models_have_no_changes() -> None:
    mods = [_mod("", "Net", 5), _mod("a", "Linear", 5)]
    d = diff_models(_model(mods), _model(list(mods)))
    assert d.same and d.identical == 1  # the root, with everything under it


# --- end to end: real runs over seeds, the CLI, a README section, a strict MkDocs build -------------------------


def _two_pipelines(make_project: ProjectFactory) -> Path:
    root = make_project(docs_steps=15, min_acc=0.0)
    base = (root / "pipeline" / "tiny.py").read_text()
    wide = base.replace('name="tiny"', 'name="wide"').replace("return TinyNet()", "return TinyNet(width=48)")
    (root / "pipeline" / "wide.py").write_text(wide)
    (root / "pyproject.toml").write_text(
        '[tool.traindoc]\npipelines = { tiny = "pipeline/tiny.py", wide = "pipeline/wide.py" }\n'
    )
    return root


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, "-m", "traindoc", *args], cwd=root, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_compare_end_to_end(make_project: ProjectFactory, session_browser: object) -> None:
    from traindoc.export.browser import render_many

    root = _two_pipelines(make_project)
    p = _cli(root, "compare", "tiny", "wide", "--seeds", "3", "--docs", "--json", "--markdown", "cmp.md",
             "--diagram", "diff.mmd")  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    data = json.loads(p.stdout)
    assert [len(data["a"]["runs"]), len(data["b"]["runs"])] == [3, 3]
    seeds_used = {json.dumps(r["loss_curve"][:3]) for r in data["a"]["runs"]}
    assert len(seeds_used) == 3, "each seed must train differently"
    diffs = {d["metric"]: d for d in data["differences"]}
    assert {"val_accuracy", "val_loss", "final_loss"} <= set(diffs)
    for d in diffs.values():  # three seeds a side: every metric has an interval and a verdict in words
        assert d["low"] is not None and d["low"] <= d["delta"] <= d["high"]
        assert d["verdict"] in ("a_better", "b_better", "within_noise")
    changed = {(c["status"], c["name"]) for c in data["model_diff"]}
    assert ("changed", "body.0") in changed and ("changed", "body.2") in changed
    assert ("changed", "body.1") not in changed  # the ReLU has no parameters: identical, folded away
    page = (root / "cmp.md").read_text()
    assert "Model diff" in page and "```mermaid" in page and 'data-traindoc="chart"' in page
    assert str(root) not in page  # no absolute path of this machine
    diff = (root / "diff.mmd").read_text()
    assert "class " in diff and " changed" in diff
    (rendered,) = render_many([diff], browser=session_browser)
    assert rendered.error is None and rendered.nodes >= 3

    # Cached: a second comparison reuses every run; one seed says no conclusion can be drawn.
    p = _cli(root, "compare", "tiny", "wide", "--seeds", "1", "--docs", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    again = json.loads(p.stdout)
    assert all(r["from_cache"] for r in again["a"]["runs"] + again["b"]["runs"])
    assert all(d["verdict"] == "inconclusive" for d in again["differences"])
    p = _cli(root, "compare", "tiny", "wide", "--seeds", "1", "--docs")
    assert "no conclusion can be drawn" in p.stdout

    # An expectation on B − A that cannot hold makes it a failing test (exit 5), said in one line.
    p = _cli(
        root, "compare", "tiny", "wide", "--seeds", "3", "--docs", "--expect", '{"val_accuracy": {"min_delta": 0.5}}'
    )
    assert p.returncode == 5 and "✘ val_accuracy: B − A" in p.stdout, p.stdout + p.stderr[-2000:]
    p = _cli(root, "compare", "tiny", "wide", "--expect", '{"val_accuracy": {"at_least": 1}}', "--seeds", "1", "--docs")
    assert p.returncode == 1 and "--expect must map" in p.stderr  # refused before any run starts

    # README section from the cached runs (never trains).
    (root / "README.md").write_text(
        "# x\n<!-- traindoc:begin compare a=tiny b=wide seeds=3 -->\n<!-- traindoc:end -->\n"
    )
    p = _cli(root, "readme", "README.md")
    assert p.returncode == 0, p.stderr
    readme = (root / "README.md").read_text()
    assert "within seed noise" in readme or "larger than seed noise" in readme
    (root / "README.md").write_text(
        "# x\n<!-- traindoc:begin compare a=tiny b=wide seeds=7 -->\n<!-- traindoc:end -->\n"
    )
    assert _cli(root, "readme", "README.md").returncode == 0
    assert "No recorded comparison yet" in (root / "README.md").read_text()

    # A docs page: the comparison runs in the build, and a missed expectation fails it (strict).
    docs = root / "docs"
    docs.mkdir()
    fence = "```traindoc\nshow: compare\npipelines: [tiny, wide]\nseeds: 3\nexpect: {{val_accuracy: {{min_delta: {d}}}}}\n```\n"
    (docs / "index.md").write_text("# Why wide\n\n" + fence.format(d=-1.0))
    (root / "mkdocs.yml").write_text(
        "site_name: t\nstrict: true\ntheme:\n  name: material\n  font: false\n"
        "markdown_extensions:\n  - tables\n  - pymdownx.superfences:\n      custom_fences:\n"
        "        - name: mermaid\n          class: mermaid\n          format: !!python/name:pymdownx.superfences.fence_code_format\n"
        "plugins:\n  - traindoc:\n      mermaid: local\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "TRAINDOC_MERMAID_DIR": str(REPO / ".cache" / "mermaid" / "11.12.0"),
    }
    build = [sys.executable, "-m", "mkdocs", "build", "--strict"]
    ok = subprocess.run(build, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert ok.returncode == 0, ok.stderr[-3000:]
    html = (root / "site" / "index.html").read_text()
    assert "B − A" in html and "seed noise" in html
    (docs / "index.md").write_text("# Why wide\n\n" + fence.format(d=0.9))
    bad = subprocess.run(build, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert bad.returncode != 0 and "compare tiny vs wide" in bad.stderr, bad.stderr[-2000:]

"""The run chart, export formats, reference pages and the messages of issue 12 (no browser needed)."""

from __future__ import annotations

import argparse
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, ProjectFactory, traindoc_cli
from traindoc.errors import ExportFormatError, LoadError, SpecError
from traindoc.export import export
from traindoc.pages import docsgen
from traindoc.pages.docsgen import FenceError
from traindoc.render import charts, lint

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


# --- the chart ----------------------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=40).map(lambda v: (min(v)[0], max(v)[0])))
def test_nice_ticks_cover_the_range_sparsely(bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    ticks = charts.nice_ticks(lo, hi, 5)
    assert ticks == sorted(ticks) and 1 <= len(ticks) <= 11
    span = max(hi - lo, 1e-9)
    assert all(lo - 1e-6 * span <= t <= hi + 1e-6 * span for t in ticks)
    assert len(set(charts.labels(ticks))) == len(ticks)  # neighbours are told apart


@given(st.integers(0, 10**6), st.integers(1, 10**6), st.integers(2, 8))
def test_step_ticks_are_whole_steps(lo: int, span: int, count: int) -> None:
    ticks = charts.nice_ticks(lo, lo + span, count, integer=True)
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert all(lo <= t <= lo + span for t in ticks) and len(ticks) <= max(count, span) + 2
    assert len(set(charts.labels(ticks))) == len(ticks)


def test_chart_of_sixteen_steps_labels_no_fractional_step() -> None:
    svg = charts.training_chart([(s, 1.0 / s) for s in range(1, 17)], title="t")
    root = ET.fromstring(svg)
    axis = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert axis and all(a.isdigit() for a in axis), axis  # not 2.5, 12.5


@given(
    st.lists(st.floats(min_value=1e-3, max_value=1e3, allow_nan=False), min_size=1, max_size=300),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
)
def test_chart_is_well_formed_svg_with_sparse_ticks(losses: list[float], title: str) -> None:
    svg = charts.training_chart(list(enumerate(losses, 1)), title=title)
    root = ET.fromstring(svg)  # escapes whatever the title holds
    title_el = root.find(f"{SVG}title")
    assert root.tag == f"{SVG}svg" and title_el is not None and (title_el.text or "") == title
    step_labels = [t for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert 1 <= len(step_labels) <= 8  # sparse step axis, whatever the number of steps


def test_chart_draws_every_series_it_is_given() -> None:
    loss = [(s, 2.0 * math.exp(-s / 40) + 0.05) for s in range(1, 201)]
    svg = charts.training_chart(
        loss,
        [(50, 1.0), (100, 0.5)],
        [(s, 0.1 * (1 - s / 200)) for s in range(1, 201)],
        [(s, 900.0) for s in range(2, 201)],
    )
    words = " ".join(texts(svg))
    for expected in ("raw", "smoothed", "validation", "Learning rate", "Throughput", "step"):
        assert expected in words
    assert len(ET.fromstring(svg).findall(f".//{SVG}circle")) == 2  # one marker per evaluation
    assert charts.training_chart([], [(1, 1.0)]) == ""  # no loss, no chart
    assert "Learning rate" not in " ".join(texts(charts.training_chart(loss)))  # only panels with data


def test_a_first_step_spike_does_not_flatten_the_loss_axis() -> None:
    loss = [(1, 9.0)] + [(s, 1.0 + 0.5 * math.sin(s)) for s in range(2, 200)]
    root = ET.fromstring(charts.training_chart(loss))
    y_labels = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    ticks = [float(t) for t in y_labels if t.replace(".", "").isdigit()]
    assert len(ticks) >= 3
    assert max(ticks) < 4  # robust top: the 98th percentile, not the spike


def test_a_loss_spanning_decades_gets_a_log_axis() -> None:
    loss = [(s, 10 * 0.97**s) for s in range(1, 300)]
    assert texts(charts.training_chart(loss))[0] == "Loss (log scale)"
    assert texts(charts.training_chart([(s, 2 - s / 300) for s in range(1, 300)]))[0] == "Loss"


def test_smoothing_is_debiased_and_keeps_the_steps() -> None:
    pts = [(float(s), 5.0) for s in range(10)]
    assert charts.smooth(pts) == pts  # a constant stays constant from the first point
    assert charts.smooth([(0, 1.0), (1, float("nan")), (2, 3.0)])[-1][0] == 2.0


# --- export formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "flag", "expected"),
    [("d.svg", None, "svg"), ("d.PNG", None, "png"), ("d.mmd", "mmd", "mmd"), ("d.png", "png", "png")],
)
def test_format_follows_the_extension(name: str, flag: str | None, expected: str) -> None:
    assert export.format_for(Path(name), flag) == expected


def test_format_mismatch_and_unknown_extension_are_one_line_errors(make_project: ProjectFactory) -> None:
    with pytest.raises(ExportFormatError, match=r"--format svg does not match the \.png extension"):
        export.format_for(Path("dist.png"), "svg")
    with pytest.raises(ExportFormatError, match=r"unknown extension '\.jpg'"):
        export.format_for(Path("dist.jpg"), None)
    root = make_project()
    out = traindoc_cli(root, "export", "tiny", "-o", "dist.png", "--format", "svg")
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "does not match" in out.stderr and not (root / "dist.png").exists()


def test_check_svg_rejects_html_flavoured_svg() -> None:
    with pytest.raises(ET.ParseError):
        export.check_svg(
            '<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><div>a<br>b</div></foreignObject></svg>'
        )
    export.check_svg('<svg xmlns="http://www.w3.org/2000/svg"><text>a</text></svg>')


# --- CLI, reference pages ------------------------------------------------------------------------------


def test_every_cli_option_has_help_text() -> None:
    from traindoc.cli import build_parser

    missing = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += [
                    f"{name} {a.option_strings or a.dest}"
                    for a in sub._actions
                    if not isinstance(a, argparse._HelpAction) and not a.help
                ]
    assert missing == []


def test_exit_codes_agree_between_cli_docs_and_errors() -> None:
    from traindoc import errors

    table = dict(errors.exit_codes())  # built from the error classes: the one source

    def codes(text: str) -> set[int]:
        return {int(c) for c in re.findall(r"(\d+) [a-z`-]", text.split("Exit codes")[1][:500])}

    assert codes((REPO / "README.md").read_text()) == set(table)
    raised = {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.TraindocError)
    }
    assert raised <= set(table)
    guide = (REPO / "docs" / "reference" / "cli.md").read_text()
    for code, meaning in table.items():
        assert f"| {code} | {meaning.split(' (')[0]}" in guide.replace("\\-", "-")


@pytest.mark.parametrize("what", ["spec", "cli"])
def test_reference_pages_are_current_and_check_catches_drift(what: str, tmp_path: Path) -> None:
    page = REPO / "docs" / "reference" / f"{what}.md"
    out = traindoc_cli(REPO, "reference", what, "-o", str(page), "--check")
    assert out.returncode == 0, out.stderr  # the committed page is what the code generates
    text = page.read_text()
    assert "```traindoc" not in text and text.count("\n|") > 5  # real Markdown, readable on GitHub
    stale = tmp_path / f"{what}.md"
    stale.write_text(text.replace("|", "¦", 3))
    out = traindoc_cli(REPO, "reference", what, "-o", str(stale), "--check")
    assert out.returncode == 7 and "stale" in out.stderr
    assert traindoc_cli(REPO, "reference", what, "-o", str(stale)).returncode == 0
    assert stale.read_text() == text


# --- messages ----------------------------------------------------------------------------------------


def test_fence_direction_is_checked() -> None:
    assert docsgen.parse_options("pipeline: p\nshow: data\ndirection: LR", "x.md").direction == "LR"
    with pytest.raises(FenceError, match="direction: 'up' is not one of auto, TB, LR"):
        docsgen.parse_options("pipeline: p\ndirection: up", "x.md")


def test_unknown_pipeline_lists_the_names_in_pyproject(make_project: ProjectFactory) -> None:
    from traindoc.facts import service
    from traindoc.pages import readme

    root = make_project()
    out = traindoc_cli(root, "inspect", "tinny")
    assert out.returncode == 2 and "unknown pipeline" in out.stderr and "knows: tiny" in out.stderr
    with pytest.raises(LoadError, match="knows: tiny"):  # a fence goes through the same lookup
        docsgen.render_fence(docsgen.parse_options("pipeline: tinny", "p.md"), docsgen.CachedProvider(root))
    (root / "README.md").write_text("<!-- traindoc:begin system pipeline=tinny -->\n<!-- traindoc:end -->\n")
    with pytest.raises(LoadError, match="knows: tiny"):
        readme.update_file(root / "README.md")
    with pytest.raises(LoadError) as info:  # a path that is not there is not called a name
        service.target("pipeline/nope.py", root)
    assert "knows" not in str(info.value)


def test_circular_import_keeps_pythons_hint(make_project: ProjectFactory) -> None:
    root = make_project(extra="\n")
    (root / "pipeline" / "helper.py").write_text("from tiny import pipeline\nX = 1\n")
    text = (root / "pipeline" / "tiny.py").read_text()
    (root / "pipeline" / "tiny.py").write_text("from helper import X\n" + text)
    out = traindoc_cli(root, "inspect", "tiny", "--no-cache")
    assert out.returncode == 4 and "most likely due to a circular import" in out.stderr, out.stderr


def test_missing_mermaid_says_traindoc_mermaid_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from traindoc.errors import BrowserUnavailable
    from traindoc.export import assets

    monkeypatch.setenv("TRAINDOC_MERMAID_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(BrowserUnavailable) as info:
        assets.mermaid_js()
    assert "traindoc mermaid-fetch" in str(info.value) and "make " not in str(info.value)


PINNED = [
    "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime",
    "nvcr.io/nvidia/pytorch:24.05-py3",
    "python:3.11",
    "registry.local:5000/team/train:1",
    "pytorch/pytorch@sha256:" + "a" * 64,
    "pytorch/pytorch:latest@sha256:" + "b" * 64,
]
FLOATING = ["pytorch/pytorch", "pytorch/pytorch:latest", "registry.local:5000/team/train"]


def test_image_tag_rule_accepts_digit_tags_and_digests(make_project: ProjectFactory) -> None:
    from traindoc.facts import service
    from traindoc.spec import Environment

    root = make_project()
    spec = root / "pipeline" / "tiny.py"
    spec.write_text(spec.read_text().replace('"pytorch:2.13-cpu"', repr(PINNED[0])))
    facts = service.facts_for("tiny", root=root, cache_dir=root / ".cache")  # through a real spec once
    assert facts.environment.image_tag == "2.6.0-cuda12.4-cudnn9-runtime"
    for image in PINNED + FLOATING:
        env = Environment(image=image)
        changed = facts.environment.model_copy(update={"image": image, "image_tag": env.image_tag})
        flagged = [f.rule for f in lint.lint(facts.model_copy(update={"environment": changed}))]
        assert ("image-tag" in flagged) == (image in FLOATING), image


@given(
    st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z]{2,4}(:[0-9]{2,5})?/)?([a-z0-9]{1,8}/)?[a-z0-9]{1,10}", fullmatch=True),
    st.one_of(st.none(), st.from_regex(r"[0-9A-Za-z_][\w.-]{0,20}", fullmatch=True)),
)
def test_split_image_finds_the_tag_never_the_registry_port(name: str, tag: str | None) -> None:
    from traindoc.spec import split_image

    ref = name + (f":{tag}" if tag else "")
    assert split_image(ref) == (name, tag, None)
    assert split_image(ref + "@sha256:" + "c" * 64)[2] == "sha256:" + "c" * 64


def test_lint_rules_are_silenced_per_pipeline_with_a_reason(make_project: ProjectFactory) -> None:
    root = make_project()
    spec = root / "pipeline" / "tiny.py"
    original = spec.read_text().replace('"user": "1000:1000",', "")
    spec.write_text(original)
    out = traindoc_cli(root, "lint", "tiny", "--strict", "--no-cache")
    assert out.returncode == 9 and "[root-user]" in out.stdout
    spec.write_text(
        original.replace(
            "    expect=", '    lint={"ignore": {"root-user": "the image drops to uid 1000"}},\n    expect='
        )
    )
    out = traindoc_cli(root, "lint", "tiny", "--strict", "--no-cache")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "silenced: [root-user]" in out.stdout and "reason: the image drops to uid 1000" in out.stdout
    for bad, message in [
        ('{"no-such-rule": "x"}', "unknown lint rule 'no-such-rule'"),
        ('{"seed": " "}', "needs a reason"),
    ]:
        spec.write_text(original.replace("    expect=", f'    lint={{"ignore": {bad}}},\n    expect='))
        out = traindoc_cli(root, "lint", "tiny", "--no-cache")
        assert out.returncode == SpecError.exit_code and message in out.stderr, out.stderr


def test_data_diagram_says_what_this_run_does_and_system_diagram_keeps_torch_out_of_the_image(
    make_project: ProjectFactory,
) -> None:
    from traindoc.facts import service
    from traindoc.render import diagrams

    root = make_project()
    facts = service.facts_for("tiny", root=root, cache_dir=root / ".cache")
    assert facts.devices.resolved == "cpu"
    cpu_text = diagrams.diagram(facts, "data").text
    assert "This docs run" not in cpu_text  # a CPU pipeline documented on a CPU: nothing to tell apart
    gpu_facts = facts.model_copy(update={"devices": facts.devices.model_copy(update={"requested": "cuda"})})
    gpu_text = diagrams.diagram(gpu_facts, "data").text
    assert "This docs run: kept on the CPU" in gpu_text  # the tiny data is device-resident
    loader = gpu_facts.model_copy(update={"data": facts.data.model_copy(update={"device_resident": False})})
    loader_text = diagrams.diagram(loader, "data").text
    assert "Target: host → GPU copy" in loader_text and "This docs run: on CPU, no copy" in loader_text
    system = diagrams.diagram(facts, "system").text
    assert facts.devices.torch_version.split("+")[0] not in system and "torch from the image" in system


def test_every_plugin_option_is_in_the_guide() -> None:
    from traindoc.pages.mkdocs_plugin import TraindocConfig

    guide = (REPO / "docs" / "guide.md").read_text()
    table = guide.split("### Plugin options", 1)[1].split("\n## ", 1)[0]
    options = [name for name in vars(TraindocConfig) if not name.startswith("_") and name != "config_file_path"]
    assert options and all(f"| `{name}` |" in table for name in options), options


@pytest.mark.slow
def test_chart_command_writes_the_last_runs_chart(make_project: ProjectFactory) -> None:
    root = make_project()
    out = traindoc_cli(root, "chart", "tiny", "-o", "loss.svg")
    assert out.returncode == 1 and "no recorded run" in out.stderr and not (root / "loss.svg").exists()
    assert traindoc_cli(root, "run", "tiny", "--docs").returncode == 0
    out = traindoc_cli(root, "chart", "tiny", "-o", "loss.svg")
    assert out.returncode == 0, out.stderr
    words = " ".join(texts((root / "loss.svg").read_text()))
    assert "smoothed" in words and "validation" in words and "Learning rate" in words and "Throughput" in words

"""README sections: bytes outside markers never change, idempotent, --check, clear marker errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, ProjectFactory, only_digits, traindoc_cli
from traindoc.errors import MarkerError
from traindoc.pages import sections
from traindoc.pages.readme import update_file

KINDS = {"system", "model"}
LINE = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=30,
)
EOL = st.sampled_from(["\n", "\r\n"])


def gen(s: sections.Section) -> str:
    return f"generated {s.kind} {sorted(s.params.items())}\nline two\n"


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, int]:
    eol = draw(EOL)
    parts: list[str] = []
    n_sections = 0
    for _ in range(draw(st.integers(0, 6))):
        choice = draw(st.sampled_from(["text", "text", "section", "fence"]))
        if choice == "text":
            line = draw(LINE)
            if "traindoc:" in line or line.lstrip().startswith(("```", "~~~")):
                line = "plain"
            parts.append(line + eol)
        elif choice == "section":
            kind = draw(st.sampled_from(sorted(KINDS)))
            inside = draw(
                st.lists(LINE.filter(lambda x: "traindoc:" not in x and "`" not in x and "~" not in x), max_size=3)
            )
            parts.append(
                f"<!-- traindoc:begin {kind} pipeline=p -->{eol}"
                + "".join(x + eol for x in inside)
                + f"<!-- traindoc:end -->{eol}"
            )
            n_sections += 1
        else:  # markers inside a code fence are plain text
            parts.append(f"```markdown{eol}<!-- traindoc:begin system -->{eol}<!-- traindoc:end -->{eol}```{eol}")
    if parts and draw(st.booleans()):
        parts[-1] = (
            parts[-1].rstrip("\r\n") if "traindoc:end" not in parts[-1] and "```" not in parts[-1] else parts[-1]
        )
    return "".join(parts), n_sections


def outside(text: str) -> list[str]:
    """The document with every section's inside removed (markers kept)."""
    out, inside = [], False
    fence = None
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if fence is None and not inside and stripped.startswith("```"):
            fence = "```"
            out.append(line)
            continue
        if fence is not None:
            if stripped.startswith("```"):
                fence = None
            out.append(line)
            continue
        if sections.BEGIN.match(line.rstrip("\r\n")):
            inside = True
            out.append(line)
        elif sections.END.match(line.rstrip("\r\n")):
            inside = False
            out.append(line)
        elif not inside:
            out.append(line)
    return out


@given(documents())
def test_property_outside_bytes_identical_and_idempotent(doc: tuple[str, int]) -> None:
    text, n = doc
    once = sections.replace(text, gen, "README.md", KINDS)
    assert outside(once) == outside(text)
    assert sections.replace(once, gen, "README.md", KINDS) == once
    assert once.count("generated ") == n
    if "\r\n" in text:
        assert "\n" not in once.replace("\r\n", "")  # CRLF files stay CRLF


@given(st.text(max_size=200).filter(lambda t: "traindoc:" not in t))
def test_property_documents_without_markers_are_untouched(text: str) -> None:
    assert sections.replace(text, gen, "x.md", KINDS) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\n<!-- traindoc:begin system -->\nx\n", "README.md(2): traindoc:begin system is never closed"),
        ("a\n<!-- traindoc:end -->\n", "README.md(2): traindoc:end without a matching traindoc:begin"),
        (
            "<!-- traindoc:begin system -->\n<!-- traindoc:begin model -->\n<!-- traindoc:end -->\n",
            "README.md(2): nested traindoc:begin",
        ),
        (
            "\n\n<!-- traindoc:begin nonsense -->\n<!-- traindoc:end -->\n",
            "README.md(3): unknown section kind 'nonsense'",
        ),
        (
            "<!-- traindoc:begin system p -->\n<!-- traindoc:end -->\n",
            "README.md(1): marker parameter 'p' must be key=value",
        ),
        ("text <!-- traindoc:begin system --> more\n", "README.md(1): a traindoc marker must stand alone on its line"),
    ],
)
def test_bad_markers_name_the_line(text: str, message: str) -> None:
    with pytest.raises(MarkerError) as info:
        sections.replace(text, gen, "README.md", KINDS)
    assert str(info.value).startswith(message)


def test_bad_markers_leave_the_file_untouched(digits_copy: Path) -> None:
    readme = digits_copy / "README.md"
    original = b"# x\r\n<!-- traindoc:begin system pipeline=digits -->\r\n<!-- traindoc:begin model -->\r\n"
    readme.write_bytes(original)
    proc = traindoc_cli(digits_copy, "readme", "README.md")
    assert proc.returncode == 6 and "README.md(3): nested traindoc:begin" in proc.stderr
    assert readme.read_bytes() == original


def test_readme_fill_then_check(digits_copy: Path) -> None:
    only_digits(digits_copy)
    readme = digits_copy / "README.md"
    readme.write_bytes(
        b"# Title\r\n\r\n<!-- traindoc:begin system pipeline=digits -->\r\n<!-- traindoc:end -->\r\nafter\r\n"
        b"<!-- traindoc:begin model-table -->\r\nstale\r\n<!-- traindoc:end -->\r\n"
    )
    check = traindoc_cli(digits_copy, "readme", "README.md", "--check")
    assert check.returncode == 7 and "+```mermaid" in check.stdout and "-stale" in check.stdout
    changed, _ = update_file(readme)
    assert changed
    data = readme.read_bytes()
    assert data.startswith(b"# Title\r\n\r\n<!-- traindoc:begin system pipeline=digits -->\r\n```mermaid\r\n")
    assert b"\r\nafter\r\n" in data and b"| `features` | Sequential | 21,592 |" in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert update_file(readme) == (False, "")
    ok = traindoc_cli(digits_copy, "readme", "README.md", "--check")
    assert ok.returncode == 0


def test_the_projects_own_readme_is_current() -> None:
    changed, diff = update_file(REPO / "README.md", check=True)
    assert not changed, f"README.md sections are stale; run `make readme`\n{diff}"


@pytest.mark.slow
def test_results_section_says_when_the_pipeline_changed_after_its_run(make_project: ProjectFactory) -> None:
    root = make_project(docs_steps=10, min_acc=0.0)
    readme = root / "README.md"
    readme.write_text("# Tiny\n\n<!-- traindoc:begin results pipeline=tiny -->\n<!-- traindoc:end -->\n")
    assert traindoc_cli(root, "run", "tiny", "--docs").returncode == 0
    assert traindoc_cli(root, "readme", "README.md").returncode == 0
    fresh = readme.read_text()
    assert "val_accuracy" in fresh or "accuracy" in fresh
    assert "Recorded before" not in fresh  # the run is of the pipeline as it is
    pipeline = root / "pipeline" / "tinymods.py"
    pipeline.write_text(pipeline.read_text().replace("nn.Linear(width, 4)", "nn.Linear(width, 4, bias=False)"))
    assert traindoc_cli(root, "readme", "README.md").returncode == 0
    stale = readme.read_text().replace("\\", "")  # Markdown escapes (parentheses) removed
    assert "Recorded before the pipeline last changed (pipeline/tinymods.py changed)" in stale
    assert "traindoc run pipeline/tiny.py --docs" in stale

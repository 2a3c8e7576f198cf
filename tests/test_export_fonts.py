"""Exported diagrams depend on no font: labels are outlines of the pinned fonts, drawn where Chromium laid
the text out (compared pixel by pixel), CJK included; what cannot be outlined stays text, said aloud."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, browser_or_skip, traindoc_cli
from exportdiff import block_diff
from traindoc.errors import BrowserUnavailable
from traindoc.export import assets, fonts

SVG = "{http://www.w3.org/2000/svg}"
TOY = """flowchart TB
  a["数据加载 · DataLoader<br/>batch 64 × 3×32×32"] --> b["训练 train.py → ckpt"]
  subgraph s["容器 container"]
    b --> c["Überprüfung (eval) ÅØ fi fl ffi"]
  end
  c -->|"1×10 logits"| d[("checkpoints/")]
"""


def fonts_or_skip() -> fonts.FontSet:
    browser_or_skip()
    reason = fonts.missing_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true" or os.environ.get("TRAINDOC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"export font test cannot run here (CI or make test): {reason}")
        pytest.skip(reason)
    return fonts.FontSet(fonts.fonts_dir())


def _diagram(name: str) -> str:
    if name == "toy":
        return TOY
    from traindoc.facts import service
    from traindoc.render import diagrams

    ref, kind = name.split(":")
    return diagrams.diagram(service.facts_for(str(REPO / "pipeline" / ref)), kind).text


@pytest.mark.browser
@pytest.mark.parametrize("name", ["toy", "digits.py:system", "charlm.py:model"])
def test_outlines_draw_every_label_where_chromium_laid_out_its_text(name: str, session_browser: object) -> None:
    from traindoc.export import browser, export, outline

    fs = fonts_or_skip()
    text = _diagram(name)
    page = browser.new_page(session_browser, scale=2)
    try:
        outline.load_fonts(page, fs, fonts.mermaid_chars(text))
        family = f'"{fonts.SANS}", "{fonts.CJK}", {export.FONT_FAMILY}'
        r = export._render(page, text, name, "light", True, family)
        page.set_viewport_size({"width": int(r["width"]), "height": int(r["height"])})
        live = page.locator("#host").screenshot(type="png")
        assert outline.outline_labels(page, fs, family) == 0  # every label drawn in the pinned fonts
        drawn = page.locator("#host").screenshot(type="png")
        svg = page.evaluate(export.SERIALIZE_JS)
        same = block_diff(page, live, drawn)
        assert same["same_size"] and same["inked"] > 1000
        assert same["differ"] <= 0.01 * same["inked"], same  # the outlines are the text, pixel for pixel
        # the measure is not blind: outlines 1.5 px off their baseline differ in a fifth of the inked blocks
        page.evaluate(
            "document.querySelectorAll('#host path[aria-label]').forEach(p => p.setAttribute('transform', 'translate(0 1.5)'))"
        )
        shifted = block_diff(page, live, page.locator("#host").screenshot(type="png"))
        assert shifted["differ"] >= 0.2 * shifted["inked"], shifted
    finally:
        page.close()
    root = ET.fromstring(svg)
    assert not list(root.iter(f"{SVG}foreignObject")) and not list(root.iter(f"{SVG}text"))
    words = " ".join(p.get("aria-label", "") for p in root.iter(f"{SVG}path"))
    if name == "toy":
        for label in (
            "数据加载 · DataLoader batch 64 × 3×32×32",
            "训练 train.py → ckpt",
            "1×10 logits",
            "容器 container",
        ):
            assert label in words


@pytest.mark.browser
def test_a_label_without_pinned_glyphs_stays_text_and_says_so(tmp_path: Path) -> None:
    fonts_or_skip()
    out = tmp_path / "x.svg"
    code = (
        "import sys; from pathlib import Path; from traindoc.export import export; "
        "export.export_text(sys.argv[1], 'toy', 'svg', Path(sys.argv[2]))"
    )
    text = 'flowchart LR\n  a["🙂 party"] --> b["训练"]'
    proc = subprocess.run([sys.executable, "-c", code, text, str(out)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "1 label(s) have characters the pinned fonts lack" in proc.stdout
    root = ET.parse(out).getroot()
    texts = [" ".join("".join(t.itertext()).split()) for t in root.iter(f"{SVG}text")]
    assert texts == ["🙂 party"]  # the emoji has no pinned glyph: that label (only) is text
    assert [p.get("aria-label") for p in root.iter(f"{SVG}path") if p.get("aria-label")] == ["训练"]


def test_missing_fonts_name_the_fetch_command_and_live_text_still_exports(tmp_path: Path) -> None:
    browser_or_skip()
    env = {**os.environ, "TRAINDOC_FONT_DIR": str(tmp_path / "none")}
    out = tmp_path / "x.svg"
    proc = traindoc_cli(REPO, "export", "pipeline/digits.py", "--kind", "data", "-o", str(out), env=env)
    assert proc.returncode == BrowserUnavailable.exit_code, proc.stderr
    assert "traindoc fonts-fetch" in proc.stderr and "--text live" in proc.stderr and not out.exists()
    proc = traindoc_cli(
        REPO, "export", "pipeline/digits.py", "--kind", "data", "--text", "live", "-o", str(out), env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert list(ET.parse(out).getroot().iter(f"{SVG}text"))  # labels as text in named families


def test_fonts_fetch_never_replaces_a_folder_it_did_not_fill(tmp_path: Path) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "DejaVuSans.ttf").write_bytes(b"font")
    with pytest.raises(BrowserUnavailable, match="holds files traindoc did not write"):
        assets.replace_build(staging, mine, ours={"DejaVuSans.ttf", fonts.COVERAGE})
    assert (mine / "chapter1.tex").read_text() == "years of work"


# --- without a browser ---------------------------------------------------------------------------------------


def test_each_character_goes_to_the_face_the_page_would_use() -> None:
    fs = fonts_or_skip()
    assert fs.face_for("A").file == "DejaVuSans.ttf"  # type: ignore[union-attr]
    assert fs.face_for("A", bold=True).file == "DejaVuSans-Bold.ttf"  # type: ignore[union-attr]
    assert fs.face_for("训").family == fonts.CJK  # type: ignore[union-attr]
    assert fs.face_for("→").family == fonts.SANS  # type: ignore[union-attr]
    assert fs.face_for("🙂") is None
    needed = fs.faces_for("abc 训练")
    assert {f.family for f in needed} == {fonts.SANS, fonts.CJK} and len(needed) < 6  # a few CJK chunks of ~100
    assert fonts.mermaid_chars("a#quot;b#35;").endswith('a"b#')


def _glyphs(fs: fonts.FontSet, text: str, size: float) -> list[dict[str, object]]:
    x, out = 0.0, []
    for ch in text:
        face = fs.face_for(ch)
        assert face is not None
        font = fs.font(face)
        w = font["hmtx"][font.getBestCmap()[ord(ch)]][0] * size / font["head"].unitsPerEm
        out.append({"ch": ch, "x": x, "y": 20.0, "rot": 0.0, "w": w})
        x += w
    return out


@given(st.text(alphabet="abcXYZ019 ·×→()_-/训练数据容器", min_size=1, max_size=24), st.floats(8, 40))
def test_outline_draws_every_visible_character_and_refuses_a_wrong_advance(text: str, size: float) -> None:
    fs = fonts_or_skip()
    glyphs = _glyphs(fs, text, size)
    d = fonts.outline(fs, glyphs, size, False)
    assert d is not None
    assert d.count("Z") >= sum(1 for c in text if not c.isspace())  # every glyph has a closed contour
    if any(not c.isspace() for c in text):
        wrong = [dict(g, w=float(g["w"]) * 2 + 3) if not str(g["ch"]).isspace() else g for g in glyphs]  # type: ignore[arg-type]
        assert fonts.outline(fs, wrong, size, False) is None  # a mismatched character is never outlined

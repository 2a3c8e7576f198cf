"""Exported diagrams depend on no font: labels are outlines of the pinned fonts, drawn where Chromium laid
the text out (compared pixel by pixel), CJK included; what cannot be outlined stays text, said aloud."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
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
  d --> e["<b>粗体 训练 Bold</b> plain"]
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
        stroked = [p for p in root.iter(f"{SVG}path") if "stroke-width" in (p.get("style") or "")]
        assert stroked  # bold CJK has no bold face: stroked like Chromium's synthetic bold (pixels compared above)
    backgrounds = [r for r in root.iter(f"{SVG}rect") if "opacity:1" in (r.get("style") or "")]
    assert name != "toy" or backgrounds  # the edge label's background is opaque, as on the page


def _export_svg(text: str, out: Path) -> subprocess.CompletedProcess[str]:
    """``export_text`` in a fresh process (what it prints is part of the contract)."""
    code = (
        "import sys; from pathlib import Path; from traindoc.export import export; "
        "export.export_text(sys.argv[1], 'toy', 'svg', Path(sys.argv[2]))"
    )
    return subprocess.run([sys.executable, "-c", code, text, str(out)], capture_output=True, text=True, cwd=REPO)


@pytest.mark.browser
def test_a_label_without_pinned_glyphs_stays_text_and_says_so(tmp_path: Path) -> None:
    fonts_or_skip()
    out = tmp_path / "x.svg"
    proc = _export_svg('flowchart LR\n  a["🙂 party"] --> b["训练"]', out)
    assert proc.returncode == 0, proc.stderr
    assert "1 label(s) stay SVG text" in proc.stdout
    root = ET.parse(out).getroot()
    texts = [" ".join("".join(t.itertext()).split()) for t in root.iter(f"{SVG}text")]
    assert texts == ["🙂 party"]  # the emoji has no pinned glyph: that label (only) is text
    assert [p.get("aria-label") for p in root.iter(f"{SVG}path") if p.get("aria-label")] == ["训练"]


@pytest.mark.browser
def test_a_label_kept_as_text_sits_inside_its_box(tmp_path: Path, session_browser: object) -> None:
    """Mermaid centres text in a node: a fallback line anchored at its left edge would start half its width
    too far left, out of the box. Italic (no pinned italic face) and an emoji both fall back."""
    fonts_or_skip()
    out = tmp_path / "x.svg"
    text = 'flowchart LR\n  a["🙂 party time with a long label"] --> b["<i>italic words here</i>"] --> c["训练"]'
    proc = _export_svg(text, out)
    assert proc.returncode == 0 and "2 label(s) stay SVG text" in proc.stdout, proc.stderr
    page = session_browser.new_page()  # type: ignore[attr-defined]
    try:
        page.set_content(out.read_text().split("?>", 1)[1])  # inline, so the boxes can be read
        inside = page.evaluate("""() => [...document.querySelectorAll('g.node')].map(n => {
            const box = n.querySelector('rect, path, polygon').getBoundingClientRect();
            const lines = [...n.querySelectorAll('text')];
            return [lines.map(t => t.textContent).join(' '), lines.every(t => {
              const r = t.getBoundingClientRect();
              return r.left >= box.left - 1 && r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
            })];
          }).filter(x => x[0])""")
    finally:
        page.close()
    assert sorted(t for t, _ in inside) == ["italic words here", "🙂 party time with a long label"]
    assert all(ok for _, ok in inside), inside


def _not_json(d: Path) -> None:
    (d / fonts.COVERAGE).write_text("{")


def _no_faces_key(d: Path) -> None:
    (d / fonts.COVERAGE).write_text('{"id": "x"}')


def _no_faces(d: Path) -> None:
    (d / fonts.COVERAGE).write_text(json.dumps({"id": fonts.FONTS_ID, "faces": []}))


def _truncated_font(d: Path) -> None:
    (d / "DejaVuSans.ttf").write_bytes((d / "DejaVuSans.ttf").read_bytes()[:5000])


def _missing_font(d: Path) -> None:
    (d / "DejaVuSans.ttf").unlink()


@pytest.mark.browser
@pytest.mark.parametrize("damage", [_not_json, _no_faces_key, _no_faces, _truncated_font, _missing_font])
def test_a_damaged_font_cache_is_one_line_naming_the_fix(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    fonts_or_skip()
    copy = tmp_path / "fonts"
    shutil.copytree(fonts.fonts_dir(), copy)
    damage(copy)
    env = {**os.environ, "TRAINDOC_FONT_DIR": str(copy)}
    proc = traindoc_cli(REPO, "export", "pipeline/digits.py", "--kind", "data", "-o", str(tmp_path / "x.svg"), env=env)
    assert proc.returncode == BrowserUnavailable.exit_code, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "traindoc fonts-fetch" in proc.stderr or "fetch again" in proc.stderr
    assert not (tmp_path / "x.svg").exists()


def test_fonts_fetch_stages_beside_its_target_so_a_tmpfs_tmp_cannot_break_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With /tmp on another filesystem and a fresh checkout (no .cache yet), staging in /tmp made os.replace
    fail with EXDEV and left the staging folder behind. The two packages come from local tarballs here."""
    fonts_or_skip()
    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the test folder's")
    source = fonts.fonts_dir()
    packs = tmp_path / "packs"
    packs.mkdir()
    with tarfile.open(packs / "dejavu.tgz", "w:gz") as tar:
        for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
            tar.add(source / name, f"package/ttf/{name}")
        tar.add(source / "LICENSE-DejaVu", "package/LICENSE")
    with tarfile.open(packs / "noto.tgz", "w:gz") as tar:
        for woff in sorted(source.glob("*.woff"))[:3]:
            tar.add(woff, f"package/files/{woff.name}")
        tar.add(source / "LICENSE-NotoSansSC", "package/LICENSE")

    def local_pack(npm: str, package: str, version: str, tmp: Path) -> Path:
        return packs / ("dejavu.tgz" if "dejavu" in package else "noto.tgz")

    monkeypatch.setattr(fonts, "_pack", local_pack)
    monkeypatch.setattr(fonts.shutil, "which", lambda name: "/usr/bin/npm")
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
    monkeypatch.setattr(tempfile, "tempdir", str(shm))
    target = tmp_path / "fresh" / "checkout" / "fonts"
    monkeypatch.setenv("TRAINDOC_FONT_DIR", str(target))
    try:
        assert fonts.fetch_fonts() == target
        assert fonts.FontSet(target).face_for("A").file == "DejaVuSans.ttf"  # type: ignore[union-attr]
        assert sorted(p.name for p in target.parent.iterdir()) == ["fonts"]  # no staging folder left
        assert not list(shm.iterdir()) or all(p.name.startswith("tmp") for p in shm.iterdir())
    finally:
        shutil.rmtree(shm, ignore_errors=True)


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
        out.append({"ch": ch, "x": x, "y": 20.0, "w": w})
        x += w
    return out


@given(st.text(alphabet="abcXYZ019 ·×→()_-/训练数据容器", min_size=1, max_size=24), st.floats(8, 40))
def test_outline_draws_every_visible_character_and_refuses_a_wrong_advance(text: str, size: float) -> None:
    fs = fonts_or_skip()
    glyphs = _glyphs(fs, text, size)
    d = fonts.outline(fs, glyphs, size, False)
    assert d is not None and not d.fake_bold  # not bold: nothing stroked
    assert d.regular.count("Z") >= sum(1 for c in text if not c.isspace())  # every glyph has a closed contour
    if any(not c.isspace() for c in text):
        wrong = [dict(g, w=float(g["w"]) * 2 + 3) if not str(g["ch"]).isspace() else g for g in glyphs]  # type: ignore[arg-type]
        assert fonts.outline(fs, wrong, size, False) is None  # a mismatched character is never outlined

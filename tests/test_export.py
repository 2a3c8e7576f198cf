"""Export for slides: SVG and PNG from the real Mermaid in headless Chromium."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, browser_or_skip, traindoc_cli
from traindoc.export.export import png_size

pytestmark = pytest.mark.browser


def export(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return traindoc_cli(REPO, "export", "pipeline/digits.py", *args)


def test_svg_is_standalone_xml_with_the_node_labels(tmp_path: Path, session_browser: object) -> None:
    import xml.etree.ElementTree as ET

    out, dark = tmp_path / "system.svg", tmp_path / "dark.svg"
    proc = export(tmp_path, "--kind", "system", "-o", str(out))  # format from the extension
    assert proc.returncode == 0, proc.stderr
    assert export(tmp_path, "--kind", "data", "--theme", "dark", "-o", str(dark)).returncode == 0
    for path in (out, dark):
        root = ET.fromstring(path.read_bytes())  # well-formed XML: no HTML <br> in labels
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert not root.findall(".//{http://www.w3.org/2000/svg}foreignObject")
    root = ET.parse(out).getroot()
    assert not list(root.iter("{http://www.w3.org/2000/svg}text"))  # labels are outlines: no font needed
    words = " ".join(p.get("aria-label", "") for p in root.iter("{http://www.w3.org/2000/svg}path"))
    assert "pytorch-cuda:v2.6-cuda11.8" in words and "Jupyter" in words
    assert "NVIDIA GPU (如" in words  # the project's template override (CJK labels) is used
    page = session_browser.new_page()  # type: ignore[attr-defined]
    try:  # Chromium decodes each file as an image (it refuses SVG that is not XML)
        for path in (out, dark):
            data = base64.b64encode(path.read_bytes()).decode()
            page.set_content(f"<img id='i' src='data:image/svg+xml;base64,{data}'>")
            page.wait_for_function("document.getElementById('i').complete")
            assert page.evaluate("document.getElementById('i').naturalWidth") > 300
    finally:
        page.close()


def test_png_has_the_requested_scale_and_dark_differs(tmp_path: Path) -> None:
    browser_or_skip()
    one, two, dark = tmp_path / "1.png", tmp_path / "2.png", tmp_path / "d.png"
    for path, extra in ((one, ["--scale", "1"]), (two, ["--scale", "2"]), (dark, ["--scale", "1", "--theme", "dark"])):
        proc = export(tmp_path, "--kind", "data", "--format", "png", "-o", str(path), *extra)
        assert proc.returncode == 0, proc.stderr
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # a .png file is a PNG
    w1, h1 = png_size(one.read_bytes())
    w2, h2 = png_size(two.read_bytes())
    assert w1 > 300 and h1 > 50
    assert (w2, h2) == (2 * w1, 2 * h1)
    assert png_size(dark.read_bytes()) == (w1, h1) and dark.read_bytes() != one.read_bytes()


def test_mmd_needs_no_browser(tmp_path: Path) -> None:
    out = tmp_path / "m.mmd"
    proc = export(tmp_path, "--kind", "model", "--format", "mmd", "-o", str(out))
    assert proc.returncode == 0 and out.read_text().startswith("%% traindoc model diagram")


def test_no_browser_gives_a_clear_error(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "TRAINDOC_CHROMIUM": str(tmp_path / "no-such-chromium")}
    proc = traindoc_cli(REPO, "export", "pipeline/digits.py", "-o", str(tmp_path / "x.svg"), env=env)
    assert proc.returncode == 8 and "no Chromium found: install it (Debian: apt-get install chromium)" in proc.stderr
    assert not (tmp_path / "x.svg").exists()

"""``traindoc export``: diagrams for slides — SVG and PNG drawn by the real Mermaid in headless
Chromium (light or dark), or the ``.mmd`` text. Writes are atomic."""

from __future__ import annotations

from pathlib import Path

from . import atomic, browser, diagrams
from .errors import BrowserUnavailable
from .facts import Facts
from .project import find_root
from .render import project_templates_dir

THEMES = {"light": ("default", "#ffffff"), "dark": ("dark", "#1e1e1e")}


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def export(
    facts: Facts,
    kind: str,
    fmt: str,
    output: Path,
    *,
    theme: str = "light",
    scale: float = 2.0,
    depth: int | None = None,
) -> Path:
    d = diagrams.diagram(facts, kind, depth, project_templates_dir(find_root()))
    if fmt == "mmd":
        atomic.write_text(output, d.text)
        return output
    mermaid_theme, background = THEMES[theme]
    with browser.chromium() as b:
        page = browser.new_page(b, scale=scale)
        try:
            page.evaluate(f"document.body.style.margin='0'; document.body.style.background='{background}'")
            rendered = page.evaluate(
                """async ([text, theme]) => {
                    mermaid.initialize({startOnLoad: false, theme: theme, securityLevel: 'strict'});
                    try {
                      const {svg} = await mermaid.render('export', text);
                      const host = document.createElement('div');
                      host.id = 'host'; host.style.display = 'inline-block'; host.style.padding = '16px';
                      host.innerHTML = svg; document.body.appendChild(host);
                      const el = host.querySelector('svg');
                      const vb = el.viewBox.baseVal;
                      el.setAttribute('width', Math.ceil(vb.width)); el.setAttribute('height', Math.ceil(vb.height));
                      el.style.maxWidth = 'none'; el.style.display = 'block';
                      host.style.boxSizing = 'border-box';
                      const w = Math.ceil(vb.width) + 32, h = Math.ceil(vb.height) + 32;
                      host.style.width = w + 'px'; host.style.height = h + 'px';
                      return {svg: svg, error: null, width: w, height: h};
                    } catch (e) { return {svg: '', error: String(e && e.message || e)}; }
                }""",
                [d.text, mermaid_theme],
            )
            if rendered["error"]:
                raise BrowserUnavailable(f"Mermaid could not render the {kind} diagram: {rendered['error']}")
            if fmt == "svg":
                svg = rendered["svg"]
                if theme == "dark":
                    svg = svg.replace("<svg ", f'<svg style="background-color: {background}" ', 1)
                atomic.write_text(output, svg)
            else:
                page.set_viewport_size({"width": int(rendered["width"]), "height": int(rendered["height"])})
                png = page.locator("#host").screenshot(type="png")
                atomic.write_bytes(output, png)
        finally:
            page.close()
    return output

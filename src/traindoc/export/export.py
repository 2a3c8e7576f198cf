"""``traindoc export``: diagrams for slides — SVG and PNG drawn by the real Mermaid in headless
Chromium (light or dark), or the ``.mmd`` text. Writes are atomic.

Exported SVG is standalone XML, serialised by the browser with ``XMLSerializer`` and accepted by
Python's XML parser before it is written. By default (``--text outline``) the diagram is laid out in the
pinned fonts with the site's HTML labels and every label becomes glyph outlines (:mod:`.outline`), so
no ``foreignObject`` and no font dependence remain; ``--text live`` keeps Mermaid's SVG ``<text>``
labels (``htmlLabels: false``) in named font families. The format follows the output's extension.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .._util import atomic
from ..errors import BrowserUnavailable, ExportFormatError
from ..facts import Facts
from ..project import find_root
from ..render import diagrams
from ..render.env import project_templates_dir
from . import browser, fonts, outline

THEMES = {"light": ("default", "#ffffff"), "dark": ("dark", "#1e1e1e")}


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


FORMATS = {".svg": "svg", ".png": "png", ".mmd": "mmd"}
TEXT_MODES = ("outline", "live")
# `--text live` keeps labels as text: it names families common on Windows, macOS and Linux, CJK ones
# included, so each viewer picks one it has. `--text outline` (the default) lays the diagram out in the
# pinned fonts and draws each label as their glyph outlines: the file depends on no font at all.
FONT_FAMILY = (
    '"trebuchet ms", verdana, arial, "DejaVu Sans", "Noto Sans", "Noto Sans CJK SC", "Source Han Sans SC", '
    '"PingFang SC", "Microsoft YaHei", sans-serif'
)


def format_for(output: Path, requested: str | None) -> str:
    """The export format: the output's extension decides; ``--format`` must agree with it."""
    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise ExportFormatError(f"{output}: unknown extension {output.suffix!r}; use .svg, .png or .mmd")
    if requested is not None and requested != fmt:
        raise ExportFormatError(f"{output}: --format {requested} does not match the .{fmt} extension")
    return fmt


def check_svg(text: str) -> None:
    """Raise unless ``text`` is a well-formed standalone SVG document."""
    root = ET.fromstring(text.encode("utf-8"))
    if root.tag != "{http://www.w3.org/2000/svg}svg":
        raise ValueError(f"root element is {root.tag}, not an SVG <svg>")


def export(
    facts: Facts,
    kind: str,
    fmt: str,
    output: Path,
    *,
    theme: str = "light",
    scale: float = 2.0,
    depth: int | None = None,
    direction: str | None = None,
    text_mode: str = "outline",
) -> Path:
    d = diagrams.diagram(facts, kind, depth, project_templates_dir(find_root()), direction)
    return export_text(d.text, kind, fmt, output, theme=theme, scale=scale, text_mode=text_mode)


def export_text(
    text: str,
    kind: str,
    fmt: str,
    output: Path,
    *,
    theme: str = "light",
    scale: float = 2.0,
    text_mode: str = "outline",
) -> Path:
    """Any Mermaid text (a diagram, a comparison's model diff) to .mmd, standalone XML SVG or PNG."""
    if fmt not in FORMATS.values():
        raise ExportFormatError(f"unknown format {fmt!r}; use svg, png or mmd")
    if text_mode not in TEXT_MODES:
        raise ExportFormatError(f"unknown --text {text_mode!r}; use outline or live")
    if fmt == "mmd":
        atomic.write_text(output, text)
        return output
    fontset = None
    if text_mode == "outline":
        reason = fonts.missing_reason()
        if reason:
            raise BrowserUnavailable(reason)
        fontset = fonts.FontSet(fonts.fonts_dir())
    with browser.chromium() as b:
        page = browser.new_page(b, scale=scale)
        try:
            family = FONT_FAMILY
            if fontset is not None:
                outline.load_fonts(page, fontset, fonts.mermaid_chars(text))
                family = f'"{fonts.SANS}", "{fonts.CJK}", {FONT_FAMILY}'
            # outlines start from the site's HTML labels; live SVG text needs Mermaid's SVG-text labels
            rendered = _render(page, text, kind, theme, fmt == "png" or fontset is not None, family)
            if fmt == "png":
                page.set_viewport_size({"width": int(rendered["width"]), "height": int(rendered["height"])})
                atomic.write_bytes(output, page.locator("#host").screenshot(type="png"))
                return output
            kept = outline.outline_labels(page, fontset, FONT_FAMILY) if fontset is not None else 0
            if kept:
                print(
                    f"traindoc export: {kept} label(s) stay SVG text in named font families (a character the "
                    "pinned fonts lack, or italic): they depend on the viewer's fonts"
                )
            svg = '<?xml version="1.0" encoding="UTF-8"?>\n' + page.evaluate(SERIALIZE_JS) + "\n"
            try:
                check_svg(svg)
            except (ET.ParseError, ValueError) as exc:  # never write a file other tools reject
                raise BrowserUnavailable(f"Mermaid produced SVG that is not well-formed XML: {exc}") from None
            atomic.write_text(output, svg)
        finally:
            page.close()
    return output


RENDER_JS = """async ([text, theme, html, background, fonts]) => {
    mermaid.initialize({startOnLoad: false, theme: theme, securityLevel: 'strict',
                        htmlLabels: html, flowchart: {htmlLabels: html},
                        themeVariables: {fontFamily: fonts}});
    document.body.style.margin = '0'; document.body.style.background = background;
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
      el.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
      if (theme === 'dark') el.style.backgroundColor = background;
      return {error: null, width: w, height: h};
    } catch (e) { return {error: String(e && e.message || e)}; }
}"""

SERIALIZE_JS = "() => new XMLSerializer().serializeToString(document.querySelector('#host svg'))"


def _render(page: Any, text: str, kind: str, theme: str, html: bool, family: str) -> dict[str, Any]:
    mermaid_theme, background = THEMES[theme]
    rendered: dict[str, Any] = page.evaluate(RENDER_JS, [text, mermaid_theme, html, background, family])
    if rendered["error"]:
        raise BrowserUnavailable(f"Mermaid could not render the {kind} diagram: {rendered['error']}")
    return rendered

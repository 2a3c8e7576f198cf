"""Headless Chromium (via Playwright) running the pinned Mermaid: render, count, screenshot.

A system Chromium is found automatically (``TRAINDOC_CHROMIUM``, then ``chromium``,
``chromium-browser``, ``google-chrome`` on PATH); nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BrowserUnavailable
from .assets import mermaid_js

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Material renders Mermaid into a *closed* shadow root; tests open it with this init script.
OPEN_SHADOW_ROOTS = """
const _attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) { return _attach.call(this, {...init, mode: 'open'}); };
"""


def find_chromium() -> str | None:
    env = os.environ.get("TRAINDOC_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def availability() -> str | None:
    """None when rendering works here, else the reason in words (what to install)."""
    if find_chromium() is None:
        return "no Chromium found: install it (Debian: apt-get install chromium) or set TRAINDOC_CHROMIUM"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Playwright Python package is missing: pip install playwright (no browser download needed)"
    try:
        mermaid_js()
    except BrowserUnavailable as exc:
        return str(exc)
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched Chromium browser (Playwright object)."""
    reason = availability()
    if reason:
        raise BrowserUnavailable(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass(frozen=True)
class Rendered:
    svg: str
    error: str | None
    nodes: int
    clusters: int
    edges: int


_RENDER_JS = """
async ([texts, theme]) => {
  mermaid.initialize({startOnLoad: false, theme: theme, securityLevel: 'strict'});
  const out = [];
  for (let i = 0; i < texts.length; i++) {
    const host = document.createElement('div');
    document.body.appendChild(host);
    try {
      const {svg} = await mermaid.render('traindoc' + i, texts[i]);
      host.innerHTML = svg;
      out.push({svg: svg, error: null,
        nodes: host.querySelectorAll('g.node').length,
        clusters: host.querySelectorAll('g.cluster').length,
        edges: host.querySelectorAll('path.flowchart-link, .edgePaths path').length});
    } catch (e) {
      out.push({svg: '', error: String(e && e.message || e), nodes: 0, clusters: 0, edges: 0});
    }
    host.remove();
  }
  return out;
}
"""


def new_page(browser: Any, scale: float = 1.0) -> Any:
    page = browser.new_page(device_scale_factor=scale)
    page.set_content("<!doctype html><html><head><meta charset='utf-8'></head><body></body></html>")
    page.add_script_tag(path=str(mermaid_js()))
    return page


def render_many(texts: list[str], theme: str = "default", browser: Any = None) -> list[Rendered]:
    """Render Mermaid texts with the real library; errors are returned, not raised."""
    if browser is None:
        with chromium() as b:
            return render_many(texts, theme, b)
    page = new_page(browser)
    try:
        raw = page.evaluate(_RENDER_JS, [texts, theme])
    finally:
        page.close()
    return [Rendered(**r) for r in raw]


# --- readability: label sizes and overlaps as a reader sees them ------------------------------------------

MIN_TEXT_PX = 9.0  # the smallest label a reader can still read in the docs column
COLUMN_PX = 700  # the docs column (Material at a 1280-px window is ~690 px)

MEASURE_JS = """
() => {
  // Every visible label of every rendered diagram (Mermaid SVG or traindoc's own chart): its effective
  // font size in CSS px on this page, and labels whose boxes overlap.
  const svgs = [];
  const collect = (root, inside) => {
    root.querySelectorAll('svg').forEach(s => {
      const nested = s.parentElement && s.parentElement.closest('svg');
      if ((inside || s.closest('.mermaid, .traindoc-chart')) && !nested) svgs.push(s);
    });
    root.querySelectorAll('*').forEach(el => {
      if (el.shadowRoot) collect(el.shadowRoot, el.matches('.mermaid'));
    });
  };
  collect(document, false);
  const out = [];
  for (const svg of svgs) {
    const labels = [];
    const seen = new Set();
    // A label's boxes are those of its visible text, one per line (a range's client rects), not the
    // element's box: an empty first line that staggers a nested subgraph's title is not text.
    const textBoxes = (el) => {
      const boxes = [];
      const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) {
        const t = walker.currentNode;
        if (!t.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(t);
        for (const b of range.getClientRects()) {
          if (b.width >= 1 && b.height >= 1) boxes.push([b.left, b.top, b.right, b.bottom]);
        }
      }
      return boxes;
    };
    const add = (el, anchor) => {
      const text = (el.textContent || '').trim();
      if (!text || seen.has(el)) return;
      const r = el.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) return;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || style.display === 'none') return;
      const ctm = anchor.getScreenCTM();
      const scale = ctm ? Math.hypot(ctm.a, ctm.b) : 1;
      seen.add(el);
      const boxes = textBoxes(el);
      labels.push({text: text.slice(0, 60), px: parseFloat(style.fontSize) * scale,
                   title: !!el.closest('.cluster-label'),
                   boxes: boxes.length ? boxes : [[r.left, r.top, r.right, r.bottom]]});
    };
    svg.querySelectorAll('foreignObject').forEach(fo => {
      const inner = fo.querySelector('span, p, div');
      if (inner) add(inner, fo);
    });
    svg.querySelectorAll('text').forEach(t => { if (!t.closest('foreignObject')) add(t, t); });
    const overlaps = [];
    const hit = (a, b) =>
      Math.min(a[2], b[2]) - Math.max(a[0], b[0]) > 1 && Math.min(a[3], b[3]) - Math.max(a[1], b[1]) > 1;
    // a subgraph title hidden under a box (a wrapped second line under the first row) is text lost too
    const shapes = [...svg.querySelectorAll('g.node')].map(n => {
      const b = n.getBoundingClientRect();
      return {text: 'box: ' + (n.textContent || '').trim().slice(0, 50), box: [b.left, b.top, b.right, b.bottom]};
    });
    for (const l of labels.filter(l => l.title))
      for (const s of shapes)
        if (l.boxes.some(b => hit(b, s.box))) overlaps.push([l.text, s.text]);
    for (let i = 0; i < labels.length; i++) {
      for (let j = i + 1; j < labels.length; j++) {
        if (labels[i].boxes.some(a => labels[j].boxes.some(b => hit(a, b))))
          overlaps.push([labels[i].text, labels[j].text]);
      }
    }
    const r = svg.getBoundingClientRect();
    out.push({kind: svg.getAttribute('aria-roledescription') || svg.getAttribute('data-traindoc') || '',
              width: r.width, labels: labels.length,
              min_px: labels.length ? Math.min(...labels.map(l => l.px)) : null,
              smallest: labels.length ? labels.reduce((m, l) => l.px < m.px ? l : m).text : null,
              overlaps: overlaps});
  }
  return out;
}
"""


@dataclass(frozen=True)
class Readability:
    """One rendered diagram in a column: the smallest label in CSS px, and overlapping label pairs."""

    kind: str
    width: float
    labels: int
    min_px: float | None
    smallest: str | None
    overlaps: list[list[str]]

    @property
    def readable(self) -> bool:
        return (self.min_px is None or self.min_px >= MIN_TEXT_PX) and not self.overlaps


def measure_many(texts: list[str], column: int = COLUMN_PX, browser: Any = None) -> list[Readability]:
    """Render each Mermaid text as a page would (``max-width: 100%`` in a ``column``-px box) and measure it."""
    if browser is None:
        with chromium() as b:
            return measure_many(texts, column, b)
    page = new_page(browser)
    try:
        page.set_viewport_size({"width": column + 40, "height": 900})
        out: list[Readability] = []
        for i, text in enumerate(texts):
            page.evaluate(
                """async ([text, column, i]) => {
                    mermaid.initialize({startOnLoad: false, securityLevel: 'strict'});
                    document.body.innerHTML = '';
                    const host = document.createElement('div');
                    host.className = 'mermaid'; host.style.width = column + 'px';
                    document.body.appendChild(host);
                    const {svg} = await mermaid.render('measure' + i, text);
                    host.innerHTML = svg;
                }""",
                [text, column, i],
            )
            out.extend(
                Readability(**{k: r[k] for k in Readability.__dataclass_fields__}) for r in page.evaluate(MEASURE_JS)
            )
        return out
    finally:
        page.close()

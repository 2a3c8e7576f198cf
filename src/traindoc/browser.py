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

from .assets import mermaid_js
from .errors import BrowserUnavailable

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

"""Serve a built site on loopback, open every page in headless Chromium, and report what rendered,
how small its smallest diagram label is (CSS px at a 1280-px window, where Material's column is ~690 px)
and which labels overlap; optionally a full-page screenshot of each page (light or dark).

Used by the browser tests (and runnable by hand: ``python tests/sitecheck.py site``). Material draws
Mermaid into a closed shadow root, so an init script opens shadow roots for inspection.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import socketserver
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from traindoc.export.browser import MEASURE_JS, MIN_TEXT_PX, OPEN_SHADOW_ROOTS, chromium

COUNT_JS = """
async () => {
  const deadline = Date.now() + 15000;
  const blocks = () => Array.from(document.querySelectorAll('pre.mermaid, div.mermaid'));
  const done = () => blocks().every(b => {
    const root = b.shadowRoot || b;
    return root.querySelector('svg') || /Syntax error|Parse error/i.test(root.textContent || '');
  });
  while (!done() && Date.now() < deadline) { await new Promise(r => setTimeout(r, 100)); }
  return blocks().map(b => {
    const root = b.shadowRoot || b;
    const svg = root.querySelector('svg');
    const text = (root.textContent || '');
    const error = svg ? svg.getAttribute('aria-roledescription') === 'error' || /Syntax error in text/.test(text)
                      : /Syntax error|Parse error|Maximum text size/i.test(text);
    return {svg: !!svg, error: error, nodes: svg ? svg.querySelectorAll('g.node').length : 0,
            kind: svg ? (svg.getAttribute('aria-roledescription') || '') : ''};
  });
}
"""


VIEWPORT = {"width": 1280, "height": 900}  # Material's content column is ~690 px wide here


@dataclass
class PageReport:
    url: str
    blocks: list[dict[str, object]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    diagrams: list[dict[str, Any]] = field(default_factory=list)  # per SVG: min_px, labels, overlaps, width

    @property
    def min_px(self) -> float | None:
        sizes = [d["min_px"] for d in self.diagrams if d["min_px"] is not None]
        return min(sizes) if sizes else None

    @property
    def overlaps(self) -> list[list[str]]:
        return [o for d in self.diagrams for o in d["overlaps"]]


@dataclass
class SiteReport:
    pages: list[PageReport]
    external_requests: list[str]


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/"
        finally:
            httpd.shutdown()


def check_site(
    site: Path, browser: object = None, *, dark: bool = False, screenshots: Path | None = None
) -> SiteReport:
    """Open every page; with ``screenshots`` a full-page PNG of each lands there (``<page>-light.png``)."""
    if browser is None:
        with chromium() as launched:
            return check_site(site, launched, dark=dark, screenshots=screenshots)
    pages = sorted(p for p in site.rglob("index.html") if "search" not in p.parts)
    external: list[str] = []
    reports: list[PageReport] = []
    with serve(site) as base:
        context = browser.new_context(  # type: ignore[attr-defined]
            viewport=VIEWPORT, color_scheme="dark" if dark else "light"
        )
        context.add_init_script(OPEN_SHADOW_ROOTS)

        def route(r: object) -> None:
            url = r.request.url  # type: ignore[attr-defined]
            host = urlparse(url).hostname
            if host not in ("127.0.0.1", None) and not url.startswith(("data:", "blob:")):
                external.append(url)
                r.abort()  # type: ignore[attr-defined]
            else:
                r.continue_()  # type: ignore[attr-defined]

        context.route("**/*", route)
        for page_file in pages:
            rel = page_file.relative_to(site).parent.as_posix()
            url = base + ("" if rel == "." else rel + "/")
            report = PageReport(url=url)
            page = context.new_page()
            page.on("console", lambda m, rep=report: rep.console_errors.append(m.text) if m.type == "error" else None)
            page.goto(url, wait_until="load")
            report.blocks = page.evaluate(COUNT_JS)
            page.wait_for_timeout(200)  # fonts and the last layout pass
            report.diagrams = page.evaluate(MEASURE_JS)
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                name = (rel if rel != "." else "index").replace("/", "-")
                page.screenshot(path=str(screenshots / f"{name}-{'dark' if dark else 'light'}.png"), full_page=True)
            page.close()
            reports.append(report)
        context.close()
    return SiteReport(pages=reports, external_requests=external)


def problems_of(rep: SiteReport) -> list[str]:
    """Every rendering, readability and offline problem of a checked site, one line each."""
    out = [
        f"{p.url}: block {i} did not render"
        for p in rep.pages
        for i, b in enumerate(p.blocks)
        if not b["svg"] or b["error"]
    ]
    for p in rep.pages:
        for d in p.diagrams:
            if d["min_px"] is not None and d["min_px"] < MIN_TEXT_PX:
                out.append(f"{p.url}: {d['kind']} text {d['min_px']:.1f} px < {MIN_TEXT_PX} px ({d['smallest']!r})")
    out += [f"request left the machine: {url}" for url in rep.external_requests]
    return out


def overlaps_of(rep: SiteReport) -> list[str]:
    """Overlapping label pairs, one line each (each fails ``make site-check``)."""
    return [
        f"{p.url}: {d['kind']} labels overlap: {a!r} / {b!r}"
        for p in rep.pages
        for d in p.diagrams
        for a, b in d["overlaps"]
    ]


def main(argv: list[str]) -> int:
    """Exit 1 unless every diagram rendered, with text of at least 9 px, no two labels overlapping, and
    nothing left the machine.

    ``python tests/sitecheck.py SITE [--dark] [--screenshots DIR]``
    """
    shots = Path(argv[argv.index("--screenshots") + 1]) if "--screenshots" in argv else None
    rest = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or argv[i - 1] != "--screenshots")]
    rep = check_site(Path(rest[0] if rest else "site"), dark="--dark" in argv, screenshots=shots)
    problems = problems_of(rep)
    blocks = sum(len(p.blocks) for p in rep.pages)
    for p in rep.pages:
        small = "n/a" if p.min_px is None else f"{p.min_px:.1f} px"
        print(
            f"{p.url}: {len(p.diagrams)} diagram(s), smallest text {small}, {len(p.overlaps)} overlapping label pair(s)"
        )
    if blocks == 0:
        problems.append("no Mermaid blocks found at all")
    problems += overlaps_of(rep)
    for line in problems:
        print(f"sitecheck: {line}", file=sys.stderr)
    print(f"sitecheck: {len(rep.pages)} pages, {blocks} diagrams, {len(rep.external_requests)} external requests")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Serve a built site on loopback, open every page in headless Chromium, and report what rendered.

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
from urllib.parse import urlparse

from traindoc.browser import OPEN_SHADOW_ROOTS, chromium

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


@dataclass
class PageReport:
    url: str
    blocks: list[dict[str, object]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


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


def check_site(site: Path, browser: object = None) -> SiteReport:
    if browser is None:
        with chromium() as launched:
            return check_site(site, launched)
    pages = sorted(p for p in site.rglob("index.html") if "search" not in p.parts)
    external: list[str] = []
    reports: list[PageReport] = []
    with serve(site) as base:
        context = browser.new_context()  # type: ignore[attr-defined]
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
            page.close()
            reports.append(report)
        context.close()
    return SiteReport(pages=reports, external_requests=external)


def main(argv: list[str]) -> int:
    """Exit 1 unless every Mermaid block on every page rendered and nothing left the machine."""
    rep = check_site(Path(argv[0] if argv else "site"))
    problems = [
        f"{p.url}: block {i} did not render"
        for p in rep.pages
        for i, b in enumerate(p.blocks)
        if not b["svg"] or b["error"]
    ]
    problems += [f"request left the machine: {url}" for url in rep.external_requests]
    blocks = sum(len(p.blocks) for p in rep.pages)
    for p in rep.pages:
        print(f"{p.url}: {len(p.blocks)} diagram(s) rendered" if p.blocks else f"{p.url}: no diagrams")
    if blocks == 0:
        problems.append("no Mermaid blocks found at all")
    for line in problems:
        print(f"sitecheck: {line}", file=sys.stderr)
    print(f"sitecheck: {len(rep.pages)} pages, {blocks} diagrams, {len(rep.external_requests)} external requests")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Measure rendered Mermaid diagrams in real Chromium: size, label boxes, overlaps, text size on a page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from traindoc.export.browser import new_page

SLIDE = (1920, 1080)
COLUMN = 700
FONT_PX = 16

_MEASURE_JS = """
async ([texts]) => {
  mermaid.initialize({startOnLoad: false, securityLevel: 'strict'});
  const out = [];
  for (let i = 0; i < texts.length; i++) {
    const host = document.createElement('div');
    document.body.appendChild(host);
    try {
      const {svg} = await mermaid.render('m' + i, texts[i]);
      host.innerHTML = svg;
      const el = host.querySelector('svg');
      const vb = el.viewBox.baseVal;
      el.setAttribute('width', vb.width); el.setAttribute('height', vb.height);
      el.style.maxWidth = 'none';
      const origin = el.getBoundingClientRect();
      const boxes = [];
      // the boxes of the visible text itself (one per line), not of the element around it
      let idx = 0;
      const take = (sel, kind) => host.querySelectorAll(sel).forEach(n => {
        idx += 1;
        const text = (n.textContent || '').trim();
        if (!text) return;
        const walker = document.createTreeWalker(n, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
          const t = walker.currentNode;
          if (!t.textContent.trim()) continue;
          const range = document.createRange();
          range.selectNodeContents(t);
          for (const r of range.getClientRects())
            if (r.width > 0 && r.height > 0)
              boxes.push({kind, text, el: idx, x: r.left - origin.left, y: r.top - origin.top, w: r.width, h: r.height});
        }
      });
      take('g.node .label', 'node');
      take('g.edgeLabel .label', 'edge');
      take('g.cluster .cluster-label', 'cluster');
      host.querySelectorAll('g.node').forEach(n => {  // the boxes themselves: a title under one is hidden
        idx += 1;
        const r = n.getBoundingClientRect();
        boxes.push({kind: 'shape', text: (n.textContent || '').trim().slice(0, 40), el: idx,
                    x: r.left - origin.left, y: r.top - origin.top, w: r.width, h: r.height});
      });
      out.push({error: null, width: vb.width, height: vb.height, boxes});
    } catch (e) {
      out.push({error: String(e && e.message || e), width: 0, height: 0, boxes: []});
    }
    host.remove();
  }
  return out;
}
"""


@dataclass(frozen=True)
class Measured:
    error: str | None
    width: float
    height: float
    boxes: list[dict[str, Any]]

    @property
    def slide_scale(self) -> float:
        return min(1.0, SLIDE[0] / self.width, SLIDE[1] / self.height) if self.width else 0.0

    @property
    def column_text_px(self) -> float:
        return FONT_PX * min(1.0, COLUMN / self.width) if self.width else 0.0

    def overlaps(self, slack: float = 1.0) -> list[tuple[str, str]]:
        out = []
        b = self.boxes
        for i in range(len(b)):
            for j in range(i + 1, len(b)):
                p, q = b[i], b[j]
                if p["el"] == q["el"]:
                    continue  # two lines of one label
                kinds = {p["kind"], q["kind"]}
                if "shape" in kinds and kinds != {"shape", "cluster"}:
                    continue  # a box holds its own label; only a subgraph title under a box is lost text
                dx = min(p["x"] + p["w"], q["x"] + q["w"]) - max(p["x"], q["x"])
                dy = min(p["y"] + p["h"], q["y"] + q["h"]) - max(p["y"], q["y"])
                if dx > slack and dy > slack:
                    out.append((f"{p['kind']}:{p['text']}", f"{q['kind']}:{q['text']}"))
        return out


def measure(texts: list[str], browser: Any) -> list[Measured]:
    page = new_page(browser)
    try:
        raw = page.evaluate(_MEASURE_JS, [texts])
    finally:
        page.close()
    return [Measured(**r) for r in raw]

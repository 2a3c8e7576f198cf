"""Labels as glyph outlines: the export page's half of :mod:`fonts`.

The pinned faces are loaded into the page (``FontFace`` from bytes, nothing fetched) before Mermaid lays
out, with the same HTML labels the docs site uses (so an export has the site's layout, which the site
checks measure). Then every label is read back as Chromium placed it: for an HTML label inside a
``foreignObject``, each character's box and baseline; for an SVG ``<text>``, each character's start
position, advance and rotation. Each label is replaced by one ``<path>`` drawing the same glyphs (plus
a ``<rect>`` for a label's background), with the words kept as its ``aria-label``; no ``foreignObject``
is left, which Inkscape and slide tools do not draw. A label with a character the pinned fonts lack,
or whose advances do not match the glyphs, becomes plain SVG ``<text>`` instead, never a wrong outline;
the caller says how many.
"""

from __future__ import annotations

import base64
from typing import Any

from . import fonts

LOAD_JS = """async (faces) => {
  const style = document.createElement('style');
  style.textContent = '* { font-variant-ligatures: none; font-feature-settings: "liga" 0, "clig" 0; }';
  document.head.appendChild(style);
  for (const f of faces) {
    const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
    const descriptors = {weight: String(f.weight)};
    if (f.range) descriptors.unicodeRange = f.range;
    const face = new FontFace(f.family, bytes.buffer, descriptors);
    await face.load();
    document.fonts.add(face);
  }
  await document.fonts.ready;
  return document.fonts.size;
}"""

COLLECT_JS = """() => {
  const svg = document.querySelector('#host svg');
  const out = [];
  const clean = (s) => s.replace(/\\s+/g, ' ').trim();
  const inverse = (el) => { const m = el.getScreenCTM().inverse(); return [m.a, m.b, m.c, m.d, m.e, m.f]; };
  // Where the baseline sits below the top of a character's box, per font: a zero-size inline-block
  // sits on the baseline.
  const deltas = new Map();
  const baselineDelta = (style) => {
    const key = [style.fontSize, style.fontWeight, style.fontFamily].join('|');
    if (!deltas.has(key)) {
      const probe = document.createElement('div');
      probe.style.cssText = 'position:absolute;left:0;top:0;white-space:nowrap;line-height:normal';
      probe.style.fontSize = style.fontSize; probe.style.fontWeight = style.fontWeight;
      probe.style.fontFamily = style.fontFamily;
      probe.textContent = 'H';
      const mark = document.createElement('span');
      mark.style.cssText = 'display:inline-block;width:0;height:0;vertical-align:baseline';
      probe.appendChild(mark);
      document.body.appendChild(probe);
      const range = document.createRange(); range.setStart(probe.firstChild, 0); range.setEnd(probe.firstChild, 1);
      deltas.set(key, mark.getBoundingClientRect().top - range.getBoundingClientRect().top);
      probe.remove();
    }
    return deltas.get(key);
  };
  let i = 0;
  svg.querySelectorAll('foreignObject').forEach(fo => {
    const text = clean([...fo.children].map(c => c.innerText ?? c.textContent).join(' '));  // <br> is a space
    fo.setAttribute('data-traindoc-label', String(i));
    const item = {i: i++, kind: 'html', text: text, matrix: inverse(fo.parentNode), runs: [], backgrounds: []};
    fo.querySelectorAll('*').forEach(el => {
      const bg = getComputedStyle(el).backgroundColor;
      const r = el.getBoundingClientRect();
      if (bg && bg !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(bg) && r.width >= 1 && r.height >= 1)
        item.backgrounds.push({x: r.left, y: r.top, w: r.width, h: r.height, color: bg});
    });
    const walker = document.createTreeWalker(fo, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      const style = getComputedStyle(node.parentElement);
      const delta = baselineDelta(style);
      const run = {size: parseFloat(style.fontSize), bold: parseInt(style.fontWeight) >= 600,
                   fill: style.color, opacity: '1', glyphs: []};
      let k = 0;
      for (const ch of node.textContent) {
        const range = document.createRange(); range.setStart(node, k); range.setEnd(node, k + ch.length);
        k += ch.length;
        const rects = range.getClientRects();
        if (!rects.length || /\\s/.test(ch)) continue;  // collapsed or white space: nothing to draw
        const r = rects[0];
        run.glyphs.push({ch: ch, x: r.left, y: r.top + delta, rot: 0, w: r.width});
      }
      if (run.glyphs.length) item.runs.push(run);
    }
    if (text) out.push(item); else fo.remove();
  });
  svg.querySelectorAll('text').forEach(t => {
    const n = t.getNumberOfChars();
    const raw = t.textContent;
    const lines = [...t.children].filter(c => c.tagName === 'tspan').map(c => clean(c.textContent));
    const text = clean(lines.length ? lines.join(' ') : raw);
    if (!n || !text) return;
    t.setAttribute('data-traindoc-label', String(i));
    const style = getComputedStyle(t);
    const run = {size: parseFloat(style.fontSize), bold: parseInt(style.fontWeight) >= 600,
                 fill: style.fill, opacity: style.fillOpacity, glyphs: null};
    // Chromium collapses white space; the addressable characters are one of these spellings.
    const s = [raw, raw.replace(/\\s+/g, ' '), clean(raw)].find(c => c.length === n);
    if (s !== undefined) {
      run.glyphs = [];
      let k = 0;
      for (const ch of s) {
        const a = t.getStartPositionOfChar(k), b = t.getEndPositionOfChar(k);
        run.glyphs.push({ch: ch, x: a.x, y: a.y, rot: t.getRotationOfChar(k), w: Math.hypot(b.x - a.x, b.y - a.y)});
        k += ch.length;
      }
    }
    out.push({i: i++, kind: 'svg', text: text, matrix: [1, 0, 0, 1, 0, 0], runs: [run], backgrounds: []});
  });
  return out;
}"""

REPLACE_JS = """(labels) => {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.querySelector('#host svg');
  const make = (tag, attrs) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, v);
    return el;
  };
  for (const l of labels) {
    const old = svg.querySelector('[data-traindoc-label="' + l.i + '"]');
    const transform = l.kind === 'svg' ? old.getAttribute('transform') : null;
    const made = [];
    for (const b of l.backgrounds)
      made.push(make('rect', {x: b.x, y: b.y, width: b.w, height: b.h, style: 'fill:' + b.color + ';stroke:none'}));
    l.paths.forEach((p, n) => made.push(make('path', {d: p.d, transform: transform, role: n ? null : 'img',
        'aria-label': n ? null : l.text, 'aria-hidden': n ? 'true' : null,
        // inline style: the diagram's own stylesheet paints `.node path` like a box outline otherwise
        style: 'fill:' + p.fill + ';fill-opacity:' + p.opacity + ';stroke:none'})));
    for (const t of l.texts) {
      const el = make('text', {x: t.x, y: t.y, transform: transform,
        style: 'font-size:' + t.size + 'px;font-family:' + l.family + ';fill:' + t.fill + ';stroke:none'});
      el.textContent = t.text;
      made.push(el);
    }
    old.replaceWith(...made);
  }
  svg.querySelectorAll('[data-traindoc-label]').forEach(t => t.removeAttribute('data-traindoc-label'));
}"""


def load_fonts(page: Any, fontset: fonts.FontSet, chars: str) -> None:
    """Declare the pinned faces the text needs in ``page`` and wait until they are usable."""
    faces = []
    for face in fontset.faces_for(chars):
        data = (fontset.folder / face.file).read_bytes()
        faces.append(
            {
                "family": face.family,
                "weight": face.weight,
                "range": face.unicode_range() if face.family == fonts.CJK else None,
                "b64": base64.b64encode(data).decode("ascii"),
            }
        )
    page.evaluate(LOAD_JS, faces)


def _apply(m: list[float], x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def _as_text(label: dict[str, Any]) -> list[dict[str, Any]]:
    """A label the pinned fonts cannot draw, as plain ``<text>`` lines at its glyphs' baselines."""
    m, scale = label["matrix"], abs(label["matrix"][0]) or 1.0
    lines: dict[float, dict[str, Any]] = {}
    for run in label["runs"]:
        for g in run["glyphs"] or []:
            x, y = _apply(m, g["x"], g["y"])
            line = lines.setdefault(round(y, 1), {"x": x, "y": y, "text": "", "size": run["size"] * scale})
            line["text"] += g["ch"] if not line["text"] or g["x"] - line.get("end", g["x"]) < 1 else " " + g["ch"]
            line["end"] = g["x"] + g["w"]
            line["fill"] = run["fill"]
    return [{k: v for k, v in line.items() if k != "end"} for line in lines.values()]


def outline_labels(page: Any, fontset: fonts.FontSet, family: str) -> int:
    """Replace the rendered diagram's labels by outlines; returns how many became plain text instead."""
    done, fallback = [], 0
    for label in page.evaluate(COLLECT_JS):
        paths: list[dict[str, Any]] | None = []
        for run in label["runs"]:
            glyphs = run["glyphs"]
            d = fonts.outline(fontset, glyphs, run["size"], run["bold"], label["matrix"]) if glyphs else None
            if d is None:
                paths = None
                break
            assert paths is not None
            paths.append({"d": d, "fill": run["fill"], "opacity": run["opacity"]})
        texts: list[dict[str, Any]] = []
        if paths is None:
            fallback += 1
            if label["kind"] == "svg":
                continue  # an SVG <text> that cannot be outlined stays as it is
            paths, texts = [], _as_text(label)
        backgrounds = []
        for b in label["backgrounds"]:  # page boxes into the label's user space (no rotation in a label)
            x0, y0 = _apply(label["matrix"], b["x"], b["y"])
            x1, y1 = _apply(label["matrix"], b["x"] + b["w"], b["y"] + b["h"])
            box = {"x": min(x0, x1), "y": min(y0, y1), "w": abs(x1 - x0), "h": abs(y1 - y0)}
            backgrounds.append({**box, "color": b["color"]})
        done.append({**label, "backgrounds": backgrounds, "paths": paths, "texts": texts, "family": family})
    page.evaluate(REPLACE_JS, done)
    return fallback

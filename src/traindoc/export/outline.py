"""Labels as glyph outlines: the export page's half of :mod:`fonts`.

The pinned faces are loaded into the page (``FontFace`` from bytes, nothing fetched) before Mermaid lays
out, with the same HTML labels the docs site uses (so an export has the site's layout, which the site
checks measure). Then every label (an HTML label inside a ``foreignObject``) is read back as Chromium
placed it, each character's box and baseline, and replaced by a ``<path>`` drawing the same glyphs
(plus one ``<rect>`` for a label's background), with the words kept as its ``aria-label``; no
``foreignObject`` is left, which Inkscape and slide tools do not draw. Bold CJK, for which there is no
bold face, is stroked as Chromium emboldens it. A label with a character the pinned fonts lack, in
italic (no italic face), or whose advances do not match the glyphs becomes plain SVG ``<text>``
centred where it was, never a wrong outline; the caller says how many. SVG ``<text>`` that Mermaid
draws itself (other diagram types than flowcharts) is left as it is.
"""

from __future__ import annotations

import base64
from typing import Any

from ..errors import BrowserUnavailable
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
    const key = [style.fontSize, style.fontWeight, style.fontStyle, style.fontFamily].join('|');
    if (!deltas.has(key)) {
      const probe = document.createElement('div');
      probe.style.cssText = 'position:absolute;left:0;top:0;white-space:nowrap;line-height:normal';
      probe.style.fontSize = style.fontSize; probe.style.fontWeight = style.fontWeight;
      probe.style.fontStyle = style.fontStyle; probe.style.fontFamily = style.fontFamily;
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
    if (!text) { fo.remove(); return; }
    fo.setAttribute('data-traindoc-label', String(i));
    const item = {i: i++, text: text, matrix: inverse(fo.parentNode), runs: [], backgrounds: []};
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
                   italic: style.fontStyle !== 'normal', fill: style.color, glyphs: []};
      let k = 0;
      for (const ch of node.textContent) {
        const range = document.createRange(); range.setStart(node, k); range.setEnd(node, k + ch.length);
        k += ch.length;
        const rects = range.getClientRects();
        if (!rects.length || /\\s/.test(ch)) continue;  // collapsed or white space: nothing to draw
        const r = rects[0];
        run.glyphs.push({ch: ch, x: r.left, y: r.top + delta, w: r.width});
      }
      if (run.glyphs.length) item.runs.push(run);
    }
    out.push(item);
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
    const made = [];
    // opacity:1 — Mermaid's `.edgeLabel rect {opacity: 0.5}` would let the edge show through the label
    for (const b of l.backgrounds)
      made.push(make('rect', {x: b.x, y: b.y, width: b.w, height: b.h,
                              style: 'fill:' + b.color + ';opacity:1;stroke:none'}));
    l.paths.forEach((p, n) => made.push(make('path', {d: p.d, role: n ? null : 'img',
        'aria-label': n ? null : l.text, 'aria-hidden': n ? 'true' : null,
        // inline style: the diagram's own stylesheet paints `.node path` like a box outline otherwise
        style: 'fill:' + p.fill + ';stroke:' + (p.stroke ? p.fill + ';stroke-width:' + p.stroke +
               ';stroke-linejoin:round' : 'none')})));
    for (const t of l.texts) {
      const el = make('text', {x: t.x, y: t.y, 'text-anchor': 'middle',
        // in the style too: a viewer's or the diagram's stylesheet must not re-anchor it
        style: 'text-anchor:middle;font-size:' + t.size + 'px;font-family:' + l.family + ';font-weight:' + t.weight +
               ';font-style:' + t.style + ';fill:' + t.fill + ';stroke:none'});
      el.textContent = t.text;
      made.push(el);
    }
    old.replaceWith(...made);
  }
  svg.querySelectorAll('[data-traindoc-label]').forEach(t => t.removeAttribute('data-traindoc-label'));
}"""


def load_fonts(page: Any, fontset: fonts.FontSet, chars: str) -> None:
    """Declare the pinned faces the text needs in ``page`` and wait until they are usable."""
    from playwright.sync_api import Error as PageError

    faces = []
    for face in fontset.faces_for(chars):
        try:
            data = (fontset.folder / face.file).read_bytes()
        except OSError as exc:
            raise BrowserUnavailable(
                f"{exc.filename}: {exc.strerror}; delete {fontset.folder} and run `traindoc fonts-fetch`"
            ) from None
        faces.append(
            {
                "family": face.family,
                "weight": face.weight,
                "range": face.unicode_range() if face.family == fonts.CJK else None,
                "b64": base64.b64encode(data).decode("ascii"),
            }
        )
    try:
        page.evaluate(LOAD_JS, faces)
    except PageError as exc:  # a truncated or foreign font file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BrowserUnavailable(
            f"{fontset.folder}: a pinned font does not load ({first}); delete the folder and run `traindoc fonts-fetch`"
        ) from None


def _apply(m: list[float], x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def _r(v: float) -> float:
    return round(v, 2) + 0.0  # no -0.0, no 17-digit coordinates in the file


def _as_text(label: dict[str, Any]) -> list[dict[str, Any]]:
    """A label the pinned fonts cannot draw, as plain ``<text>`` lines centred where its glyphs were."""
    m, scale = label["matrix"], abs(label["matrix"][0]) or 1.0
    lines: dict[float, dict[str, Any]] = {}
    for run in label["runs"]:
        for g in run["glyphs"]:
            line = lines.setdefault(round(g["y"], 1), {"y": g["y"], "text": "", "x0": g["x"], "x1": g["x"], "run": run})
            gap = g["x"] - line["x1"] >= 1 and line["text"]  # a space Chromium laid out but drew nothing for
            line["text"] += (" " if gap else "") + g["ch"]
            line["x0"], line["x1"] = min(line["x0"], g["x"]), max(line["x1"], g["x"] + g["w"])
    out = []
    for line in lines.values():
        x, y = _apply(m, (line["x0"] + line["x1"]) / 2, line["y"])
        run = line["run"]
        out.append(
            {
                "x": _r(x),
                "y": _r(y),
                "text": line["text"],
                "size": _r(run["size"] * scale),
                "fill": run["fill"],
                "weight": "bold" if run["bold"] else "normal",
                "style": "italic" if run["italic"] else "normal",
            }
        )
    return out


def _backgrounds(label: dict[str, Any]) -> list[dict[str, Any]]:
    """A label's background boxes in its user space; a box inside another of the same colour is one."""
    out: list[dict[str, Any]] = []
    for b in label["backgrounds"]:
        x0, y0 = _apply(label["matrix"], b["x"], b["y"])
        x1, y1 = _apply(label["matrix"], b["x"] + b["w"], b["y"] + b["h"])
        box = {"x": _r(min(x0, x1)), "y": _r(min(y0, y1)), "w": _r(abs(x1 - x0)), "h": _r(abs(y1 - y0))}
        inside = any(
            o["color"] == b["color"]
            and o["x"] <= box["x"] + 0.5
            and o["y"] <= box["y"] + 0.5
            and o["x"] + o["w"] >= box["x"] + box["w"] - 0.5
            and o["y"] + o["h"] >= box["y"] + box["h"] - 0.5
            for o in out
        )
        if not inside:
            out.append({**box, "color": b["color"]})
    return out


def outline_labels(page: Any, fontset: fonts.FontSet, family: str) -> int:
    """Replace the rendered diagram's HTML labels by outlines; returns how many became plain text instead
    (a character the pinned fonts lack, or italic, which they have no face for)."""
    done, fallback = [], 0
    for label in page.evaluate(COLLECT_JS):
        paths: list[dict[str, Any]] = []
        texts: list[dict[str, Any]] = []
        for run in label["runs"]:
            drawn = (
                None
                if run["italic"]
                else fonts.outline(fontset, run["glyphs"], run["size"], run["bold"], label["matrix"])
            )
            if drawn is None:
                paths, texts = [], _as_text(label)
                fallback += 1
                break
            scale = abs(label["matrix"][0]) or 1.0
            if drawn.regular:
                paths.append({"d": drawn.regular, "fill": run["fill"], "stroke": None})
            if drawn.fake_bold:  # no bold CJK face: Chromium emboldens by stroking; so does the outline
                paths.append({"d": drawn.fake_bold, "fill": run["fill"], "stroke": _r(drawn.stroke * scale)})
        done.append({**label, "backgrounds": _backgrounds(label), "paths": paths, "texts": texts, "family": family})
    page.evaluate(REPLACE_JS, done)
    return fallback

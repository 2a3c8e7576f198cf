"""Pixel comparison of two PNG screenshots in Chromium (no imaging library needed): how many 2×2-CSS-px
blocks differ in mean luminance by more than a threshold."""

from __future__ import annotations

import base64
from typing import Any

BLOCK_DIFF_JS = """async ([a, b, block, threshold]) => {
  const load = (s) => new Promise(r => { const i = new Image(); i.onload = () => r(i); i.src = 'data:image/png;base64,' + s; });
  const [ia, ib] = [await load(a), await load(b)];
  const w = ia.width, h = ia.height;
  const pixels = (img) => {
    const c = document.createElement('canvas'); c.width = w; c.height = h;
    const x = c.getContext('2d'); x.drawImage(img, 0, 0); return x.getImageData(0, 0, w, h).data;
  };
  const da = pixels(ia), db = pixels(ib);
  let differ = 0, inked = 0;
  for (let by = 0; by + block <= h; by += block) {
    for (let bx = 0; bx + block <= w; bx += block) {
      let sa = 0, sb = 0;
      for (let y = by; y < by + block; y++) for (let x = bx; x < bx + block; x++) {
        const i = 4 * (y * w + x);
        sa += da[i] + da[i + 1] + da[i + 2]; sb += db[i] + db[i + 1] + db[i + 2];
      }
      const n = 3 * block * block;
      if (sa / n < 200) inked++;
      if (Math.abs(sa - sb) / n > threshold) differ++;
    }
  }
  return {same_size: ib.width === w && ib.height === h, differ: differ, inked: inked};
}"""


def block_diff(page: Any, a: bytes, b: bytes, block: int = 4, threshold: float = 48.0) -> dict[str, Any]:
    args = [base64.b64encode(a).decode(), base64.b64encode(b).decode(), block, threshold]
    result: dict[str, Any] = page.evaluate(BLOCK_DIFF_JS, args)
    return result

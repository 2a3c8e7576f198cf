"""Encoder–decoder models with nested skip connections drawn as a U, as on a whiteboard.

A UNet in a top-down flowchart is one column: every encoder stage, the bottom, then every decoder stage
below it, with the skip connections as long arcs down the side. The zoo UNet at full depth was 19 ranks
tall and fitted a 1920×1080 slide only at 0.44. People draw it as a U: the encoder goes down, the
decoder comes back up beside it, and each skip is a short arrow across (measured: 0.73).

Mermaid's dagre layout ranks every edge downwards, so the decoder's edges are written target-first
(``dst <--> src``) with the arrowhead at the source end hidden (``linkStyle … marker-end:none``): dagre
ranks the decoder upwards and the one visible arrowhead still points at the module that receives the
tensor. :func:`rising_edges` decides which edges those are; the template only writes them.

When: the longest input→output path (the spine) has two or more skips nested inside each other
(``a1 < a2 < b2 < b1``). A skip is an edge that carries the spine's own tensor past two or more spine
nodes to one that also receives a spine tensor of as many dims (a concat or an add; an upsampling by
``F.interpolate`` is not a box, so the spine's tensor may still show its smaller size), and each nested
skip is an image or volume (four dims or more) of a smaller spatial size (the dims past batch and
channel) than the one around it: an encoder feeding its decoder at each resolution. What keeps the
plain layout:

- residual adds in a ResNet or a transformer follow each other and do not nest;
- three-dim tensors: ``1×256×16`` is tokens × channels as often as channels × length, so a transformer
  residual inside a convolution's residual (Swin2SR, MobileViT) would read as a smaller size (a
  1-D UNet over audio is not recognised either);
- T5's position bias (a second output, not the spine's tensor);
- a feature pyramid (UperNet): its lateral convolutions sit between the encoder and the decoder, so
  its skips are paths, not edges. Drawn as a U its laterals fell in steps, and it measured wider and no
  better (depth 4: 2,494 × 2,972 px against 1,454 × 3,914), so it stays a column.

The fold is a spine edge inside the innermost skip (never at its source, which would close a loop with
the skip), nearest its middle, preferring an edge between two top-level blocks so no block is cut in
half; everything downstream of the fold rises. If turning the decoder still closes a loop (a side
branch from the fold into the decoder), the plain layout is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

Edge = tuple[str, str, str]
Skip = tuple[int, int, str]  # spine position it leaves, spine position it rejoins, the shape it carries


def _topological(pairs: list[tuple[str, str]]) -> list[str] | None:
    """Every node, each after its sources (Kahn), or None when the edges close a loop."""
    succ: dict[str, list[str]] = {}
    indeg: dict[str, int] = {}
    for s, d in pairs:
        succ.setdefault(s, []).append(d)
        indeg[d] = indeg.get(d, 0) + 1
        indeg.setdefault(s, 0)
    order = [n for n, k in indeg.items() if k == 0]
    for n in order:  # ``order`` grows while it is walked
        for d in succ.get(n, []):
            indeg[d] -= 1
            if indeg[d] == 0:
                order.append(d)
    return order if len(order) == len(indeg) else None


def _spine(pairs: list[tuple[str, str]], output: str) -> list[str]:
    """The longest path that ends at ``output`` (ties: the first edge listed), or [] when there is a cycle."""
    order = _topological(pairs)
    if order is None or output not in order:
        return []
    at = {n: i for i, n in enumerate(order)}
    dist: dict[str, int] = {}
    best: dict[str, str] = {}
    for s, d in sorted(pairs, key=lambda e: at[e[0]]):
        if dist.get(s, 0) + 1 > dist.get(d, 0):
            dist[d], best[d] = dist.get(s, 0) + 1, s
    path = [output]
    while path[-1] in best:
        path.append(best[path[-1]])
    return path[::-1]


def _spatial(shape: str) -> int | None:
    """The size of an image or volume past its batch and channel dims (``1×16×8×8`` → 64); None below
    four dims, where ``1×256×16`` may be tokens × channels as well as channels × length."""
    try:
        dims = [int(x) for x in shape.split("×")]
    except ValueError:
        return None
    return math.prod(dims[2:]) if len(dims) >= 4 else None


def _nested_chain(skips: list[Skip]) -> list[Skip]:
    """The longest chain of skips, each strictly inside the one before and carrying a smaller spatial
    size (outermost first): the resolutions of an encoder, each met again by the decoder."""
    skips = sorted(set(skips))
    chain_of: list[list[Skip]] = []
    for i, (a, b, shape) in enumerate(skips):
        best: list[Skip] = []
        size = _spatial(shape)
        for j in range(i):
            pa, pb, outer = skips[j]
            bigger = _spatial(outer)
            same_dims = _rank(outer) == _rank(shape)
            nested = pa < a and b < pb and same_dims and size is not None and bigger is not None and size < bigger
            if nested and len(chain_of[j]) > len(best):
                best = chain_of[j]
        chain_of.append([*best, (a, b, shape)])
    return max(chain_of, key=len, default=[])


def _rank(shape: str) -> int:
    return len(shape.split("×"))


def _skips(spine: list[str], pairs: list[tuple[str, str]], shapes: dict[tuple[str, str], str]) -> list[Skip]:
    """Edges that carry the spine's own tensor past two or more spine nodes to one that also receives a
    spine tensor of as many dims (a concat or an add; the spine's may still be drawn at its size before an
    ``F.interpolate``, which the trace keeps inside the edge): (where it leaves, where it rejoins, its shape)."""
    pos = {n: i for i, n in enumerate(spine)}
    return [
        (pos[s], pos[d], shapes[s, d])
        for s, d in pairs
        if s in pos
        and d in pos
        and pos[d] - pos[s] >= 2
        and shapes[s, d] == shapes[s, spine[pos[s] + 1]]
        and _rank(shapes[s, d]) == _rank(shapes[spine[pos[d] - 1], d])
    ]


def rising_edges(edges: Iterable[Edge], output: str, top: Callable[[str], str]) -> frozenset[tuple[str, str]]:
    """The (src, dst) pairs to draw bottom-up, or none when the model is not U-shaped.

    ``top`` maps a drawn node to the top-level block that holds it (itself at the top level)."""
    shapes = {(s, d): shape for s, d, shape in edges}
    pairs = list(shapes)
    spine = _spine(pairs, output)
    skips = _skips(spine, pairs, shapes)
    chain = _nested_chain(skips)
    if len(chain) < 2:
        return frozenset()
    a, b, _ = chain[-1]
    middle = (a + b) / 2
    steps = range(a + 1, b)  # spine edge k joins spine[k] and spine[k + 1]; a fold at a would meet its skip
    between = [k for k in steps if top(spine[k]) != top(spine[k + 1])] or list(steps)
    k = min(between, key=lambda k: (abs(k + 0.5 - middle), -k))
    fold = (spine[k], spine[k + 1])
    succ: dict[str, list[str]] = {}
    for s, d in pairs:
        succ.setdefault(s, []).append(d)
    rising = {fold[1]}
    stack = [fold[1]]
    while stack:
        for d in succ.get(stack.pop(), []):
            if d not in rising:
                rising.add(d)
                stack.append(d)
    up = frozenset((s, d) for s, d in pairs if d in rising and (s in rising or (s, d) == fold))
    # a side branch from the fold's source into the decoder would close a loop once the fold is turned
    drawn = [(d, s) if (s, d) in up else (s, d) for s, d in pairs]
    return up if _topological(drawn) is not None else frozenset()

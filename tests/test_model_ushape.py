"""An encoder–decoder with nested skips is drawn as a U (render/model/ushape.py); nothing else is."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs import has_cycle
from traindoc.render import diagrams
from traindoc.render.model.size import ranks
from traindoc.render.model.ushape import rising_edges
from traindoc.render.model.view import build_view, max_depth
from zoo import ZOO, facts_for

U_SHAPED = ("unet", "unet_interp", "unet_folded")  # the last two: tests/zoo_u.py


@pytest.mark.parametrize("name", U_SHAPED)
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_unet_goes_down_and_comes_back_up_beside_itself(name: str, depth: int) -> None:
    view, _ = build_view(facts_for(name).model, depth, None)
    rank = ranks(view)
    assert view.rising, "the UNet is drawn as one column"
    for s, d in view.rising:  # the decoder: every module sits above the one that feeds it
        assert rank[d] < rank[s], (s, d)
    concats = [i for i in rank if i.startswith("o_concat")]
    skips = [(s, d) for s, d, _ in view.edges if d in concats and (s, d) not in view.rising]
    assert len(skips) == len(concats) >= 2  # every skip goes straight across, the rest rises
    chain = len({n for e in view.edges for n in e[:2]})
    assert max(rank.values()) + 1 <= chain // 2 + 3  # about half the ranks of the single column


def test_the_unet_diagram_writes_rising_edges_target_first_and_hides_their_other_arrowhead() -> None:
    view, _ = build_view(facts_for("unet").model, 2, None)
    text = diagrams.diagram(facts_for("unet"), "model", depth=2).text
    links = [line.strip() for line in text.splitlines() if re.search(r" (<-->|-->)", line)]
    assert len(links) == len(view.edges)
    styled = re.search(r"^\s*linkStyle ([\d,]+) marker-end:none$", text, re.M)
    assert styled is not None
    up = {int(i) for i in styled.group(1).split(",")}
    assert up == {i for i, line in enumerate(links) if "<-->" in line}
    assert len(up) == len(view.rising)
    for i in up:  # "receiver <--> sender": the source end (the sender) carries no arrowhead
        receiver, sender = re.split(r" <-->(?:\|[^|]*\|)? ", links[i])
        assert any(d.endswith(receiver[-6:]) and s.endswith(sender[-6:]) for s, d in view.rising)


@pytest.mark.parametrize("name", [*(n for n in ZOO if n != "unet"), "tokres", "swin2sr"])
def test_no_other_zoo_model_is_folded_into_a_u(name: str) -> None:
    m = facts_for(name).model
    if not m.traced:
        pytest.skip("not traced")
    for depth in range(1, max_depth(m) + 1):  # Swin2SR's tokens inside its images read as a U at depth 5
        view, _ = build_view(m, depth, None)
        assert view.rising == frozenset(), f"{name} at depth {depth}"  # residuals, routers, T5's bias


_GEOMETRY_JS = """
async (texts) => {
  mermaid.initialize({startOnLoad: false, securityLevel: 'strict'});
  const out = [];
  for (const [i, t] of texts.entries()) {
    const {svg} = await mermaid.render('u' + i, t);
    document.body.innerHTML = svg;
    const el = document.querySelector('svg');
    const vb = el.viewBox.baseVal;
    el.setAttribute('width', vb.width); el.setAttribute('height', vb.height); el.style.maxWidth = 'none';
    const boxes = {};
    for (const n of document.querySelectorAll('g.node')) {
      const r = n.getBoundingClientRect();
      boxes[n.id.replace(/^flowchart-/, '').replace(/-\\d+$/, '')] = [r.left, r.top, r.right, r.bottom];
    }
    const edges = [...document.querySelectorAll('path.flowchart-link')].map(p => {
      const m = p.getScreenCTM(), len = p.getTotalLength();
      const at = (l) => { const q = p.getPointAtLength(l); return [m.a * q.x + m.c * q.y + m.e, m.b * q.x + m.d * q.y + m.f]; };
      const cs = getComputedStyle(p);
      return {id: p.id, start: at(0), end: at(len), markerStart: cs.markerStart, markerEnd: cs.markerEnd};
    });
    out.push({height: vb.height, boxes, edges});
  }
  return out;
}
"""


def _gap(point: list[float], box: list[float]) -> float:
    x, y = point
    return max(box[0] - x, 0, x - box[2]) + max(box[1] - y, 0, y - box[3])


@pytest.mark.slow
@pytest.mark.browser
def test_in_chromium_the_u_points_every_arrow_at_its_receiver_and_halves_the_height(session_browser: Any) -> None:
    from dataclasses import replace

    from traindoc.export.browser import new_page
    from traindoc.render.env import render

    f = facts_for("unet")
    view, _ = build_view(f.model, 2, None)
    u_text = diagrams.diagram(f, "model", depth=2).text
    column = diagrams.with_one_line_titles(
        render("model.mmd.j2", None, view=replace(view, rising=frozenset()), facts=f, notes=())
    )
    page = new_page(session_browser)
    try:
        u, col = page.evaluate(_GEOMETRY_JS, [u_text, column])
    finally:
        page.close()
    assert u["height"] <= 0.7 * col["height"], (u["height"], col["height"])
    seen = 0
    for e in u["edges"]:
        key = next(((s, d) for s, d, _ in view.edges if e["id"] in (f"L_{s}_{d}_0", f"L_{d}_{s}_0")), None)
        assert key is not None, e["id"]
        sender, receiver = key
        head = e["start"] if key in view.rising else e["end"]  # where the visible arrowhead is drawn
        tail = e["end"] if key in view.rising else e["start"]
        assert (e["markerStart"] != "none") == (key in view.rising), e
        assert (e["markerEnd"] == "none") == (key in view.rising), e
        assert _gap(head, u["boxes"][receiver]) < 8 and _gap(tail, u["boxes"][sender]) < 8, (key, e)
        seen += 1
    assert seen == len(view.edges)
    for s, d, _ in view.edges:  # a skip crosses from the encoder to the decoder at about its own height
        if d.startswith("o_concat") and (s, d) not in view.rising:
            dy = abs((u["boxes"][s][1] + u["boxes"][s][3]) / 2 - (u["boxes"][d][1] + u["boxes"][d][3]) / 2)
            assert dy < 0.2 * u["height"], (s, d, dy)


@pytest.mark.slow
@pytest.mark.browser
def test_in_chromium_no_title_of_a_rising_level_is_hidden(session_browser: Any) -> None:
    """A subgraph drawn bottom-up has its last child at the top, under its title: the title moves onto
    that child as in a top-down subgraph, and an edge leaving it upwards puts its shape on its source."""
    from svgmeasure import measure

    cases = [(n, d) for n in U_SHAPED for d in range(1, max_depth(facts_for(n).model) + 1)]
    texts = [diagrams.diagram(facts_for(n), "model", depth=d).text for n, d in cases]
    for (name, depth), m in zip(cases, measure(texts, session_browser), strict=True):
        assert m.error is None and m.overlaps() == [], f"{name} at depth {depth}: {m.overlaps()[:3]}"


# --- the rule on graphs nobody drew --------------------------------------------------------------------


def _level(lv: int) -> str:
    return f"1×{8 << lv}×{32 >> lv}×{32 >> lv}"


def _unet(levels: int, blocks: int, shapes: bool = True) -> list[tuple[str, str, str]]:
    """input → enc level 0..L-1 (each `blocks` boxes, then a pool) → bottom → up + concat per level → output."""
    shape = _level if shapes else (lambda lv: _level(0))
    edges: list[tuple[str, str, str]] = []
    prev, skip_from = "in", []
    for lv in range(levels):
        for b in range(blocks):
            edges.append((prev, f"e{lv}_{b}", shape(lv)))
            prev = f"e{lv}_{b}"
        skip_from.append(prev)
        edges.append((prev, f"pool{lv}", shape(lv)))
        prev = f"pool{lv}"
    edges.append((prev, "bottom", shape(levels)))
    prev = "bottom"
    for lv in reversed(range(levels)):
        edges.append((prev, f"up{lv}", shape(lv + 1)))
        edges.append((f"up{lv}", f"cat{lv}", shape(lv)))
        edges.append((skip_from[lv], f"cat{lv}", shape(lv)))
        edges.append((f"cat{lv}", f"d{lv}", shape(lv)))
        prev = f"d{lv}"
    edges.append((prev, "io_output", shape(0)))
    return edges


@settings(max_examples=60, deadline=None)
@given(levels=st.integers(2, 5), blocks=st.integers(1, 3))
def test_property_any_unet_folds_at_its_bottom(levels: int, blocks: int) -> None:
    edges = _unet(levels, blocks)
    up = rising_edges(edges, "io_output", lambda n: n)
    decoder = {n for s, d, _ in edges for n in (s, d) if re.fullmatch(r"(up|cat|d)\d|io_output", n)}
    assert {d for _, d in up} == decoder  # everything after the bottom rises, nothing before it
    assert ("bottom", f"up{levels - 1}") in up and not any(s.startswith("e") for s, _ in up)


@settings(max_examples=40, deadline=None)
@given(levels=st.integers(2, 5), blocks=st.integers(1, 3))
def test_property_skips_of_one_size_are_residuals_not_a_u(levels: int, blocks: int) -> None:
    assert rising_edges(_unet(levels, blocks, shapes=False), "io_output", lambda n: n) == frozenset()


def test_three_dim_skips_never_make_a_u_not_even_a_1d_unet() -> None:
    """``1×256×16`` may be tokens × channels or channels × length: a residual on tokens inside an image's
    would read as a smaller size (Swin2SR), so three-dim skips are never nested, and a UNet over a
    sequence (``1×C×L``) keeps the column (documented in render/model/ushape.py)."""

    def sequence(shape: str) -> str:
        b, c, h, w = (int(x) for x in shape.split("×"))
        return f"{b}×{c}×{h * w}"

    assert rising_edges(_unet(3, 2), "io_output", lambda n: n)  # the same graph on images is a U
    edges = [(s, d, sequence(sh)) for s, d, sh in _unet(3, 2)]
    assert rising_edges(edges, "io_output", lambda n: n) == frozenset()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_property_a_unet_with_any_extra_edges_is_drawn_without_a_loop(data: Any) -> None:
    edges = _unet(data.draw(st.integers(2, 4)), data.draw(st.integers(1, 2)))
    order = list(dict.fromkeys(n for s, d, _ in edges for n in (s, d)))  # a topological order of the UNet
    extra = data.draw(st.lists(st.tuples(st.integers(0, len(order) - 2), st.integers(1, len(order) - 1)), max_size=4))
    for a, b in extra:
        if a < b and order[b] != "in":
            edges.append((order[a], order[b], data.draw(st.sampled_from([_level(0), _level(1), _level(2)]))))
    up = rising_edges(edges, "io_output", lambda n: n)
    assert up <= {(s, d) for s, d, _ in edges}
    assert not has_cycle([(d, s) if (s, d) in up else (s, d) for s, d, _ in edges])


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_property_whatever_the_graph_the_drawn_edges_never_loop(data: Any) -> None:
    n = data.draw(st.integers(3, 14))
    names = ["in", *[f"n{i}" for i in range(1, n - 1)], "io_output"]
    pairs = data.draw(
        st.sets(st.tuples(st.integers(0, n - 2), st.integers(1, n - 1)).filter(lambda p: p[0] < p[1]), min_size=1)
    )
    sizes = st.sampled_from([_level(0), _level(1), _level(2)])
    shapes = data.draw(st.lists(sizes, min_size=len(pairs), max_size=len(pairs)))
    edges = [(names[a], names[b], sh) for (a, b), sh in zip(sorted(pairs), shapes, strict=True)]
    up = rising_edges(edges, "io_output", lambda x: x)
    assert up <= {(s, d) for s, d, _ in edges}
    assert not has_cycle([(d, s) if (s, d) in up else (s, d) for s, d, _ in edges])

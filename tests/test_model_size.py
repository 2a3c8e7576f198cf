"""The browser-free size estimate that picks the default depth (render/model/size.py). The slow zoo test
measures the real drawings in Chromium; these pin the rules the calibration found."""

from __future__ import annotations

from traindoc.render.model.size import estimate_px
from traindoc.render.model.view import ModelView, ViewNode


def _view(nodes: list[ViewNode], edges: list[tuple[str, str]]) -> ModelView:
    return ModelView("M", nodes, [(s, d, "1×8") for s, d in edges], [("in", "1×8")], "io_output", "1×8", 0, ())


def test_a_word_mermaid_cannot_wrap_widens_the_box() -> None:
    short = _view([ViewNode("a", "leaf", "embed · Embedding", "1.2k params")], [("in", "a"), ("a", "io_output")])
    long = _view(
        [ViewNode("a", "leaf", "embed_positions · MBartLearnedPositionalEmbeddingWithAVeryLongName", "1.2k params")],
        [("in", "a"), ("a", "io_output")],
    )
    assert estimate_px(long)[0] >= 55 * 8 > estimate_px(short)[0]  # the class name alone is 55 characters


def test_a_box_of_more_lines_makes_its_rank_taller() -> None:
    two = _view([ViewNode("a", "leaf", "a · Linear", "10 params")], [("in", "a"), ("a", "io_output")])
    four = _view(
        [ViewNode("a", "leaf", "a · Linear", "10 params\ncall 1 of 2, shared\n→ 1×8")],
        [("in", "a"), ("a", "io_output")],
    )
    assert estimate_px(four)[1] > estimate_px(two)[1]


def test_subgraphs_on_the_same_ranks_sit_side_by_side() -> None:
    def group(i: str) -> ViewNode:
        return ViewNode(f"g{i}", "group", f"branch {i}", children=[ViewNode(i, "leaf", f"{i} · Linear", "10 params")])

    one = _view([group("a")], [("in", "a"), ("a", "io_output")])
    two = _view([group("a"), group("b")], [("in", "a"), ("in", "b"), ("a", "io_output"), ("b", "io_output")])
    assert estimate_px(two)[0] > 1.8 * estimate_px(one)[0]

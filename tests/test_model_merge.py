"""Parameter-free layers are drawn inside the box they follow (``Conv2d → ReLU``) only when nothing is lost:
the reachability between the boxes still drawn is exactly what it was, on every zoo model."""

from __future__ import annotations

import pytest

from graphs import all_nodes, reach
from traindoc.render.model import view as modelview
from traindoc.render.model.merge import merge_weightless
from traindoc.render.model.view import ViewNode, build_view
from zoo import ZOO, facts_for


@pytest.mark.parametrize("name", [n for n in ZOO if n not in ("gpt2_xl", "deep240", "wide600", "flat600")])
@pytest.mark.parametrize("depth", [2, 3])
def test_merging_keeps_every_path_between_the_boxes_still_drawn(
    name: str, depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = facts_for(name).model
    merged, _ = build_view(model, depth, None)
    monkeypatch.setattr(modelview, "merge_weightless", lambda nodes, edges: edges)
    plain, _ = build_view(model, depth, None)
    kept, before = set(all_nodes(merged.nodes)), all_nodes(plain.nodes)
    gone = set(before) - kept
    assert all(before[g].weightless and before[g].kind == "leaf" for g in gone)  # only weightless leaves go
    ends = kept | {i for i, _ in plain.inputs} | {plain.output_id}
    assert reach(merged.edges, ends) == reach(plain.edges, ends), name
    assert len(merged.edges) <= len(plain.edges)


def test_a_unet_reads_conv_relu_and_keeps_its_skips() -> None:
    view, _ = build_view(facts_for("unet").model, 3, None)
    boxes = all_nodes(view.nodes)
    titles = [n.title for n in boxes.values()]
    assert not any(t.endswith("· ReLU") for t in titles)  # no ReLU box of its own
    assert sum(t.endswith("Conv2d → ReLU") for t in titles) == 10
    concats = [i for i, n in boxes.items() if n.title == "concat"]
    assert len(concats) == 2 and all(sum(d == c for _, d, _ in view.edges) == 2 for c in concats)  # skip + up
    pools = [n for n in boxes.values() if "MaxPool2d" in n.title]
    assert len(pools) == 2  # a pooling changes the shape: it keeps its box


def test_only_a_simple_chain_is_merged() -> None:
    def leaf(i: str, title: str, weightless: str = "") -> ViewNode:
        return ViewNode(i, "leaf", title, weightless=weightless)

    a, b, relu, drop, pool = (
        leaf("a", "a · Linear"),
        leaf("b", "b · Linear"),
        leaf("r", "act · ReLU", "ReLU"),
        leaf("d", "drop · Dropout", "Dropout"),
        leaf("p", "pool · MaxPool2d", "MaxPool2d"),
    )
    nodes: list[ViewNode] = [a, relu, drop, b, pool]
    edges = [("a", "r", "8"), ("r", "d", "8"), ("d", "b", "8"), ("b", "p", "8"), ("p", "out", "4")]
    out = merge_weightless(nodes, edges)  # type: ignore[arg-type]
    assert [n.id for n in nodes] == ["a", "b", "p"] and a.title == "a · Linear → ReLU → Dropout"
    assert out == [("a", "b", "8"), ("b", "p", "8"), ("p", "out", "4")]  # the pool changes 8 → 4: kept
    x, y, drop2 = leaf("x", "x"), leaf("y", "y"), leaf("d2", "drop · Dropout", "Dropout")
    nodes2: list[ViewNode] = [x, y, drop2]
    edges2 = [("x", "d2", "8"), ("y", "d2", "8"), ("d2", "out", "8")]
    assert merge_weightless(nodes2, edges2) == edges2 and len(nodes2) == 3  # fed by two boxes: stays  # type: ignore[arg-type]
    z, relu2 = leaf("z", "z"), leaf("r2", "act · ReLU", "ReLU")
    nodes3: list[ViewNode] = [z, relu2]
    edges3 = [("z", "r2", "8"), ("z", "other", "8"), ("r2", "out", "8")]
    assert merge_weightless(nodes3, edges3) == edges3  # z also feeds something else: the ReLU is not "after" z  # type: ignore[arg-type]

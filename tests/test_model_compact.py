"""An explicit depth that misses the slide is drawn compact (render/model/compact.py): a container whose
inside is one straight chain of layers becomes one box listing them. Nothing may be lost: the paths between
what is still drawn stay exactly the same, only containers of boxes collapse, and a layer with more to say
than its parameter count keeps its container opened."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs import all_nodes, reach
from traindoc.render import diagrams
from traindoc.render.model.compact import compact_chains
from traindoc.render.model.view import ViewNode, build_view
from zoo import ZOO, facts_for

E = tuple[str, str, str]


def _module(name: str, chain: list[str], detail: str = "") -> ViewNode:
    kids = [ViewNode(f"{name}_{c}", "leaf", f"{c.lower()} · {c}", detail or "16 params") for c in chain]
    return ViewNode(f"g_{name}", "group", "ConvModule", "48 params", children=kids, box_title=f"{name} · ConvModule")


def test_a_conv_bn_module_reads_as_one_box_with_its_chain_and_edges() -> None:
    nodes = [_module("lat", ["Conv2d", "BatchNorm2d"])]
    edges = [
        ("in", "lat_Conv2d", ""),
        ("lat_Conv2d", "lat_BatchNorm2d", "1×8×4×4"),
        ("lat_BatchNorm2d", "out", "1×8×4×4"),
    ]
    out, k = compact_chains(nodes, edges)  # type: ignore[arg-type]
    assert k == 1
    assert [(n.id, n.kind, n.title, n.detail) for n in nodes] == [
        ("lat_Conv2d", "leaf", "lat · ConvModule", "Conv2d → BatchNorm2d\n48 params")
    ]
    assert out == [("in", "lat_Conv2d", ""), ("lat_Conv2d", "out", "1×8×4×4")]  # the tail's shape, kept


@pytest.mark.parametrize(
    "extra",
    [
        ("in", "m_BatchNorm2d", ""),  # entered in the middle: a residual into the norm
        ("m_Conv2d", "out", "1×8"),  # left before its tail
        ("m_BatchNorm2d", "m_Conv2d", ""),  # a loop inside
    ],
)
def test_a_container_that_is_not_one_straight_chain_stays_opened(extra: E) -> None:
    nodes = [_module("m", ["Conv2d", "BatchNorm2d"])]
    edges = [("in", "m_Conv2d", ""), ("m_Conv2d", "m_BatchNorm2d", ""), ("m_BatchNorm2d", "out", ""), extra]
    assert compact_chains(nodes, list(edges)) == (list(dict.fromkeys(edges)), 0)  # type: ignore[arg-type]
    assert nodes[0].subgraph and len(nodes[0].children) == 2


@pytest.mark.parametrize("detail", ["16 params · call 1 of 2, shared", "tied to embed.weight", "16 params · frozen"])
def test_a_layer_with_more_to_say_keeps_its_container_opened(detail: str) -> None:
    nodes = [_module("m", ["Linear", "LayerNorm"], detail)]
    edges = [("in", "m_Linear", ""), ("m_Linear", "m_LayerNorm", ""), ("m_LayerNorm", "out", "")]
    compact_chains(nodes, edges)  # type: ignore[arg-type]
    assert nodes[0].subgraph and len(nodes[0].children) == 2


def test_a_chain_too_long_for_one_label_keeps_its_boxes() -> None:
    layers = ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 6  # a VGG-like Sequential
    nodes = [_module("features", [f"{c}{i}" for i, c in enumerate(layers)])]
    ids = [k.id for k in nodes[0].children]
    edges = [("in", ids[0], ""), *((a, b, "") for a, b in itertools.pairwise(ids)), (ids[-1], "out", "")]
    assert compact_chains(nodes, edges)[1] == 0  # type: ignore[arg-type]
    assert nodes[0].subgraph and len(nodes[0].children) == len(layers)


def test_a_block_around_one_box_keeps_its_own_count_when_it_holds_more() -> None:
    inner = ViewNode("emb_proj", "leaf", "proj · Linear", "4.16k params")
    outer = ViewNode("g_emb", "group", "Emb", "68.2k params", children=[inner], box_title="emb · Emb")
    nodes = [outer]
    compact_chains(nodes, [("in", "emb_proj", ""), ("emb_proj", "out", "")])  # type: ignore[arg-type]
    assert (nodes[0].title, nodes[0].detail) == ("emb · Emb", "proj · Linear\n4.16k params\n68.2k params in all")
    same = [ViewNode("g", "group", "B", "10 params", children=[ViewNode("x", "leaf", "x · Linear", "10 params")])]
    compact_chains(same, [])  # type: ignore[arg-type]
    assert same[0].detail == "x · Linear\n10 params"


def test_only_containers_of_boxes_collapse_so_the_levels_above_stay_opened() -> None:
    outer = ViewNode(
        "g_o", "group", "Head", children=[_module("a", ["Conv2d", "BatchNorm2d"])], box_title="head · Head"
    )
    edges = [("in", "a_Conv2d", ""), ("a_Conv2d", "a_BatchNorm2d", ""), ("a_BatchNorm2d", "out", "")]
    compact_chains([outer], edges)  # type: ignore[arg-type]
    assert outer.subgraph and [c.title for c in outer.children] == ["a · ConvModule"]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=1, max_value=5),
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=6),
)
def test_compacting_never_changes_which_drawn_box_reaches_which(n: int, extra: list[tuple[int, int]]) -> None:
    """A chain of ``n`` layers inside a container, with arbitrary extra edges between the chain, an outside
    box before it and one after it: whether or not it collapses, paths between the outside boxes, the input
    and the output are unchanged, and a collapsed chain's boxes are all gone."""
    names = [f"L{i}" for i in range(n)]
    nodes = [
        ViewNode("before", "leaf", "a · Linear", "8 params"),
        _module("m", names),
        ViewNode("after", "leaf", "b · Linear"),
    ]
    pool = ["in", "before", *(f"m_{x}" for x in names), "after", "out"]
    edges: list[E] = [("in", "before", ""), ("before", "m_L0", "")]
    edges += [(f"m_{a}", f"m_{b}", "") for a, b in itertools.pairwise(names)]
    edges += [(f"m_{names[-1]}", "after", ""), ("after", "out", "")]
    edges += [(pool[a % len(pool)], pool[b % len(pool)], "") for a, b in extra if a % len(pool) != b % len(pool)]
    keep = {"in", "before", "after", "out"}
    before = reach(edges, keep)
    out, _ = compact_chains(nodes, list(edges))  # type: ignore[arg-type]
    assert reach(out, keep) == before
    drawn = set(all_nodes(nodes)) | {"in", "out"}
    assert {x for e in out for x in e[:2]} <= drawn  # no edge to a box that is gone
    if not nodes[1].subgraph:
        assert sum(i.startswith("m_") for i in all_nodes(nodes)) == 1


@pytest.mark.parametrize("name", [n for n in ZOO if n not in ("gpt2_xl", "deep240", "wide600", "flat600")])
def test_on_every_zoo_model_compact_keeps_every_path_and_opens_every_level(name: str) -> None:
    model = facts_for(name).model
    for depth in (2, 3, 4):
        plain, _ = build_view(model, depth, None)
        small, _ = build_view(model, depth, None, compact=True)
        was, now = all_nodes(plain.nodes), all_nodes(small.nodes)
        assert set(now) <= set(was), name
        gone = set(was) - set(now)
        assert all(not was[g].subgraph or all(not k.subgraph for k in was[g].children) for g in gone), name
        ends = set(now) - {i for i, n in now.items() if n.subgraph}
        ends |= {i for i, _ in plain.inputs} | {plain.output_id}
        assert reach(small.edges, ends) == reach(plain.edges, ends), f"{name} depth {depth}"


def test_the_default_depth_is_never_compact_and_an_explicit_one_says_when_it_is() -> None:
    for name in ("upernet", "unet", "t5", "bert"):
        f = facts_for(name)
        assert not any("compact" in n for n in diagrams.diagram(f, "model").notes), name
    tall = diagrams.diagram(facts_for("upernet"), "model", depth=3)
    assert any(n.startswith("compact:") for n in tall.notes)
    assert '"wrappingWidth": 300' in tall.text and "Conv2d → BatchNorm2d → ReLU" in tall.text

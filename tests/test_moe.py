"""Mixture-of-experts models as transformers 5 writes them: a grouped-matmul kernel that demands bfloat16
even on meta (traced once more, cast, and said so), and E experts fused into one module with stacked
parameters (drawn ``× E`` beside their router, like a list of expert modules)."""

from __future__ import annotations

from graphlib import TopologicalSorter

import torch

from traindoc.facts import ModelFacts
from traindoc.render import content, diagrams
from traindoc.render.model.view import build_view
from zoo import ZOO, facts_for


def model(name: str) -> ModelFacts:
    return facts_for(name).model


def test_a_kernel_that_demands_bfloat16_is_traced_cast_on_meta_and_says_so() -> None:
    """transformers 5's Mixtral runs its experts through a grouped matmul that wants BF16 even on meta: the
    trace is retried once with the meta model and float inputs cast, counted exactly, and said out loud."""
    with torch.device("meta"):
        built = ZOO["mixtral"][0]()
    m = model("mixtral")
    assert m.traced and m.traced_on == "meta, cast to bfloat16"
    assert m.total_params == sum(p.numel() for p in built.parameters())
    assert m.param_bytes == {"float32": 4 * m.total_params}  # the model's own dtype, not the trace's
    assert m.input_shape == "1×16" and m.output_shape == "1×16×1000"
    (note,) = m.trace_notes
    assert note.startswith("traced in bfloat16") and "Expected inputs of BF16 type" in note
    assert "MixtralExperts" in note
    for depth in (None, 3):
        d = diagrams.diagram(facts_for("mixtral"), "model", depth=depth)
        assert d.notes[0] == note, depth  # the diagram says how it was traced
        assert "router" in d.text.lower(), depth
    assert "MixtralExperts × 4 experts" in diagrams.diagram(facts_for("mixtral"), "model").text
    assert "router → experts × 4" in diagrams.diagram(facts_for("mixtral"), "model", depth=3).text
    assert "traced in bfloat16" in content.block("model-table", facts_for("mixtral"))
    assert "1.3 MiB in float32" in content.block("model-table", facts_for("mixtral"))


def test_fused_experts_are_one_call_drawn_times_e_beside_their_router() -> None:
    m = model("mixtral")
    roles = {x.name: (x.moe, x.experts) for x in m.modules if x.moe}
    assert roles["model.layers.0.mlp.experts"] == ("experts", 4)
    assert roles["model.layers.0.mlp.gate"] == ("router", 4) and roles["model.layers.0.mlp"] == ("block", 4)
    inside = [c.id for c in m.calls if c.parent == "model.layers.0.mlp.experts"]
    assert inside == []  # the kernels inside are not the model's structure
    edges = {(e.src, e.dst): e.shape for e in m.edges}
    assert edges[("model.layers.0.mlp.gate", "model.layers.0.mlp.experts")] == "16×2"
    assert edges[("model.layers.0.mlp.experts", "model.layers.0/+#2")] == "16×64"
    # hand-written stacked experts, no transformers and no name of a known model, read the same way
    text = diagrams.diagram(facts_for("stacked_moe"), "model").text
    assert "router · Linear" in text and "StackedExperts × 6 experts" in text
    view, _ = build_view(model("stacked_moe"), 99, None)
    graph: dict[str, set[str]] = {}
    for s, d, _ in view.edges:
        graph.setdefault(d, set()).add(s)
    tuple(TopologicalSorter(graph).static_order())  # raises CycleError on a loop


def test_only_a_kernel_demanding_a_dtype_is_retried() -> None:
    from traindoc.facts.modeltrace import required_dtype

    mixtral = "Expected inputs of BF16 type but got mat_a.dtype=torch.float32 and mat_b.dtype=torch.float32."
    assert required_dtype(RuntimeError(mixtral)) is torch.bfloat16
    assert required_dtype(RuntimeError("flash attention only supports float16 and bfloat16")) is torch.float16
    for not_a_demand in (
        RuntimeError("mat1 and mat2 shapes cannot be multiplied (16x64 and 32x64)"),
        NotImplementedError("The register_meta function for torch.nonzero() raises unimplemented by default"),
        RuntimeError("expected scalar type Half but found Float"),  # operands that disagree: the user's bug
        RuntimeError("expected mat1 and mat2 to have the same dtype, but got: float != c10::BFloat16"),
        RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'"),
        KeyError("Expected inputs of BF16 type"),
    ):
        assert required_dtype(not_a_demand) is None, not_a_demand


def test_fused_experts_are_found_by_their_parameters_not_by_model_name() -> None:
    from traindoc.facts.moe import fused_experts
    from zoo import StackedExperts

    with torch.device("meta"):
        assert fused_experts("experts", StackedExperts(8, 3)) == 3
        assert fused_experts("blocks", StackedExperts(8, 3)) == 3  # the class says it
        assert fused_experts("conv", torch.nn.Conv2d(4, 4, 3, bias=False)) == 0  # one 4-D weight: not experts
        assert fused_experts("experts", torch.nn.Linear(8, 4)) == 0  # 2-D only: a router, not experts

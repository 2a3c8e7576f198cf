"""Diagrams: valid in real Mermaid, inside its limits, stable, and showing what the spec declares."""

from __future__ import annotations

import gc
import resource
import weakref
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from traindoc.export.browser import render_many
from traindoc.facts import Facts
from traindoc.facts.introspect import build_on_meta
from traindoc.facts.introspect import facts as compute_facts
from traindoc.render import mermaid
from traindoc.render.diagrams import KINDS, count, diagram, distributed_diagram, system_diagram
from traindoc.spec.loader import load
from zoo import GPT2_XL_PARAMS, ZOO, facts_for

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def digits() -> Facts:
    spec, file = load(str(REPO / "pipeline" / "digits.py"))
    return compute_facts(spec, file, REPO)


@pytest.fixture(scope="module")
def zoo_facts() -> dict[str, Facts]:
    return {name: facts_for(name) for name in ZOO}


# --- introspection on meta -----------------------------------------------------------------------


def test_gpt2_xl_exact_parameters_on_meta_without_storage() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    f = facts_for("gpt2_xl")
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert f.model.total_params == GPT2_XL_PARAMS == 1_557_611_200
    assert f.model.tied_params == 50257 * 1600  # lm_head shares wte's weight, counted once
    assert f.model.traced_on == "meta"
    assert f.model.param_bytes == {"float32": GPT2_XL_PARAMS * 4}  # estimated, never allocated
    assert grew < 1_000_000_000, f"introspection allocated {grew / 1e9:.1f} GB: weights were materialised"


def test_meta_build_allocates_no_real_storage() -> None:
    from traindoc.spec import Pipeline
    from zoo import gpt2_xl

    spec = Pipeline(
        name="x",
        environment={"image": "i:1"},
        model={"factory": gpt2_xl, "sample_input": {"shape": [1, 4], "dtype": "int64"}},
        data={"train": "zoo:small_data", "batch_size": 1},
        optim={"optimizer": "torch.optim:SGD"},
        checkpoint={"dir": "/c"},
    )
    model, where = build_on_meta(spec, Path(__file__))
    assert where == "meta"
    assert all(p.device.type == "meta" for p in model.parameters())
    assert sum(p.untyped_storage().nbytes() for p in model.parameters() if p.device.type != "meta") == 0


def test_user_model_is_never_moved_mutated_or_kept(tmp_path: Path) -> None:
    import zoo
    from traindoc.spec import Pipeline

    shared = zoo.SharedTwice()
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    refs: list[weakref.ref[torch.nn.Module]] = []

    def handing_out_the_same_instance() -> torch.nn.Module:
        return shared

    def fresh() -> torch.nn.Module:
        m = zoo.SharedTwice()
        refs.append(weakref.ref(m))
        return m

    for factory in (handing_out_the_same_instance, fresh):
        spec = Pipeline(
            name="x",
            environment={"image": "i:1"},
            model={"factory": factory, "sample_input": {"shape": [1, 16]}},
            data={"train": zoo.small_data, "batch_size": 1},
            optim={"optimizer": "torch.optim:SGD"},
            checkpoint={"dir": "/c"},
        )
        compute_facts(spec, Path(zoo.__file__))
    assert all(p.device.type == "cpu" for p in shared.parameters())
    assert all(torch.equal(before[k], v) for k, v in shared.state_dict().items())
    gc.collect()
    assert refs and all(r() is None for r in refs), "introspection kept a reference to a model it built"


def test_dataflow_edges_include_skip_connections(zoo_facts: dict[str, Facts]) -> None:
    edges = {(e.src, e.dst) for e in zoo_facts["unet"].model.edges}
    # the skip: the encoder's output and the upsampled path meet in one concatenation that feeds the decoder
    assert {("down1.3", "/concat#2"), ("up1", "/concat#2"), ("/concat#2", "dec1.0")} <= edges
    assert {("down2.3", "/concat#1"), ("up2", "/concat#1"), ("/concat#1", "dec2.0")} <= edges
    assert ("down1.3", "dec1.0") not in edges  # no shortcut around the concatenation
    shared = {(e.src, e.dst) for e in zoo_facts["shared"].model.edges}
    # one module, two calls, two nodes: no loop through `mid`
    assert {("inp", "shared.0"), ("shared.1", "mid"), ("mid", "shared.0@2"), ("shared.1@2", "out")} <= shared


def test_tied_and_shared_weights_counted_once(zoo_facts: dict[str, Facts]) -> None:
    gpt = zoo_facts["gpt_tied"].model
    assert gpt.tied_params == 512 * 64
    assert gpt.total_params == sum(p.numel() for p in ZOO["gpt_tied"][0]().parameters())
    shared = zoo_facts["shared"].model
    assert shared.total_params == (16 * 32 + 32) + 2 * (32 * 32 + 32) + (
        32 * 4 + 4
    )  # shared.0 once, though called twice
    assert next(m for m in shared.modules if m.name == "shared").calls == 2


# --- validity in the real Mermaid -----------------------------------------------------------------


@pytest.mark.browser
def test_every_zoo_and_example_diagram_renders(
    session_browser: object, zoo_facts: dict[str, Facts], digits: Facts
) -> None:
    produced = [diagram(f, "model") for f in zoo_facts.values()]
    produced += [diagram(digits, k) for k in KINDS]
    produced += [diagram(digits, k, templates=str(REPO / "templates")) for k in KINDS]
    produced += [diagram(digits, "model", depth=d) for d in (1, 2, 3)]
    for d in produced:
        size = mermaid.measure(d.text)
        assert size.chars <= mermaid.MAX_TEXT_SIZE and size.edges <= mermaid.MAX_EDGES, d.kind
    rendered = render_many([d.text for d in produced], browser=session_browser)
    for d, r in zip(produced, rendered, strict=True):
        assert r.error is None, f"{d.kind}: {r.error}\n{d.text[:500]}"
        assert r.nodes == d.nodes, f"{d.kind}: drew {r.nodes} nodes, expected {d.nodes}"
        assert r.clusters == d.clusters
        assert r.edges == d.edges


@pytest.mark.browser
def test_the_articles_diagram_fails_unquoted_and_ours_renders(session_browser: object) -> None:
    raw = "flowchart TD\n  D[NVIDIA GPU (如 A100/V100)]"
    ours = f"flowchart TD\n  {mermaid.node_id('gpu')}[{mermaid.label('NVIDIA GPU (如 A100/V100)')}]"
    bad, good = render_many([raw, ours], browser=session_browser)
    assert bad.error and "got 'PS'" in bad.error
    assert good.error is None and good.nodes == 1 and "如 A100/V100" in good.svg


def test_folding_and_depth_reduction_stay_inside_limits(zoo_facts: dict[str, Facts]) -> None:
    deep = diagram(zoo_facts["deep240"], "model")
    assert "Sequential × 240" in deep.text and any("× 240" in n for n in deep.notes)
    assert "note_folded" not in deep.text  # notes go below the diagram, never cut inside a box
    xl = diagram(zoo_facts["gpt2_xl"], "model")
    assert "Block × 48" in xl.text
    wide = diagram(zoo_facts["wide600"], "model", depth=2)  # the depth asked for is kept; the level is capped
    assert wide.edges <= mermaid.BUDGET_EDGES and any("at most 12 boxes per level" in n for n in wide.notes)
    assert "… 589 more" in wide.text
    flat = diagram(zoo_facts["flat600"], "model")
    assert flat.edges <= mermaid.BUDGET_EDGES and mermaid.measure(flat.text).chars <= mermaid.BUDGET_TEXT
    assert any("boxes per level" in n for n in flat.notes) and "more" in flat.text


def test_node_ids_are_stable_and_follow_names(digits: Facts, tmp_path: Path) -> None:
    a = diagram(digits, "model").text
    b = diagram(digits, "model").text
    assert a == b  # byte-identical
    assert "m_head_2_" in a and "g_features_0_" in a
    # a change in one module changes only that module's lines
    changed = digits.model.model_copy(
        update={
            "modules": [
                m.model_copy(update={"total_params": 999}) if m.name == "head.2" else m for m in digits.model.modules
            ]
        }
    )
    c = diagram(digits.model_copy(update={"model": changed}), "model").text
    diff = [(x, y) for x, y in zip(a.splitlines(), c.splitlines(), strict=True) if x != y]
    assert len(diff) == 1 and "head_2" in diff[0][0]


@given(st.lists(st.text(min_size=1, max_size=20), min_size=2, max_size=12, unique=True))
def test_property_node_ids_unique_and_safe(names: list[str]) -> None:
    ids = [mermaid.node_id(n) for n in names]
    assert len(set(ids)) == len(ids)
    assert all(i.replace("_", "").isalnum() and i.isascii() and i != "end" for i in ids)


# --- what the system diagram shows ------------------------------------------------------------------


def test_system_diagram_has_every_component_of_the_article(digits: Facts) -> None:
    text = system_diagram(digits).text
    for needle in [
        "Developer machine",
        "Browser",
        "Terminal / IDE",
        "HTTP :8888",
        "SSH :2222",
        "Container",
        "Image<br>pytorch-cuda:v2.6-cuda11.8",
        "GPU",
        "Jupyter server",
        "Python runtime",
        "Train entry point<br>pipeline/digits.py",
        "DataLoader",
        "GPU compute",
        "Weights #42;.pt",
        "/checkpoints",
    ]:
        assert needle in text, needle


def test_system_diagram_shows_only_what_is_declared(digits: Facts) -> None:
    bare = digits.model_copy(update={"access": digits.access.model_copy(update={"jupyter": None, "ssh": None})})
    text = system_diagram(bare).text
    assert "Jupyter" not in text and "SSH" not in text and "Browser" not in text and "Terminal" not in text
    cpu = digits.model_copy(update={"devices": digits.devices.model_copy(update={"requested": "cpu"})})
    assert "GPU" not in system_diagram(cpu).text


def test_project_template_override_wins(digits: Facts) -> None:
    text = system_diagram(digits, templates=str(REPO / "templates")).text
    assert "开发者机器" in text and "NVIDIA GPU (如 A100/V100)" in text


def test_distributed_16_nodes_by_8_gpus_stays_readable(digits: Facts) -> None:
    big = digits.model_copy(
        update={
            "distributed": digits.distributed.model_copy(
                update={
                    "nnodes": 16,
                    "nproc_per_node": 8,
                    "world_size": 128,
                    "enabled": True,
                    "backend": "nccl",
                    "rdzv_endpoint": "10.0.0.1:29400",
                }
            )
        }
    )
    d = distributed_diagram(big)
    assert "13 more nodes" in d.text and "8 × CUDA GPU" in d.text and "ranks 120–127" in d.text
    assert d.nodes <= 10
    single = digits.model_copy(
        update={
            "distributed": digits.distributed.model_copy(
                update={"nnodes": 1, "nproc_per_node": 1, "world_size": 1, "enabled": False}
            )
        }
    )
    assert "world size 1" in distributed_diagram(single).text


# --- golden files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_golden_example_diagrams(digits: Facts, kind: str, update_golden: bool) -> None:
    text = diagram(digits, kind).text
    path = GOLDEN / f"digits.{kind}.mmd"
    if update_golden:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), "golden file missing: run `make golden` and review the diff"
    assert text == path.read_text(encoding="utf-8"), f"{kind} diagram changed: run `make golden` and review the diff"


def test_count_matches_definitions() -> None:
    text = 'flowchart LR\n  subgraph g["x"]\n    a["1"]\n  end\n  b(["2"])\n  a -->|"e"| b\n  b --- c[("3")]\n'
    assert count(text) == (3, 1, 2)


def test_cuda_facts_are_said_out_loud(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU cannot exist here, so torch.cuda's answers are the one thing mocked."""
    from types import SimpleNamespace

    from traindoc.facts import introspect

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(total_memory=80 << 30))
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    d = introspect.device_facts("auto")
    assert d.resolved == "cuda" and d.sentence == "runs on CUDA: 2 × NVIDIA H100 80GB HBM3"
    assert d.cudnn_version == "91000" and d.cuda_version == "12.8"
    assert introspect.resident_ok(10 << 30, d, "auto") and not introspect.resident_ok(30 << 30, d, "auto")
    assert not introspect.resident_ok(1 << 20, d, "never")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = introspect.device_facts("cuda")
    assert (
        cpu.resolved == "cpu"
        and "no CUDA device visible (the spec asks for CUDA; falling back visibly)" in cpu.sentence
    )

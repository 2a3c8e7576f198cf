"""The model is traced in eval mode, as a forward always runs: a layer that a training forward skips at random
(LayerDrop, in ``transformers``' Wav2Vec2) must never vanish from one docs build to the next, and a branch
only a training forward takes is said to be not called, never silently drawn or dropped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from traindoc.facts.introspect import facts
from traindoc.render import diagrams
from traindoc.spec import Pipeline
from zoo import small_data, spec_for

LAYERS = [f"encoder.layers.{i}" for i in range(6)]


def test_layerdrop_never_drops_a_layer_from_the_diagram() -> None:
    pytest.importorskip("transformers")
    for _ in range(3):  # in training mode each of 6 layers is kept with p = 0.5: 3 traces all kept is 2^-18
        f = facts(spec_for("wav2vec2_layerdrop"), Path(__file__))
        assert f.model.traced, f.model.untraced_reason
        called = {c.module for c in f.model.calls}
        assert set(LAYERS) <= called
        text = diagrams.diagram(f, "model", depth=2).text
        assert "Wav2Vec2EncoderLayer × 6" in text


class WithAuxHead(nn.Module):
    """An auxiliary classifier that only a training forward runs (as in Inception)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Linear(8, 2)
        self.aux = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        out = self.head(h)
        if self.training:
            out = out + 0.3 * self.aux(h)
        return out


def aux_model() -> nn.Module:
    return WithAuxHead()


def test_a_training_only_branch_is_said_to_be_not_called() -> None:
    spec = Pipeline(
        name="aux",
        environment={"image": "img:1", "user": "1000", "volumes": [{"host": "./c", "container": "/c"}]},
        devices="cpu",
        model={"factory": aux_model, "sample_input": {"shape": [1, 4]}},
        data={"train": small_data, "batch_size": 4},
        optim={"optimizer": "torch.optim:SGD", "seed": 0},
        checkpoint={"dir": "/c"},
    )
    f = facts(spec, Path(__file__))
    assert {c.module for c in f.model.calls} >= {"body", "head"}
    assert "aux" not in {c.module for c in f.model.calls}
    assert f.model.total_params == (4 * 8 + 8) + 2 * (8 * 2 + 2)  # aux still counted: it is part of the model
    d = diagrams.diagram(f, "model")
    assert any("not called in the traced forward: aux (Linear)" in n for n in d.notes), d.notes

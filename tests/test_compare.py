"""Comparisons: the statistics behind the verdict and the model diff, on synthetic inputs with known answers."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from traindoc.compare.diff import diff_models
from traindoc.compare.stats import MIN_SEEDS, compare_metric, t_quantile, welch_interval
from traindoc.facts import ModelFacts, ModuleFact


def test_t_quantile_matches_known_table_values() -> None:
    # Student's t table (two-sided 95 % → p = 0.975).
    for df, q in [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)]:
        assert t_quantile(0.975, df) == pytest.approx(q, abs=5e-4)


def test_known_difference_is_called_larger_than_noise() -> None:
    rng = random.Random(1)
    a = [0.90 + rng.gauss(0, 0.004) for _ in range(5)]
    b = [0.95 + rng.gauss(0, 0.004) for _ in range(5)]
    d = compare_metric("val_accuracy", a, b, higher_is_better=True)
    assert d.verdict == "b_better"
    assert d.low is not None and d.high is not None and 0 < d.low < 0.05 < d.high
    assert "larger than seed noise" in d.text and "B is better" in d.text


def test_lower_is_better_flips_the_winner() -> None:
    d = compare_metric("val_loss", [1.0, 1.01, 0.99], [0.5, 0.51, 0.49], higher_is_better=False)
    assert d.delta < 0 and d.verdict == "b_better"
    d = compare_metric("val_loss", [0.5, 0.51, 0.49], [1.0, 1.01, 0.99], higher_is_better=False)
    assert d.verdict == "a_better"


def test_no_difference_stays_within_noise() -> None:
    rng = random.Random(7)
    same = [0.9 + rng.gauss(0, 0.01) for _ in range(8)]
    d = compare_metric("val_accuracy", same[:4], same[4:], higher_is_better=True)
    assert d.verdict == "within_noise"
    assert d.low is not None and d.high is not None and d.low < 0 < d.high
    assert "within seed noise" in d.text


@pytest.mark.parametrize("n", [1, MIN_SEEDS - 1])
def test_too_few_seeds_says_no_conclusion(n: int) -> None:
    d = compare_metric("val_accuracy", [0.5] * n, [0.9] * n, higher_is_better=True)
    assert d.verdict == "inconclusive" and d.low is None
    assert "no conclusion can be drawn" in d.text


@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=8),
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=8),
)
def test_interval_contains_the_observed_difference(a: list[float], b: list[float]) -> None:
    low, high = welch_interval(a, b)
    delta = sum(b) / len(b) - sum(a) / len(a)
    assert low <= delta + 1e-9 and delta - 1e-9 <= high


def _mod(name: str, cls: str, params: int, sig: str | None = None) -> ModuleFact:
    return ModuleFact(
        name=name,
        cls=cls,
        depth=0 if not name else name.count(".") + 1,
        own_params=params,
        total_params=params,
        trainable_params=params,
        frozen_params=0,
        buffers=0,
        signature=sig or f"{cls}:{params}",
        calls=1,
        output_shapes=[],
    )


def _model(mods: list[ModuleFact]) -> ModelFacts:
    fields = {f.name for f in dataclasses.fields(ModelFacts)}
    values = {
        "root_class": mods[0].cls,
        "modules": mods,
        "edges": [],
        "total_params": mods[0].total_params,
        "trainable_params": mods[0].total_params,
        "frozen_params": 0,
        "tied_params": 0,
        "buffers": 0,
        "param_bytes": {},
        "input_shape": "",
        "output_shape": "",
        "traced_on": "meta",
    }
    return ModelFacts(**{k: v for k, v in values.items() if k in fields})  # type: ignore[arg-type]


def test_diff_finds_added_removed_changed_and_folds_identical() -> None:
    a = _model(
        [
            _mod("", "Net", 100, "Net:a"),
            _mod("stem", "Conv2d", 10),
            _mod("block", "Block", 50, "Block:a"),
            _mod("block.conv", "Conv2d", 50),
            _mod("old", "Dropout", 0),
            _mod("head", "Linear", 40),
        ]
    )
    b = _model(
        [
            _mod("", "Net", 130, "Net:b"),
            _mod("stem", "Conv2d", 10),
            _mod("block", "Block", 80, "Block:b"),
            _mod("block.conv", "Conv2d", 50),
            _mod("block.se", "SqueezeExcite", 30, "SE:30"),
            _mod("block.se.fc1", "Linear", 15),
            _mod("head", "Linear", 40),
        ]
    )
    d = diff_models(a, b)
    got = {(c.status, c.name) for c in d.changes}
    assert got == {("changed", ""), ("changed", "block"), ("added", "block.se"), ("removed", "old")}
    # block.se.fc1 comes with its added parent; stem, block.conv and head are identical and folded away
    assert d.identical == 3
    assert d.params_a == 100 and d.params_b == 130


def test_renamed_but_identical_block_is_not_added_and_removed() -> None:
    a = _model([_mod("", "Net", 60, "Net:x"), _mod("encoder", "Enc", 50, "Enc:50"), _mod("encoder.l", "Linear", 50)])
    b = _model([_mod("", "Net", 60, "Net:x"), _mod("backbone", "Enc", 50, "Enc:50"), _mod("backbone.l", "Linear", 50)])
    d = diff_models(a, b)
    assert [(c.status, c.name, c.renamed_from) for c in d.changes] == [("renamed", "backbone", "encoder")]


def test_identical_models_have_no_changes() -> None:
    mods = [_mod("", "Net", 5), _mod("a", "Linear", 5)]
    d = diff_models(_model(mods), _model(list(mods)))
    assert d.same and d.identical == 1  # the root, with everything under it

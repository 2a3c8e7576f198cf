"""The results record's pure parts: expectations, memory trend, the step log reader, cache entries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from traindoc import cache
from traindoc.errors import CacheCorrupt
from traindoc.facts import Facts
from traindoc.render.content import run_summary
from traindoc.run.protocol import EvalRecord, StepRecord
from traindoc.run.results import StepSummary, check_expectations, measured_metrics, memory_trend, read_steps


def _measured(acc: float | None, first: float | None, final: float | None) -> dict[str, float]:
    """The final metrics a run with this accuracy and these first/final losses records."""
    summary = StepSummary(
        first_loss=first, final_loss=final, samples_per_s=None, data_wait_share=None, loss_curve=[], final_metrics={}
    )
    evals = [EvalRecord(epoch=0, step=1, metrics={"val_accuracy": acc})] if acc is not None else []
    return measured_metrics(summary, evals)


def test_expectations_each_direction_and_missing_measurements() -> None:
    met = check_expectations(
        {"min_val_accuracy": 0.9, "min_loss_drop": 0.5, "max_final_loss": 0.2}, _measured(0.95, 2.0, 0.1)
    )
    assert [(e.name, e.passed) for e in met] == [
        ("min_val_accuracy", True),
        ("min_loss_drop", True),
        ("max_final_loss", True),
    ]
    assert met[1].measured == pytest.approx(0.95)
    missed = check_expectations({"min_val_accuracy": 0.9, "max_final_loss": 0.05}, _measured(0.5, 2.0, 0.1))
    assert [e.passed for e in missed] == [False, False] and "0.5 ≥ 0.9" in missed[0].text
    absent = check_expectations({"min_val_accuracy": 0.9, "min_loss_drop": 0.1}, _measured(None, None, None))
    assert [e.passed for e in absent] == [False, False]  # no measurement never passes
    assert check_expectations({}, _measured(1.0, 1.0, 0.0)) == []


def _step(step: int, memory: int) -> StepRecord:
    return StepRecord(step=step, epoch=0, loss=1.0, memory_bytes=memory)


def test_memory_trend_flags_growth() -> None:
    flat = [_step(s, 500 << 20) for s in range(1, 101)]
    leak = [_step(s, (500 << 20) + s * (2 << 20)) for s in range(1, 101)]
    stable = memory_trend(flat, "rss")
    assert stable is not None and not stable.leak_suspected and "stable" in stable.text
    grown = memory_trend(leak, "cuda_allocated")
    assert grown is not None and grown.leak_suspected and "MiB per step" in grown.text
    assert memory_trend(flat[:3], "rss") is None


def test_step_log_tolerates_a_torn_line_and_resumed_duplicates(tmp_path: Path) -> None:
    log = tmp_path / "steps.jsonl"
    rows = [{"step": s, "epoch": 0, "loss": 1.0 / s} for s in (1, 2, 3)] + [
        {"step": 3, "epoch": 0, "loss": 0.3},
        {"event": "val", "step": 3, "epoch": 0, "metrics": {}},
    ]
    log.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 4, "lo')
    steps, vals = read_steps(log)
    assert [s.step for s in steps] == [1, 2, 3] and steps[-1].loss == 0.3 and len(vals) == 1


def test_cache_entries_detect_tampering_and_round_trip(tmp_path: Path) -> None:
    from conftest import REPO
    from traindoc.facts.introspect import facts as compute
    from traindoc.spec.loader import load

    spec, file = load(str(REPO / "pipeline" / "digits.py"))
    f = compute(spec, file, REPO)
    path = tmp_path / "e.json"
    cache.write_entry(path, "k", f.model_dump(mode="json"))
    again = Facts.model_validate(cache.read_entry(path, "k"))
    assert again == f and again.model.modules[3].cls == f.model.modules[3].cls
    assert cache.read_entry(tmp_path / "absent.json", "k") is None
    with pytest.raises(CacheCorrupt):
        cache.read_entry(path, "other-key")
    path.write_text(path.read_text().replace('"digits"', '"digitz"', 1))
    with pytest.raises(CacheCorrupt):
        cache.read_entry(path, "k")


def test_explain_says_what_changed() -> None:
    old = {"file:pipeline/a.py": "1", "file:pipeline/b.py": "2", "torch": "2.12.0"}
    new = {"file:pipeline/a.py": "1", "file:pipeline/b.py": "3", "file:pipeline/c.py": "4", "torch": "2.13.0"}
    assert cache.explain(old, new) == ["pipeline/b.py changed", "pipeline/c.py added", "torch: 2.12.0 -> 2.13.0"]


def test_records_check_shape_and_types_on_the_way_in() -> None:
    from traindoc.records import RecordError
    from traindoc.run.results import Expectation

    good = {"name": "x", "threshold": 1, "measured": None, "passed": True, "text": "t"}
    e = Expectation.model_validate(good)
    assert e.threshold == 1.0 and isinstance(e.threshold, float) and dict(e)["name"] == "x"
    for bad, message in [
        ({**good, "extra": 1}, "Expectation: unknown field(s) extra"),
        ({k: v for k, v in good.items() if k != "text"}, "Expectation: missing field(s) text"),
        ({**good, "passed": "yes"}, "Expectation.passed: expected bool"),
        ({**good, "threshold": "1"}, "Expectation.threshold: expected a number"),
    ]:
        with pytest.raises(RecordError, match=re.escape(message)):
            Expectation.model_validate(bad)
    assert Expectation.model_validate_json(json.dumps(e.model_dump())) == e


def test_loss_figures_are_labelled_as_window_means() -> None:
    """`run` and the run page print first/last *window* means, not the first and last raw losses."""
    from traindoc.render import content
    from traindoc.run.results import DeviceRecord, RunResult, summarise_steps

    losses = [3.0 * 0.7**i for i in range(16)]
    s = summarise_steps([StepRecord(step=i + 1, epoch=0, loss=v) for i, v in enumerate(losses)], log_every=4)
    assert s.first_loss is not None and s.final_loss is not None
    assert s.first_loss < losses[0] and s.final_loss > losses[-1]  # means: neither raw end point
    device = DeviceRecord(kind="cpu", sentence="CPU", gpus=[], torch="2", cuda=None, cudnn=None)
    r = RunResult(
        ok=True, status="passed", reason="all expectations met", pipeline="p", key="k", started_at="now",
        commit=None, docs_budget=True, device=device, world_size=1, nnodes=1, nproc_per_node=1, backend="gloo",
        steps=16, epochs=1, stopped_because=None, wall_s=1.0, samples_per_s=None, data_wait_share=None,
        memory=None, first_loss=s.first_loss, final_loss=s.final_loss, loss_curve=s.loss_curve, val=[],
        final_val_accuracy=None, expectations=[], checkpoints=[], checkpoint_verified=None, resumed_from=None,
        resident_data=False, failed_rank=None, log_tail=[], run_dir="/tmp/r",
    )  # fmt: skip
    figures = f"{s.first_loss:.4f} → {s.final_loss:.4f}"
    (row,) = [ln for ln in content.run_block(None, r, None, None, chart=False).splitlines() if figures in ln]  # type: ignore[arg-type]
    assert row.startswith("| training loss (mean of the first → last window of steps) |")
    (line,) = [ln for ln in run_summary(r).splitlines() if figures in ln]
    assert "mean of the first → last window" in line

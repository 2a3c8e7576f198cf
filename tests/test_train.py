"""The training contract, piece by piece, in-process on CPU (no subprocess, milliseconds each)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from traindoc.errors import BatchError, NonFiniteLoss
from traindoc.facts import policy
from traindoc.run import protocol
from traindoc.train.data import BatchSource, batches, epoch_order
from traindoc.train.evaluate import Evaluate, finish
from traindoc.train.loop import Checkpoint, Parts, TimeBudget, fit
from traindoc.train.optim import Optimization
from traindoc.train.session import RankContext, Session, failure_of
from traindoc.train.step import (
    accuracy_sums,
    batch_samples,
    builtin_loss,
    split,
    supervised,
    supervised_eval,
    to_device,
    user_step,
)

Pair = namedtuple("Pair", ["x", "y"])


@dataclasses.dataclass
class Batch:
    input_ids: torch.Tensor
    labels: torch.Tensor


# --- batches -----------------------------------------------------------------------------------------


def test_to_device_moves_every_batch_form_nested() -> None:
    t = torch.ones(2, 3)
    batch = {
        "pair": Pair(t, t.long()),
        "list": [t, (t, {"deep": t})],
        "data": Batch(t.long(), t.long()),
        "name": "kept",
    }
    moved = to_device(batch, torch.device("meta"))
    assert isinstance(moved["pair"], Pair) and moved["pair"].x.device.type == "meta"
    assert moved["list"][1][1]["deep"].device.type == "meta" and isinstance(moved["list"][1], tuple)
    assert isinstance(moved["data"], Batch) and moved["data"].labels.device.type == "meta"
    assert moved["name"] == "kept" and t.device.type == "cpu"  # the input is not changed


def test_split_follows_the_conventions() -> None:
    x, y, m = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), torch.ones(4, 3)
    assert split((x, y), None).args == (x,) and split((x, y), None).target is y
    assert split([y, x, m], 0).args == (x, m)  # target elsewhere; the rest positionally
    three = split({"input_ids": x, "attention_mask": m, "labels": y}, None)
    assert three.args == () and set(three.kwargs) == {"input_ids", "attention_mask"} and three.target is y
    one = split({"pixels": x, "labels": y}, None)
    assert one.args == (x,) and one.kwargs == {}  # exactly one input: positional
    assert split(Batch(x, y), None).target is y  # a dataclass reads like a mapping
    assert split(Pair(x, y), None).target is y  # a namedtuple like a tuple
    assert split({"ids": x, "target": y}, "target").target is y


@pytest.mark.parametrize(
    ("batch", "target", "words"),
    [
        ({"input_ids": torch.zeros(2), "mask": torch.zeros(2)}, None, ["keys ['input_ids', 'mask']", "'labels'"]),
        ((torch.zeros(2),), None, ["tuple of 1 item(s)", "index 1"]),
        ((torch.zeros(2), torch.zeros(2)), "labels", ["tuple of 2 item(s)", "'labels'"]),
        (torch.zeros(2, 3), None, ["single tensor of shape (2, 3)", "'labels'"]),
    ],
)
def test_a_batch_that_does_not_fit_is_one_clear_line(batch: Any, target: Any, words: list[str]) -> None:
    step = supervised("cross_entropy", target=target)
    with pytest.raises(BatchError) as info:
        step(nn.Identity(), batch)
    text = str(info.value)
    assert "\n" not in text and text.startswith("batch does not fit: received")
    assert all(w in text for w in words), text


def test_batch_samples_is_the_leading_size() -> None:
    assert batch_samples({"a": torch.zeros(5, 2), "b": torch.zeros(5)}) == 5
    assert batch_samples(Batch(torch.zeros(7, 2), torch.zeros(7))) == 7


# --- losses and metrics ------------------------------------------------------------------------------


def test_sequence_cross_entropy_ignores_padding() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=g)
    target = torch.randint(0, 11, (2, 5), generator=g)
    target[0, 3:] = -100
    got = builtin_loss("cross_entropy", logits, target, -100)
    keep = target != -100
    want = F.cross_entropy(logits[keep], target[keep])
    assert torch.allclose(got, want)
    sums = accuracy_sums(logits, target, -100)
    hits, count = sums["token_accuracy"]
    assert int(count) == int(keep.sum()) and int(hits) == int((logits.argmax(-1) == target)[keep].sum())
    assert "accuracy" not in sums


def test_accuracy_only_where_defined() -> None:
    assert set(accuracy_sums(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), -100)) == {"accuracy"}
    assert accuracy_sums(torch.randn(4, 1), torch.randn(4, 1), -100) == {}  # regression
    assert accuracy_sums(torch.randn(4, 3, 2), torch.zeros(4, 5, dtype=torch.long), -100) == {}  # shapes differ
    assert builtin_loss("mse", torch.ones(3, 2, 2), torch.zeros(3, 2, 2), -100).item() == 1.0
    with pytest.raises(BatchError, match=r"output \(4, 3\) vs target \(4, 2\)"):
        builtin_loss("cross_entropy", torch.randn(4, 3), torch.zeros(4, 2, dtype=torch.long), -100)


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 7) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, vocab)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(input_ids))


def test_language_model_eval_has_token_accuracy_and_perplexity_but_no_accuracy() -> None:
    model = TinyLM()
    batch = {"input_ids": torch.randint(0, 7, (3, 6)), "labels": torch.randint(0, 7, (3, 6))}
    sums = supervised_eval("cross_entropy")(model, batch)
    metrics = finish({k: (float(s), float(c)) for k, (s, c) in sums.items()})
    assert set(metrics) == {"val_loss", "val_token_accuracy", "val_perplexity"}
    assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_loss"]))
    reg = supervised_eval("mse")(nn.Linear(3, 1), (torch.randn(4, 3), torch.randn(4, 1)))
    assert set(finish({k: (float(s), float(c)) for k, (s, c) in reg.items()})) == {"val_loss"}


class HFLike(nn.Module):
    """Returns its own loss like a Hugging Face model (a mapping with 'loss' and 'logits')."""

    def __init__(self) -> None:
        super().__init__()
        self.lm = TinyLM()

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.lm(input_ids)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return out


def test_loss_model_passes_the_whole_batch_and_reads_its_loss() -> None:
    batch = {"input_ids": torch.randint(0, 7, (2, 4)), "labels": torch.randint(0, 7, (2, 4))}
    out = supervised("model")(HFLike(), batch)
    assert out.loss.ndim == 0 and out.samples == 2 and out.loss.requires_grad
    metrics = finish({k: (float(s), float(c)) for k, (s, c) in supervised_eval("model")(HFLike(), batch).items()})
    assert set(metrics) == {"val_loss", "val_perplexity"}  # no accuracy: the model shifts labels itself
    with pytest.raises(BatchError, match="without a 'loss'"):
        supervised("model")(HFLike(), {"input_ids": batch["input_ids"]})


def test_loss_model_classifier_gets_true_accuracy() -> None:
    class Classifier(nn.Module):  # a sequence classifier that computes its own loss, as Hugging Face's do
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(7, 3)

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            logits = self.emb(input_ids).mean(1)
            return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}

    torch.manual_seed(0)
    model, ids = Classifier(), torch.randint(0, 7, (6, 4))
    labels = model(ids, torch.zeros(6, dtype=torch.long))["logits"].argmax(-1)
    labels[:2] = (labels[:2] + 1) % 3  # two of six wrong: accuracy 4/6
    sums = supervised_eval("model")(model, {"input_ids": ids, "labels": labels})
    metrics = finish({k: (float(s), float(c)) for k, (s, c) in sums.items()})
    assert metrics["val_accuracy"] == pytest.approx(4 / 6) and "val_perplexity" not in metrics


def test_user_step_records_its_metrics() -> None:
    def step(model: nn.Module, batch: Any) -> dict[str, Any]:
        loss = model(batch["x"]).pow(2).mean()
        return {"loss": loss, "norm": loss.detach().sqrt(), "fixed": 2.0}

    out = user_step(step)(nn.Linear(3, 1), {"x": torch.randn(5, 3)})
    assert out.samples == 5 and set(out.metrics) == {"norm", "fixed"}
    with pytest.raises(BatchError, match="expected a loss tensor"):
        user_step(lambda m, b: 1.0)(nn.Linear(3, 1), {"x": torch.randn(5, 3)})
    with pytest.raises(BatchError, match="metric name 'a b'"):
        user_step(lambda m, b: {"loss": torch.zeros(()), "a b": 1.0})(nn.Linear(3, 1), {"x": torch.randn(5, 3)})


# --- optimisation ------------------------------------------------------------------------------------


def _linear(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(4, 2)


def test_accumulation_equals_one_big_batch() -> None:
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    big, small = _linear(), _linear()
    Optimization(big.parameters(), torch.optim.SGD(big.parameters(), lr=0.1), device=torch.device("cpu")).apply(
        F.mse_loss(big(x), y)
    )
    opt = Optimization(small.parameters(), torch.optim.SGD(small.parameters(), lr=0.1), device=torch.device("cpu"))
    for part in (slice(0, 4), slice(4, 8)):
        opt.backward(F.mse_loss(small(x[part]), y[part]), 0.5)
    opt.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(big.parameters(), small.parameters(), strict=True))
    assert opt.steps == 1 and all(p.grad is None for p in small.parameters())


def test_clipping_and_schedule() -> None:
    m = _linear()
    sgd = torch.optim.SGD(m.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)
    opt = Optimization(m.parameters(), sgd, sched, device=torch.device("cpu"), grad_clip=1e-3)
    before = [p.detach().clone() for p in m.parameters()]
    opt.apply(m(torch.randn(3, 4)).sum() * 1000)
    with torch.no_grad():
        moved = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(m.parameters(), before, strict=True)))
    assert float(moved) <= 1e-3 + 1e-6 and opt.lr == 0.5


# --- data and policy ---------------------------------------------------------------------------------


@given(
    n=st.integers(1, 300),
    batch=st.integers(1, 40),
    world=st.integers(1, 4),
    drop_last=st.booleans(),
    accumulate=st.integers(1, 4),
)
def test_policy_steps_per_epoch_is_what_the_data_gives(
    n: int, batch: int, world: int, drop_last: bool, accumulate: int
) -> None:
    counts = {len(batches(epoch_order(n, 0, 0, True, r, world), batch, drop_last)) for r in range(world)}
    assert counts == {policy.batches_per_epoch(policy.items_per_rank(n, world), batch, drop_last)}
    assert policy.epoch_steps(n, batch, drop_last, world, accumulate) == math.ceil(counts.pop() / accumulate)


@given(n=st.integers(1, 200), world=st.integers(1, 5), epoch=st.integers(0, 3), shuffle=st.booleans())
def test_epoch_order_is_distributed_samplers(n: int, world: int, epoch: int, shuffle: bool) -> None:
    """The deterministic order resume relies on is exactly torch's DistributedSampler's."""
    from torch.utils.data import DistributedSampler

    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=7)
        sampler.set_epoch(epoch)
        assert epoch_order(n, epoch, 7, shuffle, rank, world) == list(sampler)


def test_policy_sharding_and_budget() -> None:
    assert policy.sharding("auto", True, 2) == policy.Sharding("DistributedSampler", 2, True)
    assert policy.sharding("auto", False, 1).sampler == "SequentialSampler"
    assert policy.sharding("random", False, 4).shards == 1
    b = policy.budget(docs=True, max_steps=None, docs_max_steps=50, docs_max_seconds=9.0)
    assert (b.max_steps, b.max_seconds, b.limit(10, 20), b.limit(10, 2)) == (50, 9.0, 50, 20)
    full = policy.budget(docs=False, max_steps=None, docs_max_steps=50, docs_max_seconds=9.0, override_steps=7)
    assert (full.max_steps, full.max_seconds) == (7, None)
    assert not policy.resident_ok(10, "cpu", None, "auto", collate=True)
    assert policy.resident_ok(10, "cuda", 100, "auto", False) and not policy.resident_ok(30, "cuda", 100, "auto", False)


def _every_third(ds: Any, rank: int, world: int, seed: int) -> list[int]:
    return list(range(rank, len(ds), 3 * world))


@pytest.mark.parametrize(
    ("data", "accumulate"),
    [
        ({}, 1),
        ({"drop_last": True, "batch_size": 24}, 1),
        ({"sampler": "random", "batch_size": 40}, 3),
        ({"sampler": _every_third, "batch_size": 7}, 2),
    ],
)
def test_facts_steps_per_epoch_is_what_the_worker_runs(
    make_project: Any, data: dict[str, Any], accumulate: int
) -> None:
    """Item 3 of issue 15: the docs' steps per epoch and the run's come from one policy."""
    from traindoc.facts.introspect import data_facts, device_facts
    from traindoc.spec.loader import load
    from traindoc.train.__main__ import build_source

    root = make_project()
    spec, file = load(str(root / "pipeline" / "tiny.py"))
    spec = spec.model_copy(
        update={
            "data": spec.data.model_copy(update=data),
            "optim": spec.optim.model_copy(update={"accumulate": accumulate}),
        }
    )
    for world in (1, 2, 3):
        documented = data_facts(spec, file, device_facts("cpu"), world).steps_per_epoch
        ran = {build_source(spec, file, RankContext(rank=r, world=world), 0).steps_per_epoch() for r in range(world)}
        assert ran == {documented}, (world, documented, ran)


def test_batch_source_with_collate_and_resume_skip() -> None:
    ds = [{"ids": torch.tensor([i, i]), "labels": torch.tensor(i)} for i in range(10)]

    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    src = BatchSource(ds, batch_size=3, device=torch.device("cpu"), seed=1, collate_fn=collate)  # type: ignore[arg-type]
    full = list(src.epoch(2))
    assert len(full) == src.batches_per_epoch() == 4 and set(full[0]) == {"ids", "labels"}
    resumed = list(src.epoch(2, skip=2))
    assert all(torch.equal(a["labels"], b["labels"]) for a, b in zip(full[2:], resumed, strict=True))
    resident = BatchSource(
        TensorDataset(torch.arange(10.0)), batch_size=4, device=torch.device("cpu"), shuffle=False, resident=True
    )
    assert resident.resident and [b[0].tolist() for b in resident.epoch(0)][-1] == [8.0, 9.0]


# --- the loop ----------------------------------------------------------------------------------------


def _classification(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def _parts(model: nn.Module, accumulate: int = 1) -> Parts:
    opt = Optimization(
        model.parameters(),
        torch.optim.SGD(model.parameters(), lr=0.5),
        device=torch.device("cpu"),
        accumulate=accumulate,
    )
    return Parts(model, model, opt, supervised("cross_entropy"))


def test_fit_writes_steps_evaluations_and_keeps_checkpoints_on_disk(tmp_path: Path) -> None:
    torch.manual_seed(0)
    session = Session(tmp_path, RankContext(), log_file="train.log")
    parts = _parts(nn.Linear(4, 2), accumulate=2)
    source = BatchSource(_classification(), batch_size=8, device=torch.device("cpu"), accumulate=2)
    val = _classification(32)
    evaluate = Evaluate(lambda r, w: [val[:16], val[16:]], eval_step=supervised_eval("cross_entropy"))
    saver = Checkpoint(tmp_path / "ck", every=3, keep_last=2, fmt=".pt", name="t", container_dir="/ck")
    loop = fit(
        session, parts, source, epochs=2, budget=policy.Budget(None, None), log_every=3, callbacks=[evaluate, saver]
    )
    session.close()
    assert loop.per_epoch == 4 and loop.step == 8 and loop.stopped_because == "completed all epochs"
    steps, evals = protocol.read_steps(tmp_path / protocol.STEPS)
    assert [s.step for s in steps] == list(range(1, 9)) and all(s.samples == 16 for s in steps)
    assert [e.epoch for e in evals] == [0, 1] and set(evals[0].metrics) == {"val_loss", "val_accuracy"}
    assert [c.step for c in saver.on_disk()] == [6, 8]  # keep_last = 2: only files that exist
    assert (tmp_path / "train.log").read_text().count("\n") == 10


def test_time_budget_stops_after_the_step_and_evaluates(tmp_path: Path) -> None:
    session = Session(tmp_path, RankContext())
    session.started -= 100  # as if the budget had already passed
    val = _classification(8)
    evaluate = Evaluate(lambda r, w: [val[:]], eval_step=supervised_eval("cross_entropy"))
    loop = fit(
        session,
        _parts(nn.Linear(4, 2)),
        BatchSource(_classification(), batch_size=8, device=torch.device("cpu")),
        epochs=5,
        budget=policy.Budget(None, 1.0),
        callbacks=[TimeBudget(1.0), evaluate],
    )
    session.close()
    assert loop.step == 1 and loop.stopped_because == "reached the time budget (1 s)"
    assert [e.step for e in protocol.read_steps(tmp_path / protocol.STEPS)[1]] == [1]


def test_non_finite_loss_stops_at_the_window_with_its_step(tmp_path: Path) -> None:
    session = Session(tmp_path, RankContext())
    for step, value in enumerate([1.0, 0.5, float("nan"), 0.2], start=1):
        session.record(step, 0, torch.tensor(value), samples=1)
    with pytest.raises(NonFiniteLoss, match="loss became nan at step 3"):
        session.flush()
    failure = session.fail(NonFiniteLoss(3, float("nan")))
    assert failure.kind == "nan" and failure.message == "non-finite loss: loss became nan at step 3"
    again = protocol.read_failures(tmp_path)
    assert again == [failure]


# --- protocol, diagnosis, expectations -------------------------------------------------------------


def _failure(rank: int, kind: Any, ts: float) -> protocol.RankFailure:
    return protocol.RankFailure(rank=rank, kind=kind, message=f"m{rank}", traceback="", step=3, timestamp=ts)


def test_diagnosis_earliest_primary_failure_is_the_root_cause() -> None:
    from traindoc.run.assemble import Launched, diagnose

    launched = Launched([1], False, 60, 1.0, "t", 2, 1, 2, "gloo", False, None, None)
    both = [_failure(0, "user_code", 2.0), _failure(1, "user_code", 1.0)]
    assert diagnose(None, both, [0, 1], launched, 3).reason == "rank 1: m1"
    aftermath = [_failure(0, "peer", 1.0)]
    died = diagnose(None, aftermath, [0, 1], launched, 3)
    assert died.failed_rank == 1 and died.reason == "rank 1 died at step 3 without reporting an error"
    hung = diagnose(None, [_failure(0, "peer_timeout", 1.0)], [0, 1], launched, 3)
    assert (
        hung.failed_rank == 1
        and hung.reason.startswith("rank 1 hung at step 3")
        and "rank(s) 0 timed out" in hung.reason
    )
    over = diagnose(None, [_failure(0, "terminated", 9.0), _failure(1, "oom", 10.0)], [0, 1], launched, 3)
    assert over.failed_rank == 1  # a primary failure beats an earlier aftermath one
    one = dataclasses.replace(launched, world=1, codes=[-9])
    assert diagnose(None, [], [0], one, 5).reason == (
        "the training process ended with signal SIGKILL at step 5 without reporting an error"
    )


TORCHRUN_TAIL = """\
Failures:
[1]:
  time      : 2026-11-28_03:16:09
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 31468)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 31468
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-28_03:16:09
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : 3 (pid: 31469)
  error_file: <N/A>
"""


def test_two_silent_ranks_name_the_one_torchrun_saw_fail_first(tmp_path: Path) -> None:
    """Rank 1 exits; torchrun's SIGTERM reaches rank 0, blocked in a collective, before it records
    anything (a race CI lost once: "rank 0 died"). The launcher's root cause decides."""
    from traindoc.run.assemble import Launched, diagnose, first_failed_rank

    launched = Launched([1], False, 60, 1.0, "t", 2, 1, 2, "gloo", False, None, None)
    assert first_failed_rank(tmp_path) is None
    (tmp_path / "launcher0.log").write_text("W... starting\n" + TORCHRUN_TAIL)
    assert first_failed_rank(tmp_path) == 1  # the root cause, not the SIGTERM'd rank listed above it
    died = diagnose(None, [], [0, 1], launched, 3, first_failed_rank(tmp_path))
    assert died.failed_rank == 1 and died.reason == "rank 1 died at step 3 without reporting an error"
    assert diagnose(None, [], [0, 1], launched, 3).failed_rank == 0  # without the log: the first silent one


def test_failure_kinds() -> None:
    from traindoc.train.session import Terminated

    assert failure_of(BatchError("batch does not fit: x"), 0, 1).kind == "batch"
    assert failure_of(Terminated("sigterm"), 1, 1).kind == "terminated"
    assert failure_of(RuntimeError("Connection closed by peer"), 0, 1).kind == "peer"
    waited = RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 2000ms for recv operation")
    assert failure_of(waited, 0, 1).kind == "peer_timeout"
    boom = failure_of(ValueError("boom"), 0, 4)
    assert boom.kind == "user_code" and boom.message == "ValueError: boom" and boom.primary


def test_expectations_on_any_metric_and_never_recorded_ones() -> None:
    from traindoc.run.results import check_expectations

    expect = {"min_val_accuracy": None, "bounds": {"val_loss": {"max": 2.0, "min": None}, "val_bleu": {"min": 0.3}}}
    out = check_expectations(expect, {"val_loss": 1.5})
    assert [(e.name, e.passed) for e in out] == [("val_loss", True), ("val_bleu", False)]
    assert out[1].text == "val_bleu was never recorded (expected ≥ 0.3)" and out[1].measured is None


def test_step_log_lines_round_trip_and_skip_torn_ones(tmp_path: Path) -> None:
    writer = protocol.RunWriter(tmp_path, 0)
    writer.write(protocol.StepRecord(step=1, epoch=0, loss=0.5, metrics={"ppl": 1.6}))
    writer.write(protocol.EvalRecord(epoch=0, step=1, metrics={"val_loss": 0.4}))
    writer.close()
    with open(tmp_path / protocol.STEPS, "a") as fh:
        fh.write('{"step": 2, "epo')
    steps, evals = protocol.read_steps(tmp_path / protocol.STEPS)
    assert steps[0].metrics == {"ppl": 1.6} and evals[0].metrics == {"val_loss": 0.4} and len(steps) == 1
    assert json.loads((tmp_path / protocol.STEPS).read_text().splitlines()[1])["event"] == "val"


def test_script_api_imports_no_torch_and_works_without_traindoc(tmp_path: Path) -> None:
    """``import traindoc`` stays torch-free; run by hand, the three calls still work."""
    import subprocess
    import sys

    code = (
        "import sys, traindoc\n"
        "traindoc.log(step=1, loss=0.5, acc=0.1)\n"
        "d = traindoc.checkpoint_dir()\n"
        "assert d.name == 'checkpoints' and d.is_dir() and not traindoc.should_stop()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TRAINDOC_")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_script_run_writes_the_protocol_and_stops_at_the_budget(tmp_path: Path) -> None:
    from traindoc.train.script import ScriptRun

    run = ScriptRun({"TRAINDOC_RUN_DIR": str(tmp_path), "TRAINDOC_MAX_STEPS": "3", "TRAINDOC_LOG_FILE": "t.log"})
    stops = []
    for step in range(1, 6):
        run.log(step, 1.0 / step, {"lr": 0.1, "epoch": 0, "samples": 8, "ppl": torch.tensor(2.0)})
        stops.append(run.should_stop())
    run.log(5, None, {"val_loss": 0.3, "val_bleu": 0.2})
    assert stops == [False, False, True, True, True] and run.stopped_because == "reached the step budget (3 steps)"
    steps, evals = protocol.read_steps(tmp_path / protocol.STEPS)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5] and steps[0].metrics == {"ppl": 2.0} and steps[0].lr == 0.1
    assert steps[0].data_s is None and steps[1].step_s is not None  # not measured stays None
    assert evals[0].metrics == {"val_loss": 0.3, "val_bleu": 0.2}
    assert run.checkpoint_dir() == tmp_path / "checkpoints"
    with pytest.raises(NonFiniteLoss, match="loss became inf at step 6"):
        run.log(6, float("inf"), {})
    with pytest.raises(BatchError, match="metric name"):
        run.log(7, 1.0, {"bad name": 1.0})


def test_rank_context_from_torchrun_environment() -> None:
    env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "TRAINDOC_DEVICE": "cpu"}
    ctx = RankContext.from_env("cuda", env)  # the launcher's device decision wins over the spec
    assert (ctx.rank, ctx.local_rank, ctx.world, ctx.device.type, ctx.main) == (3, 1, 4, "cpu", False)
    alone = RankContext.from_env(["cpu"], {})
    assert (alone.rank, alone.world, alone.device.type, alone.main) == (0, 1, "cpu", True)
    assert alone.any_rank(True) and not alone.any_rank(False)  # no process group: its own answer


def test_a_sampler_shorter_than_its_len_is_named(tmp_path: Path) -> None:
    class Liar:
        def __len__(self) -> int:
            return 40

        def __iter__(self) -> Any:
            return iter(range(8))

    source = BatchSource(_classification(), batch_size=8, device=torch.device("cpu"), sampler=Liar())
    session = Session(tmp_path, RankContext())
    with pytest.raises(BatchError, match="fewer indices than its len"):
        fit(session, _parts(nn.Linear(4, 2)), source, epochs=1, budget=policy.Budget(None, None))
    session.close()


@pytest.mark.parametrize("form", ["dataclass", "namedtuple", "dict", "list"])
def test_fit_trains_a_sequence_model_on_each_batch_form(tmp_path: Path, form: str) -> None:
    """Every batch form through the DataLoader (collate_fn), the built-in step and evaluation."""
    torch.manual_seed(0)
    rows = [torch.arange(i, i + 9) % 7 for i in range(48)]

    def collate(items: list[torch.Tensor]) -> Any:
        ids = torch.stack(items)
        x, y = ids[:, :-1], ids[:, 1:]
        return {
            "dataclass": lambda: Batch(x, y),
            "namedtuple": lambda: Pair(x, y),
            "dict": lambda: {"input_ids": x, "labels": y},
            "list": lambda: [x, y],
        }[form]()

    model = TinyLM()
    parts = Parts(
        model,
        model,
        Optimization(model.parameters(), torch.optim.Adam(model.parameters(), lr=0.05), device=torch.device("cpu")),
        supervised("cross_entropy"),
    )
    source = BatchSource(rows, batch_size=8, device=torch.device("cpu"), collate_fn=collate)  # type: ignore[arg-type]
    evaluate = Evaluate(lambda r, w: [collate(rows[:16])], eval_step=supervised_eval("cross_entropy"))
    session = Session(tmp_path, RankContext())
    fit(session, parts, source, epochs=4, budget=policy.Budget(None, None), callbacks=[evaluate])
    session.close()
    steps, evals = protocol.read_steps(tmp_path / protocol.STEPS)
    assert len(steps) == 24 and steps[-1].loss < steps[0].loss
    assert set(evals[-1].metrics) == {"val_loss", "val_token_accuracy", "val_perplexity"}
    assert evals[-1].metrics["val_token_accuracy"] > 0.5  # the sequence is learnable: next = current + 1


def test_each_step_records_the_learning_rate_it_used(tmp_path: Path) -> None:
    model = nn.Linear(4, 2)
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)  # halves after every step
    parts = Parts(model, model, Optimization(model.parameters(), sgd, device=torch.device("cpu"), scheduler=sched),
                  supervised("cross_entropy"))  # fmt: skip
    session = Session(tmp_path, RankContext(), log_file="train.log")
    source = BatchSource(_classification(32), batch_size=8, device=torch.device("cpu"))
    fit(session, parts, source, epochs=1, budget=policy.Budget(None, None), log_every=2, callbacks=[])
    session.close()
    steps, _ = protocol.read_steps(tmp_path / protocol.STEPS)
    assert [s.lr for s in steps] == [1.0, 0.5, 0.25, 0.125]  # step 1 used 1.0, not the rate after it

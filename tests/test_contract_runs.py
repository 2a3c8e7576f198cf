"""The widened training contract through real runs: dict batches with a collate_fn and a sequence loss,
user step/evaluate hooks under DDP, your own script (one process and torchrun), and a batch that does
not fit. Every figure checked is one the run really measured."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import ProjectFactory, free_port
from traindoc.render.content import block, run_summary
from traindoc.run import runner
from traindoc.run.runner import RunOptions

pytestmark = pytest.mark.slow

CHARLM = """
import torch
from torch import nn
from torch.utils.data import Dataset

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
VOCAB = sorted(set(TEXT))


class Chars(Dataset):
    def __init__(self, start, n, block=16):
        self.ids = torch.tensor([VOCAB.index(c) for c in TEXT])
        self.start, self.n, self.block = start, n, block

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        j = self.start + i
        chunk = self.ids[j : j + self.block + 1]
        return {"input_ids": chunk[:-1], "labels": chunk[1:]}


def collate(items):
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    batch["labels"][:, :2] = -100  # no loss on the first two positions
    return batch


class CharLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(len(VOCAB), 32)
        self.rnn = nn.GRU(32, 64, batch_first=True)
        self.head = nn.Linear(64, len(VOCAB))

    def forward(self, input_ids):
        return self.head(self.rnn(self.emb(input_ids))[0])


def samples(model):
    ids = torch.tensor([[VOCAB.index(c) for c in "the "]])
    for _ in range(12):
        nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
    return ["".join(VOCAB[i] for i in ids[0].tolist()), "<b>|not html|</b>"]
"""

CHARLM_PIPELINE = """
import torch
from charlm import CharLM, Chars, collate, samples
from traindoc.spec import Pipeline

pipeline = Pipeline(
    name="charlm",
    environment={{"image": "pytorch:2.13-cpu"}},
    devices="cpu",
    model={{"factory": CharLM, "sample_input": {{"shape": [2, 16], "dtype": "int64"}}}},
    data={{"train": lambda: Chars(0, 256), "val": lambda: Chars(1500, 64), "batch_size": 16,
           "collate_fn": collate}},
    optim={{"optimizer": lambda p: torch.optim.Adam(p, lr=1e-2), "loss": "cross_entropy", "seed": 0,
            "accumulate": 2}},
    training={{"epochs": 3, "log_every": 4}},
    checkpoint={{"dir": "/checkpoints", "every_steps": 8, "keep_last": 1}},
    monitoring={{"samples": samples, "log_file": "lm.log"}},
    expect={{"val_loss": {{"max": 2.5}}, "val_token_accuracy": {{"min": 0.3}}, "min_loss_drop": 0.2
             {extra_expect}}},
    distributed={{"backend": "gloo", "nproc_per_node": {nproc}, "rdzv_endpoint": "127.0.0.1:{port}"}},
)
"""


def charlm_project(make_project: ProjectFactory, nproc: int = 1, extra_expect: str = "") -> Path:
    body = CHARLM_PIPELINE.format(nproc=nproc, port=free_port(), extra_expect=extra_expect)
    root = make_project(body=body)
    (root / "pipeline" / "charlm.py").write_text(textwrap.dedent(CHARLM))
    return root


def test_dict_batches_collate_and_a_sequence_loss_give_true_metrics(make_project: ProjectFactory) -> None:
    root = charlm_project(make_project, extra_expect=', "val_bleu": {"min": 0.1}')
    r = runner.run("pipeline/tiny.py", RunOptions(progress=False), root)
    assert r.status == "expectations_unmet", (r.reason, r.log_tail)
    assert r.steps == 24 and r.final_val_accuracy is None  # 16 batches / accumulate 2 = 8 steps × 3 epochs
    assert {"val_loss", "val_token_accuracy", "val_perplexity"} <= set(r.final_metrics)
    assert r.final_metrics["val_token_accuracy"] > 0.3 and r.final_val_loss is not None
    assert r.final_metrics["val_perplexity"] == pytest.approx(2.718281828**r.final_val_loss, rel=1e-6)
    by_name = {e.name: e for e in r.expectations}
    assert by_name["val_loss"].passed and by_name["val_token_accuracy"].passed and by_name["min_loss_drop"].passed
    assert not by_name["val_bleu"].passed and "val_bleu was never recorded" in r.reason
    assert [c.step for c in r.checkpoints] == [24]  # keep_last 1: only the file on disk
    log = (Path(r.run_dir) / "lm.log").read_text().splitlines()
    assert len([x for x in log if x.startswith("step ")]) == 24 and sum(x.startswith("eval") for x in log) == 3
    assert r.samples[0].startswith("the ") and len(r.samples) == 2
    page = block("run", None, result=r)  # the run page and the README results section
    assert "| validation accuracy | n/a |" in page and "validation accuracy | 0" not in page
    assert "`val_token_accuracy`" in page and "&lt;b&gt;|not html|&lt;/b&gt;" in page and "<b>" not in page
    cli = run_summary(r)  # what `traindoc run` prints
    assert "accuracy n/a" in cli and "val_perplexity" in cli and "sample       the " in cli


HOOKS_PIPELINE = """
import torch
from torch.nn import functional as F
from tinymods import TinyNet, dataset
from traindoc.spec import Pipeline


def step(model, batch):
    x, y = batch
    out = model(x)
    loss = F.cross_entropy(out, y)
    return {{"loss": loss, "train_hits": (out.argmax(1) == y).float().mean()}}


def evaluate(model, loader):
    hits = n = 0
    for x, y in loader:
        hits += int((model(x).argmax(1) == y).sum())
        n += len(y)
    return {{"accuracy": hits / n, "seen": float(n)}}


pipeline = Pipeline(
    name="hooks",
    environment={{"image": "pytorch:2.13-cpu"}},
    devices="cpu",
    model={{"factory": TinyNet, "sample_input": {{"shape": [2, 8]}}}},
    data={{"train": lambda: dataset(256, 0), "val": lambda: dataset(100, 1), "batch_size": 32}},
    optim={{"optimizer": lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9), "step": step, "evaluate": evaluate,
            "seed": 0}},
    training={{"epochs": 8, "log_every": 2}},
    checkpoint={{"dir": "/checkpoints", "every_steps": 100, "keep_last": 1}},
    expect={{"min_val_accuracy": 0.6, "train_hits": {{"min": 0.5}}, "val_seen": {{"min": 100, "max": 100}}}},
    distributed={{"backend": "gloo", "nproc_per_node": 2, "rdzv_endpoint": "127.0.0.1:{port}"}},
)
"""


def test_user_step_and_evaluate_hooks_under_ddp(make_project: ProjectFactory) -> None:
    root = make_project(body=HOOKS_PIPELINE.format(port=free_port()))
    r = runner.run("pipeline/tiny.py", RunOptions(progress=False), root)
    assert r.ok, (r.reason, r.log_tail)
    assert r.world_size == 2 and r.steps == 32  # 256 / 2 ranks / 32 = 4 steps per epoch
    assert r.final_metrics["val_seen"] == 100.0  # the hook saw the whole validation set, once
    assert r.final_val_accuracy is not None and r.final_val_accuracy >= 0.6
    steps = [json.loads(x) for x in (Path(r.run_dir) / "steps.jsonl").read_text().splitlines()]
    assert all("train_hits" in s["metrics"] for s in steps if "event" not in s)
    assert all(s["samples"] == 64 for s in steps if "event" not in s)


SCRIPT = """
import os
import torch
import torch.distributed as dist
from torch.nn import functional as F

import traindoc
from tinymods import TinyNet, dataset

ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
if ddp:
    dist.init_process_group("gloo")
rank = dist.get_rank() if ddp else 0
torch.manual_seed(0)
model = TinyNet()
if ddp:
    model = torch.nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
data = dataset(512, 0)
step = 0
for epoch in range(100):
    for i in range(rank * 16, 512, 32 * (2 if ddp else 1)):
        x, y = data.tensors[0][i : i + 16], data.tensors[1][i : i + 16]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        traindoc.log(step=step, loss=loss.item(), epoch=epoch, lr=0.1, samples=16, grad_steps=float(step))
        if step % 10 == 0 and rank == 0:
            torch.save(model.state_dict(), traindoc.checkpoint_dir() / f"model-{step}.pt")
        if traindoc.should_stop():
            break
    else:
        continue
    break
x, y = dataset(128, 1).tensors
traindoc.log(step=step, val_accuracy=float((model(x).argmax(1) == y).float().mean()), epoch=epoch)
import sys
print("script", sys.argv[1:], __name__)
if ddp:
    dist.destroy_process_group()
"""

SCRIPT_PIPELINE = """
import torch
from tinymods import TinyNet, dataset
from traindoc.spec import Pipeline

pipeline = Pipeline(
    name="byo",
    environment={{"image": "pytorch:2.13-cpu"}},
    devices="cpu",
    model={{"factory": TinyNet, "sample_input": {{"shape": [2, 8]}}}},
    data={{"train": lambda: dataset(512, 0), "batch_size": 16}},
    optim={{"optimizer": lambda p: torch.optim.SGD(p, lr=0.1)}},
    training={{"script": "train.py", "script_args": ["--flag"], "docs_run": {{"max_steps": 30, "max_seconds": 60}}}},
    checkpoint={{"dir": "/checkpoints"}},
    expect={{"min_val_accuracy": 0.5, "grad_steps": {{"min": 25}}}},
    distributed={{"backend": "gloo", "nproc_per_node": {nproc}, "rdzv_endpoint": "127.0.0.1:{port}"}},
)
"""


@pytest.mark.extended  # test_contract_e2e::test_own_script_runs_like_a_builtin_run runs the same at 1 and 2 ranks
@pytest.mark.parametrize("nproc", [1, 2])
def test_your_own_script_runs_like_a_built_in_run(make_project: ProjectFactory, nproc: int) -> None:
    root = make_project(body=SCRIPT_PIPELINE.format(nproc=nproc, port=free_port()))
    (root / "pipeline" / "train.py").write_text(textwrap.dedent(SCRIPT))
    r = runner.run("pipeline/tiny.py", RunOptions(progress=False, docs=True), root)
    assert r.ok, (r.reason, r.log_tail)
    assert r.mode == "script" and r.world_size == nproc and r.steps == 30
    assert r.stopped_because == "reached the step budget (30 steps)"
    assert [c.path for c in r.checkpoints] == ["model-10.pt", "model-20.pt", "model-30.pt"]
    assert [c.step for c in r.checkpoints] == [10, 20, 30] and r.checkpoints[0].container_path.startswith("/checkp")
    assert r.final_val_accuracy is not None and all(e.passed for e in r.expectations)
    assert r.data_wait_share is None and r.loss_curve and r.first_loss is not None  # not measured: n/a, never 0
    assert "script ['--flag'] __main__" in (Path(r.run_dir) / "rank0.log").read_text()
    page = block("run", None, result=r)
    assert "| data wait | n/a |" in page and "model-30.pt" in page


def test_a_script_that_raises_names_its_own_line(make_project: ProjectFactory) -> None:
    root = make_project(body=SCRIPT_PIPELINE.format(nproc=1, port=free_port()))
    (root / "pipeline" / "train.py").write_text(
        "import traindoc\ntraindoc.log(step=1, loss=1.0)\nraise ValueError('no data')\n"
    )
    r = runner.run("pipeline/tiny.py", RunOptions(progress=False, docs=True), root)
    assert not r.ok and r.reason == "the training process: ValueError: no data"
    user = r.log_tail[r.log_tail.index("--- traceback (user code)") + 1 :]
    assert any("train.py" in line and "line 3" in line for line in user)
    assert not any("runpy" in line or "src/traindoc/" in line for line in user)


@pytest.mark.extended  # same as test_contract_e2e::test_batch_that_does_not_fit_says_so_in_one_line
def test_a_batch_that_does_not_fit_says_what_it_got(make_project: ProjectFactory) -> None:
    root = charlm_project(make_project)
    pipe = root / "pipeline" / "tiny.py"
    pipe.write_text(pipe.read_text().replace('"collate_fn": collate}', '"collate_fn": collate, "target": "y"}'))
    r = runner.run("pipeline/tiny.py", RunOptions(progress=False), root)
    assert not r.ok
    assert r.reason == (
        "the training process: batch does not fit: received a dict with keys ['input_ids', 'labels']; "
        "expected a key 'y' holding the target (set data.target to the key that holds it, or use optim.loss "
        "'model' / optim.step)"
    )
    assert not any("KeyError" in line for line in r.log_tail)


@pytest.mark.extended  # GPT-2's own loss: test_hf_models and the guide's gpt2 example cover it
def test_a_hugging_face_model_that_computes_its_own_loss(make_project: ProjectFactory) -> None:
    """A model nobody here wrote (transformers' GPT-2, built from a config, no weights): dict batches
    with an attention mask, `optim.loss: "model"`, perplexity recorded, accuracy absent."""
    pytest.importorskip("transformers")
    root = make_project(body=HF_PIPELINE)
    r = runner.run("pipeline/tiny.py", RunOptions(progress=False, docs=True), root)
    assert r.ok, (r.reason, r.log_tail)
    assert r.steps == 12 and r.final_val_accuracy is None and "val_token_accuracy" not in r.final_metrics
    assert r.final_val_loss is not None and r.final_metrics["val_perplexity"] <= 12.0
    assert r.checkpoint_verified is True and r.final_loss is not None and r.first_loss is not None
    assert r.final_loss < r.first_loss


HF_PIPELINE = """
import torch
from torch.utils.data import Dataset
from transformers import GPT2Config, GPT2LMHeadModel
from traindoc.spec import Pipeline


class Ids(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        base = torch.arange(16) % 8
        self.rows = [(base + int(torch.randint(0, 8, (1,), generator=g))) % 8 for _ in range(n)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        ids = self.rows[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def model():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=16, n_positions=32))


pipeline = Pipeline(
    name="hf",
    environment={"image": "pytorch:2.13-cpu"},
    devices="cpu",
    model={"factory": model, "sample_input": {"shape": [2, 16], "dtype": "int64"}},
    data={"train": lambda: Ids(128, 0), "val": lambda: Ids(32, 1), "batch_size": 16},
    optim={"optimizer": lambda p: torch.optim.AdamW(p, lr=3e-3), "loss": "model", "seed": 0},
    training={"epochs": 3, "log_every": 4, "docs_run": {"max_steps": 12, "max_seconds": 120}},
    checkpoint={"dir": "/checkpoints", "every_steps": 100},
    expect={"val_perplexity": {"max": 12.0}},
)
"""

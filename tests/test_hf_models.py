"""A model nobody here wrote: a Hugging Face GPT-2 built from a small config (random weights, nothing
downloaded), trained with dict batches and the loss it computes itself (``optim.loss: "model"``).

It runs through ``traindoc run --docs`` and through a real ``mkdocs build`` with the plugin; the
figures are checked against the truth: the validation loss is recomputed here from the final
checkpoint, perplexity is exp of it, and no accuracy is invented (GPT-2 shifts its labels inside the
model, so an accuracy of logits against the unshifted labels would be 0.000 on this data: false).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import REPO, traindoc_cli

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}

COUNTING = '''
import torch
from torch.utils.data import Dataset

VOCAB, CONTEXT = 32, 16


class Counting(Dataset):
    """Sequences counting up by a per-sequence stride modulo VOCAB: each token follows from the two before."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        start = torch.randint(0, VOCAB, (n, 1), generator=g)
        stride = torch.randint(1, 4, (n, 1), generator=g)
        self.ids = (start + stride * torch.arange(CONTEXT)) % VOCAB

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
'''

HF_PIPELINE = """
import torch
from counting import CONTEXT, VOCAB, Counting
from transformers import GPT2Config, GPT2LMHeadModel

from traindoc.spec import Pipeline


def model():
    config = GPT2Config(
        n_layer=2, n_embd=64, n_head=2, vocab_size=VOCAB, n_positions=CONTEXT,
        bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)  # random weights from a config: nothing is downloaded


def train():
    return Counting(1024, 0)


def val():
    return Counting(256, 1)


pipeline = Pipeline(
    name="hf",
    environment={"image": "pytorch:2.13-cpu", "volumes": [{"host": "./ckpt", "container": "/checkpoints"}]},
    devices="cpu",
    model={"factory": model, "sample_input": {"shape": [1, CONTEXT], "dtype": "int64"}},
    data={"train": train, "val": val, "batch_size": 32},
    optim={"optimizer": lambda p: torch.optim.AdamW(p, lr=3e-3), "loss": "model", "seed": 0},
    training={"epochs": 5, "log_every": 10, "docs_run": {"max_steps": 60, "max_seconds": 300}},
    checkpoint={"dir": "/checkpoints", "every_steps": 30, "keep_last": 1},
    expect={"min_loss_drop": 0.5, "val_loss": {"max": 1.5}, "val_perplexity": {"max": 4.5}},
)
"""


def hf_project(root: Path) -> Path:
    (root / "pipeline").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.traindoc]\npipelines = { hf = "pipeline/hf.py" }\n')
    (root / "pipeline" / "counting.py").write_text(COUNTING)
    (root / "pipeline" / "hf.py").write_text(textwrap.dedent(HF_PIPELINE))
    return root


def recomputed_val_loss(root: Path, run_dir: Path) -> float:
    """The final checkpoint's mean token loss on the whole validation set, computed here."""
    from traindoc.train import checkpoint

    sys.path.insert(0, str(root / "pipeline"))
    for name in ("hf", "counting"):
        sys.modules.pop(name, None)
    import hf  # the project's own pipeline module

    found = checkpoint.newest_valid(run_dir / "checkpoints")
    assert found is not None
    net = hf.model()
    net.load_state_dict(found[1]["model"])
    net.eval()
    ids = hf.val().ids
    with torch.no_grad():
        return float(net(input_ids=ids, labels=ids).loss)


def test_hf_gpt2_runs_through_the_cli_with_true_metrics(tmp_path: Path) -> None:
    root = hf_project(tmp_path / "proj")
    proc = traindoc_cli(root, "run", "hf", "--docs", "--json", env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r: dict[str, Any] = json.loads(proc.stdout)
    assert r["status"] == "passed" and r["steps"] == 60, r["reason"]
    final = r["val"][-1]["metrics"]
    assert set(final) == {"val_loss", "val_perplexity"}, "no accuracy is invented for a model's own loss"
    assert r["final_val_accuracy"] is None
    assert final["val_perplexity"] == pytest.approx(math.exp(final["val_loss"]), rel=1e-9)
    assert final["val_loss"] < math.log(32) / 2, "it learned: well below a uniform guess over 32 tokens"
    assert final["val_loss"] == pytest.approx(recomputed_val_loss(root, Path(r["run_dir"])), rel=1e-4)
    assert r["final_val_loss"] == final["val_loss"]
    on_disk = sorted(
        p.name for p in (Path(r["run_dir"]) / "checkpoints").iterdir() if not p.name.endswith(".sha256.json")
    )
    assert [c["path"] for c in r["checkpoints"]] == on_disk == ["step_00000060.pt"]  # keep_last: 1
    assert {e["name"]: e["passed"] for e in r["expectations"]} == {
        "min_loss_drop": True,
        "val_loss": True,
        "val_perplexity": True,
    }
    summary = traindoc_cli(root, "run", "hf", "--docs", env=ENV)  # a cache hit: the summary a person reads
    assert summary.returncode == 0 and "(from cache)" in summary.stdout
    assert "0.000" not in summary.stdout and f"{final['val_loss']:.4f}" in summary.stdout


def test_hf_gpt2_in_a_real_mkdocs_build(tmp_path: Path) -> None:
    root = hf_project(tmp_path / "site")
    docs = root / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# GPT-2\n\n```traindoc\npipeline: hf\nshow: model\n```\n")
    (docs / "run.md").write_text("# Run\n\n```traindoc\npipeline: hf\nshow: run\n```\n")
    (root / "mkdocs.yml").write_text(
        "site_name: hf\ntheme:\n  name: material\n  font: false\nplugins:\n  - search\n"
        "  - traindoc:\n      mermaid: local\nmarkdown_extensions:\n  - tables\n  - pymdownx.superfences:\n"
        "      custom_fences:\n        - name: mermaid\n          class: mermaid\n"
        "          format: !!python/name:pymdownx.superfences.fence_code_format\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict"],
        cwd=root,
        capture_output=True,
        text=True,
        env={
            **ENV,
            "TRAINDOC_MERMAID_DIR": str(REPO / ".cache" / "mermaid" / "11.12.0"),
            "NO_MKDOCS_2_WARNING": "1",
        },
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = html.unescape(re.sub(r"<[^>]+>", " ", (root / "site" / "run" / "index.html").read_text()))
    text = " ".join(page.split())
    assert "Passed" in text
    val_loss = float(re.search(r"validation loss (\d+\.\d+)", text).group(1))  # type: ignore[union-attr]
    perplexity = float(re.search(r"val_perplexity (\d+\.\d+)", text).group(1))  # type: ignore[union-attr]
    assert perplexity == pytest.approx(math.exp(val_loss), rel=2e-3)  # as shown: 4 digits each
    assert re.search(r"validation accuracy n/a", text)
    assert not re.search(r"\b0\.000\b", text), "no figure on the page is a made-up zero"
    model_page = (root / "site" / "index.html").read_text()
    assert 'class="mermaid"' in model_page and "GPT2LMHeadModel" in model_page

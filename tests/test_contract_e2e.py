"""The training contract end to end, as a user meets it: real ``traindoc run`` processes on tiny projects.

Each batch form a user's ``collate_fn`` may return, each hook (``optim.step``, ``optim.evaluate``,
``monitoring.samples``), a batch that does not fit, an expectation on a metric that is not defined
for the model, and a team's own ``train.py`` as one process and as 2-rank DDP. Figures are checked
against the truth: the final checkpoint is reloaded here and the validation metrics recomputed.
(train-contract's in-process tests cover the loop's parts; these cover the whole path.)
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.nn import functional as F

from conftest import REPO, free_port, traindoc_cli

pytestmark = pytest.mark.slow

# One thread per process: tiny models on a shared 2-core machine are several times faster so.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

MODULES = '''
"""Tiny models and one collate_fn per batch form (the forms users' loaders return)."""
import dataclasses
from collections import namedtuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

W = torch.randn(8, 4, generator=torch.Generator().manual_seed(123))


def points(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x @ W).argmax(1))


def train():
    return points(256, 0)


def val():
    return points(128, 1)


def regression(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, (x @ W[:, :1]).squeeze(1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        return self.body(x)


class KwNet(Net):
    """Two keyword inputs, as a dict batch's remaining keys arrive (scale is optional for the meta trace)."""

    def forward(self, x, scale=None):
        return self.body(x if scale is None else x * scale)


class NestedNet(Net):
    """One nested input: a dict holding a tensor and a tuple of tensors."""

    def forward(self, inputs):
        if isinstance(inputs, torch.Tensor):  # the meta trace's single-tensor sample_input
            inputs = {"x": inputs, "extra": (torch.ones(len(inputs), 1, device=inputs.device),)}
        (scale,) = inputs["extra"]
        return self.body(inputs["x"] * scale)


class Regressor(Net):
    def forward(self, x):
        return self.body(x)[:, 0]


Pair = namedtuple("Pair", "x y")


@dataclasses.dataclass
class Batch:
    x: torch.Tensor
    labels: torch.Tensor


def _stack(items):
    return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])


def collate_tuple(items):
    x, y = _stack(items)
    return (x, y)


def collate_list(items):
    return list(_stack(items))


def collate_dict(items):
    x, y = _stack(items)
    return {"x": x, "labels": y}


def collate_dict_kwargs(items):
    x, y = _stack(items)
    return {"x": x, "scale": torch.ones(len(x), 1), "labels": y}


def collate_dataclass(items):
    return Batch(*_stack(items))


def collate_namedtuple(items):
    return Pair(*_stack(items))


def collate_nested(items):
    x, y = _stack(items)
    return ({"x": x, "extra": (torch.ones(len(x), 1),)}, y)


def collate_target_first(items):
    x, y = _stack(items)
    return (y, x)


def collate_wrong_key(items):
    x, y = _stack(items)
    return {"x": x, "y": y}


def step_tensor(model, batch):
    return F.cross_entropy(model(batch["x"]), batch["labels"])


def step_with_metrics(model, batch):
    out = model(batch["x"])
    return {
        "loss": F.cross_entropy(out, batch["labels"]),
        "batch_accuracy": (out.argmax(1) == batch["labels"]).float().mean(),
    }


def evaluate_errors(model, loader):
    """Counts misclassified validation points (and the mean loss) over the whole loader."""
    errors, loss, n = 0, 0.0, 0
    with torch.no_grad():
        for batch in loader:
            out = model(batch["x"])
            errors += int((out.argmax(1) != batch["labels"]).sum())
            loss += float(F.cross_entropy(out, batch["labels"], reduction="sum"))
            n += len(batch["labels"])
    return {"errors": errors, "loss": loss / n}


def samples(model):
    n = sum(p.numel() for p in model.parameters())
    return [f"{n} parameters", "a < b | c `code` *not bold*"]
'''

PIPELINE = """
import torch
from mods import *
from traindoc.spec import Pipeline

pipeline = Pipeline(
    name={name!r},
    environment={{"image": "pytorch:2.13-cpu", "volumes": [{{"host": "./ckpt", "container": "/checkpoints"}}]}},
    devices="cpu",
    model={{"factory": {model}, "sample_input": {{"shape": [2, 8]}}}},
    data={{"train": {train}, "val": {val}, "batch_size": 32, {data}}},
    optim={{"optimizer": lambda p: torch.optim.Adam(p, lr=0.02), "seed": 0, {optim}}},
    training={{"epochs": 3, "log_every": 4, "docs_run": {{"max_steps": 16, "max_seconds": 120}}}},
    checkpoint={{"dir": "/checkpoints", "every_steps": 8, "keep_last": 1}},
    distributed={{"backend": "gloo", "rdzv_endpoint": "127.0.0.1:{port}"}},
    {extra}
)
"""


def project(tmp_path: Path, name: str, **fields: str) -> Path:
    """A tiny real project with one pipeline ``name`` built from ``fields``; returns its root."""
    root = tmp_path / name
    (root / "pipeline").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[tool.traindoc]\npipelines = {{ {name} = "pipeline/{name}.py" }}\n')
    (root / "pipeline" / "mods.py").write_text(MODULES)
    values = {"model": "Net", "train": "train", "val": "val", "data": "", "optim": "", "extra": "", **fields}
    text = PIPELINE.format(name=name, port=free_port(), **values)
    (root / "pipeline" / f"{name}.py").write_text(textwrap.dedent(text))
    return root


def run(root: Path, name: str, *args: str) -> tuple[dict[str, Any], str]:
    """``traindoc run NAME --docs --json`` in a child process: (the results record, everything it printed)."""
    proc = traindoc_cli(root, "run", name, "--docs", "--json", *args, env=ENV)
    try:
        record = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"no JSON record (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return record, proc.stdout + proc.stderr


def mods(root: Path) -> Any:
    sys.path.insert(0, str(root / "pipeline"))
    sys.modules.pop("mods", None)
    import mods

    return mods


def final_state(record: dict[str, Any]) -> dict[str, torch.Tensor]:
    from traindoc.train import checkpoint

    found = checkpoint.newest_valid(Path(record["run_dir"]) / "checkpoints")
    assert found is not None, "the run left a checkpoint"
    assert found[1]["step"] == record["steps"]
    state: dict[str, torch.Tensor] = found[1]["model"]
    return state


def truth(record: dict[str, Any], root: Path, model: str, call: Any) -> tuple[float, float]:
    """(loss, accuracy) of the final checkpoint on the whole validation set, computed here."""
    m = mods(root)
    net = getattr(m, model)()
    net.load_state_dict(final_state(record))
    net.eval()
    x, y = m.val().tensors
    with torch.no_grad():
        out = call(net, x)
    return float(F.cross_entropy(out, y)), int((out.argmax(1) == y).sum()) / len(y)


def no_traindoc_frames(text: str) -> None:
    frames = re.findall(r'File "([^"]+)"', text)
    ours = [f for f in frames if "/traindoc/" in f.replace("\\", "/") and "/pipeline/" not in f]
    assert not ours, f"traceback frames from traindoc's own code: {ours}"


def _ones(x: torch.Tensor) -> torch.Tensor:
    return torch.ones(len(x), 1)


FORMS = {
    # form: (collate_fn, model, how the test calls the model on the validation inputs, extra data fields)
    "tuple": ("collate_tuple", "Net", lambda net, x: net(x), ""),
    "list": ("collate_list", "Net", lambda net, x: net(x), ""),
    "dict": ("collate_dict", "Net", lambda net, x: net(x), ""),
    "dict-kwargs": ("collate_dict_kwargs", "KwNet", lambda net, x: net(x=x, scale=_ones(x)), ""),
    "dataclass": ("collate_dataclass", "Net", lambda net, x: net(x), ""),
    "namedtuple": ("collate_namedtuple", "Net", lambda net, x: net(x), ""),
    "nested": ("collate_nested", "NestedNet", lambda net, x: net({"x": x, "extra": (_ones(x),)}), ""),
    "target-first": ("collate_target_first", "Net", lambda net, x: net(x), '"target": 0,'),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_batch_form_trains_and_reports_true_metrics(tmp_path: Path, form: str) -> None:
    collate, model, call, data = FORMS[form]
    root = project(
        tmp_path,
        "forms",
        model=model,
        data=f'"collate_fn": {collate}, {data}',
        extra='expect={"min_val_accuracy": 0.6, "val_loss": {"max": 1.0}},',
    )
    record, _ = run(root, "forms")
    assert record["status"] == "passed", (record["reason"], record["log_tail"])
    assert record["steps"] == 16 and [v["step"] for v in record["val"]] == [8, 16]
    loss, accuracy = truth(record, root, model, call)
    final = record["val"][-1]["metrics"]
    assert final["val_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert final["val_loss"] == pytest.approx(loss, rel=1e-5)
    assert record["final_val_accuracy"] == final["val_accuracy"] and accuracy > 0.6
    assert "val_perplexity" not in final and "val_token_accuracy" not in final  # classification, not an LM


def test_step_hook_returning_a_tensor(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        "steptensor",
        data='"collate_fn": collate_dict,',
        optim='"step": step_tensor,',
        extra='expect={"min_loss_drop": 0.3},',
    )
    record, _ = run(root, "steptensor")
    assert record["status"] == "passed", (record["reason"], record["log_tail"])
    assert record["steps"] == 16 and record["final_loss"] < record["first_loss"]
    loss, _ = truth(record, root, "Net", lambda net, x: net(x))
    final = record["val"][-1]["metrics"]
    assert set(final) == {"val_loss"}, "validation ran the user's step: its loss, and no accuracy invented"
    assert final["val_loss"] == pytest.approx(loss, rel=1e-5) and record["final_val_accuracy"] is None


def test_step_hook_metrics_are_recorded_per_step_and_can_be_expected(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        "stepdict",
        data='"collate_fn": collate_dict,',
        optim='"step": step_with_metrics,',
        extra='expect={"batch_accuracy": {"min": 0.5}, "never_logged": {"max": 1.0}},',
    )
    record, _ = run(root, "stepdict")
    steps = [json.loads(x) for x in (Path(record["run_dir"]) / "steps.jsonl").read_text().splitlines()]
    train_steps = [s for s in steps if "event" not in s]
    assert len(train_steps) == 16
    assert all(0.0 <= s["metrics"]["batch_accuracy"] <= 1.0 for s in train_steps)
    window = [s["metrics"]["batch_accuracy"] for s in train_steps[-4:]]  # log_every = 4
    assert record["final_metrics"]["batch_accuracy"] == pytest.approx(sum(window) / len(window))
    by_name = {e["name"]: e for e in record["expectations"]}
    assert by_name["batch_accuracy"]["passed"] is True
    assert by_name["never_logged"]["passed"] is False and by_name["never_logged"]["measured"] is None
    assert "never_logged was never recorded" in record["reason"]
    assert record["status"] == "expectations_unmet"


def test_evaluate_hook_metrics_are_true(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        "evalhook",
        data='"collate_fn": collate_dict,',
        optim='"evaluate": evaluate_errors,',
        extra='expect={"val_errors": {"max": 60}},',
    )
    record, _ = run(root, "evalhook")
    assert record["status"] == "passed", (record["reason"], record["log_tail"])
    assert [v["step"] for v in record["val"]] == [8, 16]
    final = record["val"][-1]["metrics"]
    loss, accuracy = truth(record, root, "Net", lambda net, x: net(x))
    assert final["val_errors"] == round((1 - accuracy) * 128)
    assert final["val_loss"] == pytest.approx(loss, rel=1e-5)
    assert record["final_val_accuracy"] is None  # the hook did not measure accuracy: none is invented


def test_samples_hook_text_reaches_the_record_and_the_run_page(tmp_path: Path) -> None:
    root = project(tmp_path, "samples", data='"collate_fn": collate_dict,', extra='monitoring={"samples": samples},')
    record, _ = run(root, "samples")
    assert record["status"] == "passed", (record["reason"], record["log_tail"])
    n = sum(p.numel() for p in mods(root).Net().parameters())
    assert record["samples"] == [f"{n} parameters", "a < b | c `code` *not bold*"]
    from traindoc.pages import docsgen

    page = docsgen.render_fence(
        docsgen.parse_options("pipeline: samples\nshow: run", "test"), docsgen.CachedProvider(root=root)
    )
    assert f"{n} parameters" in page
    html = __import__("markdown").markdown(page, extensions=["tables", "fenced_code"])
    assert "a &lt; b | c `code` *not bold*" in html, "a sample is shown literally, never as markup"


def test_batch_that_does_not_fit_says_so_in_one_line(tmp_path: Path) -> None:
    root = project(tmp_path, "misfit", data='"collate_fn": collate_wrong_key,')
    record, out = run(root, "misfit")
    assert record["status"] == "failed" and record["steps"] == 0
    reason = record["reason"]
    assert "\n" not in reason
    assert "batch does not fit" in reason and "['x', 'y']" in reason and "'labels'" in reason
    no_traindoc_frames(out)
    no_traindoc_frames("\n".join(record["log_tail"]))
    plain = traindoc_cli(root, "run", "misfit", "--docs", env=ENV)  # the summary a person reads
    assert plain.returncode != 0 and "batch does not fit" in plain.stdout + plain.stderr
    no_traindoc_frames(plain.stdout + plain.stderr)


def test_accuracy_expectation_on_a_regressor_fails_as_not_recorded(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        "regressor",
        model="Regressor",
        train="lambda: regression(256, 0)",
        val="lambda: regression(128, 1)",
        optim='"loss": "mse",',
        extra='expect={"min_val_accuracy": 0.5},',
    )
    record, _ = run(root, "regressor")
    assert record["status"] == "expectations_unmet"
    assert record["final_val_accuracy"] is None
    assert "val_accuracy" not in record["val"][-1]["metrics"] and "val_loss" in record["val"][-1]["metrics"]
    (e,) = record["expectations"]
    assert e["measured"] is None and not e["passed"] and "never recorded" in e["text"]
    assert "never recorded" in record["reason"]
    plain = traindoc_cli(root, "run", "regressor", "--docs", env=ENV).stdout  # cached: the summary only
    assert "0.000" not in plain and "never recorded" in plain


# --- bring your own train.py ---------------------------------------------------------------------------


@pytest.fixture
def byo_copy(tmp_path: Path) -> Path:
    """This repository's bring-your-own-script example, copied (script, model, pipeline, pyproject)."""
    root = tmp_path / "byo"
    shutil.copytree(REPO / "pipeline" / "byo", root / "pipeline" / "byo", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "pyproject.toml").write_text('[tool.traindoc]\npipelines = { byo = "pipeline/byo/pipeline.py" }\n')
    spec = root / "pipeline" / "byo" / "pipeline.py"
    spec.write_text(spec.read_text().replace("127.0.0.1:29531", f"127.0.0.1:{free_port()}"))
    return root


@pytest.mark.parametrize("nproc", [1, 2])
def test_own_script_runs_like_a_builtin_run(byo_copy: Path, nproc: int) -> None:
    record, _ = run(byo_copy, "byo", "--nproc", str(nproc))
    assert record["status"] == "passed", (record["reason"], record["log_tail"])
    assert record["mode"] == "script" and record["world_size"] == nproc
    assert record["steps"] == 100 and "step budget" in record["stopped_because"]  # should_stop() honoured
    run_dir = Path(record["run_dir"])
    steps = [json.loads(x) for x in (run_dir / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "event" not in s] == list(range(1, 101))
    evals = [s for s in steps if s.get("event") == "val"]
    assert evals and evals[-1]["step"] == 100
    assert record["val"][-1]["metrics"]["val_accuracy"] == evals[-1]["metrics"]["val_accuracy"] >= 0.95
    names = {e["name"]: e["passed"] for e in record["expectations"]}
    assert names == {"val_accuracy": True, "min_loss_drop": True}
    on_disk = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert sorted(c["path"] for c in record["checkpoints"]) == on_disk and len(on_disk) == 2  # the script keeps 2
    assert on_disk[-1] == "step_00000100.pt" and all(c["bytes"] > 0 for c in record["checkpoints"])
    state = torch.load(run_dir / "checkpoints" / on_disk[-1], weights_only=True)
    m = mods_from(byo_copy / "pipeline" / "byo", "spirals")
    net = m.SpiralNet()
    net.load_state_dict(state["model"])
    x, y = m.val_set().tensors
    with torch.no_grad():
        accuracy = int((net(x).argmax(1) == y).sum()) / len(y)
    assert accuracy == pytest.approx(record["final_val_accuracy"], abs=1e-9)
    log_file = run_dir / "train.log"
    assert log_file.is_file() and "step 100" in log_file.read_text()


def test_own_script_failure_names_the_script_line(byo_copy: Path) -> None:
    script = byo_copy / "pipeline" / "byo" / "train.py"
    failing = "step += 1\n            if step == 5:\n                raise ValueError('bad batch at step 5')\n"
    script.write_text(script.read_text().replace("step += 1\n", failing))
    record, _ = run(byo_copy, "byo", "--nproc", "1")
    assert record["status"] == "failed"
    assert "ValueError: bad batch at step 5" in record["reason"]
    tail = "\n".join(record["log_tail"])
    assert "train.py" in tail and "raise ValueError" in tail
    no_traindoc_frames(tail)


def mods_from(folder: Path, name: str) -> Any:
    sys.path.insert(0, str(folder))
    sys.modules.pop(name, None)
    return __import__(name)


# --- the guide's examples, as written ------------------------------------------------------------------

GUIDE = REPO / "docs" / "guide.md"


def guide_files(section: str) -> dict[str, str]:
    """The Python blocks of one guide section, by the file each names on its first line (``# pipeline/x.py``)."""
    found = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", GUIDE.read_text(), re.S | re.M)
    assert found, f"the guide has a section {section!r}"
    files = {}
    for block in re.findall(r"^```python\n(.*?)^```", found.group(1), re.S | re.M):
        first = block.splitlines()[0]
        assert first.startswith("# pipeline/") and first.endswith(".py"), first
        files[first.removeprefix("# ")] = block
    return files


@pytest.mark.parametrize(
    ("section", "pipeline"),
    [
        ("Language models and dict batches", "pipeline/lm.py"),
        ("Hugging Face models", "pipeline/gpt2.py"),
        ("Your own train.py", "pipeline/mine.py"),
    ],
)
def test_guide_examples_run_as_written(tmp_path: Path, section: str, pipeline: str) -> None:
    files = guide_files(section)
    assert pipeline in files
    root = tmp_path / "guide"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "pyproject.toml").write_text("[tool.traindoc]\n")
    record, _ = run(root, pipeline)
    assert record["status"] == "passed", (record["reason"], record["log_tail"])
    assert record["expectations"] and all(e["passed"] for e in record["expectations"])
    final = record["val"][-1]["metrics"]
    if pipeline in ("pipeline/lm.py", "pipeline/gpt2.py"):
        assert record["steps"] == 60  # the docs budget is reached, not cut short by the epochs
    if pipeline == "pipeline/lm.py":
        assert {"val_loss", "val_token_accuracy", "val_perplexity"} <= set(final)
    if pipeline == "pipeline/gpt2.py":
        assert set(final) == {"val_loss", "val_perplexity"}  # no token accuracy against unshifted labels
    if pipeline == "pipeline/mine.py":
        assert record["mode"] == "script" and record["steps"] == 50
        assert [c["path"] for c in record["checkpoints"]] == ["step_50.pt"]


# --- the language-model example, on its real page ------------------------------------------------------


def test_charlm_page_shows_true_lm_metrics_and_the_models_own_samples(digits_copy: Path) -> None:
    """The repository's charlm page in a real MkDocs build; the budget cut to 30 steps to keep it short."""
    root = digits_copy
    spec = root / "pipeline" / "charlm.py"
    short = spec.read_text().replace("DOCS_STEPS = 250", "DOCS_STEPS = 30")
    short = re.sub(r"expect=\{\n.*?\n    \},\n", 'expect={"val_loss": {"max": 4.0}},\n', short, flags=re.S)  # 30 steps
    spec.write_text(short)
    (root / "docs").mkdir()
    shutil.copy(REPO / "docs" / "charlm.md", root / "docs" / "index.md")
    (root / "mkdocs.yml").write_text(
        "site_name: lm\ntheme:\n  name: material\n  font: false\nplugins:\n  - traindoc:\n      mermaid: local\n"
        "markdown_extensions:\n  - tables\n  - pymdownx.superfences:\n      custom_fences:\n"
        "        - name: mermaid\n          class: mermaid\n"
        "          format: !!python/name:pymdownx.superfences.fence_code_format\n"
    )
    env = {**ENV, "TRAINDOC_MERMAID_DIR": str(REPO / ".cache" / "mermaid" / "11.12.0"), "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    record, _ = run(root, "charlm")  # the same inputs: the run the page shows, from the cache
    assert record["from_cache"] and record["status"] == "passed", record["reason"]
    assert record["steps"] == 30 and record["final_val_accuracy"] is None
    final = record["val"][-1]["metrics"]
    assert set(final) == {"val_loss", "val_token_accuracy", "val_perplexity"}
    assert final["val_perplexity"] == pytest.approx(math.exp(final["val_loss"]), rel=1e-9)
    steps = [json.loads(x) for x in (Path(record["run_dir"]) / "steps.jsonl").read_text().splitlines()]
    lrs = [s["lr"] for s in steps if "event" not in s]
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(6e-3) and 18 <= peak <= 20  # warm-up over 20 steps ...
    assert lrs[:peak] == sorted(lrs[:peak]) and lrs[peak:] == sorted(lrs[peak:], reverse=True)  # ... then cosine
    assert lrs[-1] < 6e-3 / 2

    sys.path.insert(0, str(root / "pipeline"))
    for name in ("charlm", "charlm_data", "charlm_model"):
        sys.modules.pop(name, None)
    import charlm

    threads = torch.get_num_threads()
    try:
        net = charlm.model()  # one thread, as in the training process: the same floats, the same samples
        net.load_state_dict(final_state(record))
        val = charlm.val_set()
        batch = charlm.collate([val[i] for i in range(len(val))])
        net.eval()
        with torch.no_grad():
            logits = net(batch["input_ids"])
        assert final["val_loss"] == pytest.approx(
            float(F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten())), rel=1e-5
        )
        hits = logits.argmax(-1) == batch["labels"]
        accuracy = int(hits.sum()) / hits.numel()
        assert final["val_token_accuracy"] == pytest.approx(accuracy, abs=1e-9)
        assert record["samples"] == charlm.samples(net)
    finally:
        torch.set_num_threads(threads)

    page = (root / "site" / "index.html").read_text()
    for sample in record["samples"]:
        assert f"<pre>{html.escape(sample)}</pre>" in page
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert "validation accuracy n/a" in text and not re.search(r"\b0\.000\b", text)
    shown_loss = float(re.search(r"validation loss (\d+\.\d+)", text).group(1))  # type: ignore[union-attr]
    shown_ppl = float(re.search(r"val_perplexity (\d+\.\d+)", text).group(1))  # type: ignore[union-attr]
    assert shown_ppl == pytest.approx(math.exp(shown_loss), rel=2e-3)
    assert page.count('class="mermaid"') >= 2 and "TinyGPT" in page

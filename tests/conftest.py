"""Shared fixtures: tiny real projects written to temporary folders (griffe-style, nothing mocked)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/* from current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def browser_or_skip() -> None:
    """Skip with the reason when no browser is available; under CI=true that is a failure instead."""
    from traindoc.export.browser import availability

    reason = availability()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("TRAINDOC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test cannot run here (CI or make test): {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser() -> object:
    browser_or_skip()
    from traindoc.export.browser import chromium

    with chromium() as b:
        yield b


@pytest.fixture(scope="session")
def session_browser() -> object:
    browser_or_skip()
    from traindoc.export.browser import chromium

    with chromium() as b:
        yield b


TINY_MODULES = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset


class TinyNet(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 4))

    def forward(self, x):
        return self.body(x)


STEP = [0]


def loss(out, y):
    """Cross-entropy, with failure modes chosen by TINY_MODE for the runner's tests."""
    import os, time
    from torch.nn import functional as F
    STEP[0] += 1
    mode = os.environ.get("TINY_MODE", "")
    rank = int(os.environ.get("RANK", "0"))
    if mode == "slow":
        time.sleep(0.05)
    if mode == "exception" and STEP[0] == 3 and rank == int(os.environ.get("TINY_RANK", "0")):
        raise RuntimeError("boom in user loss")
    if mode == "nan" and STEP[0] >= 7:
        return out.sum() * float("nan")
    if mode == "oom" and STEP[0] == 2:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if mode == "die" and STEP[0] == 3 and rank == 1:
        os._exit(3)
    return F.cross_entropy(out, y)


def dataset(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 4, generator=torch.Generator().manual_seed(123))
    y = (x @ w).argmax(1)
    return TensorDataset(x, y)
'''

TINY_PIPELINE = """
import torch
from tinymods import TinyNet, dataset, loss
from traindoc.spec import Pipeline


def model():
    return TinyNet()


def train():
    return dataset(512, 0)


def val():
    return dataset(128, 1)


pipeline = Pipeline(
    name="tiny",
    environment={{"image": "pytorch:2.13-cpu", "user": "1000:1000",
                  "volumes": [{{"host": "./ckpt", "container": "/checkpoints"}}, {{"host": "./data", "container": "/data", "read_only": True}}]}},
    devices="cpu",
    model={{"factory": model, "sample_input": {{"shape": [2, 8]}}}},
    data={{"train": train, "val": val, "batch_size": 32}},
    optim={{"optimizer": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), "loss": loss, "seed": 0}},
    training={{"epochs": {epochs}, "log_every": 5, "docs_run": {{"max_steps": {docs_steps}, "max_seconds": 60}}}},
    checkpoint={{"dir": "/checkpoints", "every_steps": {every}, "keep_last": 2}},
    distributed={{"backend": "gloo", "nproc_per_node": {nproc}, "nnodes": {nnodes}, "rdzv_endpoint": "127.0.0.1:{port}"}},
    expect={{"min_val_accuracy": {min_acc}}},
)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ProjectFactory = Callable[..., Path]


@pytest.fixture
def make_project(tmp_path: Path) -> ProjectFactory:
    """A tiny real project: pyproject.toml, a local module, and a pipeline file. Returns its root."""

    def make(
        name: str = "proj",
        *,
        extra: str = "",
        epochs: int = 2,
        docs_steps: int = 20,
        every: int = 10,
        nproc: int = 1,
        nnodes: int = 1,
        min_acc: float = 0.5,
        body: str | None = None,
    ) -> Path:
        root = tmp_path / name
        (root / "pipeline").mkdir(parents=True)
        (root / "pyproject.toml").write_text('[tool.traindoc]\npipelines = { tiny = "pipeline/tiny.py" }\n')
        (root / "pipeline" / "tinymods.py").write_text(TINY_MODULES)
        text = (
            body
            if body is not None
            else TINY_PIPELINE.format(
                epochs=epochs,
                docs_steps=docs_steps,
                every=every,
                nproc=nproc,
                nnodes=nnodes,
                port=free_port(),
                min_acc=min_acc,
            )
        )
        (root / "pipeline" / "tiny.py").write_text(textwrap.dedent(text) + extra)
        return root

    return make


@pytest.fixture
def digits_copy(tmp_path: Path) -> Path:
    """A copy of this repository's example project (pipeline, templates, pyproject)."""
    root = tmp_path / "digits"
    root.mkdir()
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def only_digits(root: Path) -> None:
    """Name the example as the project's only pipeline (a project as it starts: markers may omit it)."""
    text = (root / "pyproject.toml").read_text()
    text = re.sub(r"(?m)^pipelines = \{.*\}$", 'pipelines = { digits = "pipeline/digits.py" }', text)
    (root / "pyproject.toml").write_text(text)


@pytest.fixture(autouse=True)
def _isolate_imports(tmp_path: Path) -> object:
    """Pipelines and their local modules imported in-process are forgotten after each test."""
    before_path = list(sys.path)
    before = set(sys.modules)
    yield
    sys.path[:] = before_path
    for name in set(sys.modules) - before:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if file.startswith(str(tmp_path.parent)) or name.startswith("traindoc_user_"):
            del sys.modules[name]


def traindoc_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``traindoc`` command line in a child process, as a person would."""
    return subprocess.run(
        [sys.executable, "-m", "traindoc", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False
    )

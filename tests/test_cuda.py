"""The CUDA paths, for real: marked ``cuda``; they skip without a GPU and ``make gpu-check`` runs them.

Nothing here is mocked. Each test trains a tiny pipeline on the card through the real runner (child
processes, the run folder's files) or drives torch.distributed directly where traindoc's single-process
path never initialises a process group (NCCL with world size 1).
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ProjectFactory, free_port
from traindoc.facts import introspect
from traindoc.run import runner
from traindoc.run.runner import RunOptions

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by make gpu-check)"),
]

SLEEP_CYCLES = 40_000_000  # ≥ 20 ms of GPU time per step at the H100/H200's 1.98 GHz boost clock

CUDA_PIPELINE = """
import os
import torch
from torch.nn import functional as F
from tinymods import TinyNet, dataset
from traindoc.spec import Pipeline

KEPT = []


def loss(out, y):
    mode = os.environ.get("CUDA_MODE", "")
    if mode == "leak":
        KEPT.append(torch.empty(4 << 20, dtype=torch.uint8, device=out.device))  # 4 MiB kept alive per step
    elif mode == "oom":
        total = torch.cuda.get_device_properties(out.device).total_memory
        torch.empty(2 * total, dtype=torch.uint8, device=out.device)  # a plain allocation twice the card
    elif mode == "sleep":
        torch.cuda._sleep({cycles})  # GPU time the host does not wait for
    record = os.environ.get("CUDA_RECORD")
    if record:
        with open(record, "a", encoding="utf-8") as fh:
            fh.write(f"{{out.dtype}} {{out.device}} {{torch.is_autocast_enabled('cuda')}}\\n")
    return F.cross_entropy(out, y)


def model():
    return TinyNet()


def train():
    return dataset(512, 0)


def val():
    return dataset(128, 1)


def optimizer(params):
    return torch.optim.AdamW(params, lr=1e-2)


pipeline = Pipeline(
    name="tinycuda",
    environment={{"image": "pytorch:2.11-cuda", "user": "1000:1000",
                  "volumes": [{{"host": "./ckpt", "container": "/checkpoints"}}]}},
    devices="cuda",
    model={{"factory": model, "sample_input": {{"shape": [2, 8]}}}},
    data={{"train": train, "val": val, "batch_size": 32}},
    optim={{"optimizer": optimizer, "loss": loss, "seed": 0, "amp": {amp!r}}},
    training={{"epochs": 3, "log_every": 5, "docs_run": {{"max_steps": 20, "max_seconds": 60}}}},
    checkpoint={{"dir": "/checkpoints", "every_steps": 25, "keep_last": 1}},
    distributed={{"backend": "{backend}", "nproc_per_node": {nproc}, "rdzv_endpoint": "127.0.0.1:{port}"}},
)
"""


def cuda_project(
    make_project: ProjectFactory, *, amp: str | None = None, nproc: int = 1, backend: str = "auto"
) -> Path:
    body = CUDA_PIPELINE.format(cycles=SLEEP_CYCLES, amp=amp, nproc=nproc, backend=backend, port=free_port())
    return make_project("cudaproj", body=body)


def run(root: Path, steps: int, **kw: object) -> runner.RunResult:
    return runner.run("pipeline/tiny.py", RunOptions(progress=False, max_steps=steps, use_cache=False, **kw), root)


def step_records(r: runner.RunResult) -> list[dict[str, object]]:
    lines = (Path(r.run_dir) / "steps.jsonl").read_text().splitlines()
    return [x for x in map(json.loads, lines) if "event" not in x]


def test_device_facts_name_the_card_and_its_memory() -> None:
    d = introspect.device_facts("auto")
    assert d.resolved == "cuda"
    assert [g.name for g in d.gpus] == [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    assert d.gpus[0].memory_bytes == torch.cuda.get_device_properties(0).total_memory > 8 << 30
    assert d.gpus[0].name in d.sentence and d.cuda_version == torch.version.cuda
    smi = shutil.which("nvidia-smi")
    if smi:  # a second witness that the facts are the card's, not torch's guess
        row = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        name, mib, driver = (x.strip() for x in row.split(","))
        assert name == d.gpus[0].name
        assert abs(d.gpus[0].memory_bytes / 2**20 - float(mib)) <= 0.02 * float(mib)
        assert runner.nvidia_driver() in (driver, None)


NCCL_ONE = """
import json, sys, torch, torch.distributed as dist
dist.init_process_group("nccl", init_method="file://" + sys.argv[1], rank=0, world_size=1)
t = torch.full((4,), 3.0, device="cuda")
dist.all_reduce(t)
dist.broadcast(t, src=0)
dist.barrier()
print(json.dumps({"backend": dist.get_backend(), "world": dist.get_world_size(), "value": t.tolist()}))
dist.destroy_process_group()
"""


def test_nccl_initialises_with_world_size_one(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", NCCL_ONE, str(tmp_path / "store")], capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"backend": "nccl", "world": 1, "value": [3.0] * 4}


GLOO_TWO = """
import json, os, sys, torch, torch.distributed as dist
from torch import nn
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
t = torch.full((3,), float(rank + 1), device=dev)
dist.all_reduce(t)
torch.manual_seed(0)
model = nn.parallel.DistributedDataParallel(nn.Linear(8, 2).to(dev), device_ids=[dev.index])
opt = torch.optim.SGD(model.parameters(), lr=0.1)
g = torch.Generator(device=dev).manual_seed(100 + rank)  # each rank its own batch
for _ in range(3):
    opt.zero_grad()
    model(torch.randn(16, 8, device=dev, generator=g)).square().mean().backward()
    opt.step()
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
gathered = [torch.empty_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
same = all(torch.equal(gathered[0], x) for x in gathered)
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as fh:
    json.dump({"world": world, "backend": dist.get_backend(), "sum": t.tolist(), "device": str(flat.device), "same": same}, fh)
dist.destroy_process_group()
"""


def test_two_ranks_with_gloo_on_cuda_tensors(tmp_path: Path) -> None:
    script = tmp_path / "gloo_two.py"
    script.write_text(GLOO_TWO)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(script),
        str(tmp_path),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rec in ranks:
        assert rec["world"] == 2 and rec["backend"] == "gloo" and rec["device"].startswith("cuda")
        assert rec["sum"] == [3.0, 3.0, 3.0]  # 1 + 2 on every rank
        assert rec["same"], "DDP over gloo left the ranks' weights apart"


@pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs: traindoc's DDP on CUDA gives each rank its own GPU"
)
def test_runner_ddp_on_two_gpus(make_project: ProjectFactory) -> None:
    r = run(cuda_project(make_project, nproc=2), 20)
    assert r.ok, (r.reason, r.log_tail)
    assert r.world_size == 2 and r.backend == "nccl" and r.device.kind == "cuda"


def test_amp_bf16_step_on_the_card(
    make_project: ProjectFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this card has no bf16")
    record = tmp_path / "dtypes.txt"
    monkeypatch.setenv("CUDA_RECORD", str(record))
    r = run(cuda_project(make_project, amp="bf16"), 12)
    assert r.ok, (r.reason, r.log_tail)
    lines = record.read_text().splitlines()
    assert lines[:12] == ["torch.bfloat16 cuda:0 True"] * 12, lines  # every training step ran under bf16 autocast
    assert r.final_loss is not None and math.isfinite(r.final_loss)


def test_cuda_event_timing_sees_gpu_time_the_host_does_not_wait_for(
    make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_MODE", "sleep")
    r = run(cuda_project(make_project), 15)
    assert r.ok, (r.reason, r.log_tail)
    compute = [float(x["compute_s"]) for x in step_records(r)]
    assert len(compute) == 15
    assert statistics.median(compute) >= 0.015, compute  # the spin is GPU time; host timing would read ~0.1 ms
    assert sum(compute) <= r.wall_s  # and it is never more than the wall time that contained it
    assert r.device.kind == "cuda" and r.device.gpus == [torch.cuda.get_device_name(0)]


def test_cuda_memory_trend_flags_a_leaking_pipeline_and_not_a_clean_one(
    make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = cuda_project(make_project)
    clean = run(root, 40)
    assert clean.ok, (clean.reason, clean.log_tail)
    assert clean.memory is not None and clean.memory.kind == "cuda_allocated"
    assert not clean.memory.leak_suspected, clean.memory.text
    monkeypatch.setenv("CUDA_MODE", "leak")
    leaky = run(root, 40, force=True)
    assert leaky.memory is not None and leaky.memory.kind == "cuda_allocated"
    assert leaky.memory.leak_suspected, leaky.memory.text
    assert leaky.memory.end_bytes - leaky.memory.start_bytes >= 30 * (4 << 20)  # ≥ 30 steps × 4 MiB
    assert 3.5 * 2**20 <= leaky.memory.slope_bytes_per_step <= 8 * 2**20  # 4 MiB a step, plus evaluation's calls


def test_cuda_oom_is_its_own_failure_kind(make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_MODE", "oom")
    r = run(cuda_project(make_project), 5)
    assert not r.ok and r.status == "failed"
    assert "CUDA out of memory at step 1" in r.reason, r.reason
    kinds = [json.loads(p.read_text())["kind"] for p in Path(r.run_dir).glob("error-rank*.json")]
    assert kinds == ["oom"], kinds

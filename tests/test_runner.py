"""The runner: real training in child processes (CPU, gloo DDP), checkpoints, failures, cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, ProjectFactory, traindoc_cli
from traindoc import errors
from traindoc.facts import service
from traindoc.run import launch, runner
from traindoc.run.runner import RunOptions
from traindoc.train import checkpoint

pytestmark = pytest.mark.slow


def opts(**kw: object) -> RunOptions:
    return RunOptions(progress=False, **kw)  # type: ignore[arg-type]


# --- pure launch planning ---------------------------------------------------------------------------


def test_launch_plan_single_process_and_torchrun() -> None:
    w = launch.WorkerOptions(pipeline="p.py", run_dir="/r", docs=True)
    one = launch.plan(
        w,
        python="py",
        device="cpu",
        backend="auto",
        nnodes=1,
        nproc_per_node=1,
        rdzv_endpoint="127.0.0.1:29500",
        rdzv_id="x",
    )
    assert [x.argv for x in one] == [["py", "-m", "traindoc.worker", "p.py", "--run-dir", "/r", "--docs"]]
    assert one[0].env["TRAINDOC_BACKEND"] == "gloo"
    ddp = launch.plan(
        w,
        python="py",
        device="cuda",
        backend="auto",
        nnodes=1,
        nproc_per_node=8,
        rdzv_endpoint="127.0.0.1:29500",
        rdzv_id="x",
    )
    assert ddp[0].argv[:9] == [
        "py",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "8",
        "--no-python",
    ]
    assert ddp[0].argv[9:16] == ["py", "-m", "traindoc.guard", "--", "py", "-m", "traindoc.worker"]
    assert ddp[0].env["TRAINDOC_BACKEND"] == "nccl"
    loop = launch.plan(
        w,
        python="py",
        device="cpu",
        backend="gloo",
        nnodes=2,
        nproc_per_node=1,
        rdzv_endpoint="127.0.0.1:29511",
        rdzv_id="job",
    )
    assert [x.node_rank for x in loop] == [0, 1]
    assert "--rdzv-endpoint" in loop[1].argv and "127.0.0.1:29511" in loop[1].argv and "--node-rank" in loop[1].argv
    remote = launch.plan(
        w,
        python="py",
        device="cuda",
        backend="nccl",
        nnodes=16,
        nproc_per_node=8,
        rdzv_endpoint="10.1.2.3:29400",
        rdzv_id="job",
    )
    assert len(remote) == 1  # other machines launch their own node
    with pytest.raises(errors.BackendUnavailable, match="nccl"):  # a SpecError (exit 3), never a ValueError
        launch.resolve_backend("nccl", "cpu")
    assert launch.resolve_nproc("auto", "cuda", 4) == 4 and launch.resolve_nproc("auto", "cpu", 0) == 1


# --- real runs --------------------------------------------------------------------------------------


def test_single_process_run_records_everything(make_project: ProjectFactory) -> None:
    root = make_project()
    r = runner.run("pipeline/tiny.py", opts(), root)
    assert r.ok, (r.reason, r.log_tail)
    assert r.status == "passed" and r.world_size == 1 and r.steps == 32  # 2 epochs × 16 steps
    assert r.device.sentence == "runs on CPU, as the spec asks"
    assert r.checkpoint_verified is True
    kept = sorted(p.name for p in (Path(r.run_dir) / "checkpoints").iterdir())
    assert kept == [  # keep_last = 2, each with its checksum
        "step_00000030.pt",
        "step_00000030.pt.sha256.json",
        "step_00000032.pt",
        "step_00000032.pt.sha256.json",
    ]
    # the report lists exactly the checkpoints on disk (issue 10: it used to list all 4 ever written)
    assert [c.step for c in r.checkpoints] == [30, 32] and all(c.bytes > 0 for c in r.checkpoints)
    lines = [json.loads(x) for x in (Path(r.run_dir) / "steps.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "event" not in x]
    assert [x["step"] for x in steps] == list(range(1, 33))
    assert all({"loss", "lr", "samples_per_s", "data_s", "compute_s", "memory_bytes"} <= set(x) for x in steps)
    assert [v["epoch"] for v in lines if v.get("event") == "val"] == [0, 1]
    assert r.expectations[0].name == "min_val_accuracy" and r.expectations[0].passed
    assert r.memory is not None and r.memory.kind == "rss" and not r.memory.leak_suspected
    saved = json.loads((Path(r.run_dir) / "results.json").read_text())
    assert saved["status"] == "passed"


def test_example_as_one_process_and_as_two_rank_ddp(digits_copy: Path) -> None:
    single = runner.run("pipeline/digits.py", opts(docs=True, nproc=1), digits_copy)
    assert single.ok, (single.reason, single.log_tail)
    assert single.world_size == 1 and single.steps == 120 and single.resident_data
    ddp = runner.run("pipeline/digits.py", opts(docs=True), digits_copy)
    assert ddp.ok, (ddp.reason, ddp.log_tail)
    assert ddp.world_size == 2 and ddp.backend == "gloo"
    assert ddp.final_val_accuracy is not None and ddp.final_val_accuracy >= 0.9
    assert "ran on CPU: no CUDA device visible" in ddp.device.sentence
    assert all(e.passed for e in ddp.expectations) and len(ddp.expectations) == 2


def _state(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = checkpoint.load(checkpoint.path_for(run_dir / "checkpoints", step, ".pt"))["model"]
    return state


def test_resume_after_sigkill_reaches_the_same_parameters(make_project: ProjectFactory, tmp_path: Path) -> None:
    root = make_project(epochs=3, every=10)
    straight = runner.run("pipeline/tiny.py", opts(run_dir=tmp_path / "straight"), root)
    assert straight.ok and straight.steps == 48
    killed = tmp_path / "killed"
    env = {**os.environ, "TINY_MODE": "slow", "TRAINDOC_DEVICE": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "traindoc.worker", "pipeline/tiny.py", "--run-dir", str(killed)],
        cwd=root,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not checkpoint.path_for(killed / "checkpoints", 20, ".pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "worker ended before its second checkpoint"
        time.sleep(0.02)
    time.sleep(0.12)  # somewhere between checkpoints, possibly mid-write of the next
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    found = checkpoint.newest_valid(killed / "checkpoints")
    assert found is not None and found[1]["step"] >= 20  # the newest checkpoint loads
    for _, path in checkpoint.listed(killed / "checkpoints"):
        checkpoint.load(path)  # none is torn
    resumed = runner.run("pipeline/tiny.py", opts(run_dir=killed, resume=True), root)
    assert resumed.ok, (resumed.reason, resumed.log_tail)
    assert resumed.resumed_from == found[1]["step"] and resumed.steps == 48
    a, b = _state(tmp_path / "straight", 48), _state(killed, 48)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("mode", "nproc", "expected"),
    [
        ("exception", 1, "the training process: RuntimeError: boom in user loss"),
        ("nan", 1, "non-finite loss: loss became nan at step 7"),
        ("oom", 1, "CUDA out of memory at step 2"),
        ("die", 2, "rank 1 died"),
    ],
)
def test_failures_are_one_clear_line_with_the_log_tail(
    make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch, mode: str, nproc: int, expected: str
) -> None:
    root = make_project(nproc=nproc)
    monkeypatch.setenv("TINY_MODE", mode)
    r = runner.run("pipeline/tiny.py", opts(), root)
    assert not r.ok and r.status == "failed"
    assert expected in r.reason, r.reason
    assert r.log_tail, "a failed run shows its log tail"
    if mode == "exception":
        assert any("tinymods.py" in line and "in loss" in line for line in r.log_tail)
        user = r.log_tail[r.log_tail.index("--- traceback (user code)") + 1 :]
        assert any("tinymods.py" in line for line in user)
        assert not any("src/traindoc/" in line for line in user), "the user traceback shows traindoc's frames"
    assert runner.lookup("pipeline/tiny.py", opts(), root) is None  # failed runs are never cached


def test_exception_on_one_rank_names_the_rank(make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(nproc=2)
    monkeypatch.setenv("TINY_MODE", "exception")
    monkeypatch.setenv("TINY_RANK", "1")
    r = runner.run("pipeline/tiny.py", opts(), root)
    assert not r.ok and r.failed_rank == 1 and r.reason.startswith("rank 1: RuntimeError: boom in user loss")


def test_timeout_kills_every_rank_and_reports_progress(
    make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(nproc=2, epochs=50)
    monkeypatch.setenv("TINY_MODE", "slow")
    service.facts_for("pipeline/tiny.py", root=root)  # cached: introspection would count against the budget
    started = time.monotonic()
    r = runner.run("pipeline/tiny.py", opts(timeout_s=6), root)
    assert time.monotonic() - started < 30
    assert r.status == "timeout" and "timed out after 6 s at step" in r.reason
    out = subprocess.run(["pgrep", "-f", r.run_dir], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "", "a rank survived the timeout"


def test_cli_exit_code_for_a_failed_run(make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project()
    monkeypatch.setenv("TINY_MODE", "nan")
    proc = traindoc_cli(root, "run", "pipeline/tiny.py")
    assert proc.returncode == 5 and "FAILED" in proc.stdout and "step 7" in proc.stdout


def test_multi_node_over_loopback(make_project: ProjectFactory) -> None:
    root = make_project(nnodes=2, nproc=1)
    r = runner.run("pipeline/tiny.py", opts(), root)
    assert r.ok, (r.reason, r.log_tail)
    assert r.world_size == 2 and r.nnodes == 2
    assert len(json.loads((Path(r.run_dir) / "launch.json").read_text())) == 2


# --- cache ------------------------------------------------------------------------------------------


def test_cache_hit_miss_and_local_module_invalidation(make_project: ProjectFactory) -> None:
    root = make_project()
    first = runner.run("pipeline/tiny.py", opts(), root)
    assert first.ok and not first.from_cache
    again = runner.run("pipeline/tiny.py", opts(), root)
    assert again.from_cache and again.key == first.key
    (root / "README.md").write_text("unrelated\n")
    assert runner.lookup("pipeline/tiny.py", opts(), root) is not None
    mods = root / "pipeline" / "tinymods.py"
    mods.write_text(mods.read_text() + "\n# a comment changes the content hash\n")
    assert runner.lookup("pipeline/tiny.py", opts(), root) is None  # the locally imported module changed
    third = runner.run("pipeline/tiny.py", opts(), root)
    assert third.ok and not third.from_cache and third.key != first.key


def test_corrupt_cache_entry_is_detected_and_rerun(make_project: ProjectFactory) -> None:
    root = make_project()
    first = runner.run("pipeline/tiny.py", opts(), root)
    entry = Path(first.run_dir) / "entry.json"
    data = json.loads(entry.read_text())
    data["payload"]["final_val_accuracy"] = 1.0  # tampered: digest no longer matches
    entry.write_text(json.dumps(data))
    assert runner.lookup("pipeline/tiny.py", opts(), root) is None
    entry.write_text(entry.read_text()[:100])  # torn
    assert runner.lookup("pipeline/tiny.py", opts(), root) is None
    rerun = runner.run("pipeline/tiny.py", opts(), root)
    assert rerun.ok and not rerun.from_cache


def test_cache_hit_decision_does_not_import_torch(make_project: ProjectFactory) -> None:
    root = make_project()
    assert runner.run("pipeline/tiny.py", opts(), root).ok
    code = (
        "import sys, time\n"
        "from traindoc.run import runner\n"
        "t = time.perf_counter()\n"
        "hit = runner.lookup('pipeline/tiny.py', runner.RunOptions(progress=False))\n"
        "assert hit is not None and hit.ok\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(time.perf_counter() - t)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_two_concurrent_runs_share_one_cache(make_project: ProjectFactory) -> None:
    root = make_project()
    cmd = [sys.executable, "-m", "traindoc", "run", "pipeline/tiny.py"]
    procs = [
        subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum("(from cache)" in o for o, _ in outs) == 1  # one trained, the other waited and reused it
    assert len(list((root / ".cache" / "traindoc" / "runs").iterdir())) == 1


def test_example_pipeline_files_are_in_the_key() -> None:
    from traindoc.cache import local_sources

    names = {p.name for p in local_sources(REPO / "pipeline" / "digits.py", REPO)}
    assert names == {"digits.py", "se_cnn.py", "digits_data.py"}


def test_progress_bar_on_a_terminal_and_plain_lines_without(make_project: ProjectFactory) -> None:
    import pty

    root = make_project(epochs=20)
    cmd = [sys.executable, "-m", "traindoc", "run", "pipeline/tiny.py", "--force"]
    out = bytearray()

    def read(fd: int) -> bytes:
        data = os.read(fd, 4096)
        out.extend(data)
        return data

    cwd = os.getcwd()
    os.chdir(root)
    try:
        status = pty.spawn(cmd, read)
    finally:
        os.chdir(cwd)
    text = out.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "train tiny" in text and "━" in text, "no rich progress bar on a terminal"
    plain = subprocess.run([*cmd[:-1], "--force"], cwd=root, capture_output=True, text=True, check=False)
    assert "[traindoc] tiny: step" in plain.stderr and "━" not in plain.stderr

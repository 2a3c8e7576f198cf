"""Checkpoints are data: checksummed, loaded with weights_only=True, skipped and reported when bad,
and retention never deletes what it has just written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import TINY_PIPELINE, ProjectFactory, free_port, traindoc_cli
from traindoc.render.content import run_summary
from traindoc.run import runner
from traindoc.run.runner import RunOptions
from traindoc.train import checkpoint


class Planted:
    """Unpickling this calls ``open(marker, "w")``: code running from a data file, made visible."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def plant(folder: Path, step: int, marker: Path, *, with_sidecar: bool) -> Path:
    """A torch checkpoint whose pickle runs code on a plain ``torch.load`` — and, optionally, a sidecar
    with its correct checksum (an attacker who can write the folder can write that too)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint.path_for(folder, step, ".pt")
    torch.save({"model": Planted(marker), "step": step}, path)
    if with_sidecar:
        import hashlib

        data = path.read_bytes()
        record = {"format": checkpoint.FORMAT, "file": path.name, "step": step}
        record |= {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        checkpoint.sidecar(path).write_text(json.dumps(record))
    return path


def tiny_state(step: int) -> dict[str, Any]:
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "rng": checkpoint.rng_state()}


def test_a_crafted_pickle_never_runs(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    checkpoint.save(folder, 10, ".pt", tiny_state(10), keep_last=3)
    marker = tmp_path / "PWNED"
    plant(folder, 20, marker, with_sidecar=False)
    plant(folder, 30, marker, with_sidecar=True)
    found, note = checkpoint.resume_point(folder)
    assert not marker.exists(), "loading a checkpoint ran code from it"
    assert found.path is not None and found.path.name == "step_00000010.pt" and note is None
    reasons = {s.path: s.reason for s in found.skipped}
    assert reasons.keys() == {"step_00000030.pt", "step_00000020.pt"}
    assert reasons["step_00000030.pt"].startswith("not loadable as plain data (weights_only)")
    assert reasons["step_00000020.pt"].startswith("no checksum file")
    torch.load(checkpoint.path_for(folder, 30, ".pt"), weights_only=False)  # the control: the attack is real
    assert marker.exists()


def test_damaged_checkpoints_are_skipped_with_the_reason(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        checkpoint.save(folder, step, ".pt", tiny_state(step), keep_last=5)
    p30, p20 = checkpoint.path_for(folder, 30, ".pt"), checkpoint.path_for(folder, 20, ".pt")
    p30.write_bytes(p30.read_bytes()[:-100])  # truncated
    data = bytearray(p20.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit
    p20.write_bytes(bytes(data))
    found = checkpoint.find(folder)
    assert found.path == checkpoint.path_for(folder, 10, ".pt") and found.state is not None
    assert [s.path for s in found.skipped] == ["step_00000030.pt", "step_00000020.pt"]
    assert all("checksum mismatch" in s.reason for s in found.skipped)


def test_retention_keeps_what_it_wrote_beside_damaged_higher_numbered_ones(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "step_00000900.pt").write_bytes(b"garbage")  # damaged, no sidecar
    plant(folder, 999, tmp_path / "PWNED", with_sidecar=True)  # vouched for by a forged sidecar
    written = [checkpoint.save(folder, s, ".pt", tiny_state(s), keep_last=2) for s in (50, 60, 70)]
    names = sorted(p.name for _, p in checkpoint.listed(folder))
    assert names == ["step_00000060.pt", "step_00000070.pt", "step_00000900.pt", "step_00000999.pt"]
    assert all(checkpoint.sidecar(p).exists() for p in written[1:]) and not checkpoint.sidecar(written[0]).exists()
    assert checkpoint.find(folder).path == written[-1]


def test_stale_temporary_files_are_cleaned(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = [folder / ".step_00000040.pt.1a2b3c4d.tmp", folder / ".step_00000040.pt.sha256.json.99887766.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    mine = folder / "notes.tmp"
    mine.write_text("not a traindoc temp file\n")
    found, note = checkpoint.resume_point(folder)
    assert found.path is None and note is not None and "started from step 0" in note
    assert not any(p.exists() for p in stale) and mine.exists()


def test_rng_and_optimizer_state_load_as_plain_data(tmp_path: Path) -> None:
    import random

    import numpy as np

    np.random.seed(3)
    random.seed(4)
    torch.manual_seed(5)
    state = tiny_state(7)
    path = checkpoint.save(tmp_path, 7, ".pt", state, keep_last=1)
    expect = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    checkpoint.set_rng_state(checkpoint.load(path)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expect
    loaded = checkpoint.load(path)
    opt = torch.optim.AdamW(torch.nn.Linear(4, 2).parameters())
    opt.load_state_dict(loaded["optimizer"])


def test_the_checksum_is_of_the_bytes_on_disk_for_the_example_model(tmp_path: Path) -> None:
    """The SHA-256 is computed while torch writes (no second read); it must match the file exactly."""
    import hashlib
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "pipeline"))
    import digits  # type: ignore[import-not-found]

    model = digits.model()
    opt = digits.optimizer(model.parameters())
    sched = digits.schedule(opt)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    opt.step()
    sched.step()
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "step": 1,
        "rng": checkpoint.rng_state(),
    }
    path = checkpoint.save(tmp_path, 1, ".pt", state, keep_last=1)
    record = json.loads(checkpoint.sidecar(path).read_text())
    data = path.read_bytes()
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["bytes"] == len(data) > 100_000
    loaded = checkpoint.load(path)
    assert loaded["scheduler"]["T_max"] == 400 and all(
        torch.equal(loaded["model"][k], v) for k, v in model.state_dict().items()
    )


# --- through the runner --------------------------------------------------------------------------------


def opts(**kw: Any) -> RunOptions:
    return RunOptions(progress=False, **kw)


@pytest.mark.slow
def test_resume_skips_planted_and_damaged_checkpoints_and_reports_them(
    make_project: ProjectFactory, tmp_path: Path
) -> None:
    root = make_project(epochs=3)
    out = tmp_path / "run"
    first = runner.run("pipeline/tiny.py", opts(run_dir=out, max_steps=20), root)
    assert first.ok and first.steps == 20, (first.reason, first.log_tail)
    ckdir = out / "checkpoints"
    marker = tmp_path / "PWNED"
    plant(ckdir, 999, marker, with_sidecar=True)
    torn = checkpoint.path_for(ckdir, 900, ".pt")
    torn.write_bytes(checkpoint.path_for(ckdir, 20, ".pt").read_bytes()[:500])
    checkpoint.sidecar(torn).write_text(checkpoint.sidecar(checkpoint.path_for(ckdir, 20, ".pt")).read_text())
    stale = ckdir / ".step_00000030.pt.deadbeef.tmp"
    stale.write_bytes(b"interrupted")
    resumed = runner.run("pipeline/tiny.py", opts(run_dir=out, resume=True), root)
    assert not marker.exists()
    assert resumed.ok and resumed.resumed_from == 20 and resumed.steps == 48, (resumed.reason, resumed.log_tail)
    skipped = {c.path: c.reason for c in resumed.checkpoints_skipped}
    assert skipped.keys() == {"step_00000999.pt", "step_00000900.pt"}
    assert "weights_only" in skipped["step_00000999.pt"] and "file is not traindoc's" in skipped["step_00000900.pt"]
    assert not stale.exists()
    kept = [p.name for _, p in checkpoint.listed(ckdir)]
    assert kept == ["step_00000040.pt", "step_00000048.pt", "step_00000900.pt", "step_00000999.pt"]
    assert resumed.checkpoint_verified is True
    saved = json.loads((out / "results.json").read_text())
    assert {c["path"] for c in saved["checkpoints_skipped"]} == set(skipped)
    from traindoc.facts import service
    from traindoc.render import content

    page = content.block("run", service.facts_for("pipeline/tiny.py", root=root, in_process=True), result=resumed)
    from traindoc.render.escape import md_cell

    reason = md_cell("not loadable as plain data (weights_only)")  # as Markdown writes it: escaped, same text
    assert f"| checkpoints skipped | `step_00000999.pt`: {reason}" in page
    assert "skipped      step_00000900.pt: checksum file is not traindoc's" in run_summary(resumed)


@pytest.mark.slow
def test_resume_with_no_valid_checkpoint_starts_at_step_0_and_says_so(
    make_project: ProjectFactory, tmp_path: Path
) -> None:
    root = make_project()
    out = root / "runs" / "a"
    first = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/a", "--max-steps", "10")
    assert first.returncode in (0, 5) and len(checkpoint.listed(out / "checkpoints")) == 1, first.stderr
    for _, p in checkpoint.listed(out / "checkpoints"):
        p.write_bytes(p.read_bytes()[:-1])  # every checkpoint damaged
    proc = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/a", "--resume", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["resumed_from"] is None and r["steps"] == 32
    assert r["resume_note"] == "no valid checkpoint in checkpoints/ (1 skipped as invalid); started from step 0"
    assert [c["path"] for c in r["checkpoints_skipped"]] == ["step_00000010.pt"]
    text = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/b", "--resume")
    assert "resume       no valid checkpoint in checkpoints/ (none written yet); started from step 0" in text.stdout


@pytest.mark.slow
def test_resume_of_a_finished_run_reports_that_run(make_project: ProjectFactory) -> None:
    root = make_project()
    first = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/a", "--json")
    assert first.returncode == 0, first.stderr
    log = root / "runs" / "a" / "steps.jsonl"
    before = log.read_bytes()
    again = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/a", "--resume", "--json")
    assert again.returncode == 0, again.stderr
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert b["status"] == "passed" and b["steps"] == a["steps"] == 32
    assert b["reason"].startswith("this run had already finished at step 32; nothing to resume.")
    assert b["final_val_accuracy"] == a["final_val_accuracy"] and log.read_bytes() == before


@pytest.mark.slow
def test_spec_resume_true_resumes(make_project: ProjectFactory) -> None:
    body = TINY_PIPELINE.format(epochs=2, docs_steps=20, every=10, nproc=1, nnodes=1, port=free_port(), min_acc=0.5)
    body = body.replace('"keep_last": 2}', '"keep_last": 2, "resume": True}')
    assert '"resume": True' in body
    root = make_project(body=body)
    first = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/a", "--max-steps", "20", "--json")
    assert first.returncode == 0, first.stderr
    second = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/a", "--json")
    assert second.returncode == 0, second.stderr
    r = json.loads(second.stdout)
    assert r["resumed_from"] == 20 and r["steps"] == 32 and r["resume_note"] is None
    names = [p.name for _, p in checkpoint.listed(root / "runs" / "a" / "checkpoints")]
    assert names == ["step_00000030.pt", "step_00000032.pt"]
    forced = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/a", "--json", "--force")
    assert json.loads(forced.stdout)["resumed_from"] is None  # --force starts over

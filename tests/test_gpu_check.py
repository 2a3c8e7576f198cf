"""The prepared GPU check (``bench/gpu_check.py``): its CPU dry run end to end, and its pure parts.

The dry run is the same script ``make gpu-check`` runs on a CUDA card, with tiny settings: the CUDA
tests must all skip (none fail), the docs must build with the run on the CPU and say so on the run
page, and the throughput harness must run two interleaved rounds of every loop it has on the CPU.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO, ProjectFactory

sys.path.insert(0, str(REPO / "bench"))

import gpu_bench
import gpu_section

CUDA_TESTS = REPO / "tests" / "test_cuda.py"


def _cuda_test_names() -> set[str]:
    return set(re.findall(r"^def (test_\w+)\(", CUDA_TESTS.read_text(), re.M))


@pytest.mark.slow
@pytest.mark.timeout(1500)  # about a minute on an idle 2-core machine; far more on a shared one
def test_dry_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--dry-run", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1400,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert_dry_run(out, done.stdout)


def assert_dry_run(out: Path, stdout: str) -> None:
    assert sorted(p.name for p in out.iterdir()) == [
        "benchmarks.md",
        "cuda-tests.xml",
        "gpu-check.json",
        "gpu-check.md",
    ]
    r: dict[str, Any] = json.loads((out / "gpu-check.json").read_text())
    assert r["dry_run"] is True and r["ok"] is True
    assert {c["name"] for c in r["checks"]} == {
        "packages",
        "device",
        "cuda tests",
        "docs build names the device",
        "throughput",
    }
    assert all(c["ok"] for c in r["checks"]), r["checks"]

    # every cuda test was collected and skipped for the stated reason; none failed
    tests = r["cuda_tests"]["tests"]
    assert {t["name"] for t in tests} == _cuda_test_names()
    assert {t["outcome"] for t in tests} == {"skipped"}
    assert all(re.match(r"needs (a|2) CUDA GPUs?\b", t["message"]) for t in tests), tests

    # the docs build ran the example on the CPU and the run page's device row says so
    page = r["docs"]["run_page"]
    assert page["found"] and "on CPU" in page["device_row"], page
    c = r["cold_start"]
    cold = c["cold_builds"][0]
    assert 0 < cold["launch_plan_s"] <= cold["first_step_s"] <= cold["first_window_s"] <= cold["total_s"]
    plain = c["train_py"][0]
    assert 0 < plain["import_torch_s"] < plain["first_step_s"] <= plain["first_window_s"] <= plain["total_s"]
    assert c["warm_build"]["total_s"] > 0 and c["docs_steps"] == r["docs_steps"] > 0

    # two interleaved rounds of every CPU loop (no compile knob without CUDA), ratios from the rounds
    t = r["throughput"]
    names = [v["name"] for v in t["variants"]]
    assert names == ["plain", "resident", "resident_item", "resident_fused", "runner"]
    assert t["settings"]["rounds"] == 2 and not t["errors"]
    for row in t["rounds"]:
        assert set(row) == set(names)
        assert all(row[n]["median_step_sps"] > 0 and row[n]["wall_sps"] > 0 for n in names), row
    assert t["rounds"][0]["runner"]["resident_data"] is True
    per_round = sorted(x["runner"]["median_step_sps"] / x["plain"]["median_step_sps"] for x in t["rounds"])
    assert t["ratios"]["runner"]["median_step_sps"]["min"] == pytest.approx(per_round[0])
    assert t["ratios"]["runner"]["median_step_sps"]["max"] == pytest.approx(per_round[-1])

    # the reports: the section says it is a dry run, the spliced document keeps everything else
    md = (out / "gpu-check.md").read_text()
    assert "PASSED" in md and "a dry run on the CPU: these are not GPU figures" in md
    assert "n/a on the CPU" in md and "MISSED" not in md and "met)" not in md
    doc = (REPO / "docs" / "benchmarks.md").read_text()
    spliced = (out / "benchmarks.md").read_text()
    assert spliced.split(gpu_section.BEGIN)[0] == doc.split(gpu_section.BEGIN)[0]
    assert spliced.split(gpu_section.END)[1] == doc.split(gpu_section.END)[1]
    assert gpu_section.extract(spliced) == gpu_section.render(r)
    assert "PASSED" in stdout and str(out / "gpu-check.json") in stdout


# --- the pure parts --------------------------------------------------------------------------------------


def test_committed_gpu_section_is_what_the_renderer_writes() -> None:
    """docs/benchmarks.md holds the rendered section (never hand-edited, never a dry run's figures)."""
    block = gpu_section.extract((REPO / "docs" / "benchmarks.md").read_text())
    assert block is not None
    assert "dry run" not in block
    if "Not measured yet" in block:
        assert block == gpu_section.render(None)
    else:
        assert block.startswith("## GPU check") and "Measured by `make gpu-check`" in block


def test_dry_run_results_are_refused_for_the_docs(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# B\n\n{gpu_section.BEGIN}\nold\n{gpu_section.END}\ntail\n")
    with pytest.raises(ValueError, match="dry run"):
        gpu_section.write_doc({"dry_run": True}, doc)
    assert "old" in doc.read_text()
    with pytest.raises(ValueError, match="gpu-check:begin"):
        gpu_section.splice("# no block\n", "x\n")


@given(st.text(min_size=1, max_size=40), st.text(max_size=40))
def test_splice_replaces_only_the_block(head: str, tail: str) -> None:
    head, tail = head.replace("<!--", ""), tail.replace("<!--", "")
    doc = f"{head}\n{gpu_section.BEGIN}\nold\n{gpu_section.END}{tail}"
    body = gpu_section.render(None)
    once = gpu_section.splice(doc, body)
    assert once.startswith(head) and once.endswith(gpu_section.END + tail)
    assert gpu_section.extract(once) == body
    assert gpu_section.splice(once, body) == once  # idempotent


@given(st.text(max_size=60))
def test_card_names_cannot_break_a_table_row(name: str) -> None:
    cell = gpu_section.md(name)
    assert "\n" not in cell and "<" not in cell and ">" not in cell
    assert re.search(r"(?<!\\)\|", cell) is None  # every pipe escaped


def _rounds(values: dict[str, list[float | None]]) -> list[dict[str, dict[str, Any]]]:
    n = len(next(iter(values.values())))
    return [
        {k: {"median_step_sps": v[i], "wall_sps": v[i]} for k, v in values.items() if v[i] is not None}
        for i in range(n)
    ]


def test_summarise_takes_medians_and_per_round_ratios_and_skips_missing_figures() -> None:
    rounds = _rounds({"plain": [100.0, 200.0, 150.0], "runner": [150.0, 260.0, None]})
    s = gpu_bench.summarise(rounds, ["plain", "runner"])
    assert s["loops"]["plain"]["median_step_sps"]["median"] == 150.0
    assert s["loops"]["runner"]["median_step_sps"] == {"median": 205.0, "min": 150.0, "max": 260.0, "spread": 110 / 205}
    q = s["ratios"]["runner"]["median_step_sps"]
    assert (q["min"], q["max"]) == (1.3, 1.5)  # per round: 150/100, 260/200; round 3 has no runner figure
    empty = gpu_bench.summarise(_rounds({"plain": [None], "runner": [None]}), ["plain", "runner"])
    assert empty["loops"]["plain"]["median_step_sps"]["median"] is None
    assert empty["ratios"]["runner"]["wall_sps"]["median"] is None


def test_a_missing_figure_renders_as_na_never_zero() -> None:
    rounds = _rounds({"plain": [None, None], "runner": [None, None]})
    results = {
        "dry_run": False,
        "command": "make gpu-check",
        "started_at": "2026-11-27 15:00 UTC",
        "machine": {"gpu": {"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 80 << 30}, "driver": None, "python": "3.12.3",
                    "torch": "2.11.0+cu130", "cuda": "13.0", "cudnn": None, "nccl": None, "cpu": "16 cores"},
        "cuda_tests": {"tests": [{"name": "test_x", "outcome": "failed", "message": "a | b"}]},
        "docs": {"run_page": None},
        "batch": 64,
        "log_every": 10,
        "throughput": {"settings": {"device": "cuda", "rounds": 2, "rounds_asked": 5, "steps": 400, "warmup": 40},
                       "variants": [{"name": "plain", "label": "plain"}, {"name": "runner", "label": "runner"}],
                       "errors": ["round 1, runner: exited 1"], **gpu_bench.summarise(rounds, ["plain", "runner"])},
        "cold_start": None,
    }  # fmt: skip
    text = gpu_section.render(results)
    runner_row = next(line for line in text.splitlines() if line.startswith("| runner |"))
    assert runner_row.count("n/a") == 6 and " 0 " not in runner_row
    assert "n/a (not measured)" in text and "`test_x` | failed: a \\| b" in text
    assert "NVIDIA H100 80GB HBM3, 80 GiB" in text and "failed: round 1, runner: exited 1" in text


def test_runner_wall_rate_counts_samples_over_step_time_after_warmup(tmp_path: Path) -> None:
    log = tmp_path / "steps.jsonl"
    rows = [{"step": 1, "samples_per_s": 10.0, "step_s": 9.0}, {"step": 2, "samples_per_s": 64.0, "step_s": 1.0},
            {"event": "val", "step": 2, "accuracy": 0.5}, {"step": 3, "samples_per_s": 32.0, "step_s": 2.0},
            {"step": 4, "samples_per_s": None, "step_s": 0.0}]  # fmt: skip
    log.write_text("\n".join(json.dumps(x) for x in rows) + "\n")
    assert gpu_bench.runner_rates(log, warmup=1) == pytest.approx((64 + 64) / 3.0)
    assert gpu_bench.runner_rates(log, warmup=4) is None


@pytest.mark.parametrize("amp", [None, "bf16"])
def test_the_cuda_tests_pipeline_is_a_valid_spec(make_project: ProjectFactory, amp: str | None) -> None:
    """The CUDA tests' pipeline cannot rot between GPU sessions: it loads and validates here."""
    import test_cuda
    from traindoc.spec.loader import load

    root = test_cuda.cuda_project(make_project, amp=amp)
    spec, _ = load(str(root / "pipeline" / "tiny.py"))
    assert spec.devices == "cuda" and spec.optim.amp == amp and spec.data.batch_size == 32


def test_wheels_for_the_gpu_machine_match_the_tested_pins() -> None:
    """Every wheel carried to the GPU machine is the version this project's own venv tests with."""

    def pins(path: Path) -> dict[str, str]:
        out = {}
        for line in path.read_text().splitlines():
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip())
            if m:
                out[m.group(1).lower().replace("_", "-")] = m.group(2)
        return out

    carried, dev = pins(REPO / "bench" / "gpu-wheels.txt"), pins(REPO / "requirements-dev.txt")
    assert {"pydantic", "mkdocs", "mkdocs-material", "pymdown-extensions"} <= set(carried)
    assert {k: v for k, v in carried.items() if k in dev} == {k: dev[k] for k in carried if k in dev}
    assert "/.whl/" in (REPO / ".gitignore").read_text().splitlines()


def test_the_gpu_machine_script_refuses_to_run_without_its_wheels(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    script = tmp_path / "bench" / "gpu-check.sh"
    script.write_text((REPO / "bench" / "gpu-check.sh").read_text())
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 2 and "make gpu-wheels" in done.stderr

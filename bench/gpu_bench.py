"""The measuring half of ``bench/gpu_check.py``: throughput rounds, the docs build and cold start.

Every loop runs in a fresh process; loops are interleaved round by round (the order rotates each
round) so drift on the machine hits all of them alike; figures are medians over rounds, and the
noise is stated as each loop's min–max spread and each ratio's range over rounds.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
LOOPS = REPO / "bench" / "gpu_loops.py"
DEVICE_ROW = re.compile(r"<td[^>]*>\s*device\s*</td>\s*<td[^>]*>(.*?)</td>", re.S)
PROJECT_FILES = ("docs", "pipeline", "templates", "mkdocs.yml", "pyproject.toml", "CHANGELOG.md", "README.md")


class BenchError(RuntimeError):
    """A measurement could not be taken (the child's own words are in the message)."""


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    argv: list[str] = field(default_factory=list)  # gpu_loops.py arguments; empty for the runner

    @property
    def is_runner(self) -> bool:
        return not self.argv


def variants(cuda: bool) -> list[Variant]:
    """The loops compared: the two hand-written references, the knobs on the resident loop, the runner."""
    out = [
        Variant("plain", "hand-written, plain `DataLoader`, `.item()` every step", ["plain"]),
        Variant("resident", "hand-written, data resident, loss read every 10 steps", ["resident"]),
        Variant("resident_item", "resident + `.item()` every step (one host sync per step)", ["resident", "--item"]),
        Variant("resident_fused", "resident + fused AdamW", ["resident", "--fused"]),
    ]
    if cuda:
        out.append(
            Variant(
                "resident_compiled",
                'resident + fused AdamW + `torch.compile(mode="reduce-overhead")`',
                ["resident", "--fused", "--compile"],
            )
        )
    out.append(Variant("runner", "`traindoc run` (child process, full recording)"))
    return out


def _child(argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(argv[:4])} … timed out after {timeout:g} s") from exc
    if done.returncode not in (0, 5):  # 5 = a traindoc run that finished with unmet expectations
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        raise BenchError(f"{' '.join(argv[:5])} … exited {done.returncode}:\n{tail}")
    return done.stdout


def run_hand(v: Variant, device: str, steps: int, warmup: int, timeout: float = 300) -> dict[str, Any]:
    out = _child([PY, str(LOOPS), *v.argv, "--device", device, "--steps", str(steps), "--warmup", str(warmup)],
                 REPO, timeout)  # fmt: skip
    rec: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return rec


def runner_rates(steps_jsonl: Path, warmup: int) -> float | None:
    """Samples/s over the post-warm-up steps by wall time: Σ samples / Σ step time (syncs, evaluation
    and checkpoints included, since each lands in the next step's interval)."""
    samples = seconds = 0.0
    for line in steps_jsonl.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "event" in rec or rec.get("step", 0) <= warmup or not rec.get("samples_per_s") or not rec.get("step_s"):
            continue
        samples += rec["samples_per_s"] * rec["step_s"]
        seconds += rec["step_s"]
    return samples / seconds if seconds > 0 else None


def run_runner(workdir: Path, steps: int, warmup: int, tag: str, timeout: float = 300) -> dict[str, Any]:
    run_dir = workdir / f"runner-{tag}"  # must not exist: the runner owns and may clear its run folder
    out = _child([PY, "-m", "traindoc", "run", "pipeline/digits.py", "--nproc", "1", "--max-steps",
                  str(steps + warmup), "--out", str(run_dir), "--json"], REPO, timeout)  # fmt: skip
    r = json.loads(out)
    return {
        "loop": "runner",
        "status": r["status"],
        "device": r["device"]["sentence"],
        "resident_data": r["resident_data"],
        "steps": r["steps"],
        "median_step_sps": r["samples_per_s"],
        "wall_sps": runner_rates(run_dir / "steps.jsonl", warmup),
    }


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None, "spread": None}
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "spread": (max(values) - min(values)) / med}


def summarise(rounds: list[dict[str, dict[str, Any]]], names: list[str]) -> dict[str, Any]:
    """Medians per loop and metric, and each loop's ratio to the plain loop (per round, then median)."""
    loops: dict[str, Any] = {}
    for name in names:
        loops[name] = {
            metric: _stats([r[name][metric] for r in rounds if name in r and r[name].get(metric)])
            for metric in ("median_step_sps", "wall_sps")
        }
    ratios: dict[str, Any] = {}
    for name in names:
        if name == "plain":
            continue
        ratios[name] = {
            metric: _stats(
                [
                    r[name][metric] / r["plain"][metric]
                    for r in rounds
                    if name in r and "plain" in r and r[name].get(metric) and r["plain"].get(metric)
                ]
            )
            for metric in ("median_step_sps", "wall_sps")
        }
    return {"loops": loops, "ratios": ratios}


def throughput(
    workdir: Path,
    *,
    cuda: bool,
    rounds: int,
    steps: int,
    warmup: int,
    deadline: float,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Interleaved rounds of every variant; stops starting rounds when the next would pass ``deadline``."""
    vs = variants(cuda)
    device = "cuda" if cuda else "cpu"
    done: list[dict[str, dict[str, Any]]] = []
    errors: list[str] = []
    round_s: list[float] = []
    for r in range(rounds):
        if done and time.monotonic() + statistics.median(round_s) > deadline:
            log(f"  stopping after {len(done)} round(s): the next would pass the time budget")
            break
        t0 = time.monotonic()
        order = vs[r % len(vs) :] + vs[: r % len(vs)]
        row: dict[str, dict[str, Any]] = {}
        for v in order:
            limit = max(60.0, min(300.0, deadline + 60.0 - time.monotonic()))  # a hung child cannot eat the lease
            try:
                row[v.name] = (
                    run_runner(workdir, steps, warmup, f"{r}", limit)
                    if v.is_runner
                    else run_hand(v, device, steps, warmup, limit)
                )
            except BenchError as exc:
                errors.append(f"round {r + 1}, {v.name}: {exc}")
                log(f"  {v.name}: FAILED ({str(exc).splitlines()[0]})")
                continue
            log(f"  round {r + 1} {v.name:<18} {row[v.name]['median_step_sps'] or 0:>10,.0f} samples/s (median step)")
        done.append(row)
        round_s.append(time.monotonic() - t0)
    return {
        "settings": {"device": device, "rounds_asked": rounds, "rounds": len(done), "steps": steps, "warmup": warmup},
        "variants": [{"name": v.name, "label": v.label, "argv": v.argv} for v in vs],
        "rounds": done,
        "errors": errors,
        **summarise(done, [v.name for v in vs]),
    }


# --- the docs build on the device, and cold start ------------------------------------------------------


def copy_project(dest: Path, nproc: int | None) -> Path:
    """A copy of this repository's docs project with an empty traindoc cache (so the run executes)."""
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy(src, dest / name)
    # Cold start measures the example's own run: pages that train other pipelines (the language model,
    # the comparison's six runs) would only add their time to every round.
    for page in ("charlm.md", "why-se.md"):
        (dest / "docs" / page).unlink(missing_ok=True)
    cfg = (dest / "mkdocs.yml").read_text(encoding="utf-8")
    cfg = "".join(
        line for line in cfg.splitlines(keepends=True) if not line.rstrip().endswith(("charlm.md", "why-se.md"))
    )
    (dest / "mkdocs.yml").write_text(cfg, encoding="utf-8")
    if nproc is not None:
        cfg = (dest / "mkdocs.yml").read_text(encoding="utf-8")
        anchor = "  - traindoc:\n"
        if anchor not in cfg:
            raise BenchError("mkdocs.yml has no '  - traindoc:' plugin entry to set nproc on")
        (dest / "mkdocs.yml").write_text(cfg.replace(anchor, f"{anchor}      nproc: {nproc}\n", 1), encoding="utf-8")
    return dest


def _first(root: Path, pattern: str, nonempty: bool = False) -> bool:
    return any(p.stat().st_size > 0 if nonempty else True for p in root.glob(pattern))


def mkdocs_build(project: Path, timeout: float = 400) -> dict[str, Any]:
    """``mkdocs build`` in a fresh process, watching the run folder appear: seconds from launch to the
    runner's launch plan (facts done), to the worker's step log (set-up done, first step next), to its
    first flushed window (``log_every`` steps), and to the end of the build."""
    # The copy has no .cache/mermaid of its own: it uses the repository's pinned build (as `make docs` does).
    from traindoc.export.assets import mermaid_dir

    mermaid = str(mermaid_dir(root=REPO))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "TRAINDOC_MERMAID_DIR": mermaid}
    cache = project / ".cache" / "traindoc"
    marks: dict[str, float | None] = {"launch_plan_s": None, "first_step_s": None, "first_window_s": None}
    probes = {
        "launch_plan_s": ("**/launch.json", False),
        "first_step_s": ("**/steps.jsonl", False),
        "first_window_s": ("**/steps.jsonl", True),
    }
    t0 = time.monotonic()
    proc = subprocess.Popen([PY, "-m", "mkdocs", "build", "-q", "-d", "site"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        while proc.poll() is None:
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"mkdocs build timed out after {timeout:g} s")
            for key, (pattern, nonempty) in probes.items():
                if marks[key] is None and cache.is_dir() and _first(cache, pattern, nonempty):
                    marks[key] = time.monotonic() - t0
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    total = time.monotonic() - t0
    if proc.returncode != 0:
        raise BenchError(f"mkdocs build exited {proc.returncode}:\n" + "\n".join(output.splitlines()[-20:]))
    return {"total_s": total, **marks}


def run_page_names(project: Path, expected: str) -> dict[str, Any]:
    """Whether the run report's device row on the built run page names the device the run used."""
    page = project / "site" / "run" / "index.html"
    text = page.read_text(encoding="utf-8") if page.is_file() else ""
    m = DEVICE_ROW.search(text)
    cell = html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip() if m else None
    return {
        "page": "site/run/index.html",
        "expected": expected,
        "device_row": cell,
        "found": bool(cell and expected in cell),
    }


def train_py(device: str, steps: int) -> dict[str, Any]:
    """The same steps as a hand-written ``python train.py`` (the plain loop), timed from launch."""
    t0 = time.time()
    rec = run_hand(Variant("plain", "", ["plain"]), device, steps, 0)
    return {
        "total_s": time.time() - t0,
        "import_torch_s": rec["t_imported"] - t0,
        "first_step_s": rec["t_first_step"] - t0 if rec.get("t_first_step") else None,
        "first_window_s": rec["t_first_window"] - t0 if rec.get("t_first_window") else None,
    }


def docs_and_cold_start(
    workdir: Path, *, device: str, expected: str, nproc: int | None, rounds: int, docs_steps: int
) -> dict[str, Any]:
    """Cold builds (empty cache) interleaved with ``python train.py``; one warm rebuild; the run page check."""
    cold, plain = [], []
    project = workdir
    for r in range(rounds):
        project = copy_project(workdir / f"site-{r}", nproc)
        cold.append(mkdocs_build(project))
        plain.append(train_py(device, docs_steps))
    warm = mkdocs_build(project)
    names = run_page_names(project, expected)

    def med(rows: list[dict[str, Any]], key: str) -> float | None:
        vals = [x[key] for x in rows if x.get(key) is not None]
        return statistics.median(vals) if vals else None

    keys = ("total_s", "launch_plan_s", "first_step_s", "first_window_s", "import_torch_s")
    return {
        "rounds": rounds,
        "nproc": nproc,
        "docs_steps": docs_steps,
        "cold_builds": cold,
        "train_py": plain,
        "warm_build": warm,
        "cold": {k: med(cold, k) for k in keys},
        "plain": {k: med(plain, k) for k in keys},
        "run_page": names,
    }

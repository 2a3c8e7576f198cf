"""One prepared GPU check (``make gpu-check``): CUDA tests for real, the docs built with the run on the
card, throughput against hand-written loops and cold start — all into one results file.

    python bench/gpu_check.py [--out DIR]     # on a CUDA machine: under 8 minutes on one H100/H200
    python bench/gpu_check.py --dry-run       # the same script on the CPU with tiny settings

Writes ``gpu-check.json`` (everything), ``gpu-check.md`` (the summary and the rendered GPU section),
``benchmarks.md`` (``docs/benchmarks.md`` with that section spliced in) and ``cuda-tests.xml`` under
``--out`` (default ``$OUT``, else ``out/gpu-check``), rewriting the JSON after every phase so a run
cut short still returns what it measured. Each phase's failure is recorded and the next phase runs;
the exit code is 0 only when every check passed. This process never imports torch: the facts come
from a child, so no CUDA context of its own sits on the card while the measurements run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_bench
import gpu_section

REPO = gpu_bench.REPO
PY = sys.executable
CARRIED = ("pydantic", "mkdocs", "mkdocs-material", "pymdown-extensions", "jinja2", "markdown")

FACTS = r"""
import importlib.metadata as md, json, os, platform, re, sys
sys.path.insert(0, 'pipeline')
import torch
from digits import pipeline as spec

def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None

def unmet(name):
    from packaging.requirements import Requirement
    out = []
    for text in md.requires(name) or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({'extra': ''}):
            continue
        have = version(req.name)
        if have is None or (req.specifier and not req.specifier.contains(have, prereleases=True)):
            out.append(f'{name} needs {req}, found {have or "nothing"}')
    return out

cuda = torch.cuda.is_available()
gpu = None
if cuda:
    p = torch.cuda.get_device_properties(0)
    gpu = {'name': torch.cuda.get_device_name(0), 'memory_bytes': p.total_memory, 'count': torch.cuda.device_count(),
           'capability': f'{p.major}.{p.minor}', 'multiprocessors': p.multi_processor_count}
driver = None
try:
    m = re.search(r'Kernel Module(?: for \w+)?\s+([\d.]+)', open('/proc/driver/nvidia/version').read())
    driver = m.group(1) if m else None
except OSError:
    pass
cpu = 'unknown CPU'
try:
    cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
except (OSError, StopIteration):
    pass
nccl = None
if cuda and hasattr(torch.cuda, 'nccl'):
    try:
        v = torch.cuda.nccl.version()
        nccl = '.'.join(map(str, v)) if isinstance(v, tuple) else str(v)
    except Exception:
        pass
names = %(names)r
print(json.dumps({
    'python': platform.python_version(), 'torch': torch.__version__, 'cuda': torch.version.cuda if cuda else None,
    'cudnn': str(torch.backends.cudnn.version()) if cuda else None, 'nccl': nccl, 'gpu': gpu, 'driver': driver,
    'cpu': f'{os.cpu_count()} cores ({cpu})', 'packages': {n: version(n) for n in names},
    'unmet': [u for n in names if version(n) for u in unmet(n)],
    'bf16': bool(cuda and torch.cuda.is_bf16_supported()),
    'batch': spec.data.batch_size, 'log_every': spec.training.log_every,
    'docs_steps': spec.training.docs_run.max_steps, 'spec_nproc': spec.distributed.nproc_per_node,
}))
"""


class Check:
    """Collects pass/fail lines; a phase that raises becomes one failed line with its reason."""

    def __init__(self, results: dict[str, Any], save: Callable[[], None]) -> None:
        self.results = results
        self.save = save

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.results["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {detail}", flush=True)

    def phase(self, name: str, fn: Callable[[], None]) -> None:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            fn()
        except Exception as exc:  # one phase failing must not lose the others' figures
            lines = f"{type(exc).__name__}: {exc}".splitlines()
            # The first line and the end of the rest (a build's own error comes last), never just the headline.
            self.add(name, False, "\n    ".join(lines[:1] + [x for x in lines[1:] if x.strip()][-8:]))
            self.results.setdefault("errors", []).append({"phase": name, "traceback": traceback.format_exc()})
        self.results.setdefault("phase_s", {})[name] = round(time.monotonic() - t0, 2)
        self.save()


def machine_facts() -> dict[str, Any]:
    out = subprocess.run([PY, "-c", FACTS % {"names": [*CARRIED, "traindoc"]}], cwd=REPO,
                         capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError("machine facts failed: " + " | ".join(out.stderr.splitlines()[-5:]))
    facts: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return facts


def cuda_tests(out_dir: Path) -> dict[str, Any]:
    """``pytest -m cuda`` over tests/test_cuda*.py; outcomes read back from the JUnit XML."""
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_cuda*.py"))
    xml = out_dir / "cuda-tests.xml"
    cmd = [PY, "-m", "pytest", "-q", "-m", "cuda", *files, "-p", "no:cacheprovider", f"--junitxml={xml}"]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    tests = []
    if xml.is_file():
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "failed", "error": "error"}.get(child.tag, "skipped")
                    message = (child.get("message") or "").splitlines()[0] if child.get("message") else ""
            tests.append({"name": case.get("name", "?"), "outcome": outcome, "message": message[:200]})
    return {
        "command": " ".join(["python", *cmd[1:-1]]),
        "exit_code": done.returncode,
        "wall_s": round(time.monotonic() - t0, 1),
        "tests": tests,
        "output_tail": done.stdout.splitlines()[-30:],
    }


def settings(dry: bool, args: argparse.Namespace) -> dict[str, int]:
    tiny = {"rounds": 2, "steps": 6, "warmup": 2, "cold_rounds": 1}
    full = {"rounds": 5, "steps": 400, "warmup": 40, "cold_rounds": 2}
    base = tiny if dry else full
    return {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="on the CPU with tiny settings (what the tests run)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default $OUT, else out/gpu-check)")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--cold-rounds", type=int, default=None)
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="no new throughput round after this many seconds "
        "of the whole run (default 420 on a GPU, none in a dry run)",
    )
    p.add_argument("--skip", action="append", default=[], choices=["tests", "docs", "throughput"])
    args = p.parse_args(argv)
    if args.dry_run:  # one thread per child: a shared CPU thrashes when each of them spins two
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = args.out or Path(os.environ.get("OUT") or REPO / "out" / "gpu-check")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    s = settings(args.dry_run, args)
    results: dict[str, Any] = {
        "schema": 1,
        "dry_run": args.dry_run,
        "command": "make gpu-check-dry" if args.dry_run else "make gpu-check",
        "started_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": s,
        "checks": [],
    }

    def save() -> None:
        results["wall_s"] = round(time.monotonic() - t_start, 1)
        (out / "gpu-check.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")

    check = Check(results, save)
    work = Path(tempfile.mkdtemp(prefix="traindoc-gpu-check-"))
    try:
        _run(args, s, results, check, out, work, t_start)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # only the folder this run created
    section: list[str] = []
    check.phase("report", lambda: section.append(gpu_section.render(results)))
    results["ok"] = bool(results["checks"]) and all(c["ok"] for c in results["checks"])
    save()
    _write_reports(results, out, section[0] if section else None)
    print(summary(results, out), flush=True)
    return 0 if results["ok"] else 1


def _run(
    args: argparse.Namespace,
    s: dict[str, int],
    results: dict[str, Any],
    check: Check,
    out: Path,
    work: Path,
    t_start: float,
) -> None:
    def facts() -> None:
        m = results["machine"] = machine_facts()
        for key in ("batch", "log_every", "docs_steps", "spec_nproc"):
            results[key] = m.pop(key)
        missing = [n for n in CARRIED if not m["packages"].get(n)]
        check.add("packages", not missing and not m["unmet"], "; ".join(missing + m["unmet"]) or "all present")
        if args.dry_run:
            check.add("device", True, "dry run on the CPU" + (" (a GPU is visible but unused)" if m["gpu"] else ""))
        else:
            g = m["gpu"]
            check.add("device", g is not None, f"{g['name']}, {g['memory_bytes'] / 2**30:.0f} GiB" if g else "no GPU")

    check.phase("machine", facts)
    if "machine" not in results:
        return
    gpu = None if args.dry_run else results["machine"]["gpu"]
    if not args.dry_run and gpu is None:
        return  # nothing below means anything without the card

    def tests() -> None:
        t = results["cuda_tests"] = cuda_tests(out)
        counts = {k: sum(1 for x in t["tests"] if x["outcome"] == k) for k in ("passed", "failed", "error", "skipped")}
        t["counts"] = counts
        bad = counts["failed"] + counts["error"]
        if args.dry_run:  # on the CPU every one of them must skip, none may fail
            ok = bad == 0 and counts["skipped"] == len(t["tests"]) > 0
        else:
            ok = bad == 0 and counts["passed"] > 0 and t["exit_code"] == 0
        check.add("cuda tests", ok, ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none collected")

    def docs() -> None:
        nproc = min(results["spec_nproc"], gpu["count"]) if gpu else 1
        expected = gpu["name"] if gpu else "on CPU"
        d = results["cold_start"] = gpu_bench.docs_and_cold_start(
            work, device="cuda" if gpu else "cpu", expected=expected, nproc=nproc,
            rounds=s["cold_rounds"], docs_steps=results["docs_steps"],
        )  # fmt: skip
        results["docs"] = {"run_page": d["run_page"], "nproc": nproc}
        row = d["run_page"]["device_row"]
        check.add(
            "docs build names the device", d["run_page"]["found"], f"{expected!r} in the run page's device row: {row!r}"
        )

    def bench() -> None:
        t = results["throughput"] = gpu_bench.throughput(
            work, cuda=gpu is not None, rounds=s["rounds"], steps=s["steps"], warmup=s["warmup"],
            deadline=t_start + (args.budget_s or (float("inf") if args.dry_run else 420.0)),
        )  # fmt: skip
        detail = t["errors"][0] if t["errors"] else "every loop ran"
        check.add(
            "throughput",
            not t["errors"] and t["settings"]["rounds"] > 0,
            f"{t['settings']['rounds']} round(s); {detail}",
        )

    if "tests" not in args.skip:
        check.phase("cuda tests", tests)
    if "docs" not in args.skip:
        check.phase("docs and cold start", docs)
    if "throughput" not in args.skip:
        check.phase("throughput", bench)


def _write_reports(results: dict[str, Any], out: Path, section: str | None) -> None:
    """gpu-check.md (summary and section) and benchmarks.md (docs/benchmarks.md with the section in)."""
    text = summary(results, out) + "\n\n" + (section or "(the GPU section could not be rendered; see errors)\n")
    (out / "gpu-check.md").write_text(text, encoding="utf-8")
    doc = REPO / "docs" / "benchmarks.md"
    if section is not None and doc.is_file() and gpu_section.extract(doc.read_text(encoding="utf-8")) is not None:
        (out / "benchmarks.md").write_text(
            gpu_section.splice(doc.read_text(encoding="utf-8"), section), encoding="utf-8"
        )


def summary(results: dict[str, Any], out: Path) -> str:
    m = results.get("machine") or {}
    g = m.get("gpu")
    lines = [
        f"traindoc GPU check{' (dry run on the CPU)' if results['dry_run'] else ''}: "
        f"{'PASSED' if results.get('ok') else 'FAILED'} in {results.get('wall_s', 0):.0f} s",
        f"  machine   {g['name'] if g else 'no GPU'}; torch {m.get('torch', '?')}, CUDA {m.get('cuda') or 'n/a'}",
    ]
    t = results.get("throughput")
    if t and t.get("loops"):
        for v in t["variants"]:
            sps = t["loops"][v["name"]]["median_step_sps"]["median"]
            ratio = t["ratios"].get(v["name"], {}).get("median_step_sps", {}).get("median")
            lines.append(
                f"  {v['name']:<18}{gpu_section._num(sps):>10} samples/s"
                f"{'' if v['name'] == 'plain' else '  ' + gpu_section._ratio(ratio) + ' plain'}"
            )
        lines.append(f"  target    runner ≥ 1.35× plain: {gpu_section.target_text(results)}")
    c = results.get("cold_start")
    if c:
        lines.append(
            f"  cold start to first step: mkdocs build {gpu_section._secs(c['cold']['first_step_s'])} s, "
            f"python train.py {gpu_section._secs(c['plain']['first_step_s'])} s"
        )
    lines += [f"  {'ok  ' if x['ok'] else 'FAIL'} {x['name']}: {x['detail']}" for x in results["checks"]]
    lines.append(f"  results   {out / 'gpu-check.json'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

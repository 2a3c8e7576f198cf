"""All benchmarks, side by side in one run, written to docs/benchmarks.md (``make bench``).

Targets are compared as ratios measured in the same run, never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def sh(code: str, cwd: Path = REPO) -> dict[str, float]:
    """Run a Python snippet in a fresh process; it prints one JSON object."""
    out = subprocess.run([PY, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


INTROSPECT = """
import json, resource, sys, time
sys.path.insert(0, 'tests')
t = time.perf_counter()
from zoo import facts_for
f = facts_for('gpt2_xl')
wall = time.perf_counter() - t
print(json.dumps({'wall_s': wall, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'params': f.model.total_params}))
"""

DIAGRAM = """
import json, sys, time
sys.path.insert(0, 'tests')
from zoo import facts_for
from traindoc.render.diagrams import diagram
out = {}
for name in ('gpt2_xl', 'deep240'):
    f = facts_for(name)
    times = []
    for _ in range(5):
        t = time.perf_counter(); d = diagram(f, 'model'); times.append(time.perf_counter() - t)
    out[name] = min(times); out[name + '_chars'] = len(d.text)
print(json.dumps(out))
"""

LOOPS = """
import json, sys, time, statistics, torch
sys.path.insert(0, 'pipeline')
from digits import model, optimizer, schedule
from digits_data import train_set
from torch.utils.data import DataLoader
torch.manual_seed(0)
STEPS = %(steps)d
ds = train_set()

def run(resident):
    m = model(); opt = optimizer(m.parameters()); sched = schedule(opt); lossf = torch.nn.functional.cross_entropy
    times = []
    if resident:
        x, y = ds.tensors
        def batches():
            while True:
                perm = torch.randperm(len(x))
                for i in range(0, len(x), 64):
                    idx = perm[i:i+64]; yield x[idx], y[idx]
    else:
        dl = DataLoader(ds, batch_size=64, shuffle=True)
        def batches():
            while True:
                yield from dl
    it = batches(); t_prev = time.perf_counter()
    for step in range(STEPS):
        xb, yb = next(it)
        opt.zero_grad(set_to_none=True)
        loss = lossf(m(xb), yb); loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); sched.step()
        loss.item()
        t = time.perf_counter(); times.append(t - t_prev); t_prev = t
    return 64 / statistics.median(times[STEPS // 10:])

print(json.dumps({'%(mode)s': run(%(resident)s)}))
"""

LOOKUP = """
import json, sys, time
t0 = time.perf_counter()
from traindoc.run import runner
t1 = time.perf_counter()
hit = runner.lookup('pipeline/digits.py', runner.RunOptions(docs=True, progress=False))
t2 = time.perf_counter()
print(json.dumps({'import_s': t1 - t0, 'lookup_s': t2 - t1, 'hit': hit is not None,
                  'torch_imported': 'torch' in sys.modules}))
"""


def runner_once(steps: int) -> tuple[float, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [PY, "-m", "traindoc", "run", "pipeline/digits.py", "--nproc", "1", "--max-steps", str(steps),
             "--out", str(Path(tmp) / "run"), "--json"],
            cwd=REPO, capture_output=True, text=True, check=True,
        )  # fmt: skip
        result = json.loads(out.stdout)
    return float(result["samples_per_s"]), bool(result["resident_data"])


def bench_runner(steps: int, rounds: int = 5) -> dict[str, float]:
    """Each loop in a fresh process, interleaved over rounds (this 2-core machine drifts); medians."""
    runs: dict[str, list[float]] = {"dataloader": [], "resident": [], "runner": []}
    resident = False
    for _ in range(rounds):
        runs["dataloader"].append(sh(LOOPS % {"steps": steps, "mode": "dataloader", "resident": False})["dataloader"])
        runs["resident"].append(sh(LOOPS % {"steps": steps, "mode": "resident", "resident": True})["resident"])
        sps, resident = runner_once(steps)
        runs["runner"].append(sps)
    return {k: statistics.median(v) for k, v in runs.items()} | {"runner_resident": float(resident), "rounds": rounds}


def build_time(root: Path, runs: int = 3) -> float:
    times = []
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([PY, "-m", "mkdocs", "build", "-q", "-d", str(root / "_site")], cwd=root, env=env,
                       check=True, capture_output=True)  # fmt: skip
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_site() -> dict[str, float]:
    """Warm rebuild with the plugin (everything cached) vs the same pages as plain Markdown."""
    from traindoc.pages import docsgen
    from traindoc.pages.docsgen import CachedProvider

    with tempfile.TemporaryDirectory() as tmp:
        plugin_root = Path(tmp) / "with"
        plain_root = Path(tmp) / "plain"
        for root in (plugin_root, plain_root):
            root.mkdir()
            for name in ("docs", "pipeline", "templates"):
                shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            for name in ("mkdocs.yml", "pyproject.toml", "CHANGELOG.md"):
                shutil.copy(REPO / name, root / name)
            (root / ".cache").mkdir()
            os.symlink(REPO / ".cache" / "mermaid", root / ".cache" / "mermaid")
        shutil.copytree(REPO / ".cache" / "traindoc", plugin_root / ".cache" / "traindoc")
        build_time(plugin_root, 1)  # warm: facts and the run come from the cache afterwards
        provider = CachedProvider(root=plugin_root, cache_dir=plugin_root / ".cache" / "traindoc")
        for page in (plain_root / "docs").rglob("*.md"):
            page.write_text(docsgen.expand(page.read_text(), provider, page.name))
        cfg = (plain_root / "mkdocs.yml").read_text()
        start = cfg.index("  - traindoc:")
        end = cfg.index("\n\nnav:")
        cfg = cfg[:start] + "\nextra_javascript:\n  - assets/traindoc/mermaid.min.js" + cfg[end:]
        (plain_root / "mkdocs.yml").write_text(
            cfg.replace("extra_javascript:\n  - assets", "extra_javascript:\n  - assets", 1)
        )
        assets = plain_root / "docs" / "assets" / "traindoc"
        assets.mkdir(parents=True)
        shutil.copy(REPO / ".cache" / "mermaid" / "11.12.0" / "mermaid.min.js", assets / "mermaid.min.js")
        plains, plugins = [], []
        for _ in range(7):  # interleaved, so drift on the machine hits both alike
            plains.append(build_time(plain_root, 1))
            plugins.append(build_time(plugin_root, 1))
        plain, plugin = statistics.median(plains), statistics.median(plugins)
    return {"plain_s": plain, "plugin_s": plugin, "ratio": plugin / plain}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    versions = f"Python {platform.python_version()}, torch {torch.__version__}"
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {gpu}; {versions}"


def gpu_block(doc: Path) -> str:
    """The GPU section as the document has it now (written by `make gpu-docs`), kept across CPU runs."""
    sys.path.insert(0, str(Path(__file__).parent))
    import gpu_section

    kept = gpu_section.extract(doc.read_text(encoding="utf-8")) if doc.is_file() else None
    return kept if kept is not None else gpu_section.render(None)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="docs/benchmarks.md")
    p.add_argument("--steps", type=int, default=400)
    args = p.parse_args()
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print("introspection …", flush=True)
    intro = sh(INTROSPECT)
    print("diagrams …", flush=True)
    diag = sh(DIAGRAM)
    print("runner vs hand-written loops …", flush=True)
    loops = bench_runner(args.steps)
    print("cache-hit decision …", flush=True)
    subprocess.run([PY, "-m", "traindoc", "run", "pipeline/digits.py", "--docs", "--json"], cwd=REPO, check=True,
                   capture_output=True)  # fmt: skip
    lookup = sh(LOOKUP)
    print("site build …", flush=True)
    site = bench_site()
    from jinja2 import Template

    text = Template((Path(__file__).parent / "benchmarks.md.j2").read_text()).render(
        machine=machine(), date=started, command=f"make bench  (python bench/run_all.py --steps {args.steps})",
        intro=intro, diag=diag, loops=loops, lookup=lookup, site=site, gpu_section=gpu_block(Path(args.out)),
    )  # fmt: skip
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

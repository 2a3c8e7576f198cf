"""Run a pipeline's training in child processes and record the results. No torch in this process.

``lookup`` decides a cache hit from file hashes alone (no torch import, no user code). ``run``
plans the processes with :mod:`traindoc.launch`, starts each in its own process group, follows
``steps.jsonl`` for progress, enforces the hard timeout on every rank, then assembles a
:class:`~traindoc.results.RunResult`, checks expectations, and caches only runs that passed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import cache, launch, policy, protocol, service
from .assemble import Launched, assemble
from .atomic import locked, write_text
from .errors import CacheCorrupt
from .facts import Facts
from .protocol import StepRecord
from .results import RunResult


@dataclass(frozen=True)
class RunOptions:
    docs: bool = False
    resume: bool = False
    force: bool = False
    nproc: int | None = None
    timeout_s: float | None = None
    max_steps: int | None = None
    cache_dir: Path | None = None
    run_dir: Path | None = None
    progress: bool = True
    use_cache: bool = True

    def key_options(self) -> dict[str, Any]:
        return {"what": "run", "docs": self.docs, "nproc": self.nproc, "max_steps": self.max_steps}


def _layout(t: service.Target, opts: RunOptions) -> cache.Layout:
    return cache.Layout(opts.cache_dir or cache.default_dir(t.root))


def run_fingerprint(t: service.Target, opts: RunOptions) -> cache.Fingerprint:
    return cache.fingerprint(t.file, t.root, {**opts.key_options(), "attr": t.attr or ""})


def lookup(ref: str, opts: RunOptions, root: Path | None = None) -> RunResult | None:
    """A cached, passing result for exactly these inputs, or None. Never imports torch."""
    t = service.target(ref, root)
    return _cached(_layout(t, opts), run_fingerprint(t, opts))


def _cached(layout: cache.Layout, fp: cache.Fingerprint) -> RunResult | None:
    try:
        payload = cache.read_entry(layout.run_entry(fp.key), fp.key)
    except CacheCorrupt:
        return None
    if payload is None:
        return None
    return RunResult.model_validate(payload).model_copy(update={"from_cache": True})


def latest(ref: str, opts: RunOptions, root: Path | None = None) -> RunResult | None:
    """The newest recorded result for this pipeline (any inputs), for 'last known' displays."""
    t = service.target(ref, root)
    path = _layout(t, opts).latest(_latest_name(t))
    try:
        return RunResult.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def nvidia_driver() -> str | None:
    """The NVIDIA kernel driver version, from /proc (no torch, no nvidia-smi)."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return None
    m = re.search(r"Kernel Module(?: for \w+)?\s+([\d.]+)", text)
    return m.group(1) if m else None


def _latest_name(t: service.Target) -> str:
    return f"{t.file.stem}-{t.attr or ''}"


def stale_because(ref: str, opts: RunOptions, root: Path | None = None) -> list[str]:
    """What changed since the last recorded run, in words ('pipeline/se_cnn.py changed')."""
    last = latest(ref, opts, root)
    if last is None:
        return []
    old = cache.read_inputs(Path(last.run_dir) / "inputs.json")
    return cache.explain(old, run_fingerprint(service.target(ref, root), opts).inputs) if old else []


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5, check=False
    )
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


class Progress:
    """A rich progress bar on a terminal; plain periodic lines otherwise (CI)."""

    def __init__(self, enabled: bool, total: int, name: str) -> None:
        self.enabled = enabled
        self.total = total
        self.name = name
        self.tty = enabled and sys.stderr.isatty()
        self.last_print = 0.0
        self.bar: Any = None
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self.bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(f"train {name}", total=total, info="")

    def update(self, rec: StepRecord | None) -> None:
        if not self.enabled or rec is None:
            return
        sps = rec.samples_per_s
        info = f"loss {rec.loss:.4f}" + (f" · {sps:,.0f} samples/s" if sps else "")
        if self.bar is not None:
            self.bar.update(self.task, completed=rec.step, info=info)
        elif time.monotonic() - self.last_print >= 5:
            self.last_print = time.monotonic()
            print(f"[traindoc] {self.name}: step {rec.step}/{self.total} · {info}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _last_step(path: Path) -> StepRecord | None:
    return protocol.last_step(path)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its ranks in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL every launched process, its group and all its descendants; wait until they are gone."""
    victims = [d for p in procs for d in descendants(p.pid)]
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for p in procs:
        p.wait()
    deadline = time.monotonic() + 10
    while any(_alive(v) for v in victims) and time.monotonic() < deadline:
        time.sleep(0.05)


def execute(
    launches: list[launch.Launch], run_dir: Path, timeout_s: float, progress: Progress
) -> tuple[list[int], bool]:
    """Start every process in its own group; kill them all on timeout or first failure."""
    procs: list[subprocess.Popen[bytes]] = []
    deadline = time.monotonic() + timeout_s
    timed_out = False
    env_base = dict(os.environ)
    env_base["PYTHONUNBUFFERED"] = "1"
    try:
        for i, spec in enumerate(launches):
            log = open(run_dir / f"launcher{i}.log", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    spec.argv,
                    env={**env_base, **spec.env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            log.close()
        while any(p.poll() is None for p in procs):
            progress.update(_last_step(run_dir / "steps.jsonl"))
            if time.monotonic() > deadline:
                timed_out = True
                break
            if any(p.poll() not in (None, 0) for p in procs) and len(procs) > 1:
                time.sleep(2.0)  # let torchrun tear its own ranks down, then make sure
                break
            time.sleep(0.2)
    finally:
        _kill(procs)
        progress.close()
    return [p.returncode for p in procs], timed_out


def run(ref: str, opts: RunOptions | None = None, root: Path | None = None) -> RunResult:
    opts = opts or RunOptions()
    t = service.target(ref, root)
    layout = _layout(t, opts)
    fp = run_fingerprint(t, opts)
    cacheable = opts.use_cache and opts.run_dir is None and not opts.resume
    if cacheable and not opts.force:
        hit = _cached(layout, fp)
        if hit is not None:
            return hit
    with locked(layout.lock("run-" + fp.key)):
        if cacheable and not opts.force:
            hit = _cached(layout, fp)  # another build may have finished it while we waited
            if hit is not None:
                return hit
        facts = service.facts_for(ref, cache_dir=layout.root, root=t.root)
        run_dir = opts.run_dir or layout.run_dir(fp.key)
        if run_dir.exists() and not opts.resume:
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob("error-rank*.json"):
            stale.unlink()
        (run_dir / "worker.json").unlink(missing_ok=True)
        write_text(run_dir / "inputs.json", json.dumps({"inputs": fp.inputs}, indent=1))
        result = _run_once(t, facts, fp.key, run_dir, opts)
        result_json = result.model_dump(mode="json")
        write_text(run_dir / "results.json", json.dumps(result_json, indent=1, ensure_ascii=False))
        write_text(layout.latest(_latest_name(t)), json.dumps(result_json, ensure_ascii=False))
        if result.ok and cacheable:
            cache.write_entry(layout.run_entry(fp.key), fp.key, result_json, fp.inputs)
        return result


def _run_once(t: service.Target, facts: Facts, key: str, run_dir: Path, opts: RunOptions) -> RunResult:
    device = facts.devices.resolved
    nnodes = facts.distributed.nnodes
    nproc = opts.nproc or facts.distributed.nproc_per_node
    worker_opts = launch.WorkerOptions(
        pipeline=t.ref, run_dir=str(run_dir), docs=opts.docs, resume=opts.resume, max_steps=opts.max_steps
    )
    backend = launch.resolve_backend(facts.distributed.backend_declared, device)
    launches = launch.plan(
        worker_opts,
        python=sys.executable,
        device=device,
        backend=backend,
        nnodes=nnodes,
        nproc_per_node=nproc,
        rdzv_endpoint=facts.distributed.rdzv_endpoint,
        rdzv_id=facts.distributed.rdzv_id,
    )
    write_text(run_dir / "launch.json", json.dumps([asdict(x) for x in launches], indent=1))
    tr = facts.training
    budget = policy.budget(
        docs=opts.docs,
        max_steps=tr.max_steps,
        docs_max_steps=tr.docs_max_steps,
        docs_max_seconds=tr.docs_max_seconds,
        override_steps=opts.max_steps,
    )
    total = budget.limit(facts.data.steps_per_epoch, tr.epochs)
    progress = Progress(opts.progress, total, facts.name)
    started = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    t0 = time.monotonic()
    timeout = opts.timeout_s or tr.timeout_s
    codes, timed_out = execute(launches, run_dir, timeout, progress)
    launched = Launched(
        codes=codes,
        timed_out=timed_out,
        timeout_s=timeout,
        wall_s=time.monotonic() - t0,
        started_at=started,
        world=nproc * nnodes,
        nnodes=nnodes,
        nproc=nproc,
        backend=backend,
        docs=opts.docs,
        commit=_git_commit(t.root),
        driver=nvidia_driver(),
    )
    return assemble(facts, key, run_dir, launched)


def summary(r: RunResult) -> str:
    from .render import render

    return render("run_summary.txt.j2", None, r=r).rstrip("\n")

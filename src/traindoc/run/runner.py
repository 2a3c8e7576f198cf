"""Run a pipeline's training in child processes and record the results. No torch in this process.

``lookup`` decides a cache hit from file hashes alone (no torch import, no user code). ``run``
plans the processes with :mod:`traindoc.run.launch`, starts each in its own process group, follows
``steps.jsonl`` for progress, enforces the hard timeout on every rank, then assembles a
:class:`~traindoc.run.results.RunResult`, checks expectations, and caches only runs that passed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .. import cache
from .._util import procs
from .._util.atomic import locked, read_regular, write_text
from ..errors import CacheCorrupt, Cancelled
from ..facts import Facts, policy, service
from . import hang, launch, protocol, runfolder
from .assemble import Launched, assemble
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
    seed: int | None = None  # overrides optim.seed

    def key_options(self) -> dict[str, Any]:
        key: dict[str, Any] = {"what": "run", "docs": self.docs, "nproc": self.nproc, "max_steps": self.max_steps}
        if self.seed is not None:
            key["seed"] = self.seed
        return key


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
        if payload is None:
            return None
        return RunResult.model_validate(payload).model_copy(update={"from_cache": True})
    except (CacheCorrupt, ValueError):  # damaged, or of another shape: run again
        return None


def latest(ref: str, opts: RunOptions, root: Path | None = None) -> RunResult | None:
    """The newest recorded result for this pipeline (any inputs), for 'last known' displays."""
    t = service.target(ref, root)
    path = _layout(t, opts).latest(_latest_name(t))
    try:
        payload = cache.read_entry(path)
        return RunResult.model_validate(payload) if payload is not None else None
    except (CacheCorrupt, ValueError):
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


PIPELINE_INPUTS = ("file", "read", "package")  # the pipeline's own files, what it read, what it imported


def stale_because(ref: str, opts: RunOptions, root: Path | None = None, *, pipeline_only: bool = False) -> list[str]:
    """What changed since the last recorded run, in words ('pipeline/se_cnn.py changed'). With
    ``pipeline_only``, only the pipeline's code, the files it read and the packages it imported count (a
    README shows the last run whatever its options, so an option or traindoc's own version is no change)."""
    last = latest(ref, opts, root)
    if last is None:
        return []
    old = cache.read_inputs(Path(last.run_dir) / "inputs.json")
    if not old:
        return []
    new = run_fingerprint(service.target(ref, root), opts).inputs
    if pipeline_only:
        old, new = ({k: v for k, v in d.items() if k.partition(":")[0] in PIPELINE_INPUTS} for d in (old, new))
    return cache.explain(old, new)


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


def execute(
    launches: list[launch.Launch], run_dir: Path, timeout_s: float, progress: Progress
) -> tuple[list[int], bool]:
    """Start every process guarded and tagged (:mod:`traindoc._util.procs`); kill them all on timeout or first failure.

    ``timeout_s`` is cut to what is left of the run's deadline (introspection counts against it); the
    process-group timeout of the ranks is derived from it (:func:`traindoc.run.hang.pg_timeout_s`).
    """
    timeout_s = procs.remaining(timeout_s)
    deadline = time.monotonic() + timeout_s
    timed_out = False
    env_base = {"PYTHONUNBUFFERED": "1", hang.PG_TIMEOUT_ENV: f"{hang.pg_timeout_s(timeout_s):g}"}
    with procs.Tree(run_dir / procs.RECORD) as tree:
        try:
            for i, spec in enumerate(launches):
                with open(run_dir / f"launcher{i}.log", "wb") as log:
                    tree.spawn(spec.argv, env={**env_base, **spec.env}, stdout=log, stderr=subprocess.STDOUT)
            recorded = time.monotonic()
            while any(p.poll() is None for p in tree.procs) and not tree.cancelled.is_set():
                progress.update(_last_step(run_dir / "steps.jsonl"))
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                if any(p.poll() not in (None, 0) for p in tree.procs) and len(tree.procs) > 1:
                    time.sleep(2.0)  # let torchrun tear its own ranks down, then make sure
                    break
                if time.monotonic() - recorded > 1.0:  # ranks appear after the launcher: record them too
                    tree.refresh()
                    recorded = time.monotonic()
                time.sleep(0.2)
        finally:
            progress.close()
    if tree.cancelled.is_set():
        raise Cancelled("the run was stopped: traindoc is shutting down")
    return [p.returncode for p in tree.procs], timed_out


def run(ref: str, opts: RunOptions | None = None, root: Path | None = None) -> RunResult:
    opts = opts or RunOptions()
    with procs.deadline(opts.timeout_s):  # one hard timeout for introspection and training together
        return _run(ref, opts, root)


def _run(ref: str, opts: RunOptions, root: Path | None) -> RunResult:
    t = service.target(ref, root)
    if opts.run_dir is not None:
        runfolder.check(opts.run_dir, t.root)  # refuse a bad --out before anything else happens
    layout = _layout(t, opts)
    fp = run_fingerprint(t, opts)
    cacheable = opts.use_cache and opts.run_dir is None and not opts.resume
    if cacheable and not opts.force:
        hit = _cached(layout, fp)
        if hit is not None:
            return hit
    # The cache's run folders are serialised per key (a waiting build reuses the result); an --out
    # folder by its own lock inside runfolder.claim.
    wait = procs.remaining(opts.timeout_s) if opts.timeout_s else None  # --timeout covers the wait
    serial = locked(layout.lock("run-" + fp.key), wait) if opts.run_dir is None else contextlib.nullcontext()
    with serial:
        if cacheable and not opts.force:
            hit = _cached(layout, fp)  # another build may have finished it while we waited
            if hit is not None:
                return hit
        facts = service.facts_for(ref, cache_dir=layout.root, root=t.root)
        resume = opts.resume or (facts.checkpoint.resume and not opts.force)
        target = opts.run_dir or layout.run_dir(fp.key)
        wait_s = procs.remaining(opts.timeout_s or facts.training.timeout_s)  # the hard timeout covers the wait
        with runfolder.claim(target, resume=resume, project_root=t.root, wait_s=wait_s) as run_dir:
            procs.clear_leftovers(run_dir)  # never beside processes of an earlier run in this folder
            if resume:
                done = _finished(run_dir, fp.key, _target_steps(facts, opts))
                if done is not None:
                    return done
            for stale in run_dir.glob("error-rank*.json"):
                stale.unlink()
            (run_dir / "worker.json").unlink(missing_ok=True)
            cache.write_entry(run_dir / "inputs.json", fp.key, {"inputs": fp.inputs}, fp.inputs)
            result = _run_once(t, facts, fp.key, run_dir, replace(opts, resume=resume))
            result_json = result.model_dump(mode="json")
            write_text(run_dir / "results.json", json.dumps(result_json, indent=1, ensure_ascii=False))
            cache.write_entry(layout.latest(_latest_name(t)), fp.key, result_json)
            if result.ok and cacheable:
                cache.write_entry(layout.run_entry(fp.key), fp.key, result_json, fp.inputs)
            return result


def _budget(facts: Facts, opts: RunOptions) -> policy.Budget:
    tr = facts.training
    return policy.budget(
        docs=opts.docs,
        max_steps=tr.max_steps,
        docs_max_steps=tr.docs_max_steps,
        docs_max_seconds=tr.docs_max_seconds,
        override_steps=opts.max_steps,
    )


def _target_steps(facts: Facts, opts: RunOptions) -> int:
    """The step a run with these options stops at, unless its time budget ends it earlier."""
    return _budget(facts, opts).limit(facts.data.steps_per_epoch, facts.training.epochs)


def _finished(run_dir: Path, key: str, target: int) -> RunResult | None:
    """The recorded result when this folder's run (same inputs) already trained to ``target``."""
    try:
        prior = RunResult.model_validate_json(read_regular(run_dir / "results.json"))
    except (OSError, ValueError):
        return None
    if prior.key != key or prior.status not in ("passed", "expectations_unmet") or prior.steps < target:
        return None
    note = f"this run had already finished at step {prior.steps}; nothing to resume. {prior.reason}"
    return prior.model_copy(update={"reason": note})


def _run_once(t: service.Target, facts: Facts, key: str, run_dir: Path, opts: RunOptions) -> RunResult:
    device = facts.devices.resolved
    nnodes = facts.distributed.nnodes
    nproc = opts.nproc or facts.distributed.nproc_per_node
    policy.check_ranks_fit(nproc, device, len(facts.devices.gpus), facts.source)  # before anything is launched
    worker_opts = launch.WorkerOptions(
        pipeline=t.ref,
        run_dir=str(run_dir),
        docs=opts.docs,
        resume=opts.resume,
        max_steps=opts.max_steps,
        seed=opts.seed,
    )
    backend = launch.resolve_backend(facts.distributed.backend_declared, device, facts.source)
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
    total = _target_steps(facts, opts)
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

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
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from . import cache, hang, launch, procs, results, runfolder, service
from .atomic import locked, read_regular, write_text
from .errors import CacheCorrupt, Cancelled
from .facts import Facts
from .redact import redact, redact_lines
from .results import RunResult, Status


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

    def update(self, rec: dict[str, Any] | None) -> None:
        if not self.enabled or rec is None:
            return
        sps = rec.get("samples_per_s")
        info = f"loss {rec['loss']:.4f}" + (f" · {sps:,.0f} samples/s" if sps else "")
        if self.bar is not None:
            self.bar.update(self.task, completed=rec["step"], info=info)
        elif time.monotonic() - self.last_print >= 5:
            self.last_print = time.monotonic()
            print(f"[traindoc] {self.name}: step {rec['step']}/{self.total} · {info}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _last_step(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "loss" in rec and "event" not in rec:
            return rec  # type: ignore[no-any-return]
    return None


def execute(
    launches: list[launch.Launch], run_dir: Path, timeout_s: float, progress: Progress
) -> tuple[list[int], bool]:
    """Start every process guarded and tagged (:mod:`traindoc.procs`); kill them all on timeout or first failure.

    ``timeout_s`` is cut to what is left of the run's deadline (introspection counts against it); the
    process-group timeout of the ranks is derived from it (:func:`traindoc.hang.pg_timeout_s`).
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
            while any(p.poll() is None for p in tree.procs):
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


def _target_steps(facts: Facts, opts: RunOptions) -> int:
    """The step a run with these options stops at, unless its time budget ends it earlier."""
    full = facts.data.steps_per_epoch * facts.training.epochs
    budget = opts.max_steps or (facts.training.docs_max_steps if opts.docs else facts.training.max_steps)
    return min(full, budget) if budget else full


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
    budget = facts.training.docs_max_steps if opts.docs else (facts.training.max_steps or 0)
    total = opts.max_steps or budget or facts.data.steps_per_epoch * facts.training.epochs
    progress = Progress(opts.progress, total, facts.name)
    started = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    t0 = time.monotonic()
    timeout = opts.timeout_s or facts.training.timeout_s
    codes, timed_out = execute(launches, run_dir, timeout, progress)
    wall = time.monotonic() - t0
    return assemble(
        t, facts, key, run_dir, opts, codes, timed_out, wall, started, nproc * nnodes, nnodes, nproc, backend
    )


def _errors(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(run_dir.glob("error-rank*.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


_ROOT_CAUSE = re.compile(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.S)


def root_cause(run_dir: Path) -> tuple[int, int] | None:
    """(global rank, exit code) of the first failure torchrun observed, from its launcher log."""
    for log in sorted(run_dir.glob("launcher*.log")):
        m = _ROOT_CAUSE.search(log.read_text(encoding="utf-8", errors="replace"))
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def assemble(
    t: service.Target,
    facts: Facts,
    key: str,
    run_dir: Path,
    opts: RunOptions,
    codes: list[int],
    timed_out: bool,
    wall: float,
    started: str,
    world: int,
    nnodes: int,
    nproc: int,
    backend: str,
) -> RunResult:
    status: Status
    steps, _ = results.read_steps(run_dir / "steps.jsonl")
    summary = results.summarise_steps(steps, facts.training.log_every)
    try:
        worker = json.loads((run_dir / "worker.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        worker = {}
    errors = _errors(run_dir)
    last = steps[-1]["step"] if steps else 0
    failed_rank = None
    if timed_out:
        status, reason = (
            "timeout",
            f"timed out after {opts.timeout_s or facts.training.timeout_s:g} s at step {last}; every rank was killed",
        )
    elif errors or any(codes) or not worker:
        status = "failed"
        cause = root_cause(run_dir) if world > 1 else None
        by_rank = {int(e.get("rank", 0)): e for e in errors}
        hung = hang.hung_ranks(errors, world)  # a peer timed out waiting: name the silent rank, not the peer
        if hung:
            failed_rank, reason = hung[0], hang.hung_reason(hung, errors, last)
        elif cause is not None and cause[0] not in by_rank:
            failed_rank = cause[0]  # it died without a word; other ranks' errors are only the aftermath
            reason = f"rank {failed_rank} died ({_exit_text(cause[1])}) at step {last} without reporting an error"
        elif by_rank:
            failed_rank = cause[0] if cause is not None else min(by_rank)
            where = f"rank {failed_rank}" if world > 1 else "the training process"
            reason = f"{where}: {by_rank[failed_rank].get('message', 'failed')}"
        else:
            failed_rank = 0
            code = next((c for c in codes if c), 0)
            who = "the launcher" if world > 1 else "the training process"
            reason = f"{who} ended with {_exit_text(code)} at step {last} without reporting an error"
    else:
        status, reason = "passed", f"trained {worker.get('steps', last)} steps; {worker.get('stopped_because', '')}"
    val = [results.ValRecord(**{k: v[k] for k in ("epoch", "step", "accuracy", "loss")}) for v in worker.get("val", [])]
    final_acc = val[-1].accuracy if val else None
    expectations = results.check_expectations(
        facts.expect.model_dump(), final_acc, summary["first_loss"], summary["final_loss"]
    )
    if status == "passed":
        unmet = [e for e in expectations if not e.passed]
        if unmet:
            status = "expectations_unmet"
            reason = "unmet expectation(s): " + "; ".join(e.text for e in unmet)
    memory = results.memory_trend(steps, "cuda_allocated" if facts.devices.resolved == "cuda" else "rss")
    if memory is not None and worker.get("peak_cuda_bytes"):
        memory = memory.model_copy(update={"peak_bytes": int(worker["peak_cuda_bytes"])})
    tail_lines: list[str] = []
    if status != "passed":
        logs = sorted(run_dir.glob("rank*.log")) + sorted(run_dir.glob("launcher*.log"))
        pick = run_dir / f"rank{failed_rank}.log" if failed_rank is not None else None
        src = pick if pick is not None and pick.is_file() and pick.stat().st_size else (logs[0] if logs else None)
        if src is not None:
            tail_lines = [f"--- {src.name}", *results.tail(src)]
        for e in errors[:1]:
            if e.get("traceback"):
                tail_lines += ["--- traceback (user code)", *redact_lines(e["traceback"].splitlines())[-25:]]
    d = facts.devices
    return RunResult(
        ok=status == "passed",
        status=status,
        reason=redact(reason),
        pipeline=facts.name,
        key=key,
        started_at=started,
        commit=_git_commit(t.root),
        docs_budget=opts.docs,
        device=results.DeviceRecord(
            kind=d.resolved,
            sentence=d.sentence,
            gpus=[g.name for g in d.gpus],
            torch=d.torch_version,
            cuda=d.cuda_version,
            cudnn=d.cudnn_version,
            driver=nvidia_driver(),
        ),
        world_size=world,
        nnodes=nnodes,
        nproc_per_node=nproc,
        backend=backend if world > 1 else "none",
        steps=int(worker.get("steps", last)),
        epochs=int(worker.get("epochs", 0)),
        stopped_because=worker.get("stopped_because"),
        wall_s=round(wall, 3),
        samples_per_s=summary["samples_per_s"],
        data_wait_share=summary["data_wait_share"],
        memory=memory,
        first_loss=summary["first_loss"],
        final_loss=summary["final_loss"],
        loss_curve=summary["loss_curve"],
        val=val,
        final_val_accuracy=final_acc,
        expectations=expectations,
        checkpoints=[results.CheckpointRecord(**c) for c in worker.get("checkpoints", [])],
        checkpoint_verified=worker.get("checkpoint_verified"),
        resumed_from=worker.get("resumed_from"),
        resident_data=bool(worker.get("resident_data", False)),
        failed_rank=failed_rank,
        log_tail=tail_lines,
        run_dir=str(run_dir),
        checkpoints_skipped=[results.SkippedCheckpoint(**c) for c in worker.get("checkpoints_skipped", [])],
        resume_note=worker.get("resume_note"),
    )


def summary(r: RunResult) -> str:
    from .render import render

    return render("run_summary.txt.j2", None, r=r).rstrip("\n")

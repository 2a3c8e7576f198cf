"""Hand-written training loops on the example model, one per process: ``python bench/gpu_loops.py LOOP``.

The reference points for the runner's throughput (``bench/gpu_check.py`` runs them interleaved):

- ``plain``: what a tutorial writes — a ``DataLoader`` over the CPU dataset (pinned memory on CUDA),
  ``.to(device)`` per batch and ``loss.item()`` every step for logging.
- ``resident``: the whole training set on the device, a device-side permutation per epoch, no host
  sync per step (the loss is accumulated on the device and read every ``--log-every`` steps).

Knobs (measured on and off, never defaults of the runner): ``--fused`` (the optimizer's fused CUDA
kernel instead of the foreach one), ``--compile`` (``torch.compile(mode="reduce-overhead")``, i.e.
CUDA graphs; CUDA only), ``--item`` (force a ``.item()`` per step into the resident loop, to price
one host sync), ``--amp bf16``. The model, optimizer, schedule, clipping and batch size are the
example's own (``pipeline/digits.py``).

Prints one JSON object: samples/s by the median step (the runner's published definition) and by
wall time over the timed steps (synchronised at both ends), plus timestamps for cold-start figures.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import itertools
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

T_START = time.time()
REPO = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

T_IMPORTED = time.time()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _optimizer(params: Any, factory: Any, fused: bool) -> torch.optim.Optimizer:
    opt: torch.optim.Optimizer = factory(params)
    if not fused:
        return opt
    accepted = inspect.signature(type(opt).__init__).parameters
    if "fused" not in accepted:
        raise SystemExit(f"{type(opt).__name__} has no fused implementation")
    params = [p for g in opt.param_groups for p in g["params"]]
    kwargs = {k: v for k, v in opt.defaults.items() if k in accepted}
    return type(opt)(params, **{**kwargs, "fused": True, "foreach": None})


def _plain_batches(ds: Any, batch: int, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    from torch.utils.data import DataLoader

    pin = device.type == "cuda"
    loader = DataLoader(ds, batch_size=batch, shuffle=True, pin_memory=pin)
    while True:
        for xb, yb in loader:
            yield xb.to(device, non_blocking=pin), yb.to(device, non_blocking=pin)


def _resident_batches(ds: Any, batch: int, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    x, y = (t.to(device) for t in ds.tensors)
    n = len(x)
    while True:
        perm = torch.randperm(n, device=device)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            yield x.index_select(0, idx), y.index_select(0, idx)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "pipeline"))
    from digits import model, optimizer, pipeline, schedule
    from digits_data import train_set

    device = torch.device(args.device)
    torch.manual_seed(0)
    batch = pipeline.data.batch_size
    clip = pipeline.optim.grad_clip
    net = model().to(device)
    opt = _optimizer(net.parameters(), optimizer, args.fused)
    sched = schedule(opt)
    step_fn = torch.compile(net, mode="reduce-overhead") if args.compile else net
    amp = torch.bfloat16 if args.amp == "bf16" else None
    ds = train_set()
    it = (_resident_batches if args.loop == "resident" else _plain_batches)(ds, batch, device)
    lossf = torch.nn.functional.cross_entropy
    per_item = args.item or args.loop == "plain"
    acc = torch.zeros((), device=device)
    t_ready = time.time()
    marks: dict[str, float] = {}
    step_ends: list[float] = []
    counts: list[int] = []
    wall_t0 = 0.0
    last_loss = float("nan")
    total = args.warmup + args.steps
    for step in range(1, total + 1):
        if step == args.warmup + 1:
            _sync(device)
            wall_t0 = time.perf_counter()
            step_ends.append(wall_t0)
        xb, yb = next(it)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
            loss = lossf(step_fn(xb), yb)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        sched.step()
        if per_item:
            last_loss = loss.item()  # the host sync a tutorial loop pays every step
        else:
            acc += loss.detach()
            if step % args.log_every == 0:
                last_loss = float(acc) / args.log_every  # one sync per window
                acc.zero_()
        if step == 1:
            _sync(device)
            marks["first_step"] = time.time()
        if step == args.log_every:
            _sync(device)
            marks["first_window"] = time.time()
        if step > args.warmup:
            step_ends.append(time.perf_counter())
            counts.append(len(yb))
    _sync(device)
    wall = time.perf_counter() - wall_t0 if args.steps else 0.0
    steps = [b - a for a, b in itertools.pairwise(step_ends)]
    median = statistics.median(steps) if steps else 0.0
    return {
        "loop": args.loop,
        "device": str(device),
        "fused": args.fused,
        "compile": args.compile,
        "item_per_step": per_item,
        "amp": args.amp,
        "batch": batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "median_step_sps": batch / median if median > 0 else None,
        "wall_sps": sum(counts) / wall if wall > 0 else None,
        "final_loss": last_loss,
        "t_start": T_START,
        "t_imported": T_IMPORTED,
        "t_ready": t_ready,
        "t_first_step": marks.get("first_step"),
        "t_first_window": marks.get("first_window"),
        "t_end": time.time(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("loop", choices=["plain", "resident"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=400, help="timed steps (after the warm-up)")
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--fused", action="store_true", help="fused optimizer kernel")
    p.add_argument("--compile", action="store_true", help='torch.compile(mode="reduce-overhead") (CUDA graphs)')
    p.add_argument("--item", action="store_true", help="a loss.item() host sync every step")
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    args = p.parse_args(argv)
    if args.compile and not args.device.startswith("cuda"):
        p.error("--compile (reduce-overhead = CUDA graphs) needs a CUDA device")
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

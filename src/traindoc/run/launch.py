"""Pure launch planning: spec values in, argv and environment out. Nothing here executes.

One process on one device runs ``python -m traindoc.worker``; DDP runs the same worker under
``torchrun`` (``python -m torch.distributed.run``): ``--standalone`` on one node (a free port, so
concurrent builds never collide), c10d rendezvous across nodes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..errors import BackendUnavailable, Problem


@dataclass(frozen=True)
class WorkerOptions:
    """What the worker is asked to do."""

    pipeline: str
    run_dir: str
    docs: bool = False
    resume: bool = False
    max_steps: int | None = None
    max_seconds: float | None = None
    seed: int | None = None  # overrides optim.seed (comparisons run one pipeline over several seeds)


@dataclass(frozen=True)
class Launch:
    """One process to start: argv plus environment additions (never secrets, only settings)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    node_rank: int = 0


def resolve_backend(backend: str, device: str, source: str = "pipeline spec") -> str:
    """'auto' means NCCL on CUDA and gloo on CPU; NCCL on CPU is impossible, so it is refused."""
    if backend == "auto":
        return "nccl" if device == "cuda" else "gloo"
    if backend == "nccl" and device != "cuda":
        raise BackendUnavailable(
            [
                Problem(
                    file=source,
                    field="distributed.backend",
                    message=f"'nccl' needs CUDA devices and this run is on {device}; use 'gloo' or 'auto'",
                )
            ]
        )
    return backend


def resolve_nproc(nproc_per_node: int | str, device: str, gpu_count: int) -> int:
    """'auto' = visible GPUs (1 on CPU)."""
    if nproc_per_node == "auto":
        return max(1, gpu_count) if device == "cuda" else 1
    return int(nproc_per_node)


def is_loopback(endpoint: str) -> bool:
    host = endpoint.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_args(opts: WorkerOptions) -> list[str]:
    args = ["-m", "traindoc.worker", opts.pipeline, "--run-dir", opts.run_dir]
    if opts.docs:
        args.append("--docs")
    if opts.resume:
        args.append("--resume")
    if opts.max_steps is not None:
        args += ["--max-steps", str(opts.max_steps)]
    if opts.max_seconds is not None:
        args += ["--max-seconds", str(opts.max_seconds)]
    if opts.seed is not None:
        args += ["--seed", str(opts.seed)]
    return args


def torchrun_args(
    *, nnodes: int, nproc_per_node: int, rdzv_endpoint: str, rdzv_id: str, node_rank: int | None = None
) -> list[str]:
    """The launcher's own flags (after ``torchrun`` / ``python -m torch.distributed.run``)."""
    if nnodes == 1:
        return ["--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc_per_node)]
    args = [
        "--nnodes",
        str(nnodes),
        "--nproc-per-node",
        str(nproc_per_node),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        rdzv_endpoint,
        "--rdzv-id",
        rdzv_id,
    ]
    if node_rank is not None:
        args += ["--node-rank", str(node_rank)]
    return args


def rank_guard(python: str) -> list[str]:
    """What torchrun runs in front of each rank: the wrapper that kills it when torchrun dies."""
    return [python, "-m", "traindoc.guard", "--"]


def plan(
    opts: WorkerOptions,
    *,
    python: str,
    device: str,
    backend: str,
    nnodes: int,
    nproc_per_node: int,
    rdzv_endpoint: str,
    rdzv_id: str,
    node_ranks: list[int] | None = None,
) -> list[Launch]:
    """Processes to start on this machine. One process when world size is 1; else torchrun per node.

    ``node_ranks`` picks which nodes this machine runs; by default all of them when the rendezvous
    endpoint is a loopback address (a multi-node run simulated on one machine), else node 0.
    """
    env = {"TRAINDOC_DEVICE": device, "TRAINDOC_BACKEND": resolve_backend(backend, device)}
    if nnodes * nproc_per_node == 1:
        return [Launch([python, *worker_args(opts)], env)]
    if node_ranks is None:
        node_ranks = list(range(nnodes)) if nnodes > 1 and is_loopback(rdzv_endpoint) else [0]
    launches = []
    for rank in node_ranks:
        argv = [
            python,
            "-m",
            "torch.distributed.run",
            *torchrun_args(
                nnodes=nnodes,
                nproc_per_node=nproc_per_node,
                rdzv_endpoint=rdzv_endpoint,
                rdzv_id=rdzv_id,
                node_rank=rank if nnodes > 1 else None,
            ),
            "--no-python",  # each rank runs through the parent-death wrapper (traindoc.guard)
            *rank_guard(python),
            python,
            *worker_args(opts),
        ]
        node_env = dict(env)
        if device == "cpu":
            node_env["OMP_NUM_THREADS"] = "1"
        launches.append(Launch(argv, node_env, node_rank=rank))
    return launches


def display_command(
    pipeline: str, *, nnodes: int, nproc_per_node: int, rdzv_endpoint: str, rdzv_id: str, node_rank: int | None = None
) -> list[str]:
    """The launch line a person types: ``traindoc run`` for one process, ``torchrun`` for DDP."""
    if nnodes * nproc_per_node == 1:
        return ["python", "-m", "traindoc.worker", pipeline]
    return [
        "torchrun",
        *torchrun_args(
            nnodes=nnodes,
            nproc_per_node=nproc_per_node,
            rdzv_endpoint=rdzv_endpoint,
            rdzv_id=rdzv_id,
            node_rank=node_rank,
        ),
        "-m",
        "traindoc.worker",
        pipeline,
    ]

"""Introspection: the only module that touches torch objects to produce :class:`~traindoc.facts.Facts`.

The model is built by its factory on the ``meta`` device (:mod:`.modelbuild`; no real weights) and
traced once on a meta sample input (:mod:`.modeltrace`: one node per call, edges are real data flow,
skip connections included). The model instance is private: nothing the user holds is moved,
mutated or kept. A model that cannot be built or traced is described as such (``traced=False``);
the rest of the facts do not depend on it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from .. import __version__
from ..errors import BackendUnavailable, UserCodeError
from ..run import launch
from ..spec.loader import call, user_traceback
from ..spec.pipeline import Pipeline
from ..spec.types import ref_name
from . import (
    AccessFacts,
    BoundFact,
    CheckpointFacts,
    DataFacts,
    DeviceFacts,
    DistributedFacts,
    EnvironmentFacts,
    ExpectFacts,
    Facts,
    GPUFact,
    JupyterFact,
    OptimFacts,
    PortFact,
    SampleFact,
    SSHFact,
    TrainingFacts,
    VolumeFact,
    modelbuild,
)
from . import policy as policy_rules
from .modelfacts import model_facts
from .modeltrace import shape_str

RESIDENT_FRACTION = policy_rules.RESIDENT_FRACTION
CPU_RESIDENT_LIMIT = policy_rules.CPU_RESIDENT_LIMIT


# --- devices ---------------------------------------------------------------------------------------


def device_facts(requested: Any) -> DeviceFacts:
    req = requested if isinstance(requested, str) else ",".join(requested)
    has_cuda = torch.cuda.is_available()
    gpus = (
        [
            GPUFact(name=torch.cuda.get_device_name(i), memory_bytes=torch.cuda.get_device_properties(i).total_memory)
            for i in range(torch.cuda.device_count())
        ]
        if has_cuda
        else []
    )
    wants_cuda = "cuda" in req
    if req == "cpu" or (isinstance(requested, list) and not wants_cuda):
        resolved, sentence = "cpu", "runs on CPU, as the spec asks"
    elif has_cuda:
        names = ", ".join(sorted({g.name for g in gpus}))
        resolved, sentence = "cuda", f"runs on CUDA: {len(gpus)} × {names}"
    else:
        resolved = "cpu"
        sentence = "ran on CPU: no CUDA device visible" + (
            " (the spec asks for CUDA; falling back visibly)" if wants_cuda else ""
        )
    cudnn = torch.backends.cudnn.version() if has_cuda else None  # type: ignore[no-untyped-call]
    return DeviceFacts(
        requested=req,
        resolved=resolved,
        sentence=sentence,
        gpus=gpus,
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda if has_cuda else None,
        cudnn_version=str(cudnn) if cudnn else None,
    )


# --- model (see modelfacts, modelbuild, modeltrace) ------------------------------------------------

build_on_meta = modelbuild.build


# --- data ------------------------------------------------------------------------------------------


def tensor_bytes(dataset: Any) -> int | None:
    """Bytes of a TensorDataset-like dataset (``.tensors``), else None."""
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple) and tensors and all(isinstance(t, torch.Tensor) for t in tensors):
        return int(sum(t.numel() * t.element_size() for t in tensors))
    return None


def resident_ok(nbytes: int | None, device: DeviceFacts, policy: str, collate: bool = False) -> bool:
    gpu_memory = device.gpus[0].memory_bytes if device.gpus else None
    return policy_rules.resident_ok(nbytes, device.resolved, gpu_memory, policy, collate)


def data_facts(spec: Pipeline, file: Path, device: DeviceFacts, world_size: int) -> DataFacts:
    train = call(spec.data.train, "data.train", file)
    val = call(spec.data.val, "data.val", file) if spec.data.val is not None else None
    try:
        n_train = len(train)
        n_val = len(val) if val is not None else None
        first = train[0]
    except Exception as exc:
        raise UserCodeError(
            f"{file}: data.train: the dataset must support len() and [0]: {exc}", user_traceback(exc)
        ) from None
    sample = [
        SampleFact(shape=shape_str(t.shape), dtype=str(t.dtype).removeprefix("torch."))
        for t in tree_flatten(first)[0]
        if isinstance(t, torch.Tensor)
    ]
    batch = spec.data.batch_size
    nbytes = tensor_bytes(train)
    d = spec.data
    custom = None if isinstance(d.sampler, str) and ":" not in d.sampler else ref_name(d.sampler)
    shard = policy_rules.sharding(str(d.sampler), d.shuffle, world_size, custom)
    sampler = shard.sampler
    if custom is not None:  # a sampler of yours shards itself: its length is this rank's share
        seed = spec.optim.seed if spec.optim.seed is not None else 0
        own = call(d.sampler, "data.sampler", file, train, 0, world_size, seed)
        per_rank = len(own)
    else:
        per_rank = policy_rules.items_per_rank(n_train, shard.shards)
    steps = policy_rules.steps_per_epoch(
        policy_rules.batches_per_epoch(per_rank, batch, d.drop_last), spec.optim.accumulate
    )
    resident = resident_ok(nbytes, device, d.device_resident, d.collate_fn is not None)
    return DataFacts(
        dataset_class=type(train).__name__,
        train_len=n_train,
        val_len=n_val,
        batch_size=batch,
        global_batch_size=batch * world_size,
        steps_per_epoch=steps,
        num_workers=spec.data.num_workers,
        sampler=sampler,
        shuffle=spec.data.shuffle,
        pin_memory=spec.data.pin_memory,
        drop_last=spec.data.drop_last,
        sample=sample,
        tensor_bytes=nbytes,
        device_resident=resident,
        loader=(
            f"Batches of {batch} per rank · indexed on the device (no DataLoader)"
            if resident
            else f"DataLoader · batch {batch} · {spec.data.num_workers} workers"
        ),
    )


# --- environment, checkpoint, distributed -----------------------------------------------------------


def volume_for(container_path: str, volumes: list[VolumeFact]) -> VolumeFact | None:
    best: VolumeFact | None = None
    for vol in volumes:
        root = vol.container.rstrip("/") or "/"
        if (container_path == root or container_path.startswith(root.rstrip("/") + "/")) and (
            best is None or len(root) > len(best.container)
        ):
            best = vol
    return best


def environment_facts(spec: Pipeline, file: Path) -> EnvironmentFacts:
    env = spec.environment
    name, _, _ = env.image.partition("@")
    return EnvironmentFacts(
        image=env.image,
        image_name=name.rsplit(":", 1)[0] if env.image_tag else name,
        image_tag=env.image_tag,
        user=env.user,
        ports=[PortFact(host=p.host, container=p.container) for p in env.ports],
        volumes=[VolumeFact(host=v.host, container=v.container, read_only=v.read_only) for v in env.volumes],
        env_names=list(env.env),
        shm_size=env.shm_size,
        workdir=env.workdir,
    )


def checkpoint_facts(spec: Pipeline, env: EnvironmentFacts) -> CheckpointFacts:
    ck = spec.checkpoint
    vol = volume_for(ck.dir, env.volumes)
    host = None
    if vol is not None:
        rest = ck.dir[len(vol.container.rstrip("/")) :].lstrip("/")
        host = (PurePosixPath(vol.host) / rest).as_posix() if rest else vol.host
    return CheckpointFacts(
        container_dir=ck.dir,
        host_dir=host,
        on_volume=vol is not None,
        volume=vol.container if vol else None,
        format=ck.format,
        every_steps=ck.every_steps,
        keep_last=ck.keep_last,
        resume=ck.resume,
    )


def world(spec: Pipeline, device: DeviceFacts) -> tuple[int, int]:
    nproc = launch.resolve_nproc(spec.distributed.nproc_per_node, device.resolved, len(device.gpus))
    return spec.distributed.nnodes, nproc


def distributed_facts(spec: Pipeline, device: DeviceFacts, source: str) -> DistributedFacts:
    d = spec.distributed
    nnodes, nproc = world(spec, device)
    try:
        backend = launch.resolve_backend(d.backend, device.resolved)
    except BackendUnavailable as exc:
        backend = f"{d.backend} (unavailable: {exc.problems[0].message})"
    return DistributedFacts(
        enabled=nnodes * nproc > 1,
        backend=backend,
        backend_declared=d.backend,
        nnodes=nnodes,
        nproc_per_node=nproc,
        world_size=nnodes * nproc,
        rdzv_endpoint=d.rdzv_endpoint,
        rdzv_id=d.rdzv_id,
        launcher=launch.display_command(
            source, nnodes=nnodes, nproc_per_node=nproc, rdzv_endpoint=d.rdzv_endpoint, rdzv_id=d.rdzv_id
        ),
    )


def optim_facts(spec: Pipeline) -> OptimFacts:
    o = spec.optim
    return OptimFacts(
        optimizer=ref_name(o.optimizer),
        lr=None,
        loss=o.loss if isinstance(o.loss, str) and ":" not in o.loss else ref_name(o.loss),
        scheduler=ref_name(o.scheduler) if o.scheduler is not None else None,
        amp=o.amp,
        grad_clip=o.grad_clip,
        seed=o.seed,
    )


def relative_source(file: Path, root: Path | None = None) -> str:
    base = (root or Path.cwd()).resolve()
    try:
        return file.resolve().relative_to(base).as_posix()
    except ValueError:
        return file.as_posix()


def facts(spec: Pipeline, file: Path, root: Path | None = None) -> Facts:
    """Everything downstream needs, as plain data."""
    source = relative_source(file, root)
    device = device_facts(spec.devices)
    env = environment_facts(spec, file)
    nnodes, nproc = world(spec, device)
    access = spec.access
    host_port = {p.container: p.host for p in spec.environment.ports}
    model = model_facts(spec, file, strict=False)
    data = data_facts(spec, file, device, nnodes * nproc)
    optim = optim_facts(spec)
    try:  # the optimizer's learning rate, read from a throwaway optimizer over one parameter
        opt = call(spec.optim.optimizer, "optim.optimizer", file, [nn.Parameter(torch.zeros(1))])
        optim = optim.model_copy(update={"lr": float(opt.param_groups[0]["lr"]), "optimizer_class": type(opt).__name__})
    except (UserCodeError, KeyError, IndexError, TypeError):
        pass
    t = spec.training
    return Facts(
        name=spec.name,
        description=spec.description,
        source=source,
        environment=env,
        access=AccessFacts(
            jupyter=JupyterFact(**access.jupyter.model_dump(), host_port=host_port.get(access.jupyter.port))
            if access.jupyter
            else None,
            ssh=SSHFact(**access.ssh.model_dump(), host_port=host_port.get(access.ssh.port)) if access.ssh else None,
        ),
        devices=device,
        model=model,
        data=data,
        optim=optim,
        training=TrainingFacts(
            epochs=t.epochs,
            max_steps=t.max_steps,
            docs_max_steps=t.docs_run.max_steps,
            docs_max_seconds=t.docs_run.max_seconds,
            log_every=t.log_every,
            timeout_s=t.timeout_s,
        ),
        checkpoint=checkpoint_facts(spec, env),
        distributed=distributed_facts(spec, device, source),
        metrics=list(spec.monitoring.metrics),
        expect=ExpectFacts(
            min_val_accuracy=spec.expect.min_val_accuracy,
            min_loss_drop=spec.expect.min_loss_drop,
            max_final_loss=spec.expect.max_final_loss,
            bounds={k: BoundFact(min=b.min, max=b.max) for k, b in spec.expect.bounds.items()},
        ),
        traindoc_version=__version__,
        lint_ignore=dict(spec.lint.ignore),
    )

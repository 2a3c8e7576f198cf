"""Introspection: the only module that touches torch objects to produce :class:`~traindoc.facts.Facts`.

The model is built by its factory under ``torch.device("meta")`` (no real weights), traced once on
a meta sample input with hooks plus a ``TorchFunctionMode`` that follows each tensor's provenance,
so edges are real data flow (skip connections included). The model instance is private to this
module: nothing the user holds is moved, mutated or kept.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from . import __version__, launch
from . import policy as policy_rules
from .errors import Problem, SpecError, UserCodeError
from .facts import (
    AccessFacts,
    BoundFact,
    CheckpointFacts,
    DataFacts,
    DeviceFacts,
    DistributedFacts,
    EdgeFact,
    EnvironmentFacts,
    ExpectFacts,
    Facts,
    GPUFact,
    JupyterFact,
    ModelFacts,
    ModuleFact,
    OptimFacts,
    PortFact,
    SampleFact,
    SSHFact,
    TrainingFacts,
    VolumeFact,
)
from .loader import call, user_traceback
from .spec import Pipeline, ref_name

RESIDENT_FRACTION = policy_rules.RESIDENT_FRACTION
CPU_RESIDENT_LIMIT = policy_rules.CPU_RESIDENT_LIMIT


def shape_str(shape: Any) -> str:
    return "×".join(str(int(d)) for d in shape) if len(shape) else "scalar"


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


# --- model -----------------------------------------------------------------------------------------


_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
}


def build_on_meta(spec: Pipeline, file: Path) -> tuple[nn.Module, str]:
    """A private model instance on the meta device (falls back to CPU-then-meta for odd factories)."""
    try:
        with torch.device("meta"):
            model = call(spec.model.factory, "model.factory", file)
        traced_on = "meta"
    except UserCodeError:
        model = call(spec.model.factory, "model.factory", file)
        traced_on = "meta (built on CPU, then moved)"
    if not isinstance(model, nn.Module):
        raise SpecError(
            [Problem(str(file), f"must return an nn.Module, returned {type(model).__name__}", field="model.factory")]
        )
    if any(t.device.type != "meta" for t in [*model.parameters(), *model.buffers()]):
        model = copy.deepcopy(model)  # a factory handing out a shared instance: never move the user's object
    return model.to("meta"), traced_on


class _Provenance(TorchFunctionMode):
    """Tracks, for every tensor produced during the trace, which leaf modules it came from."""

    def __init__(self) -> None:
        super().__init__()
        self.prov: dict[int, frozenset[str]] = {}
        self.keep: list[torch.Tensor] = []  # keeps ids unique for the trace's lifetime

    def of(self, value: Any) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for leaf in tree_flatten(value)[0]:
            if isinstance(leaf, torch.Tensor):
                out |= self.prov.get(id(leaf), frozenset())
        return out

    def mark(self, value: Any, prov: frozenset[str]) -> None:
        for leaf in tree_flatten(value)[0]:
            if isinstance(leaf, torch.Tensor):
                self.prov[id(leaf)] = prov
                self.keep.append(leaf)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        src = self.of((args, kwargs))
        if src:
            self.mark(result, src)
        return result


def _signature(module: nn.Module) -> str:
    parts = [type(module).__qualname__]
    parts += [f"{n}:{tuple(p.shape)}:{p.dtype}" for n, p in module.named_parameters()]
    parts += [f"{n}/{type(m).__qualname__}" for n, m in module.named_modules()]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def model_facts(spec: Pipeline, file: Path) -> ModelFacts:
    model, traced_on = build_on_meta(spec, file)
    named = dict(model.named_modules(remove_duplicate=False))
    names_of: dict[int, str] = {}
    for name, mod in named.items():
        names_of.setdefault(id(mod), name)
    leaves = {n for n, m in named.items() if not list(m.children()) and names_of[id(m)] == n}

    calls: dict[str, int] = {}
    outputs: dict[str, list[str]] = {}
    edges: dict[tuple[str, str], str] = {}
    stack: list[str] = []
    tracker = _Provenance()

    def pre(mod: nn.Module, args: Any, kwargs: Any) -> None:
        name = names_of[id(mod)]
        stack.append(name)
        if name in leaves:
            for leaf in tree_flatten((args, kwargs))[0]:
                if isinstance(leaf, torch.Tensor):
                    for src in sorted(tracker.prov.get(id(leaf), frozenset())):
                        edges.setdefault((src, name), shape_str(leaf.shape))

    def post(mod: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
        name = names_of[id(mod)]
        if stack and stack[-1] == name:
            stack.pop()
        calls[name] = calls.get(name, 0) + 1
        if name not in outputs:
            outputs[name] = [shape_str(t.shape) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)][:4]
        if name in leaves:
            tracker.mark(out, frozenset({name}))

    handles = []
    for mod in {id(m): m for m in named.values()}.values():
        handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(mod.register_forward_hook(post, with_kwargs=True))
    sample = spec.model.sample_input
    dtype = _DTYPES[sample.dtype]
    x = torch.zeros(sample.shape, dtype=dtype, device="meta")
    tracker.mark(x, frozenset({"input"}))
    try:
        with torch.no_grad(), tracker:
            y = model(x)
    except Exception as exc:
        failing = stack[-1] if stack else ""
        where = f"submodule '{failing}' ({type(named[failing]).__name__})" if failing else "the model's own forward"
        raise UserCodeError(
            f"{file}: model.sample_input: forward on shape {list(sample.shape)} failed in {where}: "
            f"{type(exc).__name__}: {exc}",
            user_traceback(exc),
        ) from None
    finally:
        for h in handles:
            h.remove()
    out_tensors = [t for t in tree_flatten(y)[0] if isinstance(t, torch.Tensor)]
    for t in out_tensors:
        for src in sorted(tracker.prov.get(id(t), frozenset())):
            edges.setdefault((src, "output"), shape_str(t.shape))

    unique_params = dict(model.named_parameters())  # remove_duplicate=True: tied weights once
    all_params = list(model.named_parameters(remove_duplicate=False))
    tied = sum(p.numel() for _, p in all_params) - sum(p.numel() for p in unique_params.values())
    param_bytes: dict[str, int] = {}
    for p in unique_params.values():
        key = str(p.dtype).removeprefix("torch.")
        param_bytes[key] = param_bytes.get(key, 0) + p.numel() * p.element_size()

    modules = []
    for name, mod in named.items():
        if names_of[id(mod)] != name:
            continue  # a shared submodule appears once, under its first name
        params = {id(p): p for p in mod.parameters()}.values()
        trainable = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
        modules.append(
            ModuleFact(
                name=name,
                cls=type(mod).__name__,
                depth=0 if not name else name.count(".") + 1,
                own_params=sum(p.numel() for p in mod.parameters(recurse=False)),
                total_params=total,
                trainable_params=trainable,
                frozen_params=total - trainable,
                buffers=sum(b.numel() for b in mod.buffers(recurse=False)),
                signature=_signature(mod),
                calls=calls.get(name, 0),
                output_shapes=outputs.get(name, []),
            )
        )
    total = sum(p.numel() for p in unique_params.values())
    trainable = sum(p.numel() for p in unique_params.values() if p.requires_grad)
    return ModelFacts(
        root_class=type(model).__name__,
        modules=modules,
        edges=[EdgeFact(src=s, dst=d, shape=shape) for (s, d), shape in edges.items()],
        total_params=total,
        trainable_params=trainable,
        frozen_params=total - trainable,
        tied_params=tied,
        buffers=sum(b.numel() for b in model.buffers()),
        param_bytes=param_bytes,
        input_shape=shape_str(x.shape),
        output_shape=shape_str(out_tensors[0].shape) if out_tensors else "none",
        traced_on=traced_on,
    )


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
        device_resident=resident_ok(nbytes, device, spec.data.device_resident, spec.data.collate_fn is not None),
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
    except ValueError as exc:
        backend = f"{d.backend} (unavailable: {exc})"
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
    model = model_facts(spec, file)
    data = data_facts(spec, file, device, nnodes * nproc)
    optim = optim_facts(spec)
    try:  # the optimizer's learning rate, read from a throwaway optimizer over one parameter
        opt = call(spec.optim.optimizer, "optim.optimizer", file, [nn.Parameter(torch.zeros(1))])
        optim = optim.model_copy(update={"lr": float(opt.param_groups[0]["lr"])})
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
    )

"""The declarative pipeline spec: typed, validated, documented field by field.

A pipeline module builds one :class:`Pipeline`. Every field has a description; the docs' spec
reference is generated from them (``traindoc reference``). This module never imports torch:
factories are callables or ``"module:attr"`` strings and are only resolved by the loader.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import PurePosixPath
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

_REF_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE_RE = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?[a-z0-9._/-]*(:(?P<tag>[\w][\w.-]{0,127}))?(@sha256:[0-9a-f]{64})?$"
)
_SHM_RE = re.compile(r"^[1-9][0-9]*[bkmgBKMG]?$")


def _check_ref(value: Any) -> Any:
    if callable(value):
        return value
    if isinstance(value, str) and _REF_RE.match(value):
        return value
    raise ValueError("must be a callable or a 'module:attr' string")


def ref_name(value: Any) -> str:
    """A stable, human-readable name for a factory: ``module:qualname``."""
    if isinstance(value, str):
        return value
    module = getattr(value, "__module__", None) or "?"
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__name__
    return f"{module}:{name}"


Factory = Annotated[
    Any,
    AfterValidator(_check_ref),
    PlainSerializer(ref_name, return_type=str),
    WithJsonSchema({"type": "string", "description": "a callable or a 'module:attr' string"}),
]
"""A callable, or ``"module:attr"`` naming one; resolved lazily by :mod:`traindoc.loader`."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True)


class Port(_Model):
    """A published port: host port -> container port."""

    host: int = Field(ge=1, le=65535, description="Port on the host machine.")
    container: int = Field(ge=1, le=65535, description="Port inside the container.")


class Volume(_Model):
    """A bind mount from the host into the container."""

    host: str = Field(min_length=1, description="Host path (relative paths are relative to the pipeline file).")
    container: str = Field(description="Absolute path inside the container.")
    read_only: bool = Field(False, description="Mount read-only (good for datasets).")

    @field_validator("container")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"must be an absolute container path, got {v!r}")
        return str(PurePosixPath(v))


class Environment(_Model):
    """Where training runs: the container image and how it is started."""

    image: str = Field(description="Container image with an explicit version tag, e.g. 'pytorch-cuda:v2.6-cuda11.8'.")
    user: str | None = Field(None, description="User the container runs as ('1000:1000', 'dev'); None = image default.")
    ports: list[Port] = Field(default_factory=list, description="Published ports.")
    volumes: list[Volume] = Field(default_factory=list, description="Bind mounts (data, checkpoints, code).")
    env: list[str] = Field(
        default_factory=list,
        description="Names of environment variables passed through. Names only: values never enter the spec.",
    )
    shm_size: str = Field(
        "8g", description="Shared memory size (docker --shm-size), e.g. '8g'. DataLoader workers need it."
    )
    workdir: str = Field("/workspace", description="Working directory inside the container.")

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not _IMAGE_RE.match(v):
            raise ValueError(f"not a valid image reference: {v!r} (expected 'name:tag')")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _ENV_NAME_RE.match(name):
                raise ValueError(
                    "environment variables are given by NAME only (letters, digits, '_'); "
                    "values such as 'NAME=value' are not allowed in the spec"
                )
        return v

    @field_validator("shm_size")
    @classmethod
    def _shm(cls, v: str) -> str:
        if not _SHM_RE.match(v):
            raise ValueError(f"must look like '8g', '512m' or a byte count, got {v!r}")
        return v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"must be an absolute container path, got {v!r}")
        return v

    @model_validator(mode="after")
    def _unique_mounts(self) -> Environment:
        seen: dict[str, int] = {}
        for i, vol in enumerate(self.volumes):
            if vol.container in seen:
                raise ValueError(
                    f"volumes[{i}].container {vol.container!r} is already mounted by volumes[{seen[vol.container]}]; "
                    "each container path may be mounted once"
                )
            seen[vol.container] = i
        ports: dict[int, int] = {}
        for i, port in enumerate(self.ports):
            if port.host in ports:
                raise ValueError(f"ports[{i}].host {port.host} is already published by ports[{ports[port.host]}]")
            ports[port.host] = i
        return self

    @property
    def image_tag(self) -> str | None:
        m = _IMAGE_RE.match(self.image)
        return m.group("tag") if m else None


class Jupyter(_Model):
    """A Jupyter server inside the container."""

    port: int = Field(8888, ge=1, le=65535, description="Port the server listens on inside the container.")
    bind: str = Field("127.0.0.1", description="Address the server binds to ('0.0.0.0' = every interface).")
    token_env: str | None = Field(
        None, description="Name of the environment variable holding the access token; None = no token (unsafe)."
    )

    @field_validator("bind")
    @classmethod
    def _ip(cls, v: str) -> str:
        ipaddress.ip_address(v)
        return v

    @field_validator("token_env")
    @classmethod
    def _token_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME_RE.match(v):
            raise ValueError("must be an environment variable NAME, never the token itself")
        return v


class SSH(_Model):
    """An SSH daemon inside the container (for terminals and remote IDEs)."""

    port: int = Field(22, ge=1, le=65535, description="Port sshd listens on inside the container.")
    user: str = Field("dev", min_length=1, description="Login user.")
    auth: Literal["key", "password"] = Field("key", description="Authentication method.")


class Access(_Model):
    """How people reach the running container."""

    jupyter: Jupyter | None = Field(None, description="Jupyter entry point (browser over HTTP); None = none.")
    ssh: SSH | None = Field(None, description="SSH entry point (terminal); None = none.")


class SampleInput(_Model):
    """One input batch's shape and dtype, used to trace the model (on the meta device)."""

    shape: list[int] = Field(min_length=1, description="Shape including the batch dimension, e.g. [1, 1, 8, 8].")
    dtype: Literal["float32", "float16", "bfloat16", "float64", "int64", "int32"] = Field(
        "float32", description="Tensor dtype of the sample input."
    )

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(d <= 0 for d in v):
            raise ValueError(f"every dimension must be >= 1, got {v}")
        return v


class ModelSpec(_Model):
    """The model."""

    factory: Factory = Field(description="Zero-argument callable returning an nn.Module (or 'module:attr').")
    sample_input: SampleInput | dict[str, SampleInput] | list[SampleInput] | Literal["from_data"] = Field(
        description=(
            "Sample input for tracing shapes: one shape/dtype (called as model(x)), a dict of them (called "
            "as model(**inputs), e.g. input_ids and attention_mask), a list (model(*inputs)), or "
            "'from_data' (the shapes and dtypes of the first training sample as a batch of one, labels left out)."
        )
    )


class DataSpec(_Model):
    """Datasets and how they are loaded."""

    train: Factory = Field(description="Zero-argument callable returning the training Dataset.")
    val: Factory | None = Field(None, description="Zero-argument callable returning the validation Dataset.")
    batch_size: int = Field(gt=0, description="Per-rank batch size.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    shuffle: bool = Field(True, description="Shuffle training data each epoch.")
    pin_memory: bool = Field(True, description="Pin host memory for faster host-to-device copies (CUDA).")
    drop_last: bool = Field(False, description="Drop the last incomplete batch.")
    sampler: Literal["auto", "random", "sequential"] = Field(
        "auto",
        description="'auto' = DistributedSampler under DDP (each rank its shard), else random/sequential by `shuffle`; "
        "'random'/'sequential' never shard (every rank sees all data).",
    )
    device_resident: Literal["auto", "never"] = Field(
        "auto",
        description="'auto' keeps a tensor dataset on the device when it fits (no DataLoader); "
        "'never' always uses a DataLoader.",
    )


class OptimSpec(_Model):
    """Optimisation."""

    optimizer: Factory = Field(description="Callable taking the model's parameters, returning an Optimizer.")
    loss: Literal["cross_entropy", "mse", "nll"] | Factory = Field(
        "cross_entropy", description="Loss: a builtin name or a callable (output, target) -> loss tensor."
    )
    scheduler: Factory | None = Field(
        None, description="Callable taking the optimizer, returning an LR scheduler (stepped per step)."
    )
    amp: Literal["bf16", "fp16"] | None = Field(None, description="Autocast dtype on CUDA; None = full precision.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the gradient norm to this value.")
    seed: int | None = Field(None, ge=0, description="Seed for torch, numpy and random; None = not seeded.")


class DocsRun(_Model):
    """The small budget the docs build trains with."""

    max_steps: int = Field(200, gt=0, description="Stop after this many optimizer steps.")
    max_seconds: float = Field(120.0, gt=0, description="Stop (cleanly, after a step) after this many seconds.")


class Training(_Model):
    """How long to train."""

    epochs: int = Field(1, gt=0, description="Training epochs.")
    max_steps: int | None = Field(
        None, gt=0, description="Stop after this many steps (across epochs); None = all epochs."
    )
    log_every: int = Field(10, gt=0, description="Flush metrics (and check for NaN/Inf) every N steps.")
    timeout_s: float = Field(1800.0, gt=0, description="Hard timeout: the whole process group is killed after it.")
    docs_run: DocsRun = Field(
        default_factory=DocsRun, description="Budget used by `traindoc run --docs` and the docs build."
    )


class Checkpoint(_Model):
    """Checkpoints."""

    dir: str = Field(description="Absolute directory (container path) for checkpoints, e.g. '/checkpoints'.")
    format: Literal[".pt", ".pth"] = Field(".pt", description="File extension of checkpoint files.")
    every_steps: int = Field(100, gt=0, description="Write a checkpoint every N steps (and at the end).")
    keep_last: int = Field(3, ge=1, description="Keep the N newest checkpoints, delete older ones.")
    resume: bool = Field(False, description="Resume from the newest checkpoint when one exists.")

    @field_validator("dir")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"must be an absolute container path such as '/checkpoints', got {v!r}")
        return str(PurePosixPath(v))


class Distributed(_Model):
    """Distributed data parallel (DDP) set-up; launched with torchrun."""

    backend: Literal["auto", "nccl", "gloo"] = Field("auto", description="'auto' = nccl on CUDA, gloo on CPU.")
    nnodes: int = Field(1, ge=1, description="Number of machines.")
    nproc_per_node: int | Literal["auto"] = Field(
        1, description="Ranks per machine; 'auto' = number of visible GPUs (1 on CPU)."
    )
    rdzv_endpoint: str = Field("127.0.0.1:29500", description="c10d rendezvous endpoint 'host:port' (multi-node).")
    rdzv_id: str = Field("traindoc", pattern=r"^[\w.-]+$", description="Rendezvous job id.")

    @field_validator("nproc_per_node")
    @classmethod
    def _nproc(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be >= 1 or 'auto'")
        return v

    @field_validator("rdzv_endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"must be 'host:port', got {v!r}")
        return v


Metric = Literal["loss", "accuracy", "lr", "samples_per_s", "memory"]
METRICS: tuple[Metric, ...] = ("loss", "accuracy", "lr", "samples_per_s", "memory")


class Monitoring(_Model):
    """What the run records."""

    log_file: str = Field("train.log", description="Log file name (written in the run directory).")
    metrics: list[Metric] = Field(
        default_factory=lambda: list(METRICS),
        description="Metrics to record and report.",
    )


class Expect(_Model):
    """What a good run looks like; checked after every executed run."""

    min_val_accuracy: float | None = Field(
        None, ge=0.0, le=1.0, description="Final validation accuracy must reach this."
    )
    min_loss_drop: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Training loss must fall by this fraction (0.5 = halve) from first to last logged window.",
    )
    max_final_loss: float | None = Field(None, gt=0.0, description="Final training loss must be at most this.")


Devices = Literal["auto", "cpu", "cuda"] | list[Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?)$")]]


class Pipeline(_Model):
    """A whole training system, declared."""

    name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*$", description="Short name (used in ids, cache keys and links).")
    description: str = Field("", description="One paragraph about the pipeline.")
    environment: Environment = Field(description="Container image, user, ports, volumes, env names, shm.")
    access: Access = Field(default_factory=Access, description="Jupyter and SSH entry points.")
    devices: Devices = Field(
        "auto", description="'auto' (CUDA when available, else CPU, said out loud), 'cpu', 'cuda', or a list."
    )
    model: ModelSpec = Field(description="Model factory and sample input.")
    data: DataSpec = Field(description="Datasets and loading.")
    optim: OptimSpec = Field(description="Optimizer, loss, schedule, AMP, clipping, seed.")
    training: Training = Field(default_factory=Training, description="Epochs, steps, docs budget, timeout.")
    checkpoint: Checkpoint = Field(description="Checkpoint directory, format, cadence, retention, resume.")
    distributed: Distributed = Field(default_factory=Distributed, description="DDP / torchrun set-up.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Logs and metrics.")
    expect: Expect = Field(default_factory=Expect, description="Thresholds that make the executed run a test.")

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("an explicit device list must not be empty")
        return v


def describe_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Flatten the spec into ``(path, type, default, description)`` rows for the reference docs."""
    rows: list[tuple[str, str, str, str]] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = field.annotation
        sub = _submodel(ann)
        is_factory = any(getattr(m, "func", None) is _check_ref for m in field.metadata)
        type_name = "factory" if is_factory else _type_name(ann)
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = "see below" if sub else repr(field.default_factory())  # type: ignore[call-arg]
        else:
            default = repr(field.default)
        rows.append((path, type_name, default, field.description or ""))
        if sub is not None:
            rows.extend(describe_fields(sub, path + "."))
    return rows


def _submodel(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel) and getattr(ann, "__origin__", None) is not list:
            return arg
    return None


def _type_name(ann: Any) -> str:
    """Readable type for the reference table: 'factory', "'a' | 'b'", 'int | None', 'list[Volume]'."""
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        if any(getattr(m, "func", None) is _check_ref for m in args[1:]):
            return "factory"
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if ann is type(None):
        return "None"
    return getattr(ann, "__name__", repr(ann))


__all__ = [
    "SSH",
    "Access",
    "Checkpoint",
    "DataSpec",
    "Distributed",
    "DocsRun",
    "Environment",
    "Expect",
    "Jupyter",
    "ModelSpec",
    "Monitoring",
    "OptimSpec",
    "Pipeline",
    "Port",
    "SampleInput",
    "Training",
    "Volume",
    "describe_fields",
    "ref_name",
]

"""The declarative pipeline spec: typed, validated, documented field by field.

A pipeline module builds one :class:`Pipeline`. Every field has a description; the docs' spec
reference is generated from them (``traindoc reference``). This module never imports torch:
factories are callables or ``"module:attr"`` strings and are only resolved by the loader.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
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

_REF_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE_RE = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?[a-z0-9._/-]*(:(?P<tag>[\w][\w.-]{0,127}))?(@sha256:[0-9a-f]{64})?$"
)
_SHM_RE = re.compile(r"[1-9][0-9]*[bkmgBKMG]?")
# Every regex here is used with fullmatch: Python's "$" also matches before a final newline.
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]{0,31}"
_USER_RE = re.compile(rf"(?:{_NAME}|[0-9]{{1,10}})(?::(?:{_NAME}|[0-9]{{1,10}}))?")
_SSH_USER_RE = re.compile(_NAME)
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")
_RDZV_ID_RE = re.compile(r"[\w.-]+")
_PIPELINE_NAME_RE = re.compile(r"[A-Za-z0-9][\w.-]*")
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9_][\w.-]*")
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _clean(value: str, allow: str) -> str:
    bad = sorted({ch for ch in value if ch not in allow and (unicodedata.category(ch) == "Cc" or ch in _BIDI)})
    if bad:
        raise ValueError(f"must not contain control characters ({', '.join(repr(c) for c in bad)})")
    if value != value.rstrip("\n\r\t"):
        raise ValueError("must not end with a newline or a tab")
    return value


def _one_line(value: str) -> str:
    return _clean(value, "")


def _paragraph(value: str) -> str:
    return _clean(value, "\n\t")


Text = Annotated[str, AfterValidator(_one_line)]
"""A one-line string: no control characters (newline, escape, NUL...) and no bidi overrides. Every
string field of the spec is one, so nothing a spec holds can start a new line of generated text."""
Paragraph = Annotated[str, AfterValidator(_paragraph)]
"""Like :data:`Text`, but inner newlines and tabs are allowed (a description); a trailing one is not."""


def _full(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {what}")  # the loader adds "(got ...)"
        return value

    return AfterValidator(check)


_METRIC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


def split_image(ref: str) -> tuple[str, str | None, str | None]:
    """``(name, tag, digest)`` of an image reference: the tag follows the last ':' after the last '/'
    (so ``python:3.11``, ``pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime`` and
    ``registry:5000/team/img:24.05-py3`` have tags, and a registry port is never taken for one)."""
    name, _, digest = ref.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :] or None, digest or None
    return name, None, digest or None


def _check_ref(value: Any) -> Any:
    if callable(value):
        return value
    if isinstance(value, str) and _REF_RE.fullmatch(value):
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

    host: Text = Field(min_length=1, description="Host path (relative paths are relative to the pipeline file).")
    container: Text = Field(description="Absolute path inside the container.")
    read_only: bool = Field(False, description="Mount read-only (good for datasets).")

    @field_validator("container")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"must be an absolute container path, got {v!r}")
        return str(PurePosixPath(v))


class Environment(_Model):
    """Where training runs: the container image and how it is started."""

    image: Text = Field(description="Container image with an explicit version tag, e.g. 'pytorch-cuda:v2.6-cuda11.8'.")
    user: Annotated[Text, _full(_USER_RE, "'user', 'uid', 'user:group' or 'uid:gid'")] | None = Field(
        None, description="User the container runs as ('1000:1000', 'dev'); None = image default."
    )
    ports: list[Port] = Field(default_factory=list, description="Published ports.")
    volumes: list[Volume] = Field(default_factory=list, description="Bind mounts (data, checkpoints, code).")
    env: list[Text] = Field(
        default_factory=list,
        description="Names of environment variables passed through. Names only: values never enter the spec.",
    )
    shm_size: Text = Field(
        "8g", description="Shared memory size (docker --shm-size), e.g. '8g'. DataLoader workers need it."
    )
    workdir: Text = Field("/workspace", description="Working directory inside the container.")

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not _IMAGE_RE.fullmatch(v):
            raise ValueError(f"not a valid image reference: {v!r} (expected 'name:tag')")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _ENV_NAME_RE.fullmatch(name):
                raise ValueError(
                    "environment variables are given by NAME only (letters, digits, '_'); "
                    "values such as 'NAME=value' are not allowed in the spec"
                )
        return v

    @field_validator("shm_size")
    @classmethod
    def _shm(cls, v: str) -> str:
        if not _SHM_RE.fullmatch(v):
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
        return split_image(self.image)[1]


class Jupyter(_Model):
    """A Jupyter server inside the container."""

    port: int = Field(8888, ge=1, le=65535, description="Port the server listens on inside the container.")
    bind: Text = Field("127.0.0.1", description="Address the server binds to ('0.0.0.0' = every interface).")
    token_env: Text | None = Field(
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
        if v is not None and not _ENV_NAME_RE.fullmatch(v):
            raise ValueError("must be an environment variable NAME, never the token itself")
        return v


class SSH(_Model):
    """An SSH daemon inside the container (for terminals and remote IDEs)."""

    port: int = Field(22, ge=1, le=65535, description="Port sshd listens on inside the container.")
    user: Annotated[Text, _full(_SSH_USER_RE, "a login name (letters, digits, '_', '.', '-')")] = Field(
        "dev", min_length=1, description="Login user."
    )
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
    sampler: Literal["auto", "random", "sequential"] | Factory = Field(
        "auto",
        description="'auto' = DistributedSampler under DDP (each rank its shard), else random/sequential by `shuffle`; "
        "'random'/'sequential' never shard (every rank sees all data); or a callable "
        "`sampler(dataset, rank, world, seed) -> Sampler` that shards itself (it is given this rank and the world "
        "size; `set_epoch(epoch)` is called each epoch when it has one). Indices, never code, are read from it.",
    )
    collate_fn: Factory | None = Field(
        None,
        description="Callable `collate_fn(list_of_samples) -> batch` (or 'module:attr') for the DataLoader; "
        "None = torch's default collate. A custom collate turns off device-resident data.",
    )
    target: int | str | None = Field(
        None,
        description="Where the target is in a batch: an index for tuple/list batches, a key for dict batches. "
        "None = index 1 for sequences, key 'labels' for mappings. The other items are the model's inputs "
        "(keyword arguments for a dict, positional when exactly one remains).",
    )
    device_resident: Literal["auto", "never"] = Field(
        "auto",
        description="'auto' keeps a tensor dataset on the device when it fits (no DataLoader); "
        "'never' always uses a DataLoader.",
    )


class OptimSpec(_Model):
    """Optimisation."""

    optimizer: Factory = Field(description="Callable taking the model's parameters, returning an Optimizer.")
    loss: Literal["cross_entropy", "mse", "nll", "model"] | Factory = Field(
        "cross_entropy",
        description="Loss: 'cross_entropy'/'nll' ((B, C) vs (B,), or sequences (B, T, V) vs (B, T) with "
        "`ignore_index`), 'mse' (any matching shape), 'model' (the model computes it: the output's `.loss` "
        "attribute or 'loss' key; the whole batch, target included, goes to the model), or a callable "
        "(output, target) -> loss tensor.",
    )
    ignore_index: int = Field(
        -100, description="Target value the built-in cross_entropy/nll losses and token accuracy ignore (padding)."
    )
    accumulate: int = Field(1, ge=1, description="Gradient accumulation: batches per optimizer step.")
    step: Factory | None = Field(
        None,
        description="Your own training step `step(model, batch) -> loss` (a tensor) or a mapping holding "
        "'loss' plus scalar metrics to record. traindoc still does backward, AMP, clipping, accumulation, "
        "DDP, checkpoints and budgets around it. None = the built-in supervised step.",
    )
    evaluate: Factory | None = Field(
        None,
        description="Your own evaluation `evaluate(model, val_loader) -> {name: float}`, run on rank 0 over the "
        "whole validation set; names are recorded with a 'val_' prefix. None = built-in loss/accuracy.",
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
    script: str | None = Field(
        None,
        description="Bring your own script: a `train.py` (path relative to the pipeline file) that traindoc "
        "runs instead of its own loop, as one process or under torchrun, with the same timeout and kill. It "
        "reports through `traindoc.log()`, `traindoc.checkpoint_dir()` and `traindoc.should_stop()`.",
    )
    script_args: list[str] = Field(default_factory=list, description="Command-line arguments for `script`.")

    @field_validator("script")
    @classmethod
    def _script(cls, v: str | None) -> str | None:
        if v is not None and (not v.endswith(".py") or PurePosixPath(v).is_absolute() or "\x00" in v):
            raise ValueError(f"must be a relative path to a .py file, got {v!r}")
        return v


class Checkpoint(_Model):
    """Checkpoints."""

    dir: Text = Field(description="Absolute directory (container path) for checkpoints, e.g. '/checkpoints'.")
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
    rdzv_endpoint: Text = Field("127.0.0.1:29500", description="c10d rendezvous endpoint 'host:port' (multi-node).")
    rdzv_id: Annotated[Text, _full(_RDZV_ID_RE, "letters, digits, '_', '.', '-'")] = Field(
        "traindoc", description="Rendezvous job id."
    )

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
        if not sep or not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
            raise ValueError(f"must be 'host:port', got {v!r}")
        if host.startswith("[") and host.endswith("]"):
            ipaddress.IPv6Address(host[1:-1])
        elif not _HOST_RE.fullmatch(host) or len(host) > 253:
            raise ValueError(f"host must be a host name or an IP address, got {host!r}")
        return v


Metric = Literal["loss", "accuracy", "lr", "samples_per_s", "memory"]
METRICS: tuple[Metric, ...] = ("loss", "accuracy", "lr", "samples_per_s", "memory")


class Monitoring(_Model):
    """What the run records."""

    log_file: Annotated[Text, _full(_FILE_NAME_RE, "a file name (no folders)")] = Field(
        "train.log",
        description="Human-readable log of every recorded step and evaluation, written by rank 0 "
        "into the run folder under this file name.",
    )
    metrics: list[Metric] = Field(
        default_factory=lambda: list(METRICS),
        description="Metrics to record and report.",
    )
    samples: Factory | None = Field(
        None,
        description="Callable `samples(model) -> list[str]` run on rank 0 after training (eval mode, no grad): "
        "text shown on the run page, e.g. a few generated sequences.",
    )


class Bound(_Model):
    """Bounds on one recorded metric: its final value must be at least ``min`` and at most ``max``."""

    min: float | None = Field(None, description="The final value must be at least this.")
    max: float | None = Field(None, description="The final value must be at most this.")

    @model_validator(mode="after")
    def _some(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a bound needs 'min', 'max' or both")
        return self


SHORTHANDS = ("min_val_accuracy", "min_loss_drop", "max_final_loss")


class Expect(_Model):
    """What a good run looks like; checked after every executed run.

    Besides the shorthands, any recorded metric may be bounded by name:
    ``{"val_loss": {"max": 2.0}, "val_token_accuracy": {"min": 0.3}}``.
    """

    model_config = ConfigDict(extra="allow", frozen=True, arbitrary_types_allowed=True, defer_build=True)
    __pydantic_extra__: dict[str, Bound] = Field(init=False)

    @model_validator(mode="before")
    @classmethod
    def _metric_bounds(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if key in SHORTHANDS:
                    continue
                if not isinstance(key, str) or not _METRIC_RE.match(key):
                    raise ValueError(f"{key!r} is not a metric name (letters, digits, '_')")
                if not isinstance(value, (dict, Bound)):
                    raise ValueError(
                        f"{key}: a metric bound is {{'min': x}} and/or {{'max': y}}, got {value!r} "
                        f"(shorthands: {', '.join(SHORTHANDS)})"
                    )
        return data

    @property
    def bounds(self) -> dict[str, Bound]:
        """Bounds on named metrics (everything besides the shorthands)."""
        return dict(self.__pydantic_extra__ or {})

    min_val_accuracy: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Final validation accuracy must reach this (shorthand for val_accuracy: min; accuracy is "
        "recorded for classifiers only — bound val_token_accuracy for sequence models).",
    )
    min_loss_drop: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Training loss must fall by this fraction (0.5 = halve) from first to last logged window.",
    )
    max_final_loss: float | None = Field(None, gt=0.0, description="Final training loss must be at most this.")


Devices = (
    Literal["auto", "cpu", "cuda"]
    | list[Annotated[Text, _full(re.compile(r"cpu|cuda(:[0-9]+)?"), "'cpu', 'cuda' or 'cuda:N'")]]
)


class LintSpec(_Model):
    """Lint rules this pipeline silences, each with the reason (shown in ``traindoc lint``)."""

    ignore: dict[str, str] = Field(
        default_factory=dict,
        description="Rule id -> why it does not apply here, e.g. {'root-user': 'the image drops privileges itself'}.",
    )

    @field_validator("ignore")
    @classmethod
    def _reasons(cls, v: dict[str, str]) -> dict[str, str]:
        from .lint import RULES

        known = [name for name, _ in RULES]
        for rule_id, reason in v.items():
            if rule_id not in known:
                raise ValueError(f"unknown lint rule {rule_id!r}; known rules: {', '.join(known)}")
            if not reason.strip():
                raise ValueError(f"silencing {rule_id!r} needs a reason")
        return v


class Pipeline(_Model):
    """A whole training system, declared."""

    name: Annotated[Text, _full(_PIPELINE_NAME_RE, "letters, digits, '_', '.', '-'")] = Field(
        description="Short name (used in ids, cache keys and links)."
    )
    description: Paragraph = Field("", description="One paragraph about the pipeline.")
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
    lint: LintSpec = Field(default_factory=LintSpec, description="Lint rules silenced for this pipeline, with reasons.")

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
    if model.model_config.get("extra") == "allow":
        rows.append(
            (
                f"{prefix}<metric>",
                "{'min': float, 'max': float}",
                "none",
                "Bound any recorded metric by name (e.g. val_loss, val_token_accuracy, val_perplexity, a metric "
                "your step or evaluate hook returns); a bound on a metric that was never recorded fails.",
            )
        )
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
    "Bound",
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

"""Facts: the plain, frozen, JSON-serialisable description of a pipeline.

Produced only by :mod:`traindoc.facts.introspect` (the one place that touches torch objects); read by
templates, diagrams, lint, README sections and commands. ``Facts.model_dump(mode="json")`` is the
``traindoc inspect --json`` output and the cached form. Plain records (:mod:`traindoc.records`), so
reading them back never imports pydantic or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..records import Record


@dataclass(frozen=True, kw_only=True)
class ModuleFact(Record):
    name: str  # qualified name; "" is the root
    cls: str
    depth: int
    own_params: int
    total_params: int
    trainable_params: int
    frozen_params: int
    buffers: int
    signature: str  # class + parameter shapes of the whole subtree: identical blocks share it
    calls: int
    output_shapes: list[str]
    tied_to: str = ""  # every parameter of this module is shared with that earlier module ("" if not)
    counted_params: int = 0  # parameters first held inside this subtree: the rows of one level add up
    moe: str = ""  # "experts" (E experts fused in one module), "router" (picks among them), "block" (holds both)
    experts: int = 0  # E, where moe is set


@dataclass(frozen=True, kw_only=True)
class CallFact(Record):
    """One call during the trace: a module call (``drop@2`` is drop's second call) or a merging op."""

    id: str
    module: str  # qualified module name; "" for the root module and for ops
    op: str  # "" for a module call; else what merged the inputs: "+", "concat", "attention", ...
    parent: str | None  # the enclosing module call's id (None for the root's call)
    output_shapes: list[str]


@dataclass(frozen=True, kw_only=True)
class EdgeFact(Record):
    src: str  # call id, or "input" / "input:<name>"
    dst: str  # call id, or "output"
    shape: str  # the shape of the tensor src produced and dst received


@dataclass(frozen=True, kw_only=True)
class ModelFacts(Record):
    root_class: str
    modules: list[ModuleFact]
    edges: list[EdgeFact]
    total_params: int
    trainable_params: int
    frozen_params: int
    tied_params: int  # parameters shared between modules, counted once in total_params
    buffers: int
    param_bytes: dict[str, int]  # by dtype
    input_shape: str
    output_shape: str
    traced_on: str
    calls: list[CallFact] = field(default_factory=list)
    traced: bool = True
    untraced_reason: str = ""  # why there is no trace (the model could not be built or run on meta)
    trace_notes: list[str] = field(default_factory=list)  # how the trace departed from the model as built
    sample_mismatch: list[str] = field(default_factory=list)  # how the sample input differs from real data


@dataclass(frozen=True, kw_only=True)
class SampleFact(Record):
    shape: str
    dtype: str


@dataclass(frozen=True, kw_only=True)
class DataFacts(Record):
    dataset_class: str
    train_len: int
    val_len: int | None
    batch_size: int
    global_batch_size: int
    steps_per_epoch: int
    num_workers: int
    sampler: str
    shuffle: bool
    pin_memory: bool
    drop_last: bool
    sample: list[SampleFact]
    tensor_bytes: int | None  # size of a tensor dataset (None: not a tensor dataset)
    device_resident: bool
    loader: str = ""  # how batches reach the model, in words: the one place system and data diagrams read it


@dataclass(frozen=True, kw_only=True)
class GPUFact(Record):
    name: str
    memory_bytes: int


@dataclass(frozen=True, kw_only=True)
class DeviceFacts(Record):
    requested: str
    resolved: str  # "cuda" or "cpu"
    sentence: str  # said out loud, e.g. "ran on CPU: no CUDA device visible"
    gpus: list[GPUFact]
    torch_version: str
    cuda_version: str | None
    cudnn_version: str | None


@dataclass(frozen=True, kw_only=True)
class PortFact(Record):
    host: int
    container: int


@dataclass(frozen=True, kw_only=True)
class VolumeFact(Record):
    host: str  # as written in the spec (relative to the pipeline file); facts hold no machine paths
    container: str
    read_only: bool


@dataclass(frozen=True, kw_only=True)
class EnvironmentFacts(Record):
    image: str
    image_name: str
    image_tag: str | None
    user: str | None
    ports: list[PortFact]
    volumes: list[VolumeFact]
    env_names: list[str]
    shm_size: str
    workdir: str


@dataclass(frozen=True, kw_only=True)
class JupyterFact(Record):
    port: int
    bind: str
    token_env: str | None
    host_port: int | None


@dataclass(frozen=True, kw_only=True)
class SSHFact(Record):
    port: int
    user: str
    auth: str
    host_port: int | None


@dataclass(frozen=True, kw_only=True)
class AccessFacts(Record):
    jupyter: JupyterFact | None
    ssh: SSHFact | None


@dataclass(frozen=True, kw_only=True)
class OptimFacts(Record):
    optimizer: str  # the spec's reference: torch.optim:AdamW, digits:optimizer, digits:<lambda>
    lr: float | None
    loss: str
    scheduler: str | None
    amp: str | None
    grad_clip: float | None
    seed: int | None
    optimizer_class: str | None = None  # what the factory returned (AdamW), read from a throwaway optimizer

    @property
    def optimizer_label(self) -> str:
        """``AdamW`` for a lambda or the class itself, ``AdamW via digits:optimizer`` for a named factory."""
        cls, ref = self.optimizer_class, self.optimizer
        if not cls:
            return ref
        if ref.endswith(("<lambda>", ":" + cls, "." + cls)):
            return cls
        return f"{cls} via {ref}"


@dataclass(frozen=True, kw_only=True)
class TrainingFacts(Record):
    epochs: int
    max_steps: int | None
    docs_max_steps: int
    docs_max_seconds: float
    log_every: int
    timeout_s: float


@dataclass(frozen=True, kw_only=True)
class CheckpointFacts(Record):
    container_dir: str
    host_dir: str | None  # as written via the volume, e.g. './checkpoints'
    on_volume: bool
    volume: str | None
    format: str
    every_steps: int
    keep_last: int
    resume: bool


@dataclass(frozen=True, kw_only=True)
class DistributedFacts(Record):
    enabled: bool
    backend: str  # resolved on this machine
    backend_declared: str  # as the spec says ('auto' = nccl on GPU, gloo on CPU)
    nnodes: int
    nproc_per_node: int
    world_size: int
    rdzv_endpoint: str
    rdzv_id: str
    launcher: list[str]  # argv of the launch line a user types (torchrun ... or python ...)


@dataclass(frozen=True, kw_only=True)
class BoundFact(Record):
    min: float | None
    max: float | None


@dataclass(frozen=True, kw_only=True)
class ExpectFacts(Record):
    min_val_accuracy: float | None
    min_loss_drop: float | None
    max_final_loss: float | None
    bounds: dict[str, BoundFact] = field(default_factory=dict)  # any recorded metric, by name


@dataclass(frozen=True, kw_only=True)
class Facts(Record):
    name: str
    description: str
    source: str  # pipeline file, relative to the project root when inside it
    environment: EnvironmentFacts
    access: AccessFacts
    devices: DeviceFacts
    model: ModelFacts
    data: DataFacts
    optim: OptimFacts
    training: TrainingFacts
    checkpoint: CheckpointFacts
    distributed: DistributedFacts
    metrics: list[str]
    expect: ExpectFacts
    traindoc_version: str
    reads: dict[str, str] = field(default_factory=dict)  # files opened and packages imported (readset)
    lint_ignore: dict[str, str] = field(default_factory=dict)  # rule id -> reason (spec.lint.ignore)

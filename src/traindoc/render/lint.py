"""Best-practice checks on a pipeline's facts: each finding explains the risk and the fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .._util.redact import MASK
from ..facts import Facts
from ..records import Record
from .env import render

LARGE_DATASET = 10_000


@dataclass(frozen=True, kw_only=True)
class Finding(Record):
    rule: str
    severity: Literal["warning", "info"]
    field: str
    message: str
    fix: str
    silenced: str | None = None  # the reason given in spec.lint.ignore; a silenced finding never fails --strict


Rule = Callable[[Facts], Finding | None]
RULES: list[tuple[str, Rule]] = []


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES.append((name, fn))
        return fn

    return register


def _w(name: str, field: str, message: str, fix: str) -> Finding:
    return Finding(rule=name, severity="warning", field=field, message=message, fix=fix)


@rule("image-tag")
def image_tag(f: Facts) -> Finding | None:
    tag = f.environment.image_tag
    pinned_by_digest = "@sha256:" in f.environment.image  # a digest pins the exact image, whatever the tag
    if (tag is None or tag == "latest") and not pinned_by_digest:
        what = "has no version tag" if tag is None else "uses the floating tag 'latest'"
        return _w(
            "image-tag",
            "environment.image",
            f"image {f.environment.image!r} {what}: the next pull may "
            "bring another CUDA or PyTorch and nobody will know why results changed",
            "pin an explicit tag such as 'pytorch-cuda:v2.6-cuda11.8' (or a digest)",
        )
    return None


_CPU_TOKEN = re.compile(r"(?<![a-z0-9])cpu(?![a-z])", re.IGNORECASE)


@rule("cpu-image")
def cpu_image(f: Facts) -> Finding | None:
    """A CPU-only image (``pytorch:2.13-cpu``, ``…/cpu/…``) with devices that ask for a GPU."""
    if f.devices.requested == "cpu" or not _CPU_TOKEN.search(f.environment.image):
        return None
    return _w(
        "cpu-image",
        "environment.image",
        f"image {f.environment.image!r} looks CPU-only while devices is {f.devices.requested!r}: the docs draw "
        "GPUs and the job asks for them, but a CPU-only PyTorch in the container cannot use them",
        "use a CUDA image (e.g. 'pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime') or set devices: 'cpu'",
    )


@rule("checkpoint-volume")
def checkpoint_volume(f: Facts) -> Finding | None:
    if not f.checkpoint.on_volume:
        return _w(
            "checkpoint-volume",
            "checkpoint.dir",
            f"checkpoints go to {f.checkpoint.container_dir}, which is "
            "not on a mounted volume: they are lost when the container is removed",
            f"mount a host folder at {f.checkpoint.container_dir} in environment.volumes",
        )
    return None


@rule("data-volume")
def data_volume(f: Facts) -> Finding | None:
    others = [v for v in f.environment.volumes if v.container not in (f.checkpoint.volume, f.environment.workdir)]
    if not others:
        return _w(
            "data-volume",
            "environment.volumes",
            "no data volume is mounted: data downloaded inside the "
            "container is lost with it and fetched again every time",
            "mount the dataset folder, read-only, e.g. {host: './data', container: '/data', read_only: true}",
        )
    return None


@rule("jupyter-auth")
def jupyter_auth(f: Facts) -> Finding | None:
    j = f.access.jupyter
    if j is None or j.token_env:
        return None
    exposed = j.bind in ("0.0.0.0", "::")
    return _w(
        "jupyter-auth",
        "access.jupyter.token_env",
        "Jupyter has no token"
        + (
            f" and is bound to {j.bind}: anyone who reaches the port can run code"
            if exposed
            else ": any local user or forwarded port can run code"
        ),
        "set token_env to the NAME of an environment variable holding a random token",
    )


@rule("root-user")
def root_user(f: Facts) -> Finding | None:
    user = f.environment.user
    if user is None or user.split(":")[0] in ("root", "0"):
        return _w(
            "root-user",
            "environment.user",
            "the container runs as root: files written to the volumes "
            "are owned by root on the host, and a compromise owns the container",
            "run as your own uid:gid, e.g. user: '1000:1000'",
        )
    return None


@rule("ssh-password")
def ssh_password(f: Facts) -> Finding | None:
    if f.access.ssh is not None and f.access.ssh.auth == "password":
        return _w(
            "ssh-password",
            "access.ssh.auth",
            "SSH accepts passwords, which can be guessed",
            "use key-based auth (auth: 'key') and mount authorized_keys read-only",
        )
    return None


@rule("ddp-sampler")
def ddp_sampler(f: Facts) -> Finding | None:
    if f.distributed.enabled and f.data.sampler in ("RandomSampler", "SequentialSampler"):  # yours shards itself
        return _w(
            "ddp-sampler",
            "data.sampler",
            f"DDP with {f.distributed.world_size} ranks but a {f.data.sampler}: "
            "every rank sees the whole dataset, so an epoch does world-size times the work",
            "leave data.sampler at 'auto' (a DistributedSampler under DDP)",
        )
    return None


@rule("pin-memory")
def pin_memory(f: Facts) -> Finding | None:
    if f.devices.requested != "cpu" and not f.data.pin_memory and not f.data.device_resident:
        return _w(
            "pin-memory",
            "data.pin_memory",
            "pin_memory is off while training on CUDA: host-to-device copies cannot overlap compute",
            "set data.pin_memory: true",
        )
    return None


@rule("num-workers")
def num_workers(f: Facts) -> Finding | None:
    if f.data.num_workers == 0 and f.data.train_len > LARGE_DATASET and not f.data.device_resident:
        return _w(
            "num-workers",
            "data.num_workers",
            f"num_workers=0 with {f.data.train_len:,} samples: loading "
            "runs in the training process and the GPU waits for it",
            "use several workers (e.g. 4 per GPU) and raise environment.shm_size",
        )
    return None


@rule("seed")
def seed(f: Facts) -> Finding | None:
    if f.optim.seed is None:
        return _w(
            "seed",
            "optim.seed",
            "no seed: two runs of the same code give different results, and "
            "resume cannot be checked against an uninterrupted run",
            "set optim.seed",
        )
    return None


@rule("checkpoint-cadence")
def checkpoint_cadence(f: Facts) -> Finding | None:
    if f.checkpoint.every_steps > f.training.docs_max_steps:
        return _w(
            "checkpoint-cadence",
            "checkpoint.every_steps",
            f"checkpoints every {f.checkpoint.every_steps} "
            f"steps but the docs run stops after {f.training.docs_max_steps}: the periodic checkpoint path is "
            "never exercised by the executed example",
            "checkpoint at least once within training.docs_run.max_steps",
        )
    return None


def _masked_fields(value: object, path: str = "") -> list[str]:
    if isinstance(value, str):
        return [path] if MASK in value else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _masked_fields(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _masked_fields(v, f"{path}[{i}]")]
    return []


@rule("secret-in-spec")
def secret_in_spec(f: Facts) -> Finding | None:
    fields = _masked_fields(f.model_dump(mode="json"))
    if fields:
        return _w(
            "secret-in-spec",
            fields[0],
            f"{', '.join(fields)} hold(s) a value that looks like a secret (a token, a password, credentials in "
            "a URL, a private key): it is committed with the code, so traindoc masks it as *** everywhere it "
            "writes (pages, README, caches)",
            "remove it from the spec and the repository, rotate it, and pass it at run time through an "
            "environment variable named in environment.env",
        )
    return None


@rule("model-traced")
def model_traced(f: Facts) -> Finding | None:
    if f.model.traced:
        return None
    return _w(
        "model-traced",
        "model.sample_input",
        f"the model was not traced, so its diagram and table are missing: {f.model.untraced_reason.splitlines()[0]}",
        "make the factory and forward run on the meta device, or give a model.sample_input that fits the model",
    )


@rule("sample-input")
def sample_input(f: Facts) -> Finding | None:
    if not f.model.sample_mismatch:
        return None
    return _w(
        "sample-input",
        "model.sample_input",
        "the sample input does not match a real batch, so the diagram's shapes are made up: "
        + "; ".join(f.model.sample_mismatch),
        "declare the real shapes and dtypes (a dict for several inputs), or use sample_input: 'from_data'",
    )


def lint(facts: Facts) -> list[Finding]:
    """Every rule's finding; those the pipeline silences (``lint={"ignore": {rule: reason}}``) carry the reason."""
    out = []
    for name, fn in RULES:
        found = fn(facts)
        if found is not None:
            reason = facts.lint_ignore.get(name)
            out.append(found.model_copy(update={"silenced": reason}) if reason else found)
    return out


def failing(findings: list[Finding]) -> list[Finding]:
    """Warnings nobody silenced: what ``traindoc lint --strict`` fails on."""
    return [f for f in findings if f.severity == "warning" and f.silenced is None]


def format_findings(findings: list[Finding]) -> str:
    return render("lint.txt.j2", None, findings=findings)

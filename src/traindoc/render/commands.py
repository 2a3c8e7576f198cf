"""Launch commands from the same facts: ``docker run``/``exec``, ``ssh``, ``torchrun`` per node, and a
Kubeflow ``PyTorchJob`` manifest. Pure: argv lists and dicts are built here; templates format them.

Every word of a generated shell line is POSIX-quoted (:func:`shlex.quote`). The only words the shell
expands are :class:`Expand` values that traindoc itself builds (``"$PWD"`` before a relative volume,
``"$TOKEN_NAME"`` for a validated variable name, ``~`` before the SSH key), never text from a spec.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ..facts import Facts
from ..run import launch
from .env import render
from .escape import ShellLine

RUN_DIR = "/checkpoints/run"
MAX_NODE_LINES = 3


def container_name(facts: Facts) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", facts.name)


_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Expand:
    """A shell word with one expansion traindoc chose: ``prefix`` + ``$var`` (or ``~``) + ``rest``;
    ``prefix`` and ``rest`` are quoted literally."""

    var: str
    rest: str = ""
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.var != "~" and not _VAR_RE.fullmatch(self.var):
            raise ValueError(f"not a variable name: {self.var!r}")
        if self.var == "~" and self.prefix:
            raise ValueError("'~' expands only at the start of a word")

    def __str__(self) -> str:  # the word as the shell sees it after expansion markers, for display
        return self.prefix + ("~" if self.var == "~" else f"${self.var}") + self.rest

    def quoted(self) -> str:
        head = "~" if self.var == "~" else f'"${self.var}"'
        return (shlex.quote(self.prefix) if self.prefix else "") + head + (shlex.quote(self.rest) if self.rest else "")


Word = str | Expand


def host_path(path: str, suffix: str = "") -> Word:
    """Docker needs absolute host paths; relative ones are anchored at the current directory."""
    if path.startswith("/"):
        return path + suffix
    if path.startswith("~/"):
        return Expand("~", path[1:] + suffix)
    rest = path[2:] if path.startswith("./") else path
    return Expand("PWD", ("" if rest in ("", ".") else f"/{rest}") + suffix)


def uses_gpu(facts: Facts) -> bool:
    return facts.devices.requested != "cpu"


def docker_run(facts: Facts) -> list[Word]:
    env = facts.environment
    argv: list[Word] = ["docker", "run", "-d", "--name", container_name(facts)]
    if uses_gpu(facts):
        argv += ["--gpus", "all"]
    for p in env.ports:
        argv += ["-p", f"{p.host}:{p.container}"]
    for v in env.volumes:
        argv += ["-v", host_path(v.host, f":{v.container}" + (":ro" if v.read_only else ""))]
    if env.user:
        argv += ["--user", env.user]
    argv += ["--shm-size", env.shm_size]
    for name in env.env_names:
        argv += ["-e", name]  # by name only: docker copies the value from the caller's environment
    argv += ["-w", env.workdir, env.image, "sleep", "infinity"]
    return argv


def access_lines(facts: Facts) -> list[list[Word]]:
    name = container_name(facts)
    lines: list[list[Word]] = [["docker", "exec", "-it", name, "bash"]]
    j = facts.access.jupyter
    if j is not None:
        cmd: list[Word] = [
            "docker",
            "exec",
            "-d",
            name,
            "jupyter",
            "lab",
            f"--ip={j.bind}",
            f"--port={j.port}",
            "--no-browser",
        ]
        if j.token_env:
            cmd.append(Expand(j.token_env, prefix="--IdentityProvider.token="))
        lines.append(cmd)
    s = facts.access.ssh
    if s is not None:
        ssh: list[Word] = ["ssh", "-p", str(s.host_port or s.port)]
        if s.auth == "key":
            ssh += ["-i", Expand("~", "/.ssh/id_ed25519")]
        lines.append([*ssh, f"{s.user}@HOST"])
    return lines


def torchrun_lines(facts: Facts) -> list[tuple[str, list[str]]]:
    """(title, argv) per node; a long node list shows the first, second and last."""
    d = facts.distributed
    entry = [facts.source, "--run-dir", RUN_DIR]
    if d.nnodes == 1:
        argv = launch.display_command(
            facts.source, nnodes=1, nproc_per_node=d.nproc_per_node, rdzv_endpoint=d.rdzv_endpoint, rdzv_id=d.rdzv_id
        )
        if argv[0] != "torchrun":
            argv = [
                "torchrun",
                "--standalone",
                "--nnodes",
                "1",
                "--nproc-per-node",
                "1",
                "-m",
                "traindoc.worker",
                facts.source,
            ]
        return [("single node", [*argv, *entry[1:]])]
    ranks = list(range(d.nnodes))
    if len(ranks) > MAX_NODE_LINES:
        ranks = [0, 1, d.nnodes - 1]
    out = []
    for r in ranks:
        argv = launch.display_command(
            facts.source,
            nnodes=d.nnodes,
            nproc_per_node=d.nproc_per_node,
            rdzv_endpoint=d.rdzv_endpoint,
            rdzv_id=d.rdzv_id,
            node_rank=r,
        )
        out.append((f"node {r} of {d.nnodes}", [*argv, *entry[1:]]))
    return out


def _volume_name(container: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", container.strip("/").lower()) or "root"


def job_name(facts: Facts) -> str:
    return container_name(facts).lower().replace("_", "-").replace(".", "-")


@dataclass(frozen=True)
class K8sPrerequisites:
    """What the PyTorchJob refers to and does not create: one PVC per volume, one secret holding the
    environment variables (by name; empty when the manifest references none)."""

    claims: list[str]
    secret: str | None
    secret_keys: list[str]


def k8s_prerequisites(facts: Facts) -> K8sPrerequisites:
    name = job_name(facts)
    env = facts.environment
    return K8sPrerequisites(
        claims=[f"{name}-{_volume_name(v.container)}" for v in env.volumes],
        secret=f"{name}-secrets" if env.env_names else None,
        secret_keys=list(env.env_names),
    )


def pytorchjob(facts: Facts) -> dict[str, Any]:
    """A Kubeflow training-operator PyTorchJob (kubeflow.org/v1) for this pipeline."""
    env = facts.environment
    d = facts.distributed
    name = job_name(facts)
    gpus = d.nproc_per_node if uses_gpu(facts) else 0
    container: dict[str, Any] = {
        "name": "pytorch",  # the operator requires this container name
        "image": env.image,
        "command": ["torchrun", "-m", "traindoc.worker", facts.source, "--run-dir", RUN_DIR],
        "workingDir": env.workdir,
        "volumeMounts": [
            {"name": _volume_name(v.container), "mountPath": v.container, "readOnly": v.read_only} for v in env.volumes
        ]
        + [{"name": "dshm", "mountPath": "/dev/shm"}],
        "env": [
            {"name": n, "valueFrom": {"secretKeyRef": {"name": f"{name}-secrets", "key": n}}} for n in env.env_names
        ],
    }
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": [
            {
                "name": _volume_name(v.container),
                "persistentVolumeClaim": {"claimName": f"{name}-{_volume_name(v.container)}"},
            }
            for v in env.volumes
        ]
        + [
            {
                "name": "dshm",
                "emptyDir": {
                    "medium": "Memory",
                    "sizeLimit": env.shm_size.upper() + "i" if env.shm_size[-1].isalpha() else env.shm_size,
                },
            }
        ],
    }
    if env.user and env.user.split(":")[0].isdigit():
        uid, _, gid = env.user.partition(":")
        pod["securityContext"] = {"runAsUser": int(uid), **({"runAsGroup": int(gid)} if gid.isdigit() else {})}
    replica = {"restartPolicy": "OnFailure", "template": {"spec": pod}}
    specs: dict[str, Any] = {"Master": {"replicas": 1, **replica}}
    if d.nnodes > 1:
        specs["Worker"] = {"replicas": d.nnodes - 1, **replica}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"nprocPerNode": str(d.nproc_per_node), "pytorchReplicaSpecs": specs},
    }


def manifest_yaml(facts: Facts) -> str:
    return yaml.safe_dump(pytorchjob(facts), sort_keys=False, allow_unicode=True)


def sh_quote(arg: Word) -> str:
    """One shell word: :func:`shlex.quote`, or an :class:`Expand`'s quoted form."""
    return arg.quoted() if isinstance(arg, Expand) else shlex.quote(arg)


def sh_join(argv: Sequence[Word]) -> ShellLine:
    return ShellLine(" ".join(sh_quote(a) for a in argv))


def render_commands(facts: Facts, kind: str = "all", templates: str | None = None) -> str:
    return render(
        "commands.md.j2",
        templates,
        facts=facts,
        kind=kind,
        docker=sh_join(docker_run(facts)),
        access=[sh_join(a) for a in access_lines(facts)],
        torchrun=[(title, sh_join(a)) for title, a in torchrun_lines(facts)],
        manifest=manifest_yaml(facts),
        k8s=k8s_prerequisites(facts),
    )

"""Launch commands parse back to the spec; every lint rule fails and passes; secrets never escape."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, traindoc_cli
from traindoc._util.redact import redact
from traindoc.facts import Facts, service
from traindoc.facts.introspect import facts as compute_facts
from traindoc.render import commands, lint
from traindoc.spec.loader import load


@pytest.fixture(scope="module")
def digits() -> Facts:
    spec, file = load(str(REPO / "pipeline" / "digits.py"))
    return compute_facts(spec, file, REPO)


def _flags(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_docker_run_parses_back_field_by_field(digits: Facts) -> None:
    text = commands.sh_join(commands.docker_run(digits))
    argv = shlex.split(text)
    env = digits.environment
    assert argv[:3] == ["docker", "run", "-d"] and _flags(argv, "--gpus") == ["all"]
    assert _flags(argv, "-p") == [f"{p.host}:{p.container}" for p in env.ports]
    assert _flags(argv, "-v") == [
        f"{commands.host_path(v.host)}:{v.container}" + (":ro" if v.read_only else "") for v in env.volumes
    ]
    assert _flags(argv, "--user") == [env.user] and _flags(argv, "--shm-size") == [env.shm_size]
    assert _flags(argv, "-e") == env.env_names  # names only: no '=' anywhere
    assert not any("=" in a for a in _flags(argv, "-e"))
    assert argv[argv.index(env.image) - 2 : argv.index(env.image)] == ["-w", env.workdir]
    assert '"$PWD"/data:/data:ro' in text  # relative host paths: only $PWD expands, the rest is quoted


def test_torchrun_lines_parse_back(digits: Facts) -> None:
    ((title, argv),) = commands.torchrun_lines(digits)
    assert title == "single node"
    assert argv[:2] == ["torchrun", "--standalone"] and _flags(argv, "--nproc-per-node") == ["2"]
    assert argv[argv.index("-m") + 1 : argv.index("-m") + 3] == ["traindoc.worker", "pipeline/digits.py"]
    many = digits.model_copy(
        update={"distributed": digits.distributed.model_copy(update={"nnodes": 16, "nproc_per_node": 8})}
    )
    lines = commands.torchrun_lines(many)
    assert [t for t, _ in lines] == ["node 0 of 16", "node 1 of 16", "node 15 of 16"]
    for i, (_, argv) in zip((0, 1, 15), lines, strict=True):
        assert _flags(argv, "--nnodes") == ["16"] and _flags(argv, "--node-rank") == [str(i)]
        assert _flags(argv, "--rdzv-backend") == ["c10d"] and _flags(argv, "--rdzv-endpoint") == [
            digits.distributed.rdzv_endpoint
        ]


def test_pytorchjob_has_the_fields_the_operator_requires(digits: Facts) -> None:
    multi = digits.model_copy(update={"distributed": digits.distributed.model_copy(update={"nnodes": 3})})
    job = yaml.safe_load(commands.manifest_yaml(multi))
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob" and job["metadata"]["name"]
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] == 2
    for replica in specs.values():
        assert replica["restartPolicy"] in ("Always", "OnFailure", "Never", "ExitCode")
        pod = replica["template"]["spec"]
        container = pod["containers"][0]
        assert container["name"] == "pytorch" and container["image"] == digits.environment.image
        assert container["resources"]["limits"]["nvidia.com/gpu"] == digits.distributed.nproc_per_node
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {v.container for v in digits.environment.volumes} <= mounts and "/dev/shm" in mounts
        names = {v["name"] for v in pod["volumes"]}
        assert {m["name"] for m in container["volumeMounts"]} <= names
        assert all("valueFrom" in e for e in container["env"])  # secrets by reference, never inline
    assert job["spec"]["nprocPerNode"] == str(digits.distributed.nproc_per_node)


def _referenced(job: Any) -> tuple[set[str], set[str]]:
    """PVC claim names and secret names the manifest refers to."""
    claims: set[str] = set()
    secrets: set[str] = set()
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        pod = replica["template"]["spec"]
        claims |= {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        for e in pod["containers"][0]["env"]:
            secrets.add(e["valueFrom"]["secretKeyRef"]["name"])
    return claims, secrets


@pytest.mark.parametrize("n_volumes,env_names", [(0, []), (1, []), (0, ["HF_TOKEN"]), (3, ["A", "B"])])
def test_kubernetes_asks_for_exactly_the_resources_the_manifest_references(
    digits: Facts, n_volumes: int, env_names: list[str]
) -> None:
    f = _with(digits, environment={"volumes": digits.environment.volumes[:n_volumes], "env_names": env_names})
    claims, secrets = _referenced(yaml.safe_load(commands.manifest_yaml(f)))
    intro = commands.render_commands(f, "kubernetes").splitlines()[0]
    for name in claims | secrets:
        assert f"`{name}`" in intro
    assert ("PVC" in intro) == bool(claims) and ("secret" in intro) == bool(secrets)
    assert ("create" in intro) == bool(claims or secrets)
    for key in env_names:
        assert f"`{key}`" in intro  # the secret's keys, by name only


# --- lint: every rule has a failing and a passing example ------------------------------------------------


def _with(f: Facts, **parts: dict[str, object]) -> Facts:
    return f.model_copy(update={k: getattr(f, k).model_copy(update=v) for k, v in parts.items()})


def _jupyter(f: Facts, **kw: object) -> Facts:
    assert f.access.jupyter is not None
    return f.model_copy(
        update={"access": f.access.model_copy(update={"jupyter": f.access.jupyter.model_copy(update=kw)})}
    )


def _ssh(f: Facts, **kw: object) -> Facts:
    assert f.access.ssh is not None
    return f.model_copy(update={"access": f.access.model_copy(update={"ssh": f.access.ssh.model_copy(update=kw)})})


RULE_CASES = {
    "image-tag": lambda f: _with(f, environment={"image": "pytorch-cuda:latest", "image_tag": "latest"}),
    "cpu-image": lambda f: _with(f, environment={"image": "pytorch/pytorch:2.6.0-cpu", "image_tag": "2.6.0-cpu"}),
    "checkpoint-volume": lambda f: _with(f, checkpoint={"on_volume": False, "host_dir": None, "volume": None}),
    "data-volume": lambda f: _with(
        f, environment={"volumes": [v for v in f.environment.volumes if v.container != "/data"]}
    ),
    "jupyter-auth": lambda f: _jupyter(f, token_env=None),
    "root-user": lambda f: _with(f, environment={"user": None}),
    "ssh-password": lambda f: _ssh(f, auth="password"),
    "ddp-sampler": lambda f: _with(f, data={"sampler": "RandomSampler"}),
    "pin-memory": lambda f: _with(f, data={"pin_memory": False, "device_resident": False}),
    "num-workers": lambda f: _with(f, data={"train_len": 1_000_000, "device_resident": False}),
    "seed": lambda f: _with(f, optim={"seed": None}),
    "checkpoint-cadence": lambda f: _with(f, checkpoint={"every_steps": 1000}),
    "model-traced": lambda f: _with(f, model={"traced": False, "untraced_reason": "forward failed on meta"}),
    # what introspection does with a token written into the spec: masked, and the lint rule names the field
    "secret-in-spec": lambda f: service.redact_facts(f.model_copy(update={"description": "hf_" + "Ab12" * 8})),
    "sample-input": lambda f: _with(f, model={"sample_mismatch": ["the input: sample shape 1×9, a real sample 1×8"]}),
}


def test_every_rule_is_covered() -> None:
    assert {name for name, _ in lint.RULES} == set(RULE_CASES)


@pytest.mark.parametrize("rule", sorted(RULE_CASES))
def test_rule_fails_and_passes(digits: Facts, rule: str) -> None:
    assert rule not in {f.rule for f in lint.lint(digits)}, "the example passes every rule"
    found = [f for f in lint.lint(RULE_CASES[rule](digits)) if f.rule == rule]
    assert len(found) == 1 and found[0].fix and found[0].field


@pytest.mark.parametrize(
    ("image", "devices", "flagged"),
    [
        ("pytorch:2.13-cpu", "auto", True),
        ("intel/cpu-pytorch:1.0", "cuda", True),
        ("pytorch:2.13-cpu", "cpu", False),  # a CPU job on a CPU image is right
        ("nvcr.io/nvidia/pytorch:24.05-py3", "auto", False),
        ("mycpuimage:1.0", "auto", False),  # "cpu" inside a word is not a CPU tag
        ("pytorch:2.6-cpuonly", "auto", False),
    ],
)
def test_cpu_image_rule_reads_the_tag_as_a_word(digits: Facts, image: str, devices: str, flagged: bool) -> None:
    f = _with(digits, environment={"image": image}, devices={"requested": devices})
    assert ("cpu-image" in {x.rule for x in lint.lint(f)}) == flagged


def test_jupyter_on_all_interfaces_without_token_says_so(digits: Facts) -> None:
    (finding,) = [f for f in lint.lint(_jupyter(digits, token_env=None)) if f.rule == "jupyter-auth"]
    assert "bound to 0.0.0.0" in finding.message


def test_lint_strict_exit_code(tmp_path: Path) -> None:
    proc = traindoc_cli(REPO, "lint", "pipeline/digits.py", "--strict")
    assert proc.returncode == 0 and "no findings" in proc.stdout


# --- secrets ------------------------------------------------------------------------------------------


PLANTED = {
    "GITHUB_TOKEN": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "HF_TOKEN": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "MY_SERVICE_PASSWORD": "correct-horse-battery-staple",
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
}


def test_redact_masks_planted_values_and_token_shapes() -> None:
    text = "log: " + " ".join(PLANTED.values()) + " password=hunter22 sk-" + "x" * 30 + " AKIA" + "A" * 16
    out = redact(text, PLANTED)
    assert not any(v in out for v in PLANTED.values())
    assert "hunter22" not in out and "sk-xxxx" not in out and "AKIAAAAA" not in out
    assert "log:" in out


def test_planted_secrets_never_escape(make_project: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = make_project(
        extra="\nprint('debug', __import__('os').environ.get('GITHUB_TOKEN'))\n"  # type: ignore[operator]
        "import os\nif os.environ.get('TRAINDOC_DEVICE'):\n    raise SystemExit('leak ' + os.environ['HF_TOKEN'])\n"
    )
    for k, v in PLANTED.items():
        monkeypatch.setenv(k, v)
    env_file = root / "pipeline" / "tiny.py"
    env_file.write_text(
        env_file.read_text().replace(
            '"user": "1000:1000",', '"user": "1000:1000", "env": ["GITHUB_TOKEN", "HF_TOKEN"],'
        )
    )
    out = traindoc_cli(root, "run", "pipeline/tiny.py", "--json")
    facts = traindoc_cli(root, "inspect", "pipeline/tiny.py", "--json")
    cmds = traindoc_cli(root, "commands", "pipeline/tiny.py")
    result = json.loads(out.stdout)
    assert result["status"] == "failed" and "leak ***" in result["reason"]
    written = "".join(
        p.read_text(errors="replace") for p in (root / ".cache").rglob("*") if p.suffix in (".json", ".jsonl", ".log")
    )
    assert "debug ***" in written  # the user's print reached the rank log, redacted
    blob = out.stdout + out.stderr + facts.stdout + cmds.stdout + written
    assert "GITHUB_TOKEN" in cmds.stdout  # by name
    for value in PLANTED.values():
        assert value not in blob

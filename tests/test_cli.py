"""The CLI as a person uses it, and the pieces that work without MkDocs."""

from __future__ import annotations

import json
import subprocess

import markdown
import pytest

from conftest import REPO, ProjectFactory, traindoc_cli
from traindoc.spec import Pipeline, describe_fields


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return traindoc_cli(REPO, *args)


def test_inspect_prints_a_readable_summary() -> None:
    proc = cli("inspect", "pipeline/digits.py")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for needle in [
        "Pipeline digits (pipeline/digits.py)",
        "image        pytorch-cuda:v2.6-cuda11.8",
        "SECNN: 22,242 parameters",
        "traced on meta",
        "1,438 train, 359 val",
        "DistributedSampler",
        "/checkpoints <- host ./checkpoints",
        "torchrun --standalone --nnodes 1 --nproc-per-node 2",
        "min_val_accuracy 0.9",
    ]:
        assert needle in out, needle


def test_inspect_json_and_named_pipeline() -> None:
    proc = cli("inspect", "digits", "--json")  # a name from pyproject.toml
    facts = json.loads(proc.stdout)
    assert facts["model"]["total_params"] == 22242 and facts["distributed"]["world_size"] == 2
    assert facts["checkpoint"]["on_volume"] is True and facts["environment"]["env_names"] == [
        "JUPYTER_TOKEN",
        "WANDB_API_KEY",
    ]


def test_diagram_md_is_a_pasteable_fence() -> None:
    out = cli("diagram", "pipeline/digits.py", "--kind", "distributed", "--format", "md").stdout
    assert out.startswith("```mermaid\n%% traindoc distributed diagram") and out.endswith("```\n")


def test_spec_reference_lists_every_field() -> None:
    out = cli("reference", "spec").stdout
    for path, *_ in describe_fields(Pipeline):
        assert f"| `{path}` |" in out
    assert all(desc for *_, desc in describe_fields(Pipeline)), "every field carries a description"


def test_cli_reference_lists_every_command() -> None:
    out = cli("reference", "cli").stdout
    for name in ["inspect", "diagram", "run", "readme", "commands", "export", "lint", "reference", "mermaid-fetch"]:
        assert f"### `traindoc {name}`" in out
    assert "--json-file" not in out


def test_superfences_formatter_without_mkdocs() -> None:
    from pymdownx.superfences import fence_code_format

    md = markdown.Markdown(
        extensions=["pymdownx.superfences"],
        extension_configs={
            "pymdownx.superfences": {
                "custom_fences": [
                    {
                        "name": "traindoc",
                        "class": "traindoc",
                        "format": __import__("traindoc.docsgen", fromlist=["formatter"]).formatter,
                    },
                    {"name": "mermaid", "class": "mermaid", "format": fence_code_format},
                ]
            }
        },
    )
    import os

    here = os.getcwd()
    os.chdir(REPO)
    try:
        html = md.convert("```traindoc\npipeline: digits\nshow: data\n```\n")
    finally:
        os.chdir(here)
    assert '<pre class="mermaid"><code>' in html and "DistributedSampler" in html


@pytest.mark.parametrize(
    "bad", ["show: nope\npipeline: digits", "pipeline: digits\ncolour: red", "show: system", "- a list"]
)
def test_fence_errors(bad: str) -> None:
    from traindoc.pages.docsgen import FenceError, parse_options

    with pytest.raises(FenceError, match=r"^page.md\(3\): "):
        parse_options(bad, "page.md(3)")


@pytest.mark.parametrize("command", ["diagram", "export"])
def test_depth_help_says_what_the_default_fits(command: str) -> None:
    import argparse

    from traindoc.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    (depth,) = [a for a in sub.choices[command]._actions if "--depth" in a.option_strings]
    # the default is not "all that fits" (Mermaid's limits) but what fits a slide and a docs column
    assert depth.help is not None and "fits a slide and a docs column" in depth.help
    assert depth.help.startswith("model diagram only")  # other kinds ignore it


def test_inspect_names_the_optimizer_a_lambda_returns(make_project: ProjectFactory) -> None:
    """`lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)` is shown as SGD, not as `tiny:<lambda>`."""
    root = make_project()
    out = traindoc_cli(root, "inspect", "tiny")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("Optimisation"))
    assert line.startswith("Optimisation   SGD (lr 0.1)") and "<lambda>" not in line


def test_optimizer_label_keeps_a_named_factory() -> None:
    from traindoc.facts import OptimFacts

    base = {"lr": 0.1, "loss": "mse", "scheduler": None, "amp": None, "grad_clip": None, "seed": 0}
    assert OptimFacts(optimizer="p:make_opt", optimizer_class="AdamW", **base).optimizer_label == "AdamW via p:make_opt"
    assert OptimFacts(optimizer="torch.optim:AdamW", optimizer_class="AdamW", **base).optimizer_label == "AdamW"
    assert (
        OptimFacts(optimizer="p:make_opt", **base).optimizer_label == "p:make_opt"
    )  # factory failed: say what we know

"""Bad input gets one clear line naming the file and the field (or line), and a documented exit code."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from traindoc.cli import main
from traindoc.errors import SpecError
from traindoc.spec import Pipeline

GOOD = dict(
    name="p",
    environment={"image": "img:1.0", "volumes": [{"host": "./c", "container": "/ckpt"}]},
    model={"factory": "tinymods:TinyNet", "sample_input": {"shape": [2, 8]}},
    data={"train": "tinymods:dataset", "batch_size": 4},
    optim={"optimizer": "torch.optim:SGD"},
    checkpoint={"dir": "/ckpt"},
)


def write(root: Path, body: str) -> Path:
    path = root / "pipeline.py"
    path.write_text(textwrap.dedent(body))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["inspect", "--no-cache", *args])
    return code, capsys.readouterr().err


def spec_module(overrides: str) -> str:
    return f"""
    from traindoc.spec import Pipeline
    import copy
    base = {GOOD!r}
    spec = copy.deepcopy(base)
    {overrides}
    pipeline = Pipeline(**spec)
    """


CASES = [
    (
        "unknown field",
        "spec['checkpoint']['keep_lats'] = 2",
        "checkpoint.keep_lats",
        "unknown field; allowed here: dir, every_steps, format, keep_last, resume",
    ),
    ("wrong type", "spec['data']['batch_size'] = 'big'", "data.batch_size", "valid integer"),
    ("zero batch size", "spec['data']['batch_size'] = 0", "data.batch_size", "greater than 0"),
    ("negative batch size", "spec['data']['batch_size'] = -8", "data.batch_size", "greater than 0"),
    ("relative checkpoint dir", "spec['checkpoint']['dir'] = 'ckpt'", "checkpoint.dir", "absolute container path"),
    (
        "two volumes one path",
        "spec['environment']['volumes'] = [{'host': 'a', 'container': '/d'}, {'host': 'b', 'container': '/d'}]",
        "environment",
        "already mounted",
    ),
    (
        "threshold out of range",
        "spec['expect'] = {'min_val_accuracy': 1.5}",
        "expect.min_val_accuracy",
        "less than or equal to 1",
    ),
    ("metric bound not a mapping", "spec['expect'] = {'val_loss': 2.0}", "expect", "val_loss: a metric bound is"),
    ("empty metric bound", "spec['expect'] = {'val_loss': {}}", "expect.val_loss", "needs 'min', 'max' or both"),
    (
        "log file with a path",
        "spec['monitoring'] = {'log_file': '../x.log'}",
        "monitoring.log_file",
        "a file name (no folders)",
    ),
    ("absolute script", "spec['training'] = {'script': '/abs/train.py'}", "training.script", "relative path"),
    ("accumulate zero", "spec['optim']['accumulate'] = 0", "optim.accumulate", "greater than or equal to 1"),
    ("keep_last zero", "spec['checkpoint']['keep_last'] = 0", "checkpoint.keep_last", "greater than or equal to 1"),
    ("env value instead of name", "spec['environment']['env'] = ['TOKEN=abc123']", "environment.env", "NAME only"),
    ("bad factory string", "spec['model']['factory'] = 'not a ref'", "model.factory", "'module:attr'"),
    ("bad rendezvous", "spec['distributed'] = {'rdzv_endpoint': 'nohost'}", "distributed.rdzv_endpoint", "host:port"),
    ("bad image", "spec['environment']['image'] = 'UPPER CASE'", "environment.image", "image reference"),
    ("unknown device", "spec['devices'] = ['tpu']", "devices", "'auto', 'cpu' or 'cuda'"),
]


@pytest.mark.parametrize(("label", "override", "field", "message"), CASES, ids=[c[0] for c in CASES])
def test_spec_error_names_file_line_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], label: str, override: str, field: str, message: str
) -> None:
    path = write(tmp_path, spec_module(override))
    code, err = run_cli(capsys, str(path))
    assert code == 3, err
    lines = [line for line in err.splitlines() if line.strip()]
    hit = [line for line in lines if f": {field}" in line]
    assert hit, f"field {field} not named in: {err}"
    line = path.read_text().splitlines().index("pipeline = Pipeline(**spec)") + 1
    assert f"{path}({line}):" in hit[0]  # the file and the line of the Pipeline(...) call
    assert message in hit[0]


def test_nested_model_class_errors_carry_the_full_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "from traindoc.spec import Checkpoint\nc = Checkpoint(dir='/x', keep_last=-1)\n")
    code, err = run_cli(capsys, str(path))
    assert code == 3 and "checkpoint.keep_last" in err and f"{path}(2)" in err


def test_missing_pipeline_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, str(tmp_path / "nope.py"))
    assert code == 2 and "nope.py: pipeline file not found" in err


def test_module_without_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "x = 1\n")
    code, err = run_cli(capsys, str(path))
    assert code == 2 and "no Pipeline defined" in err and str(path) in err


def test_several_pipelines_need_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, textwrap.dedent(spec_module("")) + "other = pipeline\n")
    code, err = run_cli(capsys, str(path))
    assert code == 2 and "several pipelines (other, pipeline)" in err and "pipeline.py:NAME" in err


def test_user_import_error_shows_user_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "helper.py").write_text("def boom():\n    raise RuntimeError('from the user module')\n")
    path = write(tmp_path, "import helper\nhelper.boom()\n")
    code, err = run_cli(capsys, str(path))
    assert code == 4
    assert "RuntimeError: from the user module" in err
    assert "helper.py" in err and "line 2, in boom" in err
    assert "traindoc/spec/loader.py" not in err and "importlib" not in err  # only the user's frames


def test_factory_string_that_does_not_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, spec_module("spec['model']['factory'] = 'no_such_module_xyz:Net'"))
    code, err = run_cli(capsys, str(path))
    assert code == 3 and "model.factory" in err and "does not import" in err and "no_such_module_xyz" in err


def test_factory_that_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tinymods.py").write_text(
        "import torch\ndef TinyNet():\n    raise ValueError('bad width')\n"
        "def dataset():\n    return torch.utils.data.TensorDataset(torch.zeros(4, 8))\n"
    )
    path = write(tmp_path, spec_module(""))
    code, err = run_cli(capsys, str(path))
    assert code == 4 and "model.factory" in err and "ValueError: bad width" in err and "tinymods.py" in err


def test_forward_failure_names_the_submodule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tinymods.py").write_text(
        textwrap.dedent("""
        from torch import nn
        def TinyNet():
            return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Sequential(nn.Linear(15, 4)))
        def dataset():
            import torch
            return torch.utils.data.TensorDataset(torch.zeros(4, 8))
    """)
    )
    path = write(tmp_path, spec_module(""))
    code, err = run_cli(capsys, str(path))
    assert code == 4, err
    assert "failed in submodule '2.0' (Linear)" in err and "model.sample_input" in err


def test_syntax_error_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "x = 1\ndef broken(:\n")
    code, err = run_cli(capsys, str(path))
    assert code == 4 and re.search(rf"{re.escape(str(path))}\(2\): syntax error", err)


@given(st.integers(max_value=0))
def test_property_nonpositive_batch_sizes_always_rejected(size: int) -> None:
    spec = {**GOOD, "data": {**GOOD["data"], "batch_size": size}}
    from pydantic import ValidationError

    from traindoc.spec.loader import spec_error

    with pytest.raises(ValidationError) as info:
        Pipeline(**spec)
    err = spec_error(info.value, Path("p.py"))
    assert isinstance(err, SpecError)
    assert [p.field for p in err.problems] == ["data.batch_size"]


@given(st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s[:1]))
def test_property_relative_checkpoint_dirs_rejected(directory: str) -> None:
    spec = {**GOOD, "checkpoint": {"dir": directory}}
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        Pipeline(**spec)
    assert "checkpoint" in str(info.value) or "dir" in str(info.value)

"""One error root end to end: every failure reaches the user as a TraindocError with its exit code.

Exit codes live on the error classes only; the CLI's handlers raise (never return a literal code);
the introspection child hands its error back as a record, rebuilt as the same class.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, ProjectFactory, traindoc_cli
from traindoc import cli, errors
from traindoc.cli import parser as cliparser
from traindoc.facts import service

SRC = REPO / "src" / "traindoc"


def _error_classes() -> list[type[errors.TraindocError]]:
    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.TraindocError)]


def test_every_exit_code_is_documented_once_from_the_classes() -> None:
    table = dict(errors.exit_codes())
    assert {cls.exit_code for cls in _error_classes()} <= set(table)
    assert table[0] == "ok" and all(table.values())
    epilog = cliparser.build_parser().epilog or ""
    for code, meaning in table.items():
        assert f"{code} {meaning}" in epilog


def test_cli_handlers_raise_and_never_return_a_code() -> None:
    tree = ast.parse((SRC / "cli" / "__init__.py").read_text())
    handlers = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("cmd_")]
    literal_returns = [
        f"{f.name}:{n.lineno}"
        for f in handlers
        for n in ast.walk(f)
        if isinstance(n, ast.Return) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, int)
    ]
    assert handlers and literal_returns == []
    parser = cliparser.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(cli.COMMANDS)  # every command has a handler, no handler is orphaned


def test_the_library_never_runs_its_own_cli_as_a_child() -> None:
    """Children are started by module (``traindoc.facts.child``, ``traindoc.train``), never as ``traindoc …``
    whose errors would come back as text (who imports the CLI is tests/test_layers.py's business)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if re.search(r'"-m",\s*"traindoc"\s*[,\]]', text):
            offenders.append(f"{path.relative_to(SRC)} runs the traindoc CLI as a child")
    assert offenders == []


MESSAGES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(cls=st.sampled_from(_error_classes()), message=MESSAGES)
def test_error_records_rebuild_the_same_class_code_and_words(cls: type[errors.TraindocError], message: str) -> None:
    if issubclass(cls, errors.SpecError):  # built from problems: see the next test
        return
    try:
        exc = cls(message)  # type: ignore[call-arg]
    except TypeError:  # a richer constructor (NonFiniteLoss): its record keeps its words and code
        exc = errors.NonFiniteLoss(3, float("nan"))
        back = errors.from_record(errors.to_record(exc))
        assert str(back) == str(exc) and back.exit_code == exc.exit_code
        return
    back = errors.from_record(errors.to_record(exc))
    assert type(back) is cls and str(back) == str(exc) and back.exit_code == exc.exit_code


def test_spec_and_user_code_errors_keep_their_parts() -> None:
    spec = errors.SpecError([errors.Problem(file="p.py", line=3, field="training.epochs", message="must be > 0")])
    back = errors.from_record(errors.to_record(spec))
    assert isinstance(back, errors.SpecError) and back.lines() == ["p.py(3): training.epochs: must be > 0"]
    nccl = errors.BackendUnavailable([errors.Problem(file="spec", field="distributed.backend", message="needs CUDA")])
    back = errors.from_record(errors.to_record(nccl))
    assert type(back) is errors.BackendUnavailable and back.exit_code == 3 and back.lines() == nccl.lines()
    user = errors.UserCodeError("ZeroDivisionError: division by zero", '  File "p.py", line 9\n')
    back = errors.from_record(errors.to_record(user))
    assert isinstance(back, errors.UserCodeError) and back.user_traceback == user.user_traceback
    odd = errors.from_record({"kind": "NotAClass", "message": "m", "exit_code": 42})
    assert type(odd) is errors.TraindocError and odd.exit_code == 42


# --- the introspection child, for real (the plugin's path: user code never runs in the server) -------------


def _child(root: Path) -> object:
    return service.introspect_child(service.target(str(root / "pipeline" / "tiny.py"), root))


def test_child_error_in_user_code_comes_back_as_user_code_error(make_project: ProjectFactory) -> None:
    root = make_project(extra="\nraise RuntimeError('boom at import, token=hunter2-secret')\n")
    with pytest.raises(errors.UserCodeError) as info:
        _child(root)
    assert "boom at import" in str(info.value) and "tiny.py" in info.value.user_traceback
    assert info.value.exit_code == 4


def test_child_spec_error_keeps_each_problem(make_project: ProjectFactory) -> None:
    root = make_project(epochs=-1)
    with pytest.raises(errors.SpecError) as info:
        _child(root)
    assert info.value.exit_code == 3 and any("training.epochs" in line for line in info.value.lines())


def test_child_that_dies_without_a_record_is_named(make_project: ProjectFactory) -> None:
    root = make_project(extra="\nimport os\nos._exit(0)\n")
    with pytest.raises(errors.TraindocError, match="before writing its result"):
        _child(root)


@pytest.mark.slow
def test_nccl_on_a_cpu_machine_is_a_spec_error_not_a_traceback(make_project: ProjectFactory) -> None:
    root = make_project(nproc=2)
    file = root / "pipeline" / "tiny.py"
    file.write_text(file.read_text().replace('"backend": "gloo"', '"backend": "nccl"'))
    out = traindoc_cli(root, "run", "tiny", "--docs")
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr and "distributed.backend" in out.stderr and "nccl" in out.stderr
    assert not (root / ".cache" / "traindoc" / "runs").exists() or not any(
        (root / ".cache" / "traindoc" / "runs").rglob("rank*.log")
    )  # refused at plan time: nothing was launched


# --- more ranks than GPUs: refused before launch (a GPU cannot exist here: the device facts say one) -----


def test_more_cuda_ranks_than_gpus_is_refused_with_the_fix() -> None:
    from traindoc.facts import policy

    policy.check_ranks_fit(2, "cpu", 0)  # gloo ranks share the CPU
    policy.check_ranks_fit(2, "cuda", 2)
    with pytest.raises(errors.DevicesUnavailable) as info:
        policy.check_ranks_fit(2, "cuda", 1)
    assert info.value.exit_code == 3 and "--nproc 1" in str(info.value) and "has 1" in str(info.value)


def test_runner_refuses_before_launching_anything(make_project: ProjectFactory, tmp_path: Path) -> None:
    """The facts of a one-GPU machine (the only mocked part: no GPU exists here) and a two-rank run."""
    from traindoc.facts import GPUFact
    from traindoc.run import runner

    root = make_project(nproc=2)
    t = service.target("pipeline/tiny.py", root)
    facts = service.introspect_here(t)
    one_gpu = facts.devices.model_copy(
        update={"resolved": "cuda", "gpus": [GPUFact(name="NVIDIA H100 80GB HBM3", memory_bytes=80 << 30)]}
    )
    facts = facts.model_copy(update={"devices": one_gpu})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(errors.DevicesUnavailable, match="this machine has 1"):
        runner._run_once(t, facts, "key", run_dir, runner.RunOptions(progress=False))
    assert list(run_dir.iterdir()) == []  # no launch plan, no rank started


# --- careless paths and hostile records (found by review; each was a raw traceback or a wrong code) -------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["reference", "cli", "-o", "{tmp}"], "is a folder"),
        (["reference", "spec", "-o", "{tmp}", "--check"], "is a folder"),
        (["readme", "{tmp}/missing.md"], "No such file"),
        (["readme", "{tmp}"], "Is a directory"),
        (["readme", "{tmp}/latin1.md"], "not UTF-8"),
        (["compare", "digits", "digits-plain", "--expect", "notjson"], "--expect is not JSON"),
        (["compare", "digits", "digits-plain", "--expect", '{"val_accuracy": 3}'], "--expect must map"),
        (["inspect", "digits", "--cache-dir", "/dev/null/x"], "Not a directory"),
    ],
)
def test_careless_paths_and_options_end_in_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    (tmp_path / "latin1.md").write_bytes("# Café\n".encode("latin-1"))
    out = traindoc_cli(REPO, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert out.returncode in (1, 6), out.stderr
    assert "Traceback" not in out.stderr and says in out.stderr
    assert not list(tmp_path.glob("*.md.tmp*"))  # nothing half-written


def test_error_printed_in_process_is_redacted(make_project: ProjectFactory) -> None:
    token = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
    root = make_project(extra=f"\nraise RuntimeError('cannot reach https://bob:hunter2secret@example.com {token}')\n")
    out = traindoc_cli(root, "inspect", "tiny")
    assert out.returncode == 4
    assert "cannot reach" in out.stderr and token not in out.stderr and "hunter2secret" not in out.stderr


@pytest.mark.parametrize(
    "record",
    [
        {"kind": "TraindocError", "message": "pretend", "exit_code": 0},
        {"kind": "UserCodeError", "message": "pretend", "exit_code": 256},
        {"kind": "NoSuchError", "message": "pretend", "exit_code": 0},
        {"kind": "NoSuchError", "message": "pretend", "exit_code": True},
        {"kind": "NoSuchError", "message": "pretend", "exit_code": 137},
    ],
)
def test_a_record_cannot_turn_a_failure_into_success(record: dict[str, object]) -> None:
    err = errors.from_record(record)
    assert 1 <= err.exit_code <= 125


@pytest.mark.parametrize(
    "record",
    [
        {"kind": "SpecError", "message": "m", "problems": [{"file": "p", "message": "m", "extra": 1}]},
        {"kind": "SpecError", "message": "m", "problems": [{"file": 3, "message": "m"}]},
        {"kind": "SpecError", "message": "m", "problems": ["not a dict"]},
        {"kind": 7, "message": "m"},
        {"message": "m"},
    ],
)
def test_a_malformed_record_is_a_record_error(record: dict[str, object]) -> None:
    with pytest.raises(errors.RecordError):
        errors.from_record(record)


def test_user_code_cannot_rewrite_the_childs_record_on_exit(make_project: ProjectFactory) -> None:
    """An atexit hook (or a leftover thread) in the user's module runs after the record is written: the
    child exits at once, so the hook never runs and the parent gets the real facts."""
    hook = (
        "\nimport atexit, json, sys, threading, time\n"
        "def _forge():\n"
        "    open(sys.argv[-1], 'w').write(json.dumps({'error': {'kind': 'TraindocError', 'message': 'forged'}}))\n"
        "atexit.register(_forge)\n"
        "threading.Thread(target=time.sleep, args=(600,)).start()  # non-daemon: would hold the child\n"
    )
    root = make_project(extra=hook)
    facts = _child(root)
    assert facts.name == "tiny"  # type: ignore[attr-defined]

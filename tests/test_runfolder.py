"""Never destroy: run folders are marked, refused when they are not traindoc's, and locked per run.

The attacks are real: a thesis folder, a git project root, ``/`` and a (fake) home folder handed to
``traindoc run --out`` as a person would, and the files compared byte for byte afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import ProjectFactory, traindoc_cli
from traindoc.errors import RunFolderRefused
from traindoc.run import runfolder


def tree(folder: Path) -> dict[str, tuple[str, bytes | None, int]]:
    """Every entry under ``folder``: kind, bytes (files) and permission bits."""
    out: dict[str, tuple[str, bytes | None, int]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            kind = "dir" if p.is_dir() and not p.is_symlink() else "file"
            out[str(p.relative_to(folder))] = (kind, p.read_bytes() if kind == "file" else None, st_.st_mode)
    return out


def thesis(folder: Path) -> Path:
    (folder / "chapters").mkdir(parents=True)
    (folder / "thesis.tex").write_text("\\documentclass{book}\n")
    (folder / "chapters" / "01-intro.tex").write_text("Four years of work.\n")
    (folder / "figures.bin").write_bytes(os.urandom(2048))
    return folder


def one_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- the CLI, attacked as a user would ---------------------------------------------------------------


def test_out_refuses_a_thesis_folder_and_leaves_it_byte_identical(make_project: ProjectFactory) -> None:
    root = make_project()
    folder = thesis(root.parent / "thesis")
    before = tree(folder)
    proc = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", str(folder))
    assert proc.returncode == RunFolderRefused.exit_code
    assert "is not empty and was not created by traindoc" in one_line(proc.stderr)
    assert tree(folder) == before
    again = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", str(folder), "--resume")
    assert again.returncode == RunFolderRefused.exit_code and tree(folder) == before


def test_out_dot_in_a_git_project_root_is_refused_and_nothing_is_deleted(make_project: ProjectFactory) -> None:
    root = make_project()
    (root / "README.md").write_text("# my project\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    before = tree(root)
    for out in (".", str(root), "pipeline/..", ".."):
        proc = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", out)
        assert proc.returncode == RunFolderRefused.exit_code, (out, proc.stderr)
        line = one_line(proc.stderr)
        assert "project root" in line, line
    assert tree(root) == before


def test_a_folder_holding_git_is_refused_even_with_a_marker(make_project: ProjectFactory) -> None:
    root = make_project()
    repo = root.parent / "other-repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / runfolder.MARKER).write_text(runfolder.SIGNATURE + "\n")
    before = tree(repo)
    proc = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", str(repo))
    assert proc.returncode == RunFolderRefused.exit_code and ".git" in one_line(proc.stderr)
    assert tree(repo) == before


def test_out_root_and_home_are_refused(make_project: ProjectFactory, tmp_path: Path) -> None:
    root = make_project()
    home = tmp_path / "home" / "someone"
    thesis(home)
    (home / runfolder.MARKER).write_text(runfolder.SIGNATURE + "\n")  # even a marker does not make it ours
    before = tree(home)
    env = {**os.environ, "HOME": str(home)}
    for out, words in (("/", "file-system root"), (str(home), "home folder"), (str(home.parent), "home folder")):
        proc = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", out, env=env)
        assert proc.returncode == RunFolderRefused.exit_code, (out, proc.stderr)
        assert words in one_line(proc.stderr)
    link = tmp_path / "innocent-name"
    link.symlink_to(home)
    proc = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", str(link), env=env)
    assert proc.returncode == RunFolderRefused.exit_code and "home folder" in one_line(proc.stderr)
    assert tree(home) == before


def test_out_naming_a_file_is_one_clear_line(make_project: ProjectFactory) -> None:
    root = make_project()
    notes = root / "notes.txt"
    notes.write_text("keep me\n")
    proc = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "notes.txt")
    assert proc.returncode == RunFolderRefused.exit_code
    assert "is a file, not a folder" in one_line(proc.stderr)
    below = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "notes.txt/run")
    assert below.returncode == RunFolderRefused.exit_code
    assert "cannot create a run folder there" in one_line(below.stderr)
    assert notes.read_text() == "keep me\n"


# --- the mechanism ------------------------------------------------------------------------------------


def test_claim_creates_marks_and_clears_only_its_own_folder(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "a"
    with runfolder.claim(out, resume=False) as folder:
        assert folder == out.resolve() and runfolder.is_run_folder(out)
        (folder / "steps.jsonl").write_text("{}\n")
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "step_00000010.pt").write_bytes(b"x")
    with runfolder.claim(out, resume=True) as folder:  # resume keeps everything
        assert (folder / "checkpoints" / "step_00000010.pt").exists()
    with runfolder.claim(out, resume=False) as folder:  # a fresh run starts from an empty, marked folder
        assert sorted(p.name for p in folder.iterdir()) == [runfolder.MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    with runfolder.claim(empty, resume=False):
        assert runfolder.is_run_folder(empty)


def test_clearing_a_run_folder_never_follows_a_link_out_of_it(tmp_path: Path) -> None:
    """A user links their dataset (or an old checkpoint folder) into a run folder, at the top and deeper
    down: a fresh run removes the links, never what they point at."""
    data = thesis(tmp_path / "dataset")
    before = tree(data)
    out = tmp_path / "run"
    with runfolder.claim(out, resume=False) as folder:
        (folder / "data").symlink_to(data, target_is_directory=True)
        (folder / "thesis.tex").symlink_to(data / "thesis.tex")
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "latest").symlink_to(data / "chapters", target_is_directory=True)
    with runfolder.claim(out, resume=False) as folder:
        assert sorted(p.name for p in folder.iterdir()) == [runfolder.MARKER]
    assert tree(data) == before  # every file, byte and permission bit where it was


def test_a_marker_without_the_signature_is_not_a_marker(tmp_path: Path) -> None:
    folder = thesis(tmp_path / "t")
    (folder / runfolder.MARKER).write_text("Signature: something else\n")
    before = tree(folder)
    with pytest.raises(RunFolderRefused), runfolder.claim(folder, resume=False):
        pass
    assert tree(folder) == before


def test_a_second_claim_waits_for_the_first(tmp_path: Path) -> None:
    out = tmp_path / "run"
    order: list[str] = []
    waited = threading.Event()
    release = threading.Event()

    def second() -> None:
        with runfolder.claim(out, resume=True, on_wait=lambda msg: (order.append(msg), waited.set())):
            order.append("second has it")

    with runfolder.claim(out, resume=False):
        t = threading.Thread(target=second)
        t.start()
        assert waited.wait(10), "the second claim neither waited nor said so"
        order.append("first releases")
        release.set()
    t.join(10)
    assert order[1:] == ["first releases", "second has it"] and "in use by another traindoc run" in order[0]


names = st.sampled_from(["a", "b", "c d", "ü", ".hidden", "x.txt"])


@given(
    files=st.lists(st.lists(names, min_size=1, max_size=3), max_size=5),
    marker=st.sampled_from(["none", "good", "bad"]),
    git=st.booleans(),
    depth=st.integers(0, 2),
    project_inside=st.booleans(),
)
def test_property_claim_deletes_only_inside_marked_folders(
    tmp_path_factory: pytest.TempPathFactory,
    files: list[list[str]],
    marker: str,
    git: bool,
    depth: int,
    project_inside: bool,
) -> None:
    base = tmp_path_factory.mktemp("prop")
    (base / "sibling").mkdir()
    (base / "sibling" / "keep.txt").write_text("outside the run folder\n")
    target = base.joinpath("out", *["n"] * depth)
    for parts in files:
        p = target.joinpath(*parts)
        try:  # a name already used as a file or a folder keeps its first use
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists():
                p.write_text("/".join(parts))
        except (FileExistsError, NotADirectoryError):
            continue
    if marker != "none":
        target.mkdir(parents=True, exist_ok=True)
        (target / runfolder.MARKER).write_text(runfolder.SIGNATURE + "\n" if marker == "good" else "not it\n")
    if git:
        (target / ".git").mkdir(parents=True, exist_ok=True)
    project = target / "proj" if project_inside else base / "proj"
    if project_inside:
        project.mkdir(parents=True, exist_ok=True)
    before = tree(base)
    marked = marker == "good"
    # content = anything but a good marker (a file of that name which traindoc did not write is content)
    had_content = target.is_dir() and any(p.name != runfolder.MARKER or not marked for p in target.iterdir())
    try:
        with runfolder.claim(target, resume=False, project_root=project, on_wait=print):
            refused = False
    except RunFolderRefused:
        refused = True
    after = tree(base)
    assert refused == (git or project_inside or (had_content and not marked))
    if refused:
        assert after == before  # nothing written, nothing deleted
        return
    inside = str(target.relative_to(base)) + os.sep
    for name, entry in before.items():  # everything outside the run folder is untouched
        if not name.startswith(inside):
            assert after.get(name) == entry or name == str(target.relative_to(base)), name
    left = sorted(p.name for p in target.iterdir())
    assert left == [runfolder.MARKER]  # the folder is a run folder, emptied of what it held
    assert not had_content or marked


@pytest.mark.slow
def test_two_concurrent_runs_on_one_out_folder_take_turns(make_project: ProjectFactory) -> None:
    import time

    root = make_project(epochs=4)
    cmd = [sys.executable, "-m", "traindoc", "run", "pipeline/tiny.py", "--out", "runs/a", "--json"]
    env = {**os.environ, "TINY_MODE": "slow"}

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    first_proc = start()
    deadline = time.monotonic() + 240
    while not (root / "runs" / "a" / "steps.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first run holds the folder and trains: the second must meet it there
    procs = [first_proc, start()]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    waited = [err for _, err in outs if "is in use by another traindoc run; waiting for it to finish" in err]
    assert len(waited) == 1, outs
    import json

    from traindoc.run.results import read_steps

    steps, _ = read_steps(root / "runs" / "a" / "steps.jsonl")
    raw = [json.loads(x) for x in (root / "runs" / "a" / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in raw if "event" not in r] == list(range(1, 65)), "two runs interleaved their logs"
    assert len(steps) == 64
    results = [json.loads(o) for o, _ in outs]
    first, second = sorted(results, key=lambda r: r["started_at"])
    assert first["status"] == second["status"] == "passed"


@pytest.mark.slow
def test_rerun_into_a_traindoc_run_folder_replaces_it(make_project: ProjectFactory) -> None:
    root = make_project()
    first = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/a")
    assert first.returncode == 0, first.stderr
    (root / "runs" / "a" / "left-over.txt").write_text("from an earlier run\n")
    second = traindoc_cli(root, "run", "pipeline/tiny.py", "--out", "runs/a")
    assert second.returncode == 0, second.stderr
    assert not (root / "runs" / "a" / "left-over.txt").exists()
    assert (root / "runs" / "a" / "results.json").is_file() and runfolder.is_run_folder(root / "runs" / "a")

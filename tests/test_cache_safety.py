"""Never run code from data, never serve damage: the shared cache holds only checked JSON entries
(and weights-only checkpoints), and every rewritten file keeps its permission bits."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ProjectFactory, traindoc_cli
from traindoc import cache
from traindoc.facts import service
from traindoc.pages import docsgen
from traindoc.run import runner
from traindoc.run.runner import RunOptions
from traindoc.train import checkpoint


def truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def not_utf8(p: Path) -> None:
    p.write_bytes(b"\xff\xfe\x80" + p.read_bytes())


def edit_payload(p: Path) -> None:
    record = json.loads(p.read_bytes())
    payload = record["payload"]
    if isinstance(payload, str):
        record["payload"] = payload.replace("a", "e")
    else:
        payload[sorted(payload)[0]] = "edited"
    p.write_text(json.dumps(record))


def other_shape(p: Path) -> None:
    """Valid JSON with a correct digest, but not the shape this entry must have."""
    record = json.loads(p.read_bytes())
    record["payload"] = {"not": "a record"}
    record["sha256"] = cache._digest(record["payload"])
    p.write_text(json.dumps(record))


def deep_nesting(p: Path) -> None:
    p.write_text("[" * 100_000 + "]" * 100_000)


def a_folder(p: Path) -> None:
    p.unlink()
    p.mkdir()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": truncate,
    "not UTF-8": not_utf8,
    "edited": edit_payload,
    "other shape": other_shape,
    "deeply nested": deep_nesting,
    "a folder": a_folder,
}


def _reset(p: Path) -> None:
    if p.is_dir():
        p.rmdir()


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_facts_entries_are_recomputed(make_project: ProjectFactory, damage: str) -> None:
    root = make_project()
    first = service.facts_for("pipeline/tiny.py", in_process=True, root=root)
    entry = next((root / ".cache" / "traindoc" / "facts").glob("*.json"))
    good = entry.read_bytes()
    DAMAGE[damage](entry)
    again = service.facts_for("pipeline/tiny.py", in_process=True, root=root)
    assert again == first
    _reset(entry)
    if entry.exists():  # rewritten (a folder in its place stays; it is recomputed on every call)
        assert entry.read_bytes() == good or cache.read_entry(entry) == first.model_dump(mode="json")


@pytest.mark.parametrize("damage", [d for d in DAMAGE if d != "other shape"])
def test_damaged_reference_pages_are_regenerated_never_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    monkeypatch.setenv("TRAINDOC_CACHE_DIR", str(tmp_path / "cache"))
    text = docsgen.reference_page("spec-reference")
    (entry,) = (tmp_path / "cache" / "reference").iterdir()
    DAMAGE[damage](entry)
    assert docsgen.reference_page("spec-reference") == text
    if damage != "a folder":
        assert cache.read_entry(entry) == text  # repaired


@pytest.mark.slow
def test_damaged_run_entries_latest_and_inputs_are_never_served(make_project: ProjectFactory) -> None:
    root = make_project()
    opts = RunOptions(progress=False)
    first = runner.run("pipeline/tiny.py", opts, root)
    assert first.ok, first.reason
    run_dir = Path(first.run_dir)
    latest = next((root / ".cache" / "traindoc" / "latest").glob("*.json"))
    files = {"entry": run_dir / "entry.json", "latest": latest, "inputs": run_dir / "inputs.json"}
    good = {k: p.read_bytes() for k, p in files.items()}
    (root / "pipeline" / "tinymods.py").write_text((root / "pipeline" / "tinymods.py").read_text() + "\n# edit\n")
    assert runner.stale_because("pipeline/tiny.py", opts, root) == ["pipeline/tinymods.py changed"]
    layout, fp = cache.Layout(root / ".cache" / "traindoc"), cache.Fingerprint(key=first.key, inputs={})
    for damage, fn in DAMAGE.items():
        for name, p in files.items():
            fn(p)
            if name == "entry":
                assert runner._cached(layout, fp) is None, damage
            elif name == "latest":
                assert runner.latest("pipeline/tiny.py", opts, root) is None, damage
            else:
                assert runner.stale_because("pipeline/tiny.py", opts, root) == [], damage
            _reset(p)
            p.write_bytes(good[name])
    assert runner._cached(layout, fp) is not None  # the good entries are served again


# --- nothing executable in the cache -----------------------------------------------------------------------

PICKLE_PROTOCOLS = tuple(bytes([0x80, n]) for n in range(2, 6))


@pytest.mark.slow
def test_no_pickle_or_compiled_code_in_the_cache_after_a_docs_build(make_project: ProjectFactory) -> None:
    from test_plugin import build, make_site

    root = make_site(make_project())
    (root / "docs" / "reference.md").write_text("# Ref\n\n```traindoc\nshow: spec-reference\n```\n")
    out = build(root)
    assert out.returncode == 0, out.stderr
    folder = root / ".cache" / "traindoc"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.parent.name == "reference" for p in files) and any(p.parent.name == "facts" for p in files)
    checkpoints = []
    for p in files:
        data = p.read_bytes()
        assert p.suffix not in (".pyc", ".pyo", ".cache", ".pkl", ".pickle"), p
        assert b"jinja" not in p.parts[-2].encode(), p
        if zipfile.is_zipfile(p):  # torch's checkpoint archive: the one pickle, read only as data
            assert checkpoint._NAME.match(p.name) and p.parent.name == "checkpoints", p
            checkpoints.append(p)
            continue
        assert not data.startswith(PICKLE_PROTOCOLS), p
        assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data, p  # a pickle frame anywhere
        if p.suffix == ".json":
            json.loads(data)
    assert checkpoints, "the docs run wrote no checkpoint"
    for p in checkpoints:
        assert checkpoint.load(p)["step"] > 0  # verified against its sidecar, unpickled weights-only


# --- permission bits ---------------------------------------------------------------------------------------


def test_rewritten_files_keep_their_permission_bits(make_project: ProjectFactory) -> None:
    root = make_project()
    readme = root / "README.md"
    readme.write_text("# tiny\n\n<!-- traindoc:begin model-table pipeline=tiny -->\n<!-- traindoc:end -->\n")
    readme.chmod(0o644)
    proc = traindoc_cli(root, "readme", "README.md")
    assert proc.returncode == 0 and "updated" in proc.stdout, proc.stderr
    assert stat.S_IMODE(readme.stat().st_mode) == 0o644 and "| `body` |" in readme.read_text()
    group = root / "diagram.mmd"
    group.write_text("old\n")
    group.chmod(0o664)
    assert traindoc_cli(root, "export", "pipeline/tiny.py", "--format", "mmd", "-o", "diagram.mmd").returncode == 0
    assert stat.S_IMODE(group.stat().st_mode) == 0o664 and "flowchart" in group.read_text()
    private = root / "private.mmd"
    private.write_text("old\n")
    private.chmod(0o600)
    assert traindoc_cli(root, "export", "pipeline/tiny.py", "--format", "mmd", "-o", "private.mmd").returncode == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o600  # never widened either
    old = os.umask(0o022)
    os.umask(old)
    assert traindoc_cli(root, "export", "pipeline/tiny.py", "--format", "mmd", "-o", "new.mmd").returncode == 0
    assert stat.S_IMODE((root / "new.mmd").stat().st_mode) == 0o666 & ~old  # as open() would make it


# --- compiled templates: private per-user folder only --------------------------------------------------


def _load_templates(xdg: Path, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    code = "from traindoc.render import env as render\nfor n in ('inspect.txt.j2', 'lint.txt.j2'):\n    render.environment().get_template(n)\n"
    env = {**os.environ, "XDG_CACHE_HOME": str(xdg), "TRAINDOC_CACHE_DIR": str(cache_dir)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)


def test_compiled_templates_live_only_in_a_private_per_user_folder(tmp_path: Path) -> None:
    import pickle

    import jinja2.bccache

    from test_checkpoint_safety import Planted

    xdg, shared = tmp_path / "xdg", tmp_path / "project-cache"
    assert _load_templates(xdg, shared).returncode == 0
    folder = xdg / "traindoc-bytecode"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and len(list(folder.iterdir())) == 2
    assert not shared.exists() or not any(p.is_file() for p in shared.rglob("*"))
    marker = tmp_path / "PWNED"
    evil = jinja2.bccache.bc_magic + pickle.dumps(Planted(marker))

    def poison(mode: int) -> None:  # what a poisoned cache restore would leave
        for p in folder.iterdir():
            p.write_bytes(evil)
            p.chmod(mode)

    poison(0o666)
    assert _load_templates(xdg, shared).returncode == 0 and not marker.exists()  # writable by others: unused
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())  # recompiled, private
    poison(0o644)
    folder.chmod(0o755)
    assert _load_templates(xdg, shared).returncode == 0 and not marker.exists()  # folder not private: unused
    inside = shared / "xdg"
    assert _load_templates(inside, shared).returncode == 0 and not (inside / "traindoc-bytecode").exists()
    folder.chmod(0o700)  # the control: a private folder is trusted like the user's own __pycache__
    assert _load_templates(xdg, shared).returncode == 0 and marker.exists()

"""traindoc's own source digest (part of every cache key) covers every subpackage and the templates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from traindoc import cache

PACKAGE = Path(cache.__file__).resolve().parent
digest = cache.own_source_digest.__wrapped__  # uncached: the copy changes between calls


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "traindoc"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_default_root_is_the_package(copy: Path) -> None:
    assert cache.own_source_digest() == digest(PACKAGE) == digest(copy)


@pytest.mark.parametrize(
    "edited",
    [
        "cache.py",
        "facts/introspect.py",
        "run/runner.py",
        "train/loop.py",
        "spec/pipeline.py",
        "render/templates/model.mmd.j2",
    ],
)
def test_editing_any_module_or_template_changes_the_digest(copy: Path, edited: str) -> None:
    before = digest(copy)
    file = copy / edited
    file.write_text(file.read_text() + "\n")
    assert digest(copy) != before


def test_a_new_module_in_a_subpackage_and_a_moved_file_change_the_digest(copy: Path) -> None:
    before = digest(copy)
    (copy / "render" / "extra.py").write_text("X = 1\n")
    added = digest(copy)
    assert added != before
    (copy / "render" / "extra.py").rename(copy / "pages" / "extra.py")  # same bytes, another place
    assert digest(copy) not in {before, added}


def test_other_files_do_not_count(copy: Path) -> None:
    before = digest(copy)
    (copy / "notes.txt").write_text("not code\n")
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert digest(copy) == before

"""The guide says what the code does: README section kinds and options, docs budgets its examples reach."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from test_contract_e2e import GUIDE, guide_files
from traindoc.render import content
from traindoc.spec.loader import load


def _readme_sections() -> str:
    found = re.search(r"^## README sections\n(.*?)(?=^## )", GUIDE.read_text(), re.S | re.M)
    assert found
    return found.group(1)


def test_guide_lists_every_readme_section_kind_and_option() -> None:
    text = _readme_sections()
    rows = re.findall(r"^\| (`[^|]*`) \|", text, re.M)
    documented = {k for row in rows for k in re.findall(r"`([a-z-]+)`", row)}
    assert documented == {*content.BLOCKS, "compare"}  # what `traindoc readme` accepts, no more, no less
    for option in ("pipeline=", "depth=", "a=", "b=", "seeds=", "nproc="):
        assert f"`{option}" in text, option
    from traindoc.pages import readme  # the options the code reads

    code = Path(readme.__file__).read_text()
    assert set(re.findall(r'params(?:\.get\(|\[)"(\w+)"', code)) == {"pipeline", "depth", "a", "b", "seeds", "nproc"}


@pytest.mark.parametrize(
    ("section", "pipeline"),
    [("Language models and dict batches", "pipeline/lm.py"), ("Hugging Face models", "pipeline/gpt2.py")],
)
def test_guide_examples_reach_their_docs_budget(tmp_path: Path, section: str, pipeline: str) -> None:
    """A docs run never trains past `training.epochs`: an example's `docs_run.max_steps` must fit in them."""
    for rel, text in guide_files(section).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    spec, _ = load(str(tmp_path / pipeline))
    n = len(spec.data.train())
    per_epoch = (n // spec.data.batch_size if spec.data.drop_last else math.ceil(n / spec.data.batch_size)) // (
        spec.optim.accumulate
    )
    assert spec.training.epochs * per_epoch >= spec.training.docs_run.max_steps, (spec.training.epochs, per_epoch)


def test_guide_says_an_evaluate_hook_replaces_val_loss() -> None:
    text = GUIDE.read_text()
    assert re.search(r"a key `loss` becomes `val_loss` \(it replaces\s+the\s+built-in one\)", text)

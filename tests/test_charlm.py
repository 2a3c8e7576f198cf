"""The language-model example's own pieces, in-process: corpus, batches, schedule, model, samples.

(Its real runs — through ``traindoc run`` and a real MkDocs build — are in ``test_contract_e2e.py``;
the docs build itself runs the full docs budget and checks the expectations.)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO


@pytest.fixture(scope="module")
def lm() -> Iterator[ModuleType]:
    sys.path.insert(0, str(REPO / "pipeline"))
    threads = torch.get_num_threads()  # the example's model factory picks one CPU thread
    import charlm

    yield charlm
    torch.set_num_threads(threads)
    sys.path.remove(str(REPO / "pipeline"))


def test_corpus_is_the_stdlib_source_split_per_file(lm: ModuleType) -> None:
    import sysconfig
    from pathlib import Path

    import charlm_data as d

    train, val = d._splits()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sizes = [len(d.encode((stdlib / f"{m}.py").read_text(encoding="utf-8"))) for m in d.MODULES]
    assert len(train) + len(val) == sum(sizes)
    assert len(val) == sum(n - int(n * (1 - d.VAL_FRACTION)) for n in sizes)
    first = (stdlib / f"{d.MODULES[0]}.py").read_text(encoding="utf-8").replace("\t", "    ")
    assert d.decode(train[:200]) == first[:200]  # the text itself, not a summary of it


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.just("\n"), max_size=200))
def test_encode_decode_round_trip_on_the_vocabulary(text: str) -> None:
    sys.path.insert(0, str(REPO / "pipeline"))
    import charlm_data as d

    ids = d.encode(text)
    assert ids.dtype == torch.long and all(0 <= i < len(d.VOCAB) for i in ids.tolist())
    assert d.decode(ids) == text


def test_collate_makes_a_shifted_dict_batch(lm: ModuleType) -> None:
    import charlm_data as d

    ds = d.train_set()
    batch = d.collate([ds[0], ds[1], ds[len(ds) - 1]])
    assert set(batch) == {"input_ids", "labels"}
    assert batch["input_ids"].shape == batch["labels"].shape == (3, d.CONTEXT)
    assert torch.equal(batch["input_ids"][:, 1:], batch["labels"][:, :-1])  # labels are the next tokens
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_schedule_warms_up_then_follows_a_cosine_to_the_floor(lm: ModuleType) -> None:
    f = [lm.lr_factor(s) for s in range(lm.DOCS_STEPS + 50)]
    warm = f[: lm.WARMUP_STEPS]
    assert warm == sorted(warm) and warm[0] == pytest.approx(1 / lm.WARMUP_STEPS) and f[lm.WARMUP_STEPS] == 1.0
    decay = f[lm.WARMUP_STEPS : lm.DOCS_STEPS + 1]
    assert decay == sorted(decay, reverse=True)
    assert f[lm.DOCS_STEPS] == pytest.approx(lm.MIN_LR_FRACTION) and set(f[lm.DOCS_STEPS :]) == {f[lm.DOCS_STEPS]}
    mid = lm.WARMUP_STEPS + (lm.DOCS_STEPS - lm.WARMUP_STEPS) // 2
    assert f[mid] == pytest.approx(lm.MIN_LR_FRACTION + (1 - lm.MIN_LR_FRACTION) / 2, abs=0.01)


def test_model_is_causal_and_its_head_is_the_embedding(lm: ModuleType) -> None:
    torch.manual_seed(0)
    net = lm.model()
    assert net.head.weight is net.tok.weight
    ids = torch.randint(0, len(lm.VOCAB), (2, 20))
    out = net(ids)
    assert out.shape == (2, 20, len(lm.VOCAB))
    changed = ids.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % len(lm.VOCAB)
    assert torch.allclose(net(changed)[:, :10], out[:, :10], atol=1e-6)  # no peeking at later tokens
    assert not torch.allclose(net(changed)[:, 10:], out[:, 10:])
    with pytest.raises(ValueError, match="longer than the context"):
        net(torch.zeros(1, net.context + 1, dtype=torch.long))


def test_samples_continue_each_prompt_reproducibly(lm: ModuleType) -> None:
    torch.manual_seed(0)
    net = lm.model()
    net.train()
    first, again = lm.samples(net), lm.samples(net)
    assert first == again and net.training  # same text from the same model; the mode is restored
    assert [s[: len(p)] for s, p in zip(first, lm.PROMPTS, strict=True)] == list(lm.PROMPTS)
    assert all(len(s) == len(p) + 60 for s, p in zip(first, lm.PROMPTS, strict=True))
    assert all(set(s) <= set(lm.VOCAB) for s in first)


def test_perplexity_bound_matches_the_loss_bound(lm: ModuleType) -> None:
    """The page says 'perplexity about 13.5 or better': exp of the val_loss bound."""
    assert lm.pipeline.expect.bounds["val_loss"].max is not None
    page = (REPO / "docs" / "charlm.md").read_text()
    assert f"about {math.exp(lm.pipeline.expect.bounds['val_loss'].max):.1f}" in page
    assert f"at most {lm.pipeline.expect.bounds['val_loss'].max:g}" in page
    assert f"token accuracy at least {lm.pipeline.expect.bounds['val_token_accuracy'].min:g}" in page
    assert f"at least {lm.pipeline.expect.min_loss_drop:.0%}".replace("%", " %") in page
    assert f"({lm.DOCS_STEPS} steps)" in page and f"{lm.WARMUP_STEPS} steps" in page

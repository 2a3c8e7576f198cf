"""Label escaping: any string yields valid Mermaid, shows as written, and never injects HTML."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traindoc.export.browser import render_many
from traindoc.render import mermaid

NASTY = [
    "NVIDIA GPU (如 A100/V100)",
    'a "quoted" word',
    "end",
    "<script>alert(1)</script>",
    "x;y|z",
    "#35; hash # and ;",
    "back`tick`",
    "line1\nline2",
    "🚀 emoji ✨",
    "%% not a comment",
    "[brackets] {braces} (parens)",
    "&amp; &lt;",
    "a -->|b| c",
    "o",
    "x",
    "\\back\\slash",
    "subgraph end",
    "click foo call bar()",
    ":::cls",
    '<img src=x onerror="alert(1)">',
    "##quot;",
    "#lt;",
    "style x fill:red",
    "中文标签 · 训练",
    "\t tab and \r return",
]

LABEL_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x1FAFF), min_size=1, max_size=40
)


def flow(text: str) -> str:
    return f"flowchart LR\n  {mermaid.node_id('a')}[{mermaid.label(text)}] --> {mermaid.node_id('b')}[{mermaid.label('b')}]"


def visible(text: str) -> str:
    """What a reader should see, compared without whitespace (line breaks and spacing are layout)."""
    return re.sub(r"\s+", "", "".join(ch for ch in text if ch.isprintable() or ch.isspace()))


def shown(svg_text: str) -> str:
    return re.sub(r"\s+", "", svg_text)


def assert_render_as_written(browser: object, texts: list[str]) -> None:
    """Each label renders in the real Mermaid, reads back as written, and injects no markup."""
    results = render_many([flow(t) for t in texts], browser=browser)
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        for text, r in zip(texts, results, strict=True):
            assert r.error is None, f"{text!r}: {r.error}"
            assert r.nodes == 2
            page.set_content(r.svg)
            assert page.locator("script, img, [onerror]").count() == 0, f"{text!r} injected markup"
            label = shown(page.locator("g.node").first.text_content() or "")
            assert label == visible(text), f"{text!r} shows as {label!r}"
    finally:
        page.close()


@given(LABEL_TEXT)
def test_property_escaped_label_is_one_quoted_token(text: str) -> None:
    out = mermaid.label(text)
    inner = out[1:-1]
    assert out.startswith('"') and out.endswith('"')
    assert '"' not in inner and "<" not in inner.replace("<br>", "") and ">" not in inner.replace("<br>", "")
    assert "`" not in inner and "\n" not in inner
    assert not re.search(r"#(?!(?:quot|amp|lt|gt|\d+);)", inner), "a bare # would start an entity"


@given(LABEL_TEXT)
def test_property_escape_is_deterministic_and_bounded(text: str) -> None:
    assert mermaid.escape(text) == mermaid.escape(text)
    assert len(mermaid.escape(text)) <= mermaid.MAX_LABEL * 6


@pytest.mark.browser
def test_nasty_labels_render_as_written(session_browser: object) -> None:
    assert_render_as_written(session_browser, NASTY)


@pytest.mark.browser
@settings(
    max_examples=int(os.environ.get("TRAINDOC_BROWSER_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(LABEL_TEXT, min_size=8, max_size=8))
def test_property_random_labels_render_in_the_browser(session_browser: object, texts: list[str]) -> None:
    assert_render_as_written(session_browser, texts)

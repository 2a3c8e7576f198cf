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


# --- the overlap measure itself (what site-check and the page tests rely on) ---------------------------

_FO = (
    '<foreignObject x="{x}" y="{y}" width="160" height="{h}"><div xmlns="http://www.w3.org/1999/xhtml" '
    'style="line-height:1.5;font-size:16px"><span class="nodeLabel">{html}</span></div></foreignObject>'
)


def _measure_svg(browser: object, *labels: tuple[int, int, int, str]) -> list[list[str]]:
    from traindoc.export.browser import MEASURE_JS, new_page

    body = "".join(_FO.format(x=x, y=y, h=h, html=html) for x, y, h, html in labels)
    page = new_page(browser)
    try:
        page.evaluate(  # type: ignore[attr-defined]
            "html => { document.body.innerHTML = html; }",
            f'<div class="mermaid"><svg xmlns="http://www.w3.org/2000/svg" width="400" height="300">{body}</svg></div>',
        )
        (diagram,) = page.evaluate(MEASURE_JS)  # type: ignore[attr-defined]
    finally:
        page.close()  # type: ignore[attr-defined]
    return [sorted(p) for p in diagram["overlaps"]]


def test_overlap_measure_sees_text_on_text_and_not_an_empty_staggering_line(session_browser: object) -> None:
    # Two titles on the same spot: reported.
    assert _measure_svg(session_browser, (10, 10, 24, "features · Sequential"), (20, 14, 24, "0 · ConvBlock")) == [
        ["0 · ConvBlock", "features · Sequential"]
    ]
    # A nested title pushed down by an empty first line: its element box covers the parent's title, its
    # text does not — what a reader sees, so not reported.
    staggered = (20, 14, 48, "<p><br>0 · ConvBlock</p>")
    assert _measure_svg(session_browser, (10, 10, 24, "features · Sequential"), staggered) == []
    # The second line of a two-line label still counts.
    two_lines = (20, -10, 48, "<p>conv · Conv2d<br>288 params</p>")
    assert _measure_svg(session_browser, (10, 10, 24, "features · Sequential"), two_lines) == [
        ["conv · Conv2d288 params", "features · Sequential"]
    ]

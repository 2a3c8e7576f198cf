"""Pages people can read: diagram layout measured in Chromium, every theme, ProperDocs and Zensical.

Each site is a real build of a tiny real project, opened in headless Chromium with every request
leaving the machine intercepted; label size and overlap are measured as a reader sees them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, ProjectFactory

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MERMAID_DIR = os.environ.get("TRAINDOC_MERMAID_DIR") or str(REPO / ".cache" / "mermaid" / "11.12.0")
PAGES = {
    "index.md": "# Home\n\n```traindoc\npipeline: tiny\nshow: system\n```\n",
    "data.md": "# Data\n\n```traindoc\npipeline: tiny\nshow: data\n```\n",
    "dist.md": "# Distributed\n\n```traindoc\npipeline: tiny\nshow: distributed\n```\n",
    "run.md": "# Run\n\n```traindoc\npipeline: tiny\nshow: run\n```\n",
}
FENCE = "!!python/name:pymdownx.superfences.fence_code_format"


def guide_block(tag: str) -> str:
    """The YAML block after ``<!-- guide:TAG -->`` in docs/guide.md: the guide's configuration is what is tested."""
    text = (REPO / "docs" / "guide.md").read_text()
    after = text.split(f"<!-- guide:{tag} -->\n", 1)[1]
    return after.split("```yaml\n", 1)[1].split("```", 1)[0]


def write_site(root: Path, theme: str, pages: dict[str, str] = PAGES) -> Path:
    docs = root / "docs"
    docs.mkdir(exist_ok=True)
    for name, text in pages.items():
        (docs / name).write_text(text)
    if theme == "material":
        cfg = {"theme": {"name": "material", "font": False}, "plugins": ["search", "traindoc"]}
        text = yaml.safe_dump(cfg, sort_keys=False) + (
            "markdown_extensions:\n  - tables\n  - pymdownx.superfences:\n      custom_fences:\n"
            f"        - name: mermaid\n          class: mermaid\n          format: {FENCE}\n"
        )
    else:  # exactly the guide's section for these themes
        text = guide_block("themes").replace("name: readthedocs", f"name: {theme}")
    (root / "mkdocs.yml").write_text("site_name: tiny\n" + text)
    return root


def shots(name: str) -> Path | None:
    """Where ``make screenshots`` wants this site's screenshots (None: not asked for)."""
    folder = os.environ.get("TRAINDOC_SCREENSHOTS")
    return Path(folder) / name if folder else None


def run(cmd: list[str], root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "TRAINDOC_MERMAID_DIR": MERMAID_DIR, "NO_MKDOCS_2_WARNING": "1", **env},
        check=False,
        timeout=600,
    )


def assert_readable(report: object, expected_blocks: int) -> None:
    from sitecheck import overlaps_of, problems_of

    assert report.external_requests == [], report.external_requests  # type: ignore[attr-defined]
    diagrams = [d for p in report.pages for d in p.diagrams]  # type: ignore[attr-defined]
    assert len(diagrams) == expected_blocks, diagrams
    assert problems_of(report) == []  # type: ignore[arg-type]
    assert overlaps_of(report) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("theme", ["material", "mkdocs", "readthedocs"])
def test_every_theme_renders_readable_diagrams_offline(
    make_project: ProjectFactory, theme: str, session_browser: object
) -> None:
    from sitecheck import check_site

    root = write_site(make_project(), theme)
    out = run([sys.executable, "-m", "mkdocs", "build", "--strict"], root)
    assert out.returncode == 0, out.stderr
    if theme != "material":
        assert (root / "site" / "assets" / "traindoc" / "init.js").is_file()
    report = check_site(root / "site", session_browser, screenshots=shots(f"tiny-{theme}"))
    # system, data, distributed (Mermaid) + the run chart (SVG drawn by traindoc)
    assert sorted(str(d["kind"]) for p in report.pages for d in p.diagrams) == ["chart"] + ["flowchart-v2"] * 3
    assert_readable(report, 4)


def test_system_and_data_diagrams_fit_a_docs_column(digits_copy: Path, session_browser: object) -> None:
    """The example's diagrams, measured before they reach a page: ≥ 9 px text at 700 px, no overlaps."""
    from traindoc.export import browser
    from traindoc.facts import service
    from traindoc.render import diagrams
    from traindoc.render.env import project_templates_dir

    facts = service.facts_for("digits", root=digits_copy, cache_dir=digits_copy / ".cache")
    texts = {
        (kind, direction): diagrams.diagram(facts, kind, None, project_templates_dir(digits_copy), direction).text
        for kind in ("system", "data", "distributed")
        for direction in ("auto", "LR")
    }
    got = dict(zip(texts, browser.measure_many(list(texts.values()), browser=session_browser), strict=True))
    for kind in ("system", "data", "distributed"):
        auto = got[(kind, "auto")]
        assert auto.readable, (kind, auto)
        assert auto.min_px is not None and auto.min_px >= browser.MIN_TEXT_PX
    # the measurement can fail: the old left-to-right system diagram is unreadable in the same column
    assert got[("system", "LR")].min_px is not None and got[("system", "LR")].min_px < browser.MIN_TEXT_PX


# --- ProperDocs and Zensical (installed from requirements-dev.txt) --------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is not installed (requirements-dev.txt pins it)")
        pytest.skip(f"{name} is not installed (pip install -r requirements-dev.txt)")
    return found


def test_properdocs_builds_a_traindoc_site(make_project: ProjectFactory, session_browser: object) -> None:
    from sitecheck import check_site

    root = write_site(make_project(), "material")
    out = run([_tool("properdocs"), "build", "--strict", "-f", "mkdocs.yml"], root)
    assert out.returncode == 0, out.stderr
    report = check_site(root / "site", session_browser, screenshots=shots("tiny-properdocs"))
    assert_readable(report, 4)


def test_zensical_renders_the_fence_formatter_offline(make_project: ProjectFactory, session_browser: object) -> None:
    """Zensical runs superfences formatters but no MkDocs plugin: facts come from the cache (filled by
    ``traindoc inspect``), the pinned Mermaid is placed in docs/ by ``traindoc mermaid-install`` — the
    guide's steps and configuration, verbatim."""
    from sitecheck import check_site

    root = make_project()
    zensical = _tool("zensical")
    assert run([sys.executable, "-m", "traindoc", "inspect", "tiny"], root).returncode == 0  # warms the cache
    out = run([sys.executable, "-m", "traindoc", "mermaid-install", "docs"], root)
    assert out.returncode == 0, out.stderr
    (root / "docs" / "index.md").write_text(PAGES["index.md"])
    (root / "docs" / "data.md").write_text(PAGES["data.md"])
    (root / "mkdocs.yml").write_text(guide_block("zensical"))  # exactly the guide's configuration
    out = run([zensical, "build", "--clean"], root, PYTHONPATH=os.pathsep.join(sys.path))
    assert out.returncode == 0, out.stdout + out.stderr
    html = (root / "site" / "index.html").read_text()
    assert "mermaid.min.js" in html and "unpkg" not in html
    report = check_site(root / "site", session_browser, screenshots=shots("tiny-zensical"))
    assert_readable(report, 2)


@pytest.mark.extended  # CI builds this site (`make docs`) and checks it light and dark (`make site-check`)
def test_our_own_site_light_and_dark(tmp_path: Path, session_browser: object) -> None:
    """Every page of this repository's site, screenshotted in both colour schemes and measured."""
    from sitecheck import check_site

    out = run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")], REPO)
    assert out.returncode == 0, out.stderr
    for dark in (False, True):
        folder = shots("site") or tmp_path / "shots"
        report = check_site(tmp_path / "site", session_browser, dark=dark, screenshots=folder)
        assert report.external_requests == []
        suffix = "dark" if dark else "light"
        for page in report.pages:
            path = page.url.split("/", 3)[3].strip("/").replace("/", "-") or "index"
            assert (folder / f"{path}-{suffix}.png").read_bytes()[:4] == b"\x89PNG"
            for d in page.diagrams:
                assert d["min_px"] is None or d["min_px"] >= 9.0, (page.url, d["kind"], d["min_px"])
                assert d["overlaps"] == [], (page.url, d["overlaps"])
        measured = {d["kind"] for p in report.pages for d in p.diagrams}
        assert measured == {"flowchart-v2", "chart"}

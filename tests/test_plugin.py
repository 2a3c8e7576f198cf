"""The MkDocs plugin on real sites: execute modes, both Mermaid integrations, offline rendering, serve."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import REPO, ProjectFactory, free_port

pytestmark = pytest.mark.slow

MATERIAL_FENCE = "!!python/name:pymdownx.superfences.fence_code_format"
MERMAID2_FENCE = "!!python/name:mermaid2.fence_mermaid_custom"

PAGES = {
    "index.md": "# Home\n\n```traindoc\npipeline: tiny\nshow: system\n```\n",
    "model.md": "# Model\n\n```traindoc\npipeline: tiny\nshow: model\n```\n\n```traindoc\npipeline: tiny\nshow: data\n```\n",
    "run.md": "# Run\n\n```traindoc\npipeline: tiny\nshow: run\n```\n",
    "more.md": "# More\n\n```traindoc\npipeline: tiny\nshow: distributed\n```\n\n```traindoc\npipeline: tiny\nshow: commands\n```\n",
}


def make_site(root: Path, *, integration: str = "material", **plugin: object) -> Path:
    docs = root / "docs"
    docs.mkdir(exist_ok=True)
    for name, text in PAGES.items():
        (docs / name).write_text(text)
    fence = MATERIAL_FENCE if integration == "material" else MERMAID2_FENCE
    plugins = ["search", {"traindoc": {"mermaid": "local", **plugin}}]
    if integration == "mermaid2":
        plugins.append("mermaid2")
    cfg = {
        "site_name": "tiny",
        "theme": {"name": "material", "font": False},
        "plugins": plugins,
    }
    text = yaml.safe_dump(cfg, sort_keys=False)
    text += f"markdown_extensions:\n  - tables\n  - pymdownx.superfences:\n      custom_fences:\n        - name: mermaid\n          class: mermaid\n          format: {fence}\n"
    (root / "mkdocs.yml").write_text(text)
    return root


def build(root: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", *extra],
        cwd=root,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "TRAINDOC_MERMAID_DIR": str(REPO / ".cache" / "mermaid" / "11.12.0"),
            "NO_MKDOCS_2_WARNING": "1",
            **(env or {}),
        },
        check=False,
    )


def html(root: Path, page: str) -> str:
    return (root / "site" / page / "index.html").read_text() if page else (root / "site" / "index.html").read_text()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_execute_auto_runs_once_then_reuses_the_cache(make_project: ProjectFactory) -> None:
    root = make_site(make_project())
    docs_before = snapshot(root / "docs")
    first = build(root)
    assert first.returncode == 0, first.stderr
    page = html(root, "run")
    assert "✅ Passed" in page and "runs on CPU, as the spec asks" in page and "from the cache" not in page
    assert page.count('data-traindoc="chart"') == 1  # the training chart, an SVG traindoc draws
    assert page.count('class="mermaid"') == 0 and "reloaded into a fresh model and verified" in page
    assert "assets/traindoc/mermaid.min.js" in page and "unpkg" not in page and "jsdelivr" not in page
    assert (root / "site" / "assets" / "traindoc" / "mermaid.min.js").stat().st_size > 1_000_000
    second = build(root)
    assert second.returncode == 0 and "from the cache" in html(root, "run")
    assert snapshot(root / "docs") == docs_before, "the plugin wrote into docs_dir"


def test_execute_never_and_always(make_project: ProjectFactory) -> None:
    root = make_site(make_project(), execute="never")
    out = build(root)
    assert out.returncode == 0, out.stderr
    page = html(root, "run")
    assert "<strong>Not run.</strong>" in page and "no cached run matches the current inputs" in page
    make_site(root, execute="always")
    assert build(root).returncode == 0 and "from the cache" not in html(root, "run")
    assert build(root).returncode == 0 and "from the cache" not in html(root, "run")  # always re-runs
    runs = list((root / ".cache" / "traindoc" / "runs").iterdir())
    assert len(runs) == 1  # same inputs, same run folder, re-run in place


def test_strict_build_fails_on_unmet_expectations(make_project: ProjectFactory) -> None:
    root = make_site(make_project(min_acc=0.999))
    out = build(root)
    assert out.returncode != 0
    assert "unmet expectation(s): validation accuracy" in out.stderr
    make_site(root, strict=False)
    relaxed = build(root)
    assert relaxed.returncode == 0 and "Expectations not met" in html(root, "run")


def test_broken_fence_names_page_and_line(make_project: ProjectFactory) -> None:
    root = make_site(make_project())
    (root / "docs" / "bad.md").write_text("# Bad\n\ntext\n\n```traindoc\npipeline: tiny\nshow: nonsense\n```\n")
    out = build(root)
    assert out.returncode != 0 and "bad.md(5): show: 'nonsense' is not one of" in out.stderr


def test_prerequisites_are_checked(make_project: ProjectFactory) -> None:
    root = make_site(make_project())
    cfg = (root / "mkdocs.yml").read_text()
    (root / "mkdocs.yml").write_text(cfg.split("markdown_extensions:")[0])
    out = build(root)
    assert out.returncode != 0 and "diagrams need a Mermaid integration" in out.stderr
    (root / "mkdocs.yml").write_text(
        cfg.replace("mermaid: local", "mermaid: https://unpkg.com/mermaid@11/dist/mermaid.min.js")
    )
    out = build(root)
    assert out.returncode != 0 and "pinned to an exact version" in out.stderr
    out = build(make_site(root), env={"TRAINDOC_MERMAID_DIR": str(root / "nowhere")})
    assert out.returncode != 0 and "traindoc mermaid-fetch" in out.stderr


def test_mermaid2_integration_loads_mermaid_once_and_locally(make_project: ProjectFactory) -> None:
    root = make_site(make_project(), integration="mermaid2")
    out = build(root)
    assert out.returncode == 0, out.stderr
    page = html(root, "")
    assert page.count("mermaid.min.js") == 1 and "unpkg" not in page and "mermaid.esm" not in page
    assert "window.mermaidConfig" in page  # mermaid2's loader is active


@pytest.mark.browser
@pytest.mark.parametrize("integration", ["material", "mermaid2"])
def test_built_site_renders_every_diagram_offline(
    make_project: ProjectFactory, integration: str, session_browser: object
) -> None:
    from sitecheck import check_site

    root = make_site(make_project(), integration=integration)
    assert build(root).returncode == 0
    report = check_site(root / "site", session_browser)
    assert report.external_requests == []
    blocks = [b for p in report.pages for b in p.blocks]
    kinds = sorted(str(b["kind"]) for b in blocks)  # system, model, data, distributed (the chart is no Mermaid)
    assert kinds == ["flowchart-v2"] * 4, report
    assert [str(d["kind"]) for p in report.pages for d in p.diagrams].count("chart") == 1
    assert all(b["svg"] and not b["error"] for b in blocks), report


# --- mkdocs serve -------------------------------------------------------------------------------------


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode("utf-8"))


def _wait_for(url: str, predicate: object, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = _get(url)
            if predicate(last):  # type: ignore[operator]
                return last
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting on {url}; last page:\n{last[-2000:]}")


def _torch_loaded(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch" in maps


def test_serve_edits_markdown_without_training_and_reruns_on_pipeline_edits(make_project: ProjectFactory) -> None:
    root = make_site(make_project(docs_steps=20))
    port = free_port()
    env = {
        **os.environ,
        "TRAINDOC_MERMAID_DIR": str(REPO / ".cache" / "mermaid" / "11.12.0"),
        "NO_MKDOCS_2_WARNING": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "serve", "-a", f"127.0.0.1:{port}"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/"
    runs = root / ".cache" / "traindoc" / "runs"
    try:
        first = _wait_for(base + "run/", lambda p: "Running…" in p or "Passed" in p, 60)
        assert "Running…" in first, "a stale run must not block the rebuild"
        _wait_for(base + "run/", lambda p: "✅ Passed" in p)
        assert not _torch_loaded(proc.pid), "the docs server imported torch"
        n_runs = len(list(runs.iterdir()))

        (root / "docs" / "index.md").write_text(PAGES["index.md"] + "\nA freshly edited sentence.\n")
        _wait_for(base, lambda p: "freshly edited sentence" in p)
        assert "✅ Passed" in _get(base + "run/") and "Running…" not in _get(base + "run/")
        assert len(list(runs.iterdir())) == n_runs and not _torch_loaded(proc.pid)

        mods = root / "pipeline" / "tinymods.py"
        mods.write_text(mods.read_text().replace("width: int = 16", "width: int = 24"))
        _wait_for(base + "run/", lambda p: "Running… pipeline/tinymods.py changed" in p)
        _wait_for(base + "run/", lambda p: "✅ Passed" in p and "Running…" not in p)
        assert len(list(runs.iterdir())) == n_runs + 1

        mods.write_text(
            mods.read_text().replace(
                'if mode == "slow":', 'if True:\n        raise ValueError("broken on purpose")\n    if mode == "slow":'
            )
        )
        failed = _wait_for(base + "run/", lambda p: "broken on purpose" in p)
        assert "❌ Failed" in failed
        assert proc.poll() is None, "the dev server crashed"
        assert _get(base).startswith("<!doctype html>") or "<html" in _get(base)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not re.search(r"Traceback \(most recent call last\)", proc.stderr.read() if proc.stderr else "")

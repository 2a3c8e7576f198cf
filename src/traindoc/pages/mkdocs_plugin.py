"""The MkDocs plugin: thin glue between MkDocs events and the library.

``on_config`` checks prerequisites and wires the pinned Mermaid build; ``on_page_markdown`` expands
``traindoc`` fences through :mod:`traindoc.pages.docsgen`; under ``mkdocs serve`` stale runs go to a
background thread and a finished run triggers a rebuild by touching a watched file in the cache
(never anything in ``docs_dir``). Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.config import config_options as c
from mkdocs.config.base import Config
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, event_priority
from mkdocs.structure.files import File, Files

from .. import cache
from .._util import procs
from ..errors import CompareError, TraindocError
from ..export import assets
from ..facts import Facts, service
from ..project import find_root, named_pipelines
from ..render.env import project_templates_dir
from ..run import runner
from ..run.results import RunResult
from . import docsgen

ASSET = "assets/traindoc/mermaid.min.js"
INIT_ASSET = "assets/traindoc/init.js"
# Themes other than Material (mkdocs, readthedocs, ...) do not run Mermaid: this script does, on the
# fences pymdownx.superfences writes (pre.mermaid) and on plain Markdown code blocks (code.language-mermaid).
INIT_JS = """(function () {
  function start() {
    document.querySelectorAll('pre.mermaid, pre > code.language-mermaid').forEach(function (el) {
      var pre = el.tagName === 'CODE' ? el.parentElement : el;
      var div = document.createElement('div');
      div.className = 'mermaid';
      div.textContent = el.textContent;
      pre.replaceWith(div);
    });
    mermaid.initialize({startOnLoad: false, securityLevel: 'strict'});
    mermaid.run({querySelector: 'div.mermaid'});
  }
  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', start); } else { start(); }
})();
"""
PINNED_URL = re.compile(r"^https://[^\s]+@\d+\.\d+\.\d+/[^\s]+\.js$")


class TraindocConfig(Config):  # type: ignore[no-untyped-call]
    pipelines = c.Type(dict, default={})
    """Pipelines to document: name -> reference (file.py, file.py:name, module:name).

    Default: ``[tool.traindoc] pipelines`` in pyproject.toml."""
    execute = c.Choice(("auto", "always", "never"), default="auto")
    """auto = reuse a cached run when nothing it depends on changed, else run; always = run every build;
    never = the cached run or a 'not run' notice."""
    cache_dir = c.Type(str, default=".cache/traindoc")
    """Cache folder, relative to mkdocs.yml."""
    timeout = c.Optional(c.Type((int, float)))
    """Hard timeout of a run in seconds (default: the spec's training.timeout_s)."""
    strict = c.Type(bool, default=True)
    """A failed run, an unmet expectation or a broken traindoc fence fails `mkdocs build`."""
    mermaid = c.Type(str, default="local")
    """'local' = the pinned build from .cache/mermaid copied into the site (offline); or a pinned https URL (x.y.z)."""
    docs_budget = c.Type(bool, default=True)
    """Train with the spec's docs_run budget (few steps) instead of the full training."""
    nproc = c.Optional(c.Type(int))
    """Override distributed.nproc_per_node for the docs run."""
    background = c.Type(bool, default=True)
    """Under `mkdocs serve`, run stale trainings in the background and reload the page when done."""


class TraindocPlugin(BasePlugin[TraindocConfig]):  # type: ignore[no-untyped-call]
    supports_multiple_instances = False

    def __init__(self) -> None:
        self.serving = False
        self.jobs: dict[str, threading.Thread] = {}
        self.finished: dict[str, RunResult] = {}  # background results that failed (not cached) by key
        self.errored: dict[str, str] = {}  # background runs that raised before producing a result
        self.lock = threading.Lock()
        self.server: Any = None
        self.restore_signals: Callable[[], None] = lambda: None

    # -- lifecycle -------------------------------------------------------------------------------------
    def on_startup(self, *, command: str, dirty: bool) -> None:
        # Defining on_startup keeps one instance across `mkdocs serve` rebuilds.
        self.serving = command == "serve"
        # SIGTERM/SIGHUP/SIGINT kill every run at once, then unwind (handlers the host set are left alone)
        self.restore_signals = procs.install_signal_handlers(only_default=True)

    def on_shutdown(self) -> None:
        """`mkdocs serve` is stopping (Ctrl-C): kill every run still going, then let their threads finish."""
        procs.kill_all()
        for job in list(self.jobs.values()):
            job.join(timeout=procs.KILL_WAIT_S)
        self.restore_signals()

    @event_priority(100)  # before mermaid2 reads extra_javascript
    def on_config(self, config: Any) -> Any:
        self.root = Path(config.config_file_path).resolve().parent if config.config_file_path else find_root()
        self.cache_dir = (self.root / self.config.cache_dir).resolve()
        self.signal = self.cache_dir / "serve-signal"
        self.templates = project_templates_dir(self.root)
        self.pipelines = dict(self.config.pipelines) or named_pipelines(self.root)
        self.failures: list[str] = []
        self.facts_memo: dict[str, Facts] = {}
        self.facts_failed: dict[str, TraindocError] = {}
        self.run_memo: dict[str, tuple[RunResult | None, str | None]] = {}
        self._check_integration(config)
        self.mermaid_file: Path | None = None
        source = self.config.mermaid
        if source == "local":
            try:
                self.mermaid_file = assets.mermaid_js(root=self.root)
            except TraindocError as exc:
                raise PluginError(f"traindoc: {exc}") from None
            script = ASSET
        elif PINNED_URL.match(source):
            script = source
        else:
            raise PluginError(
                f"traindoc: mermaid: {source!r} must be 'local' or an https URL pinned to an exact version "
                "(e.g. https://unpkg.com/mermaid@11.12.0/dist/mermaid.min.js); floating versions break sites"
            )
        if all(str(x) != script for x in config.extra_javascript):
            config.extra_javascript.append(script)
        if self.inject_init and all(str(x) != INIT_ASSET for x in config.extra_javascript):
            config.extra_javascript.append(INIT_ASSET)
        return config

    def _check_integration(self, config: Any) -> None:
        has_mermaid2 = "mermaid2" in config.plugins
        fences = (config.mdx_configs.get("pymdownx.superfences") or {}).get("custom_fences", [])
        has_fence = any(f.get("name") == "mermaid" for f in fences)
        material = getattr(config.theme, "name", None) == "material"
        # Material runs Mermaid itself (given the fence); mermaid2 does on any theme; otherwise traindoc's
        # init script does, so the mkdocs and readthedocs themes render diagrams too.
        self.inject_init = not has_mermaid2 and not material
        if material and not (has_mermaid2 or has_fence):
            raise PluginError(
                "traindoc: diagrams need a Mermaid integration: add 'pymdownx.superfences' with a custom fence "
                "named 'mermaid' (Material), or the 'mermaid2' plugin; see docs/guide.md"
            )
        if has_mermaid2:
            m2 = config.plugins["mermaid2"].config
            if m2.get("javascript"):
                raise PluginError(
                    "traindoc: mermaid2's 'javascript' option loads a second Mermaid; remove it and let traindoc's "
                    "'mermaid' option provide the pinned build"
                )

    def on_files(self, files: Files, *, config: Any) -> Files:
        if self.mermaid_file is not None:
            files.append(File.generated(config, ASSET, abs_src_path=str(self.mermaid_file)))
        if self.inject_init:
            files.append(File.generated(config, INIT_ASSET, content=INIT_JS))
        return files

    def on_page_markdown(self, markdown: str, *, page: Any, config: Any, files: Files) -> str:
        if "traindoc" not in markdown:
            return markdown
        return docsgen.expand(markdown, self, page.file.src_uri, on_error=self.failures.append)

    def on_post_build(self, *, config: Any) -> None:
        if self.failures and self.config.strict and not self.serving:
            raise PluginError("traindoc: " + "\n".join(self.failures))

    def on_serve(self, server: Any, *, config: Any, builder: Any) -> Any:
        self.server = server
        self.signal.parent.mkdir(parents=True, exist_ok=True)
        self.signal.touch()
        server.watch(str(self.signal))
        for ref in self.pipelines.values():
            try:
                t = service.target(ref, self.root)
            except TraindocError:
                continue
            for src in cache.local_sources(t.file, self.root):
                server.watch(str(src))
        return server

    # -- provider (docsgen.Provider) ---------------------------------------------------------------------
    def _ref(self, name: str) -> str:
        return self.pipelines.get(name, name)

    def facts(self, pipeline: str) -> Facts:
        if pipeline in self.facts_failed:  # once per build: a pipeline that hangs costs one timeout, not one per fence
            raise self.facts_failed[pipeline]
        if pipeline not in self.facts_memo:
            try:
                with procs.deadline(self.config.timeout):  # a hanging import or factory fails the page, never hangs
                    self.facts_memo[pipeline] = service.facts_for(
                        self._ref(pipeline), cache_dir=self.cache_dir, root=self.root, confine=True
                    )
            except TraindocError as exc:
                self.facts_failed[pipeline] = exc
                raise
        return self.facts_memo[pipeline]

    def _options(self, force: bool = False) -> runner.RunOptions:
        return runner.RunOptions(
            docs=self.config.docs_budget,
            nproc=self.config.nproc,
            timeout_s=self.config.timeout,
            cache_dir=self.cache_dir,
            progress=not self.serving,
            force=force,
        )

    def run_seed(self, pipeline: str, seed: int | None, nproc: int | None = None) -> RunResult:
        """One seed of a comparison, synchronously (cached runs are reused; never: cache only)."""
        ref = self._ref(pipeline)
        base = self._options(force=self.config.execute == "always")
        opts = dataclasses.replace(base, seed=seed, nproc=nproc or base.nproc)
        if self.config.execute == "never":
            hit = runner.lookup(ref, opts, self.root)
            if hit is None:
                raise CompareError(f"{pipeline}: no cached run for seed {seed} (execute: never)")
            return hit
        return runner.run(ref, opts, self.root)

    def report(self, message: str) -> None:
        """A failure that fails a strict build (a comparison's missed expectation)."""
        self.failures.append(message)

    def run(self, pipeline: str) -> tuple[RunResult | None, str | None]:
        if pipeline not in self.run_memo:
            self.run_memo[pipeline] = self._run(pipeline)
            result, notice = self.run_memo[pipeline]
            if result is not None and not result.ok and notice is None:  # a run of the current inputs failed
                self.failures.append(f"{pipeline}: run {result.status}: {result.reason}")
        return self.run_memo[pipeline]

    def _run(self, pipeline: str) -> tuple[RunResult | None, str | None]:
        ref = self._ref(pipeline)
        opts = self._options()
        mode = self.config.execute
        if mode == "always":
            return runner.run(ref, self._options(force=True), self.root), None
        hit = runner.lookup(ref, opts, self.root)
        if hit is not None:
            return hit, None
        why = "; ".join(runner.stale_because(ref, opts, self.root)[:3])
        if mode == "never":
            last = runner.latest(ref, opts, self.root)
            note = "Not run: execute is 'never' and no cached run matches the current inputs" + (
                f" ({why})." if why else "."
            )
            return (last, note + " Showing the last recorded run.") if last else (None, note)
        if not (self.serving and self.config.background):
            return runner.run(ref, opts, self.root), None
        key = runner.run_fingerprint(service.target(ref, self.root), opts).key
        with self.lock:
            if key in self.finished:
                return self.finished[key], None
            if key in self.errored:  # never retried for the same inputs: no rebuild loop
                return None, f"The run could not start: {self.errored[key]}"
            job = self.jobs.get(key)
            if job is None or not job.is_alive():
                job = threading.Thread(
                    target=self._background, args=(ref, opts, key), daemon=True, name=f"traindoc-{pipeline}"
                )
                self.jobs[key] = job
                job.start()
        last = runner.latest(ref, opts, self.root)
        note = f"Running… {why or 'no recorded run matches the current inputs'}; this page reloads when it finishes."
        return (last, note + " Showing the last recorded run meanwhile.") if last else (None, note)

    def _background(self, ref: str, opts: runner.RunOptions, key: str) -> None:
        try:
            result = runner.run(ref, opts, self.root)
            if not result.ok:
                with self.lock:
                    self.finished[key] = result
        except Exception as exc:  # the dev server must survive anything a run does
            with self.lock:
                self.errored[key] = f"{type(exc).__name__}: {exc}"
        finally:
            time.sleep(0.1)
            self.signal.parent.mkdir(parents=True, exist_ok=True)
            self.signal.write_text(str(time.time()))  # watched: triggers a rebuild and a browser reload

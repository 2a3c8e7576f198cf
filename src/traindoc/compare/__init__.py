"""Two pipelines, or one pipeline over two settings, side by side with an honest verdict.

``stats`` (Welch intervals, verdicts in words), ``diff`` (model diff from facts), ``view`` (the diff as a
tree), ``run`` (seeds, metrics, expectations) and ``page`` (Markdown, Mermaid, SVG) are pure; this
module wires them to the runner and the facts service. No torch in this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..facts import Facts
from ..run.results import RunResult
from .run import Comparison, compare

DEFAULT_SEEDS = 3


def seeds_for(count: int, first: int = 0) -> list[int]:
    if count < 1:
        from ..errors import CompareError

        raise CompareError(f"--seeds must be 1 or more, got {count}")
    return list(range(first, first + count))


def compare_pipelines(
    ref_a: str,
    ref_b: str,
    *,
    seeds: int = DEFAULT_SEEDS,
    docs: bool = True,
    root: Path | None = None,
    cache_dir: Path | None = None,
    expect: Mapping[str, Mapping[str, float]] | None = None,
    progress: bool = False,
    nproc: int | None = None,
) -> Comparison:
    """Run both pipelines over the same seeds (cached runs are reused) and compare them."""
    from ..facts import service
    from ..run import runner

    def run_one(ref: str, seed: int | None) -> RunResult:
        opts = runner.RunOptions(docs=docs, seed=seed, cache_dir=cache_dir, progress=progress, nproc=nproc)
        return runner.run(ref, opts, root)

    def facts(ref: str) -> Facts:
        return service.facts_for(ref, cache_dir=cache_dir, root=root)

    return compare(ref_a, ref_b, seeds=seeds_for(seeds), runner=run_one, facts_for=facts, expect=expect, nproc=nproc)


def cached_comparison(
    ref_a: str,
    ref_b: str,
    *,
    seeds: int = DEFAULT_SEEDS,
    root: Path | None = None,
    cache_dir: Path | None = None,
    expect: Mapping[str, Mapping[str, float]] | None = None,
    nproc: int | None = None,
) -> Comparison | None:
    """The comparison from cached docs-budget runs only (README sections never train); None when a
    seed's run is missing (run ``traindoc compare A B --docs`` first)."""
    from ..facts import service
    from ..run import runner

    missing: list[str] = []

    def lookup(ref: str, seed: int | None) -> RunResult:
        hit = runner.lookup(ref, runner.RunOptions(docs=True, seed=seed, cache_dir=cache_dir, nproc=nproc), root)
        if hit is None:
            missing.append(f"{ref} seed {seed}")
            raise LookupError(ref)
        return hit

    def facts(ref: str) -> Facts:
        return service.facts_for(ref, cache_dir=cache_dir, root=root, in_process=True, confine=True)

    try:
        return compare(ref_a, ref_b, seeds=seeds_for(seeds), runner=lookup, facts_for=facts, expect=expect, nproc=nproc)
    except LookupError:
        return None


__all__ = ["DEFAULT_SEEDS", "Comparison", "cached_comparison", "compare", "compare_pipelines", "seeds_for"]

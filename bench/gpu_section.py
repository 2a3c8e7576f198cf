"""The GPU section of ``docs/benchmarks.md``, rendered from a ``gpu-check.json`` results file.

``python bench/gpu_section.py RESULTS.json [--doc docs/benchmarks.md]`` (``make gpu-docs``) replaces
the text between the two markers below and nothing else. Results of a dry run are refused for the
docs unless ``--allow-dry-run`` (then the section says, in bold, that they are no GPU figures).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

BEGIN = "<!-- gpu-check:begin -->"
END = "<!-- gpu-check:end -->"
HERE = Path(__file__).resolve().parent


def md(value: Any) -> str:
    """Text for a Markdown table cell: pipes escaped, HTML-significant characters as entities, one line."""
    text = " ".join(str(value).split())
    for raw, esc in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "'")):
        text = text.replace(raw, esc)
    return text


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def _ratio(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}×"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f} %"


def _secs(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _gib(v: float | None) -> str:
    return "n/a" if v is None else f"{v / 2**30:.0f}"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE), undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters.update(md=md, num=_num, ratio=_ratio, pct=_pct, secs=_secs, gib=_gib)
    return env


def target_text(results: dict[str, Any]) -> str:
    """Whether the runner reached 1.35× the plain loop; never a verdict from a CPU run or a missing figure."""
    ratio = (results.get("throughput") or {}).get("ratios", {}).get("runner", {}).get("median_step_sps", {})
    value = ratio.get("median") if ratio else None
    if value is None:
        return "n/a (not measured)"
    if results.get("dry_run") or not (results.get("machine") or {}).get("gpu"):
        return f"n/a on the CPU (measured {value:.2f}×; the target is for a GPU)"
    return f"{value:.2f}× ({'met' if value >= 1.35 else 'MISSED'})"


EMPTY: dict[str, Any] = {
    "machine": {"gpu": None, "driver": None, "python": "?", "torch": "?", "cuda": None, "cudnn": None, "nccl": None,
                "cpu": "?"},
    "cuda_tests": {"tests": []},
    "docs": {"run_page": None},
    "throughput": {"loops": None},
    "cold_start": None,
    "batch": None,
    "log_every": None,
}  # a phase that was skipped or failed leaves its part out  # fmt: skip


def render(results: dict[str, Any] | None) -> str:
    """The section's Markdown (without the markers); ``None`` renders the 'not measured yet' text."""
    r = None
    if results is not None:
        r = {**EMPTY, **{k: v for k, v in results.items() if v is not None}, "target": target_text(results)}
    text = _env().get_template("gpu_section.md.j2").render(r=r)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def splice(doc: str, body: str) -> str:
    """``doc`` with the text between the markers replaced by ``body``."""
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no '{BEGIN}' … '{END}' block in the document")
    return doc[: start + len(BEGIN)] + "\n" + body + doc[end:]


def extract(doc: str) -> str | None:
    """The current body between the markers, or None when the document has no block."""
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        return None
    return doc[start + len(BEGIN) : end].strip("\n") + "\n"


def write_doc(results: dict[str, Any], doc: Path, *, allow_dry_run: bool = False) -> str:
    if results.get("dry_run") and not allow_dry_run:
        raise ValueError("these results are from a dry run on the CPU; they are no GPU figures (--allow-dry-run)")
    text = splice(doc.read_text(encoding="utf-8"), render(results))
    doc.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    p.add_argument("--doc", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    p.add_argument("--allow-dry-run", action="store_true")
    args = p.parse_args(argv)
    try:
        write_doc(json.loads(args.results.read_text(encoding="utf-8")), args.doc, allow_dry_run=args.allow_dry_run)
    except (OSError, ValueError) as exc:
        print(f"gpu_section: {exc}", file=sys.stderr)
        return 2
    print(f"wrote the GPU section of {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
